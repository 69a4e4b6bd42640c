"""The TokenPool actor: the one owner of the Grok accounts in a cluster.

A named, detached, async Ray actor (restarted forever on failure). It wraps a
:class:`~grok2api.pool.ledger.PoolLedger` and adds what needs I/O:

* persistence — every acknowledged ``settle`` is on disk (or in Redis/SQL) before
  the call returns; concurrent settles share one write (group commit), so the cost
  per request stays a fraction of a storage round trip;
* external changes — tokens added/removed by the CLI or another process are picked
  up by polling the storage's cheap ``tokens_version`` counter;
* the refresh scheduler — cooling tokens are re-synced from ``/rest/rate-limits``
  once their pool's interval has passed, with bounded concurrency;
* config hot reload — with a ``config_watch`` (the gateway passes
  :class:`grok2api.worker.pool_config.PoolConfigWatch`) the settings and the refresher
  follow the stored config, checked on every reload tick.

A restarted actor reloads from storage and loses nothing that was acknowledged.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any, Awaitable, Callable

import ray
from pydantic import BaseModel

from grok2api.pool.leases import GrantResult, SettleAck, SettleBatch
from grok2api.pool.ledger import PoolLedger, PoolPolicy, merge_updates
from grok2api.storage.base import (
    Storage,
    TokenRecord,
    TokenStatus,
    TokenUpdate,
    mask_token,
    normalize_token,
    now_ms,
)

log = logging.getLogger(__name__)

ACTOR_NAME = "TokenPool"
NAMESPACE = "grok2api"


class PoolSettings(BaseModel):
    """What the actor needs from config ``[token]`` / ``[usage]`` (rebuilt on hot reload)."""

    fail_threshold: int = 5
    save_delay_ms: int = 500
    reload_interval_sec: float = 30.0
    auto_refresh: bool = True
    refresh_interval_hours: float = 8.0
    super_refresh_interval_hours: float = 2.0
    refresh_concurrency: int = 25
    scheduler_period_sec: float = 60.0
    basic_default_quota: int = 80
    super_default_quota: int = 140
    basic_window_hours: float = 20.0
    super_window_hours: float = 2.0
    lease_ttl_sec: float = 15.0
    lease_credits: int = 16

    def policy(self) -> PoolPolicy:
        hour = 3_600_000
        return PoolPolicy(
            fail_threshold=self.fail_threshold,
            lease_ttl_ms=int(self.lease_ttl_sec * 1000),
            lease_credits=self.lease_credits,
            default_quota={"basic": self.basic_default_quota, "super": self.super_default_quota,
                           "heavy": self.super_default_quota},
            window_ms={"basic": int(self.basic_window_hours * hour), "super": int(self.super_window_hours * hour),
                       "heavy": int(self.super_window_hours * hour)},
        )

    def refresh_interval_ms(self) -> dict[str, int]:
        hour = 3_600_000
        return {"basic": int(self.refresh_interval_hours * hour),
                "super": int(self.super_refresh_interval_hours * hour),
                "heavy": int(self.super_refresh_interval_hours * hour)}


class QuotaReading(BaseModel):
    """One answer of the rate-limits endpoint, as the scheduler needs it."""

    remaining: int
    window_s: int | None = None


class RefreshFailed(Exception):
    def __init__(self, reason: str, *, expire: bool) -> None:
        self.reason, self.expire = reason, expire
        super().__init__(reason)


# async (token, pool) -> QuotaReading ; raises RefreshFailed
Refresher = Callable[[str, str], Awaitable[QuotaReading]]
StorageFactory = Callable[[], Storage]
RefresherFactory = Callable[[], Refresher | None]
# async (storage) -> (new settings, new refresher factory or None) when the stored config changed, else None
ConfigWatch = Callable[[Storage], Awaitable["tuple[PoolSettings, RefresherFactory | None] | None"]]


class TokenPoolCore:
    """The actor's behaviour, usable without Ray (the actor class below only adds the Ray shell)."""

    def __init__(self, storage_factory: StorageFactory, settings: PoolSettings,
                 refresher_factory: RefresherFactory | None = None, config_watch: ConfigWatch | None = None) -> None:
        self._storage_factory = storage_factory
        self._refresher_factory = refresher_factory
        self._config_watch = config_watch
        self.settings = settings
        self.storage: Storage | None = None
        self.ledger = PoolLedger([], settings.policy())
        self._refresher: Refresher | None = None
        self._loaded = asyncio.Event()
        self._loading: asyncio.Task[None] | None = None
        self._dirty: list[TokenUpdate] = []
        self._flush_waiters: list[asyncio.Future[None]] = []
        self._flush_task: asyncio.Task[None] | None = None
        self._flush_lock = asyncio.Lock()
        self._applied_seq: dict[str, int] = {}
        self._tokens_version: int | None = None
        self._last_reload = 0.0
        self._background: list[asyncio.Task[None]] = []
        self._refreshing: set[str] = set()

    # -- lifecycle ------------------------------------------------------------------------
    async def ready(self) -> None:
        if self._loaded.is_set():
            return
        if self._loading is None:
            self._loading = asyncio.get_running_loop().create_task(self._load())
        await asyncio.shield(self._loading)

    async def _load(self) -> None:
        self.storage = self._storage_factory()
        await self.storage.open()
        records = await self.storage.load_tokens()
        self._tokens_version = await self.storage.tokens_version()
        self.ledger.replace_all(records)
        await self._follow_config()  # with a config watch: the current settings and a refresher for them
        if self._refresher is None and self._refresher_factory is not None:
            self._refresher = self._refresher_factory()
        self._last_reload = time.monotonic()
        self._loaded.set()
        loop = asyncio.get_running_loop()
        self._background = [loop.create_task(self._reload_loop()), loop.create_task(self._scheduler_loop())]
        log.info("token pool loaded %d tokens", len(records))

    async def shutdown(self) -> None:
        for task in self._background:
            task.cancel()
        await self.flush()
        if self.storage is not None:
            await self.storage.close()

    def update_settings(self, settings: PoolSettings) -> None:
        self.settings = settings
        self.ledger.policy = settings.policy()

    async def _follow_config(self) -> None:
        """Apply the stored config's pool settings and upstream (hot reload; also right after a restart)."""
        if self._config_watch is None or self.storage is None:
            return
        try:
            change = await self._config_watch(self.storage)
        except Exception as exc:  # noqa: BLE001 - keep the current settings; the next poll tries again
            log.warning("token pool could not read the config: %s", type(exc).__name__)
            return
        if change is None:
            return
        settings, refresher_factory = change
        self.update_settings(settings)
        if refresher_factory is not None:
            self._refresher_factory = refresher_factory
            self._refresher = refresher_factory()

    # -- leases ---------------------------------------------------------------------------
    async def grant(self, holder: str, pools: tuple[str, ...], want: int, exclude: list[str],
                    credits: int | None = None) -> GrantResult:
        await self.ready()
        return self.ledger.grant(holder, tuple(pools), want=want, exclude=exclude, credits=credits)

    async def settle(self, batch: SettleBatch) -> SettleAck:
        """Apply a worker's outcomes and releases; returns once they are persisted."""
        await self.ready()
        if self._applied_seq.get(batch.holder, 0) < batch.seq:
            self._applied_seq[batch.holder] = batch.seq
            for lease_id in batch.released:
                self.ledger.release(lease_id)
            for outcome in batch.outcomes:
                update = self.ledger.apply(outcome)
                if update is not None:
                    self._dirty.append(update)
        await self.flush()
        return SettleAck(batch.seq, self.ledger.take_revoked(batch.holder), self.ledger.epoch)

    async def release_holder(self, holder: str) -> int:
        await self.ready()
        return self.ledger.release_holder(holder)

    # -- persistence ----------------------------------------------------------------------
    async def flush(self) -> None:
        """Persist every pending delta; concurrent callers share one storage write."""
        if not self._dirty and not self._flush_lock.locked():
            return
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._flush_waiters.append(fut)
        if self._flush_task is None or self._flush_task.done():
            self._flush_task = asyncio.get_running_loop().create_task(self._flush_loop())
        await fut

    async def _flush_loop(self) -> None:
        async with self._flush_lock:
            while self._flush_waiters:
                waiters, self._flush_waiters = self._flush_waiters, []
                batch, self._dirty = self._dirty, []
                try:
                    if batch:
                        assert self.storage is not None
                        await self.storage.update_tokens(merge_updates(batch))
                except Exception as exc:  # noqa: BLE001 - keep the deltas for the next attempt
                    self._dirty = batch + self._dirty
                    log.error("token pool could not persist %d updates: %s", len(batch), exc)
                    for w in waiters:
                        if not w.done():
                            w.set_exception(exc)
                    continue
                for w in waiters:
                    if not w.done():
                        w.set_result(None)

    async def _persist(self, updates: list[TokenUpdate | None]) -> None:
        self._dirty.extend(u for u in updates if u is not None)
        await self.flush()

    # -- external changes -----------------------------------------------------------------
    async def _reload_loop(self) -> None:
        while True:
            await asyncio.sleep(max(0.2, min(self.settings.reload_interval_sec, 5.0)))
            await self._follow_config()
            if time.monotonic() - self._last_reload < self.settings.reload_interval_sec:
                continue
            try:
                await self.reload_if_changed()
            except Exception as exc:  # noqa: BLE001
                log.warning("token reload check failed: %s", exc)

    async def reload_if_changed(self) -> bool:
        """Adopt changes other processes made to storage (tokens added or removed by the CLI ...).

        Runs under the flush lock, so no write is in flight: storage holds everything persisted,
        and ``_dirty`` everything applied in memory but not yet written, which is re-applied on top.
        """
        assert self.storage is not None
        self._last_reload = time.monotonic()
        version = await self.storage.tokens_version()
        if version == self._tokens_version:
            return False
        async with self._flush_lock:
            records = {r.token: r for r in await self.storage.load_tokens()}
            for update in self._dirty:
                rec = records.get(update.token)
                if rec is not None:
                    records[update.token] = update.apply_to(rec)
            self._tokens_version = version
            self.ledger.replace_all(records.values())
        return True

    async def _note_own_write(self) -> None:
        assert self.storage is not None
        self._tokens_version = await self.storage.tokens_version()

    # -- refresh scheduler ------------------------------------------------------------------
    async def _scheduler_loop(self) -> None:
        while True:
            await asyncio.sleep(max(0.2, self.settings.scheduler_period_sec))
            if not self.settings.auto_refresh or self._refresher is None:
                continue
            try:
                await self.refresh_due()
            except Exception as exc:  # noqa: BLE001
                log.warning("refresh round failed: %s", exc)

    async def refresh_due(self) -> int:
        due = self.ledger.due_for_refresh(now_ms(), self.settings.refresh_interval_ms())
        due = [r for r in due if r.token not in self._refreshing]
        if not due:
            return 0
        await self.refresh([r.token for r in due], clear_failures=False)
        return len(due)

    async def refresh(self, tokens: list[str], *, clear_failures: bool = True) -> dict[str, dict[str, Any]]:
        """Re-sync quotas from upstream; returns per masked token the result or the error."""
        await self.ready()
        if self._refresher is None:
            raise RuntimeError("no upstream refresher configured")
        sem = asyncio.Semaphore(max(1, self.settings.refresh_concurrency))
        results: dict[str, dict[str, Any]] = {}
        updates: list[TokenUpdate | None] = []

        async def one(token: str) -> None:
            rec = self.ledger.records.get(token)
            if rec is None:
                results[mask_token(token)] = {"ok": False, "error": "unknown token"}
                return
            async with sem:
                self._refreshing.add(token)
                try:
                    reading = await self._refresher(token, rec.pool)  # type: ignore[misc]
                    updates.append(self.ledger.apply_sync(token, reading.remaining, clear_failures=clear_failures,
                                                          window_s=reading.window_s))
                    results[mask_token(token)] = {"ok": True, "quota": reading.remaining}
                except RefreshFailed as exc:
                    updates.append(self.ledger.apply_sync_failure(token, exc.reason, expire=exc.expire))
                    results[mask_token(token)] = {"ok": False, "error": exc.reason}
                except Exception as exc:  # noqa: BLE001
                    results[mask_token(token)] = {"ok": False, "error": type(exc).__name__}
                finally:
                    self._refreshing.discard(token)

        await asyncio.gather(*(one(normalize_token(t)) for t in tokens))
        await self._persist(updates)
        return results

    # -- admin ------------------------------------------------------------------------------
    async def list_tokens(self) -> list[dict[str, Any]]:
        await self.ready()
        out = []
        for rec in self.ledger.records.values():
            data = rec.model_dump(mode="json")
            data["reserved"] = self.ledger.reserved(rec.token)
            out.append(data)
        return out

    async def add_tokens(self, tokens: list[str], pool: str = "basic") -> dict[str, int]:
        await self.ready()
        assert self.storage is not None
        seen: set[str] = set()
        fresh: list[TokenRecord] = []
        for raw in tokens:
            token = normalize_token(raw)
            if not token or token in seen:
                continue
            seen.add(token)
            fresh.append(TokenRecord(token=token, pool=pool, quota=self.ledger.policy.quota_for(pool)))
        await self.flush()
        added = set(await self.storage.add_tokens(fresh))
        for rec in fresh:
            if rec.token in added:
                self.ledger.upsert(rec)
        await self._note_own_write()
        return {"added": len(added), "skipped": len(tokens) - len(added)}

    async def remove_tokens(self, tokens: list[str]) -> int:
        await self.ready()
        assert self.storage is not None
        norm = [normalize_token(t) for t in tokens]
        await self.flush()
        removed = await self.storage.delete_tokens(norm)
        for token in norm:
            self.ledger.remove(token)
        await self._note_own_write()
        return removed

    async def edit_token(self, token: str, fields: dict[str, Any]) -> dict[str, Any]:
        """Admin edit of one token (status, pool, quota, tags, note, nsfw ...)."""
        await self.ready()
        token = normalize_token(token)
        rec = self.ledger.records.get(token)
        if rec is None:
            raise KeyError("unknown token")
        update = TokenUpdate(token=token, set=fields)
        new = update.apply_to(rec)
        if new.status is TokenStatus.ACTIVE and rec.status is not TokenStatus.ACTIVE:
            new = new.model_copy(update={"cooldown_until": None})
            update.set["cooldown_until"] = None
        self.ledger.upsert(new)
        await self._persist([update])
        return new.model_dump(mode="json")

    async def stats(self) -> dict[str, Any]:
        await self.ready()
        by_status: dict[str, int] = {}
        by_pool: dict[str, int] = {}
        quota = 0
        for rec in self.ledger.records.values():
            by_status[rec.status.value] = by_status.get(rec.status.value, 0) + 1
            by_pool[rec.pool] = by_pool.get(rec.pool, 0) + 1
            quota += rec.quota
        return {"tokens": len(self.ledger.records), "by_status": by_status, "by_pool": by_pool,
                "quota_total": quota, "leases": self.ledger.lease_count(), "pending_writes": len(self._dirty)}


