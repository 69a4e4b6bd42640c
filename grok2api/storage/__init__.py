"""Storage backends behind one async interface (see :mod:`grok2api.storage.base`).

``create_storage(kind, url, data_dir)`` is the single entry point; ``kind`` is one of
``local``, ``redis``, ``mysql``, ``pgsql`` (``SERVER_STORAGE_TYPE``), ``url`` is
``SERVER_STORAGE_URL`` (ignored for ``local``). The returned backend is not connected
yet: ``await storage.open()`` (or ``async with storage:``) before use.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from grok2api.storage.base import (  # noqa: F401
    COUNTER_FIELDS,
    SETTABLE_FIELDS,
    CorruptDataError,
    Storage,
    StorageConfigError,
    StorageError,
    TokenRecord,
    TokenStatus,
    TokenUpdate,
    mask_token,
    normalize_token,
    now_ms,
)
from grok2api.storage.urls import normalize_kind, normalize_storage_url, redact_url  # noqa: F401


def create_storage(
    kind: str, url: str | None, data_dir: Path | str, *, namespace: str = "grok2api", **options: Any
) -> Storage:
    """The backend for ``SERVER_STORAGE_TYPE=kind`` / ``SERVER_STORAGE_URL=url`` (not opened yet).

    ``namespace`` prefixes Redis keys and SQL table names, so several deployments (or test
    runs) can share one server. ``options`` go to the backend's constructor (timeouts,
    ``compact_every`` for local, ...). Raises :class:`StorageConfigError` for a bad kind/URL.
    """
    kind = normalize_kind(kind)
    url = normalize_storage_url(kind, url)
    if kind == "local":
        from grok2api.storage.local import LocalStorage

        return LocalStorage(Path(data_dir), namespace=namespace, **options)
    if kind == "redis":
        from grok2api.storage.redis_store import RedisStorage

        return RedisStorage(url, namespace=namespace, **options)
    from grok2api.storage.sql import SqlStorage

    return SqlStorage(kind, url, namespace=namespace, **options)


__all__ = [
    "COUNTER_FIELDS",
    "SETTABLE_FIELDS",
    "CorruptDataError",
    "Storage",
    "StorageConfigError",
    "StorageError",
    "TokenRecord",
    "TokenStatus",
    "TokenUpdate",
    "create_storage",
    "mask_token",
    "normalize_kind",
    "normalize_storage_url",
    "normalize_token",
    "now_ms",
    "redact_url",
]
