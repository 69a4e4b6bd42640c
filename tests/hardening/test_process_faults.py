"""Process faults: the TokenPool actor killed under load, a GrokWorker replica killed mid-stream,
Redis restarted under the redis storage backend.

Clients must see success or a clean error (never a hang), acknowledged token state must survive,
and the system must recover by itself.
"""

from __future__ import annotations

import asyncio
import shutil
import subprocess
import threading
import time
import uuid
from pathlib import Path
from typing import Any, Iterator

import httpx
import pytest
import ray

from fixtures.services import IN_CI, free_port
from support import chat_requests, safe_tokens, wait_for

CLEAN_ERRORS = {429, 502, 503, 504}


# -- TokenPool actor killed during concurrent load ---------------------------------------------------


def test_token_pool_actor_killed_under_load(pool) -> None:
    tokens = [f"tok-load-{i}-{uuid.uuid4().hex}" for i in range(3)]
    pool.add_tokens(tokens)
    results: list[tuple[str, int]] = []
    lock = threading.Lock()
    stop = threading.Event()

    def client(n: int) -> None:
        with httpx.Client(timeout=45, headers={"Authorization": f"Bearer {pool.api_key}"}) as http:
            for i in range(20):  # bounded: 6 x 20 stays well under the pool's 3 x 80 quota
                if stop.is_set():
                    return
                try:
                    r = http.post(pool.api_url + "/chat/completions",
                                  json={"model": "grok-4", "stream": bool(i % 2),
                                        "messages": [{"role": "user", "content": f"load {n}-{i}"}]})
                    ok = r.status_code == 200 and f"Echo: load {n}-{i}" in r.text.replace('"content":"', "")
                    if r.status_code == 200 and not ok:
                        ok = '"finish_reason":"stop"' in r.text and "Echo: load" in r.text
                    outcome = ("ok" if ok else "bad200") if r.status_code == 200 else "error"
                    with lock:
                        results.append((outcome, r.status_code))
                except httpx.TimeoutException:
                    with lock:
                        results.append(("hang", 0))
                time.sleep(0.05)

    threads = [threading.Thread(target=client, args=(n,), daemon=True) for n in range(6)]
    for t in threads:
        t.start()
    time.sleep(1.0)
    ray.kill(pool.pool_actor(), no_restart=False)
    time.sleep(3.0)
    stop.set()
    for t in threads:
        t.join(timeout=60)
    assert not any(t.is_alive() for t in threads), "a client never finished"

    assert ("hang", 0) not in results
    assert not [r for r in results if r[0] == "bad200"], results
    assert all(code in CLEAN_ERRORS for kind, code in results if kind == "error"), results
    successes = sum(1 for kind, _ in results if kind == "ok")
    assert successes >= 5, results
    assert len(results) < 3 * 80

    # Every acknowledged success is on the restarted actor's books (settlement is at-least-once: >=).
    counted = wait_for(lambda: (t := safe_tokens(pool)) and sum(t[k]["use_count"] for k in tokens) >= successes
                       and t, timeout=30)
    assert counted, f"use counts {safe_tokens(pool)} < {successes} successes"
    total_upstream = sum(len(chat_requests(pool.sim, k)) for k in tokens)
    assert sum(counted[k]["use_count"] for k in tokens) <= total_upstream

    # And it serves again.
    resp = pool.client().chat.completions.create(model="grok-4", stream=False,
                                                 messages=[{"role": "user", "content": "after the kill"}])
    assert resp.choices[0].message.content.startswith("Echo: after the kill")


# -- a GrokWorker replica killed mid-stream ------------------------------------------------------------


def _replica_actors() -> list[tuple[str, str]]:
    return [(a["name"], a["namespace"]) for a in ray.util.list_named_actors(all_namespaces=True)
            if "GrokWorker" in a["name"] and "REPLICA" in a["name"].upper()]


def test_worker_replica_killed_mid_stream(pool) -> None:
    token = f"tok-replica-{uuid.uuid4().hex}"
    pool.add_tokens([token])
    replicas = _replica_actors()
    assert replicas, ray.util.list_named_actors(all_namespaces=True)
    got: dict[str, Any] = {"chunks": 0, "ended": None}

    def stream() -> None:
        try:
            with httpx.stream("POST", pool.api_url + "/chat/completions", timeout=httpx.Timeout(30, read=20),
                              headers={"Authorization": f"Bearer {pool.api_key}"},
                              json={"model": "grok-4", "stream": True, "messages": [
                                  {"role": "user", "content": "long one [[sim:tokens=400;delay_ms=50]]"}]}) as r:
                got["status"] = r.status_code
                for line in r.iter_lines():
                    if line.startswith("data: "):
                        got["chunks"] += 1
                        got["last"] = line
            got["ended"] = "eof"
        except httpx.TimeoutException:
            got["ended"] = "hang"
        except httpx.HTTPError as exc:
            got["ended"] = type(exc).__name__

    t0 = time.monotonic()
    thread = threading.Thread(target=stream, daemon=True)
    thread.start()
    assert wait_for(lambda: got["chunks"] >= 5, timeout=15), got
    for name, namespace in replicas:
        ray.kill(ray.get_actor(name, namespace=namespace), no_restart=True)
    thread.join(timeout=40)
    assert not thread.is_alive(), "the client stream did not end"
    assert got["ended"] not in (None, "hang"), got
    assert got["status"] == 200 and got.get("last") != "data: [DONE]"  # cut short, not a normal end
    assert time.monotonic() - t0 < 40  # ended by the kill, not by the 20 s stream running out

    # Serve replaces the replica by itself; the next requests succeed.
    def serving() -> bool:
        try:
            r = httpx.post(pool.api_url + "/chat/completions", timeout=20,
                           headers={"Authorization": f"Bearer {pool.api_key}"},
                           json={"model": "grok-4", "messages": [{"role": "user", "content": "back again"}]})
            return r.status_code == 200 and "Echo: back again" in r.text
        except httpx.HTTPError:
            return False

    assert wait_for(serving, timeout=90, interval=1.0), "no replica came back"
    new = _replica_actors()
    assert new and set(new).isdisjoint(replicas)
    assert httpx.get(pool.base_url + "/ready", timeout=15).status_code == 200


