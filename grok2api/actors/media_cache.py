"""The MediaCache actor: generated images and videos, downloaded once, served locally.

Grok returns asset paths (``users/<uid>/generated/<id>/image.jpg``) that only a
client holding the account's cookie can fetch. The cache downloads each asset
once — concurrent requests for the same asset share one download — into
``<cache_dir>/{image,video}/<flat name>`` and keeps the whole cache under
``cache.limit_mb`` by deleting the least recently used files (down to 80 %).

Callers get back file *names*, never bytes: replicas on the same node serve the
file straight from disk (``/v1/files/{image,video}/{name}``).
"""

from __future__ import annotations

import asyncio
import logging
import os
import re
import time
import zipfile
from pathlib import Path
from typing import Any

import ray
from pydantic import BaseModel

from grok2api.upstream.settings import UpstreamSettings

log = logging.getLogger(__name__)

ACTOR_NAME = "MediaCache"
NAMESPACE = "grok2api"
KINDS = ("image", "video")
_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,254}$")
_VIDEO_EXT = (".mp4", ".webm", ".mov")


def flat_name(asset_path: str) -> str:
    """The cache file name for an asset path: ``/`` becomes ``-``, anything unusual is dropped."""
    path = asset_path.split("?", 1)[0].split("#", 1)[0]
    if "://" in path:
        path = path.split("://", 1)[1].split("/", 1)[-1]
    flat = re.sub(r"[^A-Za-z0-9._-]", "", path.strip("/").replace("/", "-"))
    flat = flat.lstrip(".-") or "asset"
    return flat[-200:]


def kind_of(name: str) -> str:
    return "video" if name.lower().endswith(_VIDEO_EXT) else "image"


def safe_name(name: str) -> bool:
    """A file name that can only ever mean a file directly inside one cache folder."""
    return bool(_NAME_RE.fullmatch(name)) and ".." not in name


class CachedFile(BaseModel):
    name: str
    kind: str
    size: int
    mtime: float


