"""The storage contract, run against every backend (local files, Redis, MariaDB, PostgreSQL)."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from pydantic import ValidationError

from grok2api.storage import Storage, StorageError, TokenRecord, TokenStatus, TokenUpdate, create_storage

from .conftest import BackendSpec

WORKER = Path(__file__).with_name("_worker.py")


def full_record(token: str = "tokFULL-0001-abcdefghijklmnop") -> TokenRecord:
    """A record with every field away from its default, including awkward text."""
    return TokenRecord(
        token=token,
        pool="super",
        status=TokenStatus.COOLING,
        quota=-3,
        created_at=1_700_000_000_123,
        last_used_at=1_700_000_100_456,
        last_sync_at=1_700_000_200_789,
        use_count=42,
        fail_count=7,
        last_fail_at=1_700_000_300_000,
        last_fail_reason="429 rate limited — 请稍后再试",
        tags=["nsfw", "vip", "ünïcödé", ""],
        note='note: 日本語 ✓ 🚀 "quotes" \\ back\\slash\nsecond line\ttab',
        nsfw=True,
        last_asset_clear_at=1_700_000_400_000,
        cooldown_until=1_700_000_500_000,
    )


def minimal_record(token: str = "tokMIN-0002-abcdefghijklmnop") -> TokenRecord:
    return TokenRecord(token=token)


def by_token(records: list[TokenRecord]) -> dict[str, dict]:
    return {r.token: r.model_dump() for r in records}


def test_full_record_really_sets_every_field() -> None:
    defaults = minimal_record().model_dump()
    full = full_record().model_dump()
    same = [k for k in TokenRecord.model_fields if k != "created_at" and full[k] == defaults[k]]
    assert same == [], f"full_record() leaves fields at their default: {same}"


async def test_round_trip_is_exact(storage: Storage, other: Storage) -> None:
    full, minimal = full_record(), minimal_record()
    assert await storage.add_tokens([full, minimal]) == [full.token, minimal.token]
    for store in (storage, other):
        assert (await store.get_token(full.token)).model_dump() == full.model_dump()
        got_min = await store.get_token(minimal.token)
        assert got_min.model_dump() == minimal.model_dump()
        assert got_min.last_used_at is None and got_min.last_fail_reason is None and got_min.tags == []
        assert by_token(await store.load_tokens()) == by_token([full, minimal])
    assert await storage.get_token("sso=" + full.token) is not None
    assert await storage.get_token("nope-not-a-token") is None


async def test_add_skips_existing_and_in_batch_duplicates(storage: Storage) -> None:
    a, b, c = (minimal_record(f"tokDUP-{i}-abcdefghijklmnop") for i in "abc")
    assert await storage.add_tokens([a, b]) == [a.token, b.token]
    changed_b = b.model_copy(update={"note": "must not overwrite"})
    assert await storage.add_tokens([changed_b, c]) == [c.token]
    assert (await storage.get_token(b.token)).note == ""
    d1 = minimal_record("sso=tokDUP-d-abcdefghijklmnop")
    d2 = d1.model_copy(update={"note": "second"})
    assert await storage.add_tokens([d1, d2]) == ["tokDUP-d-abcdefghijklmnop"]
    assert (await storage.get_token(d1.token)).note == ""
    assert await storage.add_tokens([]) == []
    assert len(await storage.load_tokens()) == 4


async def test_upsert_replaces_whole_records(storage: Storage) -> None:
    full = full_record()
    await storage.add_tokens([full])
    replaced = minimal_record(full.token).model_copy(update={"pool": "heavy", "note": "replaced"})
    fresh = minimal_record("tokUPS-new-abcdefghijklmnop")
    await storage.upsert_tokens([replaced, fresh])
    assert by_token(await storage.load_tokens()) == by_token([replaced, fresh])


async def test_update_set_and_incr(storage: Storage, other: Storage) -> None:
    rec, bystander = full_record(), minimal_record()
    await storage.add_tokens([rec, bystander])
    updates = [
        TokenUpdate(
            token=rec.token,
            set={
                "status": "active",
                "pool": "basic",
                "last_fail_reason": None,
                "cooldown_until": None,
                "tags": ["x", "y"],
                "note": "",
                "nsfw": False,
                "last_used_at": 1_800_000_000_000,
            },
            incr={"use_count": 1, "fail_count": 2},
        ),
        TokenUpdate(token=rec.token, set={"quota": 10}, incr={"quota": -1, "use_count": 5}),
        TokenUpdate(token="sso=" + bystander.token, incr={"quota": -4}),
    ]
    await storage.update_tokens(updates)
    expected_rec = updates[1].apply_to(updates[0].apply_to(rec))
    expected_by = updates[2].apply_to(bystander)
    assert expected_rec.quota == 9 and expected_rec.use_count == 48 and expected_rec.fail_count == 9
    for store in (storage, other):
        assert (await store.get_token(rec.token)).model_dump() == expected_rec.model_dump()
        assert (await store.get_token(bystander.token)).model_dump() == expected_by.model_dump()
        assert by_token(await store.load_tokens()) == by_token([expected_rec, expected_by])


async def test_unknown_token_update_is_ignored(storage: Storage) -> None:
    await storage.add_tokens([minimal_record()])
    before = await storage.tokens_version()
    await storage.update_tokens([TokenUpdate(token="tokGHOST-abcdefghijklmnop", incr={"use_count": 1})])
    await storage.update_tokens([])
    assert await storage.get_token("tokGHOST-abcdefghijklmnop") is None
    assert len(await storage.load_tokens()) == 1
    assert await storage.tokens_version() == before


def test_bad_deltas_are_rejected_before_storage() -> None:
    with pytest.raises(ValidationError):
        TokenUpdate(token="t", set={"quota": "lots"})
    with pytest.raises(ValidationError):
        TokenUpdate(token="t", set={"no_such_field": 1})
    with pytest.raises(ValidationError):
        TokenUpdate(token="t", set={"status": "bogus"})
    with pytest.raises(ValidationError):
        TokenUpdate(token="t", incr={"note": 1})
    assert TokenUpdate(token="t", set={"status": "expired"}).set["status"] is TokenStatus.EXPIRED


async def test_delete(storage: Storage, other: Storage) -> None:
    a, b = full_record(), minimal_record()
    await storage.add_tokens([a, b])
    assert await storage.delete_tokens([a.token, "tokUNKNOWN-abcdefghijklmnop", a.token]) == 1
    assert await storage.get_token(a.token) is None
    assert await other.get_token(a.token) is None
    assert by_token(await other.load_tokens()) == by_token([b])
    version = await storage.tokens_version()
    assert await storage.delete_tokens([a.token]) == 0
    assert await storage.tokens_version() == version
    # a deleted token is not resurrected by a late update
    await storage.update_tokens([TokenUpdate(token=a.token, incr={"use_count": 1})])
    assert await storage.get_token(a.token) is None
    # and can be added again
    assert await storage.add_tokens([a]) == [a.token]


async def test_tokens_version_changes_on_every_change(storage: Storage, other: Storage) -> None:
    seen = [await storage.tokens_version()]

    async def changed() -> None:
        now = await storage.tokens_version()
        assert now not in seen
        assert await other.tokens_version() == now
        seen.append(now)

    rec = minimal_record()
    await storage.add_tokens([rec])
    await changed()
    await storage.update_tokens([TokenUpdate(token=rec.token, incr={"use_count": 1})])
    await changed()
    await other.update_tokens([TokenUpdate(token=rec.token, set={"note": "from the other one"})])
    await changed()
    await storage.upsert_tokens([rec])
    await changed()
    await storage.add_tokens([rec])  # no-op: already there
    assert await storage.tokens_version() == seen[-1]
    await storage.delete_tokens([rec.token])
    await changed()


CONFIG_V1 = (
    '# grok2api config\n[app]\napi_key = "sk-ü"  # comment kept\n\n[token]\nreload_interval_sec = 30\n'
)
CONFIG_V2 = CONFIG_V1 + '\n[chat]\nsystem = "日本語 🚀"\r\n'


async def test_config_save_load_and_version(storage: Storage, other: Storage) -> None:
    assert await storage.load_config() is None
    v0 = await storage.config_version()
    v1 = await storage.save_config(CONFIG_V1)
    assert v1 != v0 and v1 > v0
    assert await storage.config_version() == v1
    assert await other.config_version() == v1
    assert await other.load_config() == CONFIG_V1
    v2 = await other.save_config(CONFIG_V2)
    assert v2 > v1
    assert await storage.config_version() == v2
    assert await storage.load_config() == CONFIG_V2
    v3 = await storage.save_config(CONFIG_V2)  # saving the same text still counts
    assert v3 > v2 and await other.config_version() == v3


async def test_lock_is_mutually_exclusive(storage: Storage, other: Storage) -> None:
    async with storage.lock("tokens_save", timeout=1) as got:
        assert got is True
        started = time.monotonic()
        async with other.lock("tokens_save", timeout=0.3) as got_other:
            assert got_other is False
        assert time.monotonic() - started >= 0.25
        async with storage.lock("tokens_save", timeout=0.2) as got_same:
            assert got_same is False  # the same backend instance does not re-enter either
        async with other.lock("another_lock", timeout=1) as got_unrelated:
            assert got_unrelated is True
    async with other.lock("tokens_save", timeout=1) as got_after:
        assert got_after is True


async def test_lock_waits_for_release(storage: Storage, other: Storage) -> None:
    order: list[str] = []

    async def holder() -> None:
        async with storage.lock("job", timeout=1) as got:
            assert got
            order.append("a-in")
            await asyncio.sleep(0.3)
            order.append("a-out")

    async def waiter() -> None:
        await asyncio.sleep(0.05)
        async with other.lock("job", timeout=5) as got:
            assert got
            order.append("b-in")

    await asyncio.gather(holder(), waiter())
    assert order == ["a-in", "a-out", "b-in"]


async def test_two_processes_lose_no_increments(
    backend: BackendSpec, storage: Storage, tmp_path: Path
) -> None:
    n = 1000
    rec = minimal_record().model_copy(update={"quota": 5000})
    await storage.add_tokens([rec])
    version_before = await storage.tokens_version()
    options = {"compact_every": 150} if backend.kind == "local" else {}
    procs, readies = [], []
    go = tmp_path / "go"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(Path.cwd()), os.environ.get("PYTHONPATH", "")])}
    for i in range(2):
        ready = tmp_path / f"ready-{i}"
        readies.append(ready)
        spec = {
            "kind": backend.kind,
            "url": backend.url,
            "data_dir": str(backend.data_dir),
            "namespace": backend.namespace,
            "options": options,
            "token": rec.token,
            "n": n,
            "ready": str(ready),
            "go": str(go),
            "done": str(tmp_path / f"done-{i}"),
        }
        procs.append(subprocess.Popen([sys.executable, str(WORKER), json.dumps(spec)], env=env))
    try:
        deadline = time.monotonic() + 60
        while not all(r.exists() for r in readies):
            assert all(p.poll() is None for p in procs), "a worker died during start-up"
            assert time.monotonic() < deadline, "workers did not start"
            await asyncio.sleep(0.01)
        go.touch()
        codes = [await asyncio.to_thread(p.wait, 120) for p in procs]
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
    assert codes == [0, 0]
    spans = [json.loads((tmp_path / f"done-{i}").read_text()) for i in range(2)]
    overlap = spans[0]["start"] < spans[1]["end"] and spans[1]["start"] < spans[0]["end"]
    assert overlap, "the two workers did not run at the same time"
    final = await storage.get_token(rec.token)
    assert final.use_count == 2 * n
    assert final.quota == 5000 - 2 * n
    assert await storage.tokens_version() == version_before + 2 * n
    fresh = backend.create()
    await fresh.open()
    try:
        assert (await fresh.get_token(rec.token)).use_count == 2 * n
    finally:
        await fresh.close()
    if backend.kind == "local":
        snapshot = json.loads((backend.data_dir / "token.json").read_text())
        assert [t["use_count"] for t in snapshot["tokens"]] == [2 * n]  # both workers compacted on close
        assert snapshot["seq"] == version_before + 2 * n
        assert (backend.data_dir / "token.journal").read_bytes() == b""


@pytest.mark.parametrize("kind", ["redis", "mysql", "pgsql"])
async def test_unreachable_server_is_a_clear_error(kind: str, tmp_path: Path) -> None:
    from fixtures.services import free_port

    port = free_port()
    url = {
        "redis": f"redis://:s3cretPW@127.0.0.1:{port}/0",
        "mysql": f"mysql://root:s3cretPW@127.0.0.1:{port}/test",
        "pgsql": f"postgresql://postgres:s3cretPW@127.0.0.1:{port}/test",
    }[kind]
    store = create_storage(kind, url, tmp_path, namespace="unreachable", connect_timeout=1.0)
    started = time.monotonic()
    with pytest.raises(StorageError) as info:
        await store.open()
    assert time.monotonic() - started < 10
    message = str(info.value)
    assert "s3cretPW" not in message
    assert f"127.0.0.1:{port}" in message and kind in message


async def test_wrong_mysql_password_is_reported_without_it(mysql_url: str, tmp_path: Path) -> None:
    url = mysql_url.replace("root@", "root:Wr0ngPassw0rd@")
    store = create_storage("mysql", url, tmp_path, namespace="badpw", connect_timeout=2.0)
    with pytest.raises(StorageError) as info:
        await store.open()
    assert "Wr0ngPassw0rd" not in str(info.value)
    assert "***" in str(info.value)


async def test_not_opened_is_a_storage_error(backend: BackendSpec) -> None:
    store = backend.create()
    with pytest.raises(StorageError):
        await store.load_tokens()
