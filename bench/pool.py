"""Token-pool cost per request: lease (acquire) + report (finish) through the real TokenPool actor.

Starts Ray (``--num-cpus``), a TokenPool actor over local storage in a temp ``DATA_DIR``
with ``--tokens`` tokens, and drives ``--workers`` LeaseClients (the replicas' lease
caches) from this process, each running ``--concurrency`` request loops that acquire a
ticket, hold it for ``--hold-ms`` and finish it as a success. Prints requests/s, the
per-request cost of acquire+finish as seen by the worker, and how many actor calls
(grant + settle) were made per 1,000 requests. Every acknowledged outcome is on disk:
the script checks that the stored use counts add up to the requests made.
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import statistics
import tempfile
import time
from pathlib import Path

import ray

from grok2api.actors.token_pool import PoolSettings, get_or_create_token_pool
from grok2api.pool.client import LeaseClient
from grok2api.pool.leases import OutcomeKind
from grok2api.storage import create_storage


async def run(args: argparse.Namespace) -> None:
    data_dir = Path(tempfile.mkdtemp(prefix="grok2api-poolbench-"))
    pool = get_or_create_token_pool(functools.partial(create_storage, "local", "", data_dir),
                                    PoolSettings(basic_default_quota=10**9, reload_interval_sec=3600,
                                                 scheduler_period_sec=3600))
    await pool.ready.remote()
    await pool.add_tokens.remote([f"bench-pool-{i:05d}-{'x' * 32}" for i in range(args.tokens)], "basic")
    calls = {"grant": 0, "settle": 0}

    async def grant(*a: object) -> object:
        calls["grant"] += 1
        return await pool.grant.remote(*a)

    async def settle(batch: object) -> object:
        calls["settle"] += 1
        return await pool.settle.remote(batch)

    clients = [LeaseClient(grant, settle) for _ in range(args.workers)]  # type: ignore[arg-type]
    for c in clients:
        c.start()
    costs: list[float] = []
    done = 0
    deadline = time.perf_counter() + args.duration

    async def loop(client: LeaseClient) -> None:
        nonlocal done
        while time.perf_counter() < deadline:
            t0 = time.perf_counter()
            ticket = await client.acquire(("basic", "super"), cost=1)
            t1 = time.perf_counter()
            await asyncio.sleep(args.hold_ms / 1000)  # the request itself (0: yield once, like any I/O)
            t2 = time.perf_counter()
            client.finish(ticket, OutcomeKind.SUCCESS)
            t3 = time.perf_counter()
            costs.append((t1 - t0 + t3 - t2) * 1e6)
            done += 1

    t_start = time.perf_counter()
    await asyncio.gather(*(loop(c) for c in clients for _ in range(args.concurrency)))
    elapsed = time.perf_counter() - t_start
    for c in clients:
        await c.close()
    stats = await pool.stats.remote()
    used = sum(t["use_count"] for t in await pool.list_tokens.remote())
    await pool.shutdown.remote()
    ordered = sorted(costs)
    print(f"requests: {done} in {elapsed:.1f} s = {done / elapsed:,.0f}/s "
          f"({args.workers} workers x {args.concurrency} loops, hold {args.hold_ms} ms, {args.tokens} tokens)")
    print(f"acquire+finish per request: mean {statistics.fmean(costs):.1f} us, p50 {ordered[len(ordered) // 2]:.1f} us, "
          f"p99 {ordered[int(len(ordered) * 0.99)]:.1f} us")
    print(f"actor calls per 1,000 requests: grant {1000 * calls['grant'] / done:.1f}, "
          f"settle {1000 * calls['settle'] / done:.1f}")
    print(f"persisted use_count total {used} (requests {done}); outstanding leases after close: {stats['leases']}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tokens", type=int, default=100)
    parser.add_argument("--workers", type=int, default=2, help="lease clients (one per replica)")
    parser.add_argument("--concurrency", type=int, default=64, help="request loops per worker")
    parser.add_argument("--hold-ms", type=float, default=0.0, help="time a ticket is held (the request)")
    parser.add_argument("--duration", type=float, default=10.0)
    parser.add_argument("--num-cpus", type=int, default=2)
    args = parser.parse_args()
    ray.init(num_cpus=args.num_cpus, include_dashboard=False, log_to_driver=False, namespace="grok2api-bench")
    try:
        asyncio.run(run(args))
    finally:
        ray.shutdown()


if __name__ == "__main__":
    main()
