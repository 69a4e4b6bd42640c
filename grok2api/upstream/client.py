"""``GrokClient``: the one object a worker process holds to talk to Grok."""

from __future__ import annotations

import os
from typing import Any, Literal, Mapping

from grok2api.upstream import account, assets, rate_limits, upload
from grok2api.upstream.chat import ChatStream, open_chat
from grok2api.upstream.context import UpstreamContext


class GrokClient(UpstreamContext):
    """Façade over the endpoint modules. Create once per worker; ``await aclose()`` on shutdown."""

    async def open_chat(self, token: str, payload: Mapping[str, Any], *, preflight: bool = True,
                        idle_timeout: float | None = None, first_byte_timeout: float | None = None,
                        extra_headers: Mapping[str, str] | None = None) -> ChatStream:
        """See :func:`grok2api.upstream.chat.open_chat`."""
        return await open_chat(self, token, payload, preflight=preflight, idle_timeout=idle_timeout,
                               first_byte_timeout=first_byte_timeout, extra_headers=extra_headers)

    async def upload_bytes(self, token: str, name: str, mime: str, data: bytes, *,
                           max_bytes: int = upload.DEFAULT_MAX_UPLOAD_BYTES) -> upload.UploadedFile:
        return await upload.upload_bytes(self, token, name, mime, data, max_bytes=max_bytes)

    async def upload_data_uri(self, token: str, uri: str, *, name: str | None = None,
                              max_bytes: int = upload.DEFAULT_MAX_UPLOAD_BYTES) -> upload.UploadedFile:
        return await upload.upload_data_uri(self, token, uri, name=name, max_bytes=max_bytes)

    async def rate_limits(self, token: str, model_name: str,
                          style: Literal["auto", "legacy", "mode"] = "auto") -> rate_limits.RateLimits:
        return await rate_limits.fetch_rate_limits(self, token, model_name, style)

    async def list_assets(self, token: str, *, page_size: int = 50) -> list[dict[str, Any]]:
        return await assets.list_assets(self, token, page_size=page_size)

    async def delete_asset(self, token: str, asset_id: str) -> None:
        await assets.delete_asset(self, token, asset_id)

    async def download_asset(self, token: str, path: str, dest: str | os.PathLike[str], *,
                             max_bytes: int = assets.DEFAULT_MAX_DOWNLOAD) -> assets.Download:
        return await assets.download_asset(self, token, path, dest, max_bytes=max_bytes)

    async def enable_nsfw(self, token: str) -> None:
        await account.enable_nsfw(self, token)

    async def accept_tos(self, token: str) -> None:
        await account.accept_tos(self, token)

    async def set_birth_date(self, token: str, birth_date: str = "1990-01-01") -> None:
        await account.set_birth_date(self, token, birth_date)
