"""Local-backend specifics: file layout, corrupt files, torn journal lines, compaction."""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

import pytest

from grok2api.storage import CorruptDataError, TokenRecord, TokenUpdate
from grok2api.storage.local import LocalStorage

from .test_contract import full_record, minimal_record


@pytest.fixture
async def local(tmp_path: Path):
    store = LocalStorage(tmp_path / "data", compact_every=1000)
    await store.open()
    try:
        yield store
    finally:
        await store.close()


async def reopen(path: Path, **options) -> LocalStorage:
    store = LocalStorage(path, **options)
    await store.open()
    return store


async def test_layout_and_compaction_on_close(tmp_path: Path) -> None:
    data = tmp_path / "data"
    store = await reopen(data)
    rec = full_record()
    await store.add_tokens([rec])
    await store.update_tokens([TokenUpdate(token=rec.token, incr={"use_count": 1})])
    assert not (data / "token.json").exists()
    lines = (data / "token.journal").read_bytes().splitlines()
    assert [json.loads(x)["seq"] for x in lines] == [1, 2]
    await store.close()
    snapshot = json.loads((data / "token.json").read_text())
    assert snapshot["format"] == 1 and snapshot["seq"] == 2
    assert snapshot["tokens"][0]["use_count"] == rec.use_count + 1
    assert (data / "token.journal").read_bytes() == b""
    assert (data / ".locks" / "storage.tokens.lock").exists()
    again = await reopen(data)
    assert await again.tokens_version() == 2
    assert (await again.get_token(rec.token)).model_dump() == rec.model_copy(
        update={"use_count": rec.use_count + 1}
    ).model_dump()
    await again.close()


async def test_compaction_threshold_and_other_reader(tmp_path: Path) -> None:
    data = tmp_path / "data"
    writer, reader = await reopen(data, compact_every=10), await reopen(data)
    rec = minimal_record()
    await writer.add_tokens([rec])
    assert (await reader.get_token(rec.token)).use_count == 0
    for _ in range(25):
        await writer.update_tokens([TokenUpdate(token=rec.token, incr={"use_count": 1})])
    snapshot = json.loads((data / "token.json").read_text())
    assert snapshot["seq"] == 20  # compacted at 10 and 20 entries
    assert len((data / "token.journal").read_bytes().splitlines()) == 6
    assert (await reader.get_token(rec.token)).use_count == 25
    assert await reader.tokens_version() == 26
    await writer.close()
    await reader.close()


async def test_crash_between_snapshot_and_truncate_applies_nothing_twice(tmp_path: Path) -> None:
    data = tmp_path / "data"
    store = await reopen(data)
    rec = minimal_record()
    await store.add_tokens([rec])
    for _ in range(5):
        await store.update_tokens([TokenUpdate(token=rec.token, incr={"use_count": 1})])
    journal = (data / "token.journal").read_bytes()
    await store.close()  # writes token.json (seq 6) and empties the journal
    (data / "token.journal").write_bytes(journal)  # as if the truncate never happened
    again = await reopen(data)
    assert (await again.get_token(rec.token)).use_count == 5
    await again.update_tokens([TokenUpdate(token=rec.token, incr={"use_count": 1})])
    assert (await again.get_token(rec.token)).use_count == 6
    assert await again.tokens_version() == 7
    await again.close()


async def test_torn_last_journal_line_is_reported_and_dropped(tmp_path: Path, caplog) -> None:
    data = tmp_path / "data"
    store = await reopen(data)
    rec = minimal_record()
    await store.add_tokens([rec])
    await store.update_tokens([TokenUpdate(token=rec.token, incr={"use_count": 3})])
    await store.close()
    journal = data / "token.journal"
    (data / "token.json").unlink()
    # rebuild the journal by hand: two good entries, then a half-written third
    journal.write_bytes(
        json.dumps({"seq": 1, "op": "put", "records": [rec.model_dump(mode="json")]}).encode() + b"\n"
        + json.dumps(
            {"seq": 2, "op": "update", "updates": [{"token": rec.token, "incr": {"use_count": 3}}]}
        ).encode()
        + b"\n" + b'{"seq": 3, "op": "update", "upd'
    )
    caplog.set_level(logging.WARNING, logger="grok2api.storage.local")
    reader = await reopen(data)
    assert (await reader.get_token(rec.token)).use_count == 3
    assert await reader.tokens_version() == 2
    assert "incomplete" in caplog.text and "token.journal" in caplog.text
    await reader.update_tokens([TokenUpdate(token=rec.token, incr={"use_count": 1})])
    lines = journal.read_bytes().splitlines()
    assert [json.loads(x)["seq"] for x in lines] == [1, 2, 3]
    assert (await reader.get_token(rec.token)).use_count == 4
    await reader.close()