class MediaCacheCore:
    """The cache logic without Ray (the actor below is a thin shell)."""

    def __init__(self, root: Path, limit_mb: int, auto_clean: bool, upstream: UpstreamSettings) -> None:
        self.root = Path(root).resolve()
        self.limit_bytes = limit_mb * 1024 * 1024
        self.auto_clean = auto_clean
        self.upstream_settings = upstream
        self._inflight: dict[str, asyncio.Future[str]] = {}
        self._ctx: Any = None
        for kind in KINDS:
            (self.root / kind).mkdir(parents=True, exist_ok=True)

    def configure(self, limit_mb: int, auto_clean: bool, upstream: UpstreamSettings) -> None:
        """Apply changed cache and upstream settings (config hot reload); downloads already running
        finish with the client they started on."""
        self.limit_bytes = limit_mb * 1024 * 1024
        self.auto_clean = auto_clean
        if upstream != self.upstream_settings:
            self.upstream_settings = upstream
            old, self._ctx = self._ctx, None
            if old is not None:
                old.close_later()

    def _upstream(self) -> Any:
        if self._ctx is None:
            from grok2api.upstream.context import UpstreamContext

            self._ctx = UpstreamContext(self.upstream_settings)
        return self._ctx

    def path_of(self, kind: str, name: str) -> Path | None:
        """The file for ``kind``/``name`` if it is cached (and the name is safe); touches it for LRU."""
        if kind not in KINDS or not safe_name(name):
            return None
        path = self.root / kind / name
        try:
            resolved = path.resolve(strict=True)
        except (FileNotFoundError, RuntimeError, OSError):
            return None
        if resolved.parent != self.root / kind or not resolved.is_file():
            return None
        os.utime(resolved, None)
        return resolved

    async def fetch(self, asset_path: str, token: str, max_bytes: int | None = None) -> str:
        """Download ``asset_path`` with ``token`` unless cached; returns the cache file name."""
        name = flat_name(asset_path)
        kind = kind_of(name)
        if self.path_of(kind, name) is not None:
            return name
        fut = self._inflight.get(name)
        if fut is None:
            fut = asyncio.get_running_loop().create_future()
            self._inflight[name] = fut
            asyncio.get_running_loop().create_task(self._download(asset_path, token, name, kind, fut, max_bytes))
        return await asyncio.shield(fut)

    async def _download(self, asset_path: str, token: str, name: str, kind: str, fut: asyncio.Future[str],
                        max_bytes: int | None) -> None:
        from grok2api.upstream.assets import download_asset

        dest = self.root / kind / name
        tmp = dest.with_name(f".{name}.{os.getpid()}.part")
        try:
            await download_asset(self._upstream(), token, asset_path, tmp, max_bytes=max_bytes or self.limit_bytes)
            os.replace(tmp, dest)
            fut.set_result(name)
            if self.auto_clean:
                self.clean()
        except BaseException as exc:  # noqa: BLE001 - handed to every waiter
            tmp.unlink(missing_ok=True)
            fut.set_exception(exc if isinstance(exc, Exception) else RuntimeError(str(exc)))
            fut.exception()
        finally:
            self._inflight.pop(name, None)

    def files(self, kind: str | None = None) -> list[CachedFile]:
        out = []
        for k in KINDS if kind is None else (kind,):
            for entry in os.scandir(self.root / k):
                if entry.is_file() and not entry.name.startswith("."):
                    st = entry.stat()
                    out.append(CachedFile(name=entry.name, kind=k, size=st.st_size, mtime=st.st_mtime))
        return out

    def usage(self) -> dict[str, Any]:
        files = self.files()
        per = {k: {"count": 0, "bytes": 0} for k in KINDS}
        for f in files:
            per[f.kind]["count"] += 1
            per[f.kind]["bytes"] += f.size
        return {"limit_bytes": self.limit_bytes, "total_bytes": sum(f.size for f in files), **per}

    def clean(self) -> int:
        """Delete least recently used files until the cache is at most 80 % of its limit."""
        files = self.files()
        total = sum(f.size for f in files)
        if total <= self.limit_bytes:
            return 0
        target = int(self.limit_bytes * 0.8)
        removed = 0
        for f in sorted(files, key=lambda f: f.mtime):
            if total <= target:
                break
            (self.root / f.kind / f.name).unlink(missing_ok=True)
            total -= f.size
            removed += 1
        return removed

    def delete(self, kind: str, names: list[str]) -> int:
        removed = 0
        for name in names:
            path = self.path_of(kind, name)
            if path is not None:
                path.unlink(missing_ok=True)
                removed += 1
        return removed

    def clear(self, kind: str | None = None) -> int:
        removed = 0
        for f in self.files(kind):
            (self.root / f.kind / f.name).unlink(missing_ok=True)
            removed += 1
        return removed

    def zip(self, kind: str, names: list[str]) -> str:
        """A ZIP_STORED archive of the named files (written inside the cache root); returns its path."""
        paths = [p for n in names if (p := self.path_of(kind, n)) is not None]
        if not paths:
            raise FileNotFoundError("none of the requested files is cached")
        out_dir = self.root / "zips"
        out_dir.mkdir(exist_ok=True)
        out = out_dir / f"{kind}-{int(time.time() * 1000)}.zip"
        with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_STORED) as zf:
            for p in paths:
                zf.write(p, arcname=p.name)
        return str(out)


@ray.remote(num_cpus=0, max_restarts=-1, max_concurrency=1000, enable_task_events=False)
class MediaCache:
    def __init__(self, root: str, limit_mb: int, auto_clean: bool, upstream: dict[str, Any]) -> None:
        self.core = MediaCacheCore(Path(root), limit_mb, auto_clean, UpstreamSettings.model_validate(upstream))

    async def ready(self) -> str:
        return str(self.core.root)

    async def fetch(self, asset_path: str, token: str, max_bytes: int | None = None) -> str:
        return await self.core.fetch(asset_path, token, max_bytes)

    async def path_of(self, kind: str, name: str) -> str | None:
        p = self.core.path_of(kind, name)
        return str(p) if p else None

    async def files(self, kind: str | None = None) -> list[dict[str, Any]]:
        return [f.model_dump() for f in self.core.files(kind)]

    async def usage(self) -> dict[str, Any]:
        return self.core.usage()

    async def delete(self, kind: str, names: list[str]) -> int:
        return self.core.delete(kind, names)

    async def clear(self, kind: str | None = None) -> int:
        return self.core.clear(kind)

    async def zip(self, kind: str, names: list[str]) -> str:
        return self.core.zip(kind, names)

    async def configure(self, limit_mb: int, auto_clean: bool, upstream: dict[str, Any]) -> None:
        self.core.configure(limit_mb, auto_clean, UpstreamSettings.model_validate(upstream))


def get_or_create_media_cache(root: Path, limit_mb: int, auto_clean: bool,
                              upstream: UpstreamSettings) -> "ray.actor.ActorHandle":
    return MediaCache.options(  # type: ignore[attr-defined]
        name=ACTOR_NAME, namespace=NAMESPACE, lifetime="detached", get_if_exists=True
    ).remote(str(root), limit_mb, auto_clean, upstream.model_dump())

