"""Upstream client benchmark: the gateway's streamed curl leg versus curl_cffi's session API.

Starts the Grok simulator (subprocess, ``--no-record``) and, in this process (uvloop), streams
``POST /rest/app-chat/conversations/new`` answers to the end with

- ``pool``: :class:`grok2api.upstream.curl_stream.CurlStreamPool`, what the gateway uses;
- ``session``: ``curl_cffi.requests.AsyncSession.stream`` with the same impersonation.

Phases, each client in turn:

1. **fast**: ``--concurrency`` closed-loop streams of ``--tokens``-token answers for ``--duration``
   seconds: streams/s and this process's CPU per stream (the simulator's CPU is not counted);
2. **slow**: ``--slow`` streams at once, ``--slow-tokens`` tokens ``--delay-ms`` apart: CPU per
   body chunk and how much this process's resident memory grew while they were in flight.

Loopback only, bounded by ``--duration`` and the stream counts. Method and figures: ``bench/README.md``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from pathlib import Path
from typing import Awaitable, Callable

sys.path.insert(0, str(Path(__file__).resolve().parent))
from chat import sim_control, start_simulator  # noqa: E402

from grok2api.upstream.curl_stream import CurlStreamPool  # noqa: E402

IMPERSONATE = "chrome136"
TOKEN = "bench-token"
HEADERS = {"Content-Type": "application/json", "Cookie": f"sso={TOKEN}; sso-rw={TOKEN}"}


def body(tokens: int, delay_ms: int = 0) -> bytes:
    marker = f"[[sim:tokens={tokens}" + (f";delay_ms={delay_ms}" if delay_ms else "") + "]]"
    return json.dumps({"message": f"benchmark {marker}", "modeId": "fast", "temporary": True,
                       "fileAttachments": [], "imageAttachments": [], "toolOverrides": {},
                       "responseMetadata": {}}).encode()


def rss_mib() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * 4096 / 2**20


Stream = Callable[[bytes], Awaitable[int]]  # one request read to the end → body chunks seen


def pool_client(url: str) -> tuple[Stream, Callable[[], Awaitable[None]]]:
    pool = CurlStreamPool(IMPERSONATE, max_handles=4096)
    lines = [f"{k}: {v}".encode() for k, v in HEADERS.items()]

    async def one(data: bytes) -> int:
        s = await pool.open("POST", url, lines, data, head_timeout=60, idle_timeout=60)
        if s.status != 200:
            raise SystemExit(f"simulator answered {s.status}: {(await s.read(300))!r}")
        n = 0
        async for _ in s.chunks():
            n += 1
        await s.aclose()
        return n

    return one, pool.aclose


def session_client(url: str) -> tuple[Stream, Callable[[], Awaitable[None]]]:
    from curl_cffi.requests import AsyncSession

    session = AsyncSession(impersonate=IMPERSONATE, max_clients=4096)

    async def one(data: bytes) -> int:
        n = 0
        async with session.stream("POST", url, headers=HEADERS, data=data, timeout=60) as r:
            if r.status_code != 200:
                raise SystemExit(f"simulator answered {r.status_code}")
            async for _ in r.aiter_content():
                n += 1
        return n

    return one, session.close


async def fast(one: Stream, concurrency: int, duration: float, tokens: int) -> dict[str, float]:
    data = body(tokens)
    await asyncio.gather(*(one(data) for _ in range(concurrency)))  # warm-up: connections, handles
    done = 0
    stop = time.monotonic() + duration

    async def worker() -> None:
        nonlocal done
        while time.monotonic() < stop:
            await one(data)
            done += 1

    t0, c0 = time.monotonic(), time.process_time()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    wall, cpu = time.monotonic() - t0, time.process_time() - c0
    return {"streams_per_s": round(done / wall, 1), "cpu_ms_per_stream": round(cpu * 1000 / done, 3)}


async def slow(one: Stream, n: int, tokens: int, delay_ms: int) -> dict[str, float]:
    data = body(tokens, delay_ms)
    before = rss_mib()
    peak = before

    async def watch() -> None:
        nonlocal peak
        while True:
            peak = max(peak, rss_mib())
            await asyncio.sleep(0.05)

    watcher = asyncio.get_running_loop().create_task(watch())
    c0 = time.process_time()
    counts = await asyncio.gather(*(one(data) for _ in range(n)))
    cpu = time.process_time() - c0
    watcher.cancel()
    chunks = sum(counts)
    return {"streams": n, "chunks": chunks, "cpu_us_per_chunk": round(cpu * 1e6 / max(chunks, 1), 1),
            "rss_growth_mib": round(peak - before, 1)}


async def run(args: argparse.Namespace, url: str) -> dict[str, dict[str, dict[str, float]]]:
    results: dict[str, dict[str, dict[str, float]]] = {}
    for name, make in (("pool", pool_client), ("session", session_client)):
        one, close = make(url)
        try:
            results[name] = {"fast": await fast(one, args.concurrency, args.duration, args.tokens)}
            if args.slow:
                results[name]["slow"] = await slow(one, args.slow, args.slow_tokens, args.delay_ms)
        finally:
            await close()
        print(f"{name:8} fast: {results[name]['fast']}" + (f"\n{'':8} slow: {results[name]['slow']}"
                                                             if args.slow else ""), flush=True)
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--duration", type=float, default=5.0)
    parser.add_argument("--tokens", type=int, default=20)
    parser.add_argument("--slow", type=int, default=1000, help="streams at once in the slow phase (0 = skip)")
    parser.add_argument("--slow-tokens", type=int, default=30)
    parser.add_argument("--delay-ms", type=int, default=100)
    args = parser.parse_args()

    sim, sim_url = start_simulator()
    try:
        sim_control(sim_url, "/_sim/tokens", {"token": TOKEN, "plan": "super", "quota_total": 10**9})
        import uvloop

        uvloop.install()
        asyncio.run(run(args, sim_url + "/rest/app-chat/conversations/new"))
    finally:
        sim.terminate()
        sim.wait(timeout=10)


if __name__ == "__main__":
    main()