# -- Redis restarted under the redis backend --------------------------------------------------------------


class RedisServer:
    """A private redis-server (the machine's binary) with append-only persistence, restartable."""

    def __init__(self, workdir: Path) -> None:
        self.dir = workdir
        self.port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def _cli(self, *args: str) -> subprocess.CompletedProcess[bytes]:
        return subprocess.run(["redis-cli", "-p", str(self.port), *args], capture_output=True, timeout=10)

    def start(self) -> None:
        self.proc = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--dir", str(self.dir),
             "--appendonly", "yes", "--appendfsync", "always", "--save", "", "--logfile", str(self.dir / "redis.log")],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        assert wait_for(lambda: self._cli("ping").stdout.strip() == b"PONG", timeout=15), "redis did not start"

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self._cli("shutdown", "nosave")  # acknowledged writes are in the fsynced AOF already
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
        self.proc = None


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[RedisServer]:
    if shutil.which("redis-server") is None or shutil.which("redis-cli") is None:
        if IN_CI:
            pytest.fail("redis-server is required in CI")
        pytest.skip("redis-server is not installed")
    server = RedisServer(tmp_path)
    server.start()
    try:
        yield server
    finally:
        server.stop()


async def test_redis_restart_keeps_acknowledged_state(redis_server: RedisServer, tmp_path: Path) -> None:
    from grok2api.actors.token_pool import PoolSettings, TokenPoolCore
    from grok2api.pool.client import LeaseClient
    from grok2api.pool.leases import OutcomeKind
    from grok2api.storage import create_storage

    namespace = f"hardening{uuid.uuid4().hex[:8]}"

    def storage() -> Any:
        return create_storage("redis", redis_server.url, tmp_path, namespace=namespace)

    settings = PoolSettings(reload_interval_sec=3600, auto_refresh=False, scheduler_period_sec=3600)
    core = TokenPoolCore(storage, settings)
    await core.ready()
    tokens = [f"tok-redis-{i}-{uuid.uuid4().hex}" for i in range(2)]
    assert (await core.add_tokens(tokens, "basic"))["added"] == 2
    client = LeaseClient(core.grant, core.settle, settle_interval=3600)  # flushed by hand below

    async def succeed(n: int) -> None:
        for _ in range(n):
            ticket = await client.acquire(("basic",), 1)
            client.finish(ticket, OutcomeKind.SUCCESS)

    async def stored_uses() -> int:
        check = storage()
        await check.open()
        try:
            return sum(r.use_count for r in await check.load_tokens() if r.token in tokens)
        finally:
            await check.close()

    try:
        await succeed(5)
        await client.flush()
        assert await stored_uses() == 5

        redis_server.stop()
        await succeed(3)  # leases held locally keep serving while storage is down
        t0 = time.monotonic()
        with pytest.raises(Exception):  # noqa: B017 - any clean storage error, but an error
            await asyncio.wait_for(client.flush(), timeout=20)
        assert time.monotonic() - t0 < 20
        assert client.pending == 3  # the batch is kept for the next attempt

        redis_server.start()
        deadline = time.monotonic() + 20
        while True:
            try:
                await client.flush()
                break
            except Exception:  # noqa: BLE001 - the client reconnects
                assert time.monotonic() < deadline, "settle did not recover after Redis came back"
                await asyncio.sleep(0.3)
        assert client.pending == 0
        assert await stored_uses() == 8

        # A restarted pool (a fresh actor) reloads the same books from Redis.
        fresh = TokenPoolCore(storage, settings)
        await fresh.ready()
        books = {r["token"]: r for r in await fresh.list_tokens()}
        assert sum(books[t]["use_count"] for t in tokens) == 8
        assert sum(books[t]["quota"] for t in tokens) == 2 * 80 - 8
        await fresh.shutdown()
    finally:
        await client.close()
        await core.shutdown()  # the private Redis (and its data) goes away with the fixture
