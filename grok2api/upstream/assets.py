"""Assets (chat.md §7): list with paging, delete, streamed download with a size cap."""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, AsyncIterator
from urllib.parse import quote

from grok2api.upstream.context import UpstreamContext
from grok2api.upstream.errors import ErrorKind, UpstreamError, classify_http
from grok2api.upstream.transport import raise_for_status

ASSETS_PATH = "/rest/assets"
DELETE_PATH = "/rest/assets-metadata/{asset_id}"
DEFAULT_MAX_DOWNLOAD = 64 * 1024 * 1024


async def iter_assets(ctx: UpstreamContext, token: str, *, page_size: int = 50, max_pages: int = 1000
                      ) -> AsyncIterator[dict[str, Any]]:
    """Every asset of the account, page by page; stops on an empty or repeated page token."""
    seen: set[str] = set()
    page_token = ""
    for _ in range(max_pages):
        params: dict[str, Any] = {"pageSize": page_size, "orderBy": "ORDER_BY_LAST_USE_TIME",
                                  "source": "SOURCE_ANY", "isLatest": "true"}
        if page_token:
            params["pageToken"] = page_token
        headers = await ctx.rest_headers(token, "GET", ASSETS_PATH, files_referer=True)
        resp = await ctx.transport.request("GET", ctx.url(ASSETS_PATH), headers=headers, params=params,
                                           scope="asset", secrets=ctx.secrets(token))
        if resp.status != 200:
            raise classify_http(resp.status, resp.content, resp.headers, *ctx.secrets(token))
        try:
            data = resp.json()
        except ValueError:
            raise UpstreamError(ErrorKind.SERVER, resp.status, "assets answer is not JSON") from None
        for a in data.get("assets") or []:
            if isinstance(a, dict):
                yield a
        page_token = str(data.get("nextPageToken") or "")
        if not page_token or page_token in seen:
            return
        seen.add(page_token)


async def list_assets(ctx: UpstreamContext, token: str, *, page_size: int = 50) -> list[dict[str, Any]]:
    return [a async for a in iter_assets(ctx, token, page_size=page_size)]


async def delete_asset(ctx: UpstreamContext, token: str, asset_id: str) -> None:
    """Delete one asset; raises :class:`UpstreamError` (``not_found`` for unknown ids)."""
    path = DELETE_PATH.format(asset_id=quote(asset_id, safe=""))
    headers = await ctx.rest_headers(token, "DELETE", path, files_referer=True)
    resp = await ctx.transport.request("DELETE", ctx.url(path), headers=headers, scope="asset",
                                       secrets=ctx.secrets(token))
    if not 200 <= resp.status < 300:
        raise classify_http(resp.status, resp.content, resp.headers, *ctx.secrets(token))


@dataclass(slots=True, frozen=True)
class Download:
    path: Path
    size: int
    content_type: str


def asset_url(ctx: UpstreamContext, path: str) -> str:
    if path.startswith(("http://", "https://")):
        return path
    return f"{ctx.settings.assets_url}/{path.lstrip('/')}"


async def download_asset(ctx: UpstreamContext, token: str, path: str, dest: str | os.PathLike[str], *,
                         max_bytes: int = DEFAULT_MAX_DOWNLOAD) -> Download:
    """Stream ``https://assets.../<path>`` into ``dest`` (written to a temp file, then renamed).

    Over ``max_bytes`` → :class:`UpstreamError` ``bad_request`` and nothing is left behind.
    """
    url = asset_url(ctx, path)
    secrets = ctx.secrets(token)
    resp = await ctx.transport.stream("GET", url, headers=ctx.headers.asset(token, path), scope="asset",
                                      idle_timeout=ctx.settings.download_timeout,
                                      first_byte_timeout=ctx.settings.download_timeout, secrets=secrets)
    dest = Path(dest)
    await raise_for_status(resp, *secrets)
    ctype = resp.headers.get("content-type", "application/octet-stream").split(";", 1)[0].strip()
    declared = resp.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > max_bytes:
        await resp.aclose()
        raise UpstreamError(ErrorKind.BAD_REQUEST, 200, f"asset larger than {max_bytes} bytes")
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".dl-", dir=str(dest.parent))
    size = 0
    ok = False
    try:
        with os.fdopen(fd, "wb") as f:
            async for chunk in resp.chunks():
                size += len(chunk)
                if size > max_bytes:
                    raise UpstreamError(ErrorKind.BAD_REQUEST, 200, f"asset larger than {max_bytes} bytes")
                f.write(chunk)
        encoded = bool(resp.headers.get("content-encoding", "identity") not in ("", "identity"))
        if declared and declared.isdigit() and not encoded and size < int(declared):
            raise UpstreamError(ErrorKind.TRANSPORT, 200, "asset download truncated")
        os.replace(tmp, dest)
        ok = True
    finally:
        await resp.aclose()
        if not ok:
            try:
                os.unlink(tmp)
            except OSError:
                pass
    return Download(dest, size, ctype)
