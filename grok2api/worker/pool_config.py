"""The TokenPool's view of the stored config: its settings and refresher follow hot reload.

The pool actor gets its settings when it is created; on a restart Ray rebuilds it with those same
arguments. :class:`PoolConfigWatch` (handed to the actor at creation) reads the config from the
actor's own storage instead, so ``[token]``, ``[usage]`` and upstream changes reach the pool within
the config poll interval, and a restarted actor starts from the current config, not the one the
gateway started with.
"""

from __future__ import annotations

import functools

from grok2api.actors.token_pool import PoolSettings, RefresherFactory
from grok2api.config.service import ConfigService
from grok2api.storage.base import Storage
from grok2api.worker.refresher import make_refresher
from grok2api.worker.settings import pool_settings, upstream_settings


class PoolConfigWatch:
    """Called by the pool every few seconds; returns what changed since the last call, else ``None``.

    The first call returns the current settings. A refresher factory is returned only when the
    upstream settings changed (the refresher holds an upstream client).
    """

    def __init__(self) -> None:
        self._service: ConfigService | None = None
        self._settings: PoolSettings | None = None
        self._upstream_key: str | None = None

    async def __call__(self, storage: Storage) -> tuple[PoolSettings, RefresherFactory | None] | None:
        if self._service is None:
            self._service = ConfigService(storage)
            await self._service.load()
        cfg = await self._service.get_fresh()
        settings = pool_settings(cfg)
        upstream = upstream_settings(cfg)
        key = upstream.model_dump_json()
        refresher = functools.partial(make_refresher, upstream) if key != self._upstream_key else None
        if settings == self._settings and refresher is None:
            return None
        self._settings, self._upstream_key = settings, key
        return settings, refresher


__all__ = ["PoolConfigWatch"]
