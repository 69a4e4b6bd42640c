"""Per-replica state of a GrokWorker: config, upstream client, token leases, media cache.

One :class:`WorkerRuntime` lives in each Serve replica. It starts lazily on the
first request (async resources must be created on the replica's event loop),
keeps the config fresh (an O(1) check per request, a storage poll every few
seconds) and rebuilds the upstream client when its settings change.
"""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path
from typing import Any

import ray

from grok2api.actors.media_cache import get_or_create_media_cache
from grok2api.actors.token_pool import token_pool_handle
from grok2api.catalog import CATALOG, Catalog
from grok2api.config.env import ServerSettings
from grok2api.config.schema import AppConfig
from grok2api.config.service import ConfigService
from grok2api.pool.client import LeaseClient
from grok2api.pool.leases import GrantResult, SettleAck, SettleBatch
from grok2api.storage import create_storage
from grok2api.upstream.context import UpstreamContext
from grok2api.upstream.settings import UpstreamSettings
from grok2api.worker.chat import ChatService
from grok2api.worker.settings import upstream_settings

log = logging.getLogger(__name__)


class RayPoolPort:
    """The TokenPool actor as the lease client sees it (re-resolved after an actor restart)."""

    def __init__(self) -> None:
        self._handle: Any = None

    def _actor(self) -> Any:
        if self._handle is None:
            self._handle = token_pool_handle()
        return self._handle

    async def grant(self, holder: str, pools: tuple[str, ...], want: int, exclude: list[str],
                    credits: int | None = None) -> GrantResult:
        try:
            return await self._actor().grant.remote(holder, pools, want, exclude, credits)
        except Exception:
            self._handle = None
            raise

    async def settle(self, batch: SettleBatch) -> SettleAck:
        try:
            return await self._actor().settle.remote(batch)
        except Exception:
            self._handle = None
            raise

    @property
    def handle(self) -> Any:
        return self._actor()


class WorkerRuntime:
    def __init__(self, settings: ServerSettings, catalog: Catalog = CATALOG) -> None:
        self.settings = settings
        self.catalog = catalog
        self.pool = RayPoolPort()
        self.leases = LeaseClient(self.pool.grant, self.pool.settle)
        self.config_service: ConfigService | None = None
        self.upstream: UpstreamContext | None = None
        self._upstream_key: Any = None
        self._applied: AppConfig | None = None
        self.chat = ChatService(self)
        self._media: Any = None
        self._media_key: str | None = None  # the cache settings last sent to the MediaCache
        self._background: set[asyncio.Task[None]] = set()
        self._started = False
        self._start_lock: asyncio.Lock | None = None

    @property
    def media(self) -> Any:
        """The MediaCache actor handle. The actor starts when a replica first needs it (a generated
        image or video, or a cached file asked for): a text-only gateway never pays its process."""
        if self._media is None:
            cfg = self.config
            upstream = upstream_settings(cfg)
            self._media = get_or_create_media_cache(Path(self.settings.data_dir) / "cache", cfg.cache.limit_mb,
                                                    cfg.cache.enable_auto_clean, upstream)
            self._configure_media(cfg, upstream)  # it may have been started by another replica, with older settings
        return self._media

    def _configure_media(self, cfg: AppConfig, upstream: UpstreamSettings) -> None:
        """Send the cache settings to the MediaCache when they changed (hot reload; no-op before it is used)."""
        if self._media is None:
            return
        key = f"{cfg.cache.limit_mb}|{cfg.cache.enable_auto_clean}|{upstream.model_dump_json()}"
        if key == self._media_key:
            return
        self._media_key = key
        media, args = self._media, (cfg.cache.limit_mb, cfg.cache.enable_auto_clean, upstream.model_dump())

        async def send() -> None:
            for attempt in range(3):
                try:
                    await media.configure.remote(*args)
                    return
                except Exception as exc:  # noqa: BLE001 - actor restarting: try again shortly
                    log.warning("configuring the media cache failed (attempt %d): %s", attempt + 1,
                                type(exc).__name__)
                    await asyncio.sleep(1.0)

        task = asyncio.get_running_loop().create_task(send())
        self._background.add(task)  # keep a reference until it is done
        task.add_done_callback(self._background.discard)

    @property
    def config(self) -> AppConfig:
        assert self.config_service is not None, "runtime not started"
        return self.config_service.get()

    async def ensure_started(self) -> None:
        if self._started:
            await self._refresh()
            return
        if self._start_lock is None:
            self._start_lock = asyncio.Lock()
        async with self._start_lock:
            if self._started:
                return
            storage = create_storage(self.settings.storage_type, self.settings.storage_url,
                                     Path(self.settings.data_dir))
            await storage.open()
            self.config_service = ConfigService(storage)
            await self.config_service.load()
            self._apply_config(self.config)
            self.leases.start()
            self._started = True

    async def _refresh(self) -> None:
        """Hot reload: O(1) unless the poll interval passed; re-apply only a new config object."""
        assert self.config_service is not None
        cfg = await self.config_service.get_fresh()
        if cfg is not self._applied:
            self._apply_config(cfg)

    def _apply_config(self, cfg: AppConfig) -> None:
        self._applied = cfg
        settings = upstream_settings(cfg)
        key = settings.model_dump_json()
        if key != self._upstream_key:
            old = self.upstream
            self.upstream = UpstreamContext(settings)
            self._upstream_key = key
            if old is not None:
                old.close_later()
        self._configure_media(cfg, settings)

    async def ready_report(self) -> dict[str, Any]:
        """What ``/ready`` checks: Ray, the TokenPool actor and the storage answer."""
        report: dict[str, Any] = {"ray": ray.is_initialized()}
        try:
            stats = await asyncio.wait_for(self.pool.handle.stats.remote(), timeout=5)
            report["token_pool"] = {"ok": True, "tokens": stats["tokens"]}
        except Exception as exc:  # noqa: BLE001
            report["token_pool"] = {"ok": False, "error": type(exc).__name__}
        try:
            assert self.config_service is not None
            await asyncio.wait_for(self.config_service.storage.ping(), timeout=5)
            report["storage"] = {"ok": True, "kind": self.settings.storage_type}
        except Exception as exc:  # noqa: BLE001
            report["storage"] = {"ok": False, "error": type(exc).__name__}
        report["ok"] = bool(report["ray"] and report["token_pool"]["ok"] and report["storage"]["ok"])
        return report

    async def aclose(self) -> None:
        await self.leases.close()
        if self.upstream is not None:
            await self.upstream.aclose()


__all__ = ["WorkerRuntime", "RayPoolPort"]
