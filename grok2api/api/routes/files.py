"""``/v1/files/{image,video}/{name}``: cached media, served from the MediaCache's folder.

Public on purpose (no API key): the links end up in chat answers and are opened by browsers.
A name can only mean a file directly inside one cache folder: :func:`safe_name` refuses path
separators, ``..``, leading dots and anything outside ``[A-Za-z0-9._-]``, and the MediaCache
resolves the path (symlinks included) and refuses anything whose real parent is not that folder.
"""

from __future__ import annotations

import os
from typing import Literal

from fastapi import APIRouter, Depends
from fastapi.responses import FileResponse

from grok2api.api.deps import runtime
from grok2api.actors.media_cache import safe_name
from grok2api.openai.schemas import APIError
from grok2api.worker.runtime import WorkerRuntime

router = APIRouter(prefix="/v1/files", tags=["files"])

_TYPES = {".png": "image/png", ".jpg": "image/jpeg", ".jpeg": "image/jpeg", ".webp": "image/webp",
          ".gif": "image/gif", ".mp4": "video/mp4", ".webm": "video/webm"}


def _not_found() -> APIError:
    return APIError(404, "File not found.", "not_found", "name", "file_not_found")


@router.get("/{kind}/{name}", summary="A cached generated image or video",
            responses={404: {"description": "Not cached (or not a valid name)"}})
async def get_file(kind: Literal["image", "video"], name: str, rt: WorkerRuntime = Depends(runtime)) -> FileResponse:
    await rt.ensure_started()
    if not safe_name(name):
        raise _not_found()
    path = await rt.media.path_of.remote(kind, name)
    if path is None:
        raise _not_found()
    try:
        stat = os.stat(path)  # evicted between the check and now: 404, not a 500 from FileResponse
    except OSError:
        raise _not_found() from None
    suffix = "." + name.rsplit(".", 1)[-1].lower() if "." in name else ""
    return FileResponse(path, stat_result=stat, media_type=_TYPES.get(suffix, "application/octet-stream"),
                        headers={"Cache-Control": "public, max-age=31536000, immutable",
                                 "Content-Disposition": "inline", "X-Content-Type-Options": "nosniff"})
