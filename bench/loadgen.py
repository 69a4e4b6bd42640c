"""A small closed-loop load generator for streaming HTTP endpoints (SSE or NDJSON).

``C`` concurrent clients each send one request after another for ``duration``
seconds (bounded by ``max_requests``). For every stream it records the time to the
first body byte and to the end, the number of body chunks, and any error. Only
loopback targets are accepted: benchmarks never send traffic off this machine.

Used by ``bench/chat.py`` and ``bench/simulator.py``; also runnable on its own::

    python bench/loadgen.py http://127.0.0.1:8000/v1/chat/completions -c 64 -d 10 \
        --json '{"model":"grok-4","stream":true,"messages":[{"role":"user","content":"hi"}]}'
"""

from __future__ import annotations

import argparse
import asyncio
import ipaddress
import json
import statistics
import time
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import aiohttp


@dataclass
class LoadResult:
    concurrency: int
    duration_s: float
    completed: int = 0
    errors: int = 0
    chunks: int = 0
    ttfb_ms: list[float] = field(default_factory=list)
    total_ms: list[float] = field(default_factory=list)
    error_samples: list[str] = field(default_factory=list)

    @property
    def rps(self) -> float:
        return self.completed / self.duration_s if self.duration_s else 0.0

    def pct(self, values: list[float], q: float) -> float:
        if not values:
            return float("nan")
        ordered = sorted(values)
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))]

    def summary(self) -> dict[str, Any]:
        return {
            "concurrency": self.concurrency,
            "duration_s": round(self.duration_s, 2),
            "completed": self.completed,
            "errors": self.errors,
            "streams_per_s": round(self.rps, 1),
            "chunks_per_stream": round(self.chunks / self.completed, 1) if self.completed else 0,
            "ttfb_ms_p50": round(self.pct(self.ttfb_ms, 0.50), 2),
            "ttfb_ms_p99": round(self.pct(self.ttfb_ms, 0.99), 2),
            "ttfb_ms_mean": round(statistics.fmean(self.ttfb_ms), 2) if self.ttfb_ms else None,
            "total_ms_p50": round(self.pct(self.total_ms, 0.50), 1),
            "total_ms_p99": round(self.pct(self.total_ms, 0.99), 1),
            "error_samples": self.error_samples[:3],
        }


def _check_loopback(url: str) -> None:
    host = urlsplit(url).hostname or ""
    if host == "localhost":
        return
    if not ipaddress.ip_address(host).is_loopback:
        raise SystemExit(f"refusing to load a non-loopback address: {host}")


async def run_load(
    url: str,
    body: bytes,
    *,
    concurrency: int,
    duration: float,
    max_requests: int | None = None,
    headers: dict[str, str] | None = None,
    timeout: float = 120.0,
    warmup: float = 0.0,
    ramp: float = 0.0,
) -> LoadResult:
    """Closed-loop load: ``concurrency`` workers issuing POSTs until ``duration`` elapses."""
    _check_loopback(url)
    hdrs = {"Content-Type": "application/json", **(headers or {})}
    connector = aiohttp.TCPConnector(limit=0, force_close=False)
    client_timeout = aiohttp.ClientTimeout(total=timeout)
    async with aiohttp.ClientSession(connector=connector, timeout=client_timeout) as session:
        if warmup:
            await _drive(session, url, body, hdrs, concurrency, warmup, None, LoadResult(concurrency, warmup))
        result = LoadResult(concurrency, duration)
        started = time.perf_counter()
        await _drive(session, url, body, hdrs, concurrency, duration, max_requests, result, ramp)
        result.duration_s = time.perf_counter() - started
        return result


async def _drive(
    session: aiohttp.ClientSession,
    url: str,
    body: bytes,
    headers: dict[str, str],
    concurrency: int,
    duration: float,
    max_requests: int | None,
    result: LoadResult,
    ramp: float = 0.0,
) -> None:
    """``ramp`` > 0 staggers the clients' first requests evenly over that many seconds, so a
    closed loop of long streams reaches a steady state instead of moving in one synchronized wave."""
    deadline = time.perf_counter() + duration
    budget = [max_requests if max_requests is not None else 1 << 62]

    async def worker(index: int) -> None:
        if ramp:
            await asyncio.sleep(ramp * index / concurrency)
        while time.perf_counter() < deadline and budget[0] > 0:
            budget[0] -= 1
            t0 = time.perf_counter()
            first: float | None = None
            chunks = 0
            try:
                async with session.post(url, data=body, headers=headers) as resp:
                    if resp.status != 200:
                        text = await resp.text()
                        raise RuntimeError(f"HTTP {resp.status}: {text[:200]}")
                    async for _chunk in resp.content.iter_any():
                        if first is None:
                            first = time.perf_counter()
                        chunks += 1
                end = time.perf_counter()
                result.completed += 1
                result.chunks += chunks
                result.ttfb_ms.append(((first or end) - t0) * 1000)
                result.total_ms.append((end - t0) * 1000)
            except Exception as exc:  # noqa: BLE001 - a benchmark counts every failure
                result.errors += 1
                if len(result.error_samples) < 5:
                    result.error_samples.append(f"{type(exc).__name__}: {exc}"[:300])

    await asyncio.gather(*(worker(i) for i in range(concurrency)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("url")
    parser.add_argument("-c", "--concurrency", type=int, default=16)
    parser.add_argument("-d", "--duration", type=float, default=10.0)
    parser.add_argument("-n", "--max-requests", type=int, default=None)
    parser.add_argument("--json", default="{}", help="request body")
    parser.add_argument("-H", "--header", action="append", default=[], help="Name: value")
    parser.add_argument("--warmup", type=float, default=1.0)
    args = parser.parse_args()
    headers = dict(h.split(":", 1) for h in args.header)
    headers = {k.strip(): v.strip() for k, v in headers.items()}
    res = asyncio.run(
        run_load(
            args.url,
            args.json.encode(),
            concurrency=args.concurrency,
            duration=args.duration,
            max_requests=args.max_requests,
            headers=headers,
            warmup=args.warmup,
        )
    )
    print(json.dumps(res.summary(), indent=2))


if __name__ == "__main__":
    main()