# enable_task_events=False: every grant/settle call would otherwise also be reported to the GCS
# as a task event (CPU in the caller, the actor and the GCS); ``ray list tasks`` does not show them.
@ray.remote(num_cpus=0, max_restarts=-1, max_concurrency=1000, enable_task_events=False)
class TokenPool:
    """Ray shell over :class:`TokenPoolCore` (see the module docstring)."""

    def __init__(self, storage_factory: StorageFactory, settings: dict[str, Any],
                 refresher_factory: RefresherFactory | None = None, config_watch: ConfigWatch | None = None) -> None:
        self.core = TokenPoolCore(storage_factory, PoolSettings.model_validate(settings), refresher_factory,
                                  config_watch)

    async def ready(self) -> bool:
        await self.core.ready()
        return True

    async def grant(self, holder: str, pools: tuple[str, ...], want: int, exclude: list[str],
                    credits: int | None = None) -> GrantResult:
        return await self.core.grant(holder, pools, want, exclude, credits)

    async def settle(self, batch: SettleBatch) -> SettleAck:
        return await self.core.settle(batch)

    async def release_holder(self, holder: str) -> int:
        return await self.core.release_holder(holder)

    async def update_settings(self, settings: dict[str, Any]) -> None:
        self.core.update_settings(PoolSettings.model_validate(settings))

    async def list_tokens(self) -> list[dict[str, Any]]:
        return await self.core.list_tokens()

    async def add_tokens(self, tokens: list[str], pool: str = "basic") -> dict[str, int]:
        return await self.core.add_tokens(tokens, pool)

    async def remove_tokens(self, tokens: list[str]) -> int:
        return await self.core.remove_tokens(tokens)

    async def edit_token(self, token: str, fields: dict[str, Any]) -> dict[str, Any]:
        return await self.core.edit_token(token, fields)

    async def refresh(self, tokens: list[str]) -> dict[str, dict[str, Any]]:
        return await self.core.refresh(tokens)

    async def refresh_due(self) -> int:
        await self.core.ready()
        return await self.core.refresh_due()

    async def reload_if_changed(self) -> bool:
        await self.core.ready()
        return await self.core.reload_if_changed()

    async def flush(self) -> None:
        await self.core.flush()

    async def stats(self) -> dict[str, Any]:
        return await self.core.stats()

    async def shutdown(self) -> None:
        await self.core.shutdown()


def get_or_create_token_pool(storage_factory: StorageFactory, settings: PoolSettings,
                             refresher_factory: RefresherFactory | None = None,
                             config_watch: ConfigWatch | None = None) -> "ray.actor.ActorHandle":
    """The cluster's TokenPool (created detached on first use)."""
    return TokenPool.options(  # type: ignore[attr-defined]
        name=ACTOR_NAME, namespace=NAMESPACE, lifetime="detached", get_if_exists=True
    ).remote(storage_factory, settings.model_dump(), refresher_factory, config_watch)


def token_pool_handle() -> "ray.actor.ActorHandle":
    return ray.get_actor(ACTOR_NAME, namespace=NAMESPACE)
