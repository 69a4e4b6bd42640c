"""Throughput of the Grok simulator: chat streams per second at a fixed concurrency.

Starts ``python -m grok2api.simulator --port 0 --no-record`` on loopback (or uses ``--url``), then
runs ``--concurrency`` aiohttp clients in a loop, each posting ``conversations/new`` with a
``[[sim:tokens=N]]`` answer and reading the whole NDJSON stream, for ``--duration`` seconds after a
short warm-up. Prints streams/s, answer tokens/s, latency percentiles and the bytes moved. Stops by
itself; loopback only.

    python bench/simulator.py                       # 64 clients, 20-token answers, 10 s
    python bench/simulator.py --concurrency 8 --tokens 50 --duration 5
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import aiohttp

ROOT = Path(__file__).resolve().parents[1]
CHAT = "/rest/app-chat/conversations/new"


def start_server() -> tuple[subprocess.Popen[str], str]:
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    proc = subprocess.Popen(
        [sys.executable, "-m", "grok2api.simulator", "--host", "127.0.0.1", "--port", "0", "--seed", "1",
         "--no-record"],
        cwd=ROOT, env=env, stdout=subprocess.PIPE, text=True,
    )
    assert proc.stdout is not None
    line = proc.stdout.readline()
    if not line.startswith("grok-simulator listening on "):
        proc.kill()
        raise SystemExit(f"simulator did not start: {line!r}")
    return proc, line.split(" on ", 1)[1].strip()


async def bench(url: str, concurrency: int, tokens: int, duration: float, warmup: float) -> dict[str, float]:
    body = {"message": f"benchmark prompt [[sim:tokens={tokens}]]", "modeId": "fast", "temporary": True,
            "fileAttachments": [], "toolOverrides": {}}
    connector = aiohttp.TCPConnector(limit=concurrency, force_close=False)
    latencies: list[float] = []
    counters = {"streams": 0, "bytes": 0, "errors": 0}
    start = time.perf_counter()
    measure_from = start + warmup
    stop_at = measure_from + duration

    async with aiohttp.ClientSession(connector=connector) as session:
        async def worker(n: int) -> None:
            cookies = {"sso": f"bench-{n}", "sso-rw": f"bench-{n}"}
            headers = {"Cookie": f"sso={cookies['sso']}; sso-rw={cookies['sso-rw']}"}
            while True:
                t0 = time.perf_counter()
                if t0 >= stop_at:
                    return
                async with session.post(url + CHAT, json=body, headers=headers) as resp:
                    data = await resp.read()
                t1 = time.perf_counter()
                if resp.status != 200 or not data.endswith(b"}}}\n"):
                    counters["errors"] += 1
                    continue
                if t0 >= measure_from and t1 <= stop_at:
                    counters["streams"] += 1
                    counters["bytes"] += len(data)
                    latencies.append(t1 - t0)

        await asyncio.gather(*(worker(i) for i in range(concurrency)))
    streams = counters["streams"]
    latencies.sort()
    return {
        "streams_per_s": streams / duration,
        "tokens_per_s": streams * tokens / duration,
        "p50_ms": 1000 * statistics.median(latencies) if latencies else 0.0,
        "p99_ms": 1000 * latencies[int(0.99 * (len(latencies) - 1))] if latencies else 0.0,
        "mb_per_s": counters["bytes"] / duration / 1e6,
        "streams": streams,
        "errors": counters["errors"],
    }


async def prepare_tokens(url: str, concurrency: int) -> None:
    """Give every client token an effectively unlimited quota so 429s never skew the figure."""
    async with aiohttp.ClientSession() as session:
        for n in range(concurrency):
            async with session.post(url + "/_sim/tokens", json={"token": f"bench-{n}", "plan": "super",
                                                                 "quota_total": 10**9}) as resp:
                resp.raise_for_status()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--url", help="use a running simulator instead of starting one")
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--tokens", type=int, default=20)
    parser.add_argument("--duration", type=float, default=10.0)
    parser.add_argument("--warmup", type=float, default=1.0)
    args = parser.parse_args()
    if args.duration > 120:
        raise SystemExit("--duration is capped at 120 s")
    proc = None
    url = args.url
    if url is None:
        proc, url = start_server()
    if not url.startswith(("http://127.", "http://localhost", "http://[::1]")):
        raise SystemExit("loopback only")
    try:
        try:
            import uvloop
            runner = uvloop.run
        except ImportError:  # pragma: no cover
            runner = asyncio.run
        runner(prepare_tokens(url, args.concurrency))
        result = runner(bench(url, args.concurrency, args.tokens, args.duration, args.warmup))
    finally:
        if proc is not None:
            proc.terminate()
            proc.wait(timeout=10)
    print(f"simulator {url}: {args.concurrency} clients, {args.tokens}-token answers, {args.duration:.0f} s "
          f"(cpus: {os.cpu_count()})")
    print(f"  streams/s  {result['streams_per_s']:.0f}")
    print(f"  tokens/s   {result['tokens_per_s']:.0f}")
    print(f"  latency    p50 {result['p50_ms']:.1f} ms, p99 {result['p99_ms']:.1f} ms")
    print(f"  throughput {result['mb_per_s']:.1f} MB/s, {result['streams']} streams, {result['errors']} errors")


if __name__ == "__main__":
    main()
