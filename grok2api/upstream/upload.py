"""``POST /rest/app-chat/upload-file`` (chat.md §5): JSON + base64 upload, returns the attachment id.

Remote URLs are *not* fetched here (the gateway's hardened fetcher does that and
calls :func:`upload_bytes`); data URIs are decoded by :func:`upload_data_uri`.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass

from grok2api.upstream.context import UpstreamContext
from grok2api.upstream.errors import ErrorKind, UpstreamError
from grok2api.upstream.messages import decode_data_uri, file_name_for

UPLOAD_PATH = "/rest/app-chat/upload-file"
DEFAULT_MAX_UPLOAD_BYTES = 32 * 1024 * 1024


@dataclass(slots=True, frozen=True)
class UploadedFile:
    file_id: str  # ``fileMetadataId`` — goes into ``fileAttachments``
    file_uri: str  # asset path of the bytes (``users/<uid>/<id>/content``)
    mime: str
    name: str


async def upload_bytes(ctx: UpstreamContext, token: str, name: str, mime: str, data: bytes, *,
                       max_bytes: int = DEFAULT_MAX_UPLOAD_BYTES) -> UploadedFile:
    """Upload ``data`` with ``token``; raise :class:`UpstreamError` on failure (``bad_request`` if too large)."""
    if len(data) > max_bytes:
        raise UpstreamError(ErrorKind.BAD_REQUEST, 0, f"file larger than {max_bytes} bytes")
    body = {"fileName": name, "fileMimeType": mime, "content": base64.b64encode(data).decode("ascii")}
    resp = await ctx.post_json(token, UPLOAD_PATH, body, scope="asset", timeout=ctx.settings.upload_timeout)
    try:
        out = resp.json()
    except ValueError:
        raise UpstreamError(ErrorKind.SERVER, resp.status, "upload answer is not JSON") from None
    file_id = out.get("fileMetadataId") or out.get("fileId") if isinstance(out, dict) else None
    if not file_id:
        raise UpstreamError(ErrorKind.SERVER, resp.status, "upload answer has no fileMetadataId")
    return UploadedFile(str(file_id), str(out.get("fileUri") or ""), str(out.get("fileMimeType") or mime),
                        str(out.get("fileName") or name))


async def upload_data_uri(ctx: UpstreamContext, token: str, uri: str, *, name: str | None = None,
                          max_bytes: int = DEFAULT_MAX_UPLOAD_BYTES) -> UploadedFile:
    """Decode a ``data:<mime>;base64,...`` URI (``InvalidMessageError`` if bad) and upload it."""
    mime, data = decode_data_uri(uri, max_bytes)
    return await upload_bytes(ctx, token, file_name_for(mime, name), mime, data, max_bytes=max_bytes)