async def test_corrupt_journal_line_in_the_middle_is_an_error(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    rec = minimal_record()
    good = json.dumps({"seq": 1, "op": "put", "records": [rec.model_dump(mode="json")]}).encode()
    second = good.replace(b'"seq": 1', b'"seq": 2')
    (data / "token.journal").write_bytes(good + b"\n" + b"garbage{\n" + second + b"\n")
    store = await reopen(data)
    with pytest.raises(CorruptDataError) as info:
        await store.load_tokens()
    assert info.value.path == str(data / "token.journal") and info.value.line == 2
    await store.close()


async def test_corrupt_token_json_is_reported_and_never_overwritten(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    broken = b'{\n  "seq": 1,\n  "tokens": [\n    {"token": "abc", }\n  ]\n}\n'
    (data / "token.json").write_bytes(broken)
    store = await reopen(data)
    with pytest.raises(CorruptDataError) as info:
        await store.load_tokens()
    assert info.value.path == str(data / "token.json") and info.value.line == 4
    assert "token.json:4" in str(info.value)
    with pytest.raises(CorruptDataError):
        await store.add_tokens([minimal_record()])
    with pytest.raises(CorruptDataError):
        await store.update_tokens([TokenUpdate(token="abc", incr={"use_count": 1})])
    await store.close()
    assert (data / "token.json").read_bytes() == broken
    assert (data / "token.journal").read_bytes() == b""


async def test_invalid_record_in_token_json_names_its_line_but_not_the_secret(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    good, bad = minimal_record("tokGOOD-abcdefghijklmnopq"), minimal_record("tokSECRET-abcdefghijklmnop")
    bad_entry = {**bad.model_dump(mode="json"), "quota": "lots"}
    doc = {"format": 1, "seq": 0, "tokens": [good.model_dump(mode="json"), bad_entry]}
    text = json.dumps(doc, indent=2)
    (data / "token.json").write_text(text)
    store = await reopen(data)
    with pytest.raises(CorruptDataError) as info:
        await store.load_tokens()
    expected_line = text[: text.index(bad.token)].count("\n") + 1
    assert info.value.line == expected_line
    assert "quota" in str(info.value) and bad.token not in str(info.value)
    await store.close()


async def test_older_pool_keyed_token_json_is_read(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    (data / "token.json").write_text(json.dumps({
        "ssoBasic": [
            {"token": "sso=tokOLD-basic-abcdefghijk", "status": "active", "quota": 80, "tags": ["nsfw"]}
        ],
        "ssoSuper": ["tokOLD-super-abcdefghijk"],
    }))
    store = await reopen(data)
    records = {r.token: r for r in await store.load_tokens()}
    assert records["tokOLD-basic-abcdefghijk"].pool == "ssoBasic"
    assert records["tokOLD-basic-abcdefghijk"].tags == ["nsfw"]
    assert records["tokOLD-super-abcdefghijk"].pool == "ssoSuper"
    await store.update_tokens([TokenUpdate(token="tokOLD-super-abcdefghijk", incr={"use_count": 1})])
    await store.close()
    snapshot = json.loads((data / "token.json").read_text())
    assert snapshot["seq"] == 1 and len(snapshot["tokens"]) == 2


async def test_corrupt_config_toml_is_reported_with_line(local: LocalStorage) -> None:
    path = local.config_path
    path.write_text('[app]\napi_key = "x"\nbroken = \n')
    with pytest.raises(CorruptDataError) as info:
        await local.load_config()
    assert info.value.path == str(path) and info.value.line == 3
    path.write_bytes(b'[app]\nname = "ok"\nnote = "\xff\xfe"\n')
    with pytest.raises(CorruptDataError) as info:
        await local.load_config()
    assert info.value.line == 3 and "UTF-8" in str(info.value)
    assert path.read_bytes() == b'[app]\nname = "ok"\nnote = "\xff\xfe"\n'


async def test_saving_over_a_corrupt_config_keeps_a_backup(local: LocalStorage, caplog) -> None:
    local.config_path.write_text("not toml at all [[[\n")
    caplog.set_level(logging.WARNING, logger="grok2api.storage.local")
    await local.save_config("[app]\n")
    backups = list(local.data_dir.glob("config.toml.corrupt-*"))
    assert len(backups) == 1 and backups[0].read_text() == "not toml at all [[[\n"
    assert "config.toml" in caplog.text
    assert await local.load_config() == "[app]\n"


async def test_hand_edited_config_bumps_the_version(local: LocalStorage, tmp_path: Path) -> None:
    v1 = await local.save_config("[app]\nx = 1\n")
    assert await local.config_version() == v1
    os.utime(local.config_path, ns=(1, 1))  # make sure the edit is seen even on coarse clocks
    local.config_path.write_text("[app]\nx = 2\n")
    v2 = await local.config_version()
    assert v2 > v1
    other = await reopen(local.data_dir)
    assert await other.config_version() == v2
    await other.close()
    assert await local.config_version() == v2


async def test_lock_files_live_under_dot_locks(local: LocalStorage) -> None:
    async with local.lock("tokens_save", timeout=1) as got:
        assert got
    assert (local.data_dir / ".locks" / "tokens_save.lock").exists()
    with pytest.raises(ValueError):
        local.lock("../escape")


async def test_unchanged_record_objects_are_not_shared(local: LocalStorage) -> None:
    rec = full_record()
    await local.add_tokens([rec])
    got = await local.get_token(rec.token)
    got.tags.append("mutated")
    got.note = "mutated"
    again = await local.get_token(rec.token)
    assert again.model_dump() == rec.model_dump()
    rec.note = "caller mutation after add"
    assert (await local.get_token(rec.token)).note == full_record().note


def test_token_record_normalises_sso_prefix() -> None:
    assert TokenRecord(token=" sso=abc;x=1 ").token == "abc"
