"""Storage benchmark: what a token write / read costs with 10,000 tokens, per backend.

For each backend it loads ``--tokens`` records (one ``add_tokens`` call), then times
single-token delta updates (one ``update_tokens([delta])`` per call, the gateway's
per-request usage write), batched updates, ``get_token``, full ``load_tokens`` (warm
instance and a freshly opened one) and the version polls used for hot reload.

    python bench/storage.py                         # all four backends
    python bench/storage.py --backends local,redis --updates 5000

Services default to the ones on this machine (Redis 6379 db 15, PostgreSQL 5432 db
``test``, MariaDB 3306 db ``test``); override with ``--redis-url`` etc. Data lives in a
throw-away namespace (and temp ``DATA_DIR``) that is removed afterwards.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

from grok2api.storage import Storage, TokenRecord, TokenUpdate, create_storage, now_ms

DEFAULT_URLS = {
    "redis": "redis://127.0.0.1:6379/15",
    "mysql": "mysql://root@127.0.0.1:3306/test",
    "pgsql": "postgresql://postgres@127.0.0.1:5432/test",
}


@dataclass
class Row:
    """One measured operation."""

    backend: str
    operation: str
    count: int
    seconds: float

    @property
    def ops(self) -> float:
        return self.count / self.seconds if self.seconds else float("inf")

    @property
    def ms(self) -> float:
        return self.seconds * 1000 / self.count


def make_tokens(n: int) -> list[TokenRecord]:
    rng = random.Random(42)
    alphabet = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_"
    return [
        TokenRecord(
            token="".join(rng.choice(alphabet) for _ in range(160)),
            pool="super" if i % 5 == 0 else "basic",
            tags=["nsfw"] if i % 7 == 0 else [],
            note=f"account {i}",
        )
        for i in range(n)
    ]


async def timed(rows: list[Row], backend: str, operation: str, count: int, coro_factory) -> None:
    started = time.perf_counter()
    await coro_factory()
    rows.append(Row(backend, operation, count, time.perf_counter() - started))


async def bench_backend(kind: str, url: str | None, args: argparse.Namespace, rows: list[Row]) -> None:
    namespace = f"bench_{uuid.uuid4().hex[:8]}"
    with tempfile.TemporaryDirectory(prefix="g2a-bench-") as tmp:
        data_dir = Path(args.data_dir or tmp)

        def make() -> Storage:
            return create_storage(kind, url, data_dir, namespace=namespace)

        store = make()
        await store.open()
        try:
            records = make_tokens(args.tokens)
            tokens = [r.token for r in records]
            rng = random.Random(7)

            await timed(rows, kind, f"add_tokens ({args.tokens} in one call)", args.tokens,
                        lambda: store.add_tokens(records))

            async def single_updates() -> None:
                for _ in range(args.updates):
                    delta = TokenUpdate(
                        token=rng.choice(tokens),
                        set={"last_used_at": now_ms()},
                        incr={"use_count": 1, "quota": -1},
                    )
                    await store.update_tokens([delta])

            await timed(rows, kind, "update, 1 delta per call", args.updates, single_updates)

            batches = max(1, args.updates // args.batch)

            async def batched_updates() -> None:
                for _ in range(batches):
                    await store.update_tokens([
                        TokenUpdate(token=rng.choice(tokens), incr={"use_count": 1})
                        for _ in range(args.batch)
                    ])

            await timed(rows, kind, f"update, {args.batch} deltas per call (per delta)", batches * args.batch,
                        batched_updates)

            async def gets() -> None:
                for _ in range(args.updates):
                    await store.get_token(rng.choice(tokens))

            await timed(rows, kind, "get_token", args.updates, gets)

            async def polls() -> None:
                for _ in range(args.updates):
                    await store.tokens_version()

            await timed(rows, kind, "tokens_version poll", args.updates, polls)
            await store.save_config("[app]\nx = 1\n")

            async def config_polls() -> None:
                for _ in range(args.updates):
                    await store.config_version()

            await timed(rows, kind, "config_version poll", args.updates, config_polls)

            async def loads() -> None:
                for _ in range(args.loads):
                    got = await store.load_tokens()
                    assert len(got) == args.tokens

            await timed(rows, kind, f"load_tokens ({args.tokens}), warm", args.loads, loads)

            fresh = make()

            async def cold_load() -> None:
                await fresh.open()
                assert len(await fresh.load_tokens()) == args.tokens

            await timed(rows, kind, f"open + load_tokens ({args.tokens}), cold", 1, cold_load)
            label = "close (local: folds journal into token.json)" if kind == "local" else "close"
            await timed(rows, kind, label, 1, fresh.close)
        finally:
            if hasattr(store, "purge"):
                await store.purge()
            await store.close()


def print_table(rows: list[Row]) -> None:
    head = f"| {'backend':7} | {'operation':48} | {'count':>6} | {'ops/s':>10} | {'ms/op':>8} |"
    print(head)
    print("|" + "|".join("-" * (len(c)) for c in head.split("|")[1:-1]) + "|")
    for r in rows:
        print(f"| {r.backend:7} | {r.operation:48} | {r.count:>6} | {r.ops:>10,.0f} | {r.ms:>8.3f} |")


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--backends", default="local,redis,mysql,pgsql")
    parser.add_argument("--tokens", type=int, default=10_000)
    parser.add_argument("--updates", type=int, default=2_000, help="single-token updates (and gets, polls)")
    parser.add_argument("--batch", type=int, default=100, help="deltas per batched update call")
    parser.add_argument("--loads", type=int, default=5, help="full loads to time")
    parser.add_argument("--data-dir", help="DATA_DIR for local (default: a temp dir)")
    for kind, url in DEFAULT_URLS.items():
        parser.add_argument(f"--{kind}-url", default=url)
    args = parser.parse_args()
    rows: list[Row] = []
    for kind in args.backends.split(","):
        url = None if kind == "local" else getattr(args, f"{kind}_url")
        await bench_backend(kind, url, args, rows)
    print_table(rows)


if __name__ == "__main__":
    asyncio.run(main())
