"""``/v1/files/{image,video}/{name}``: cached media, served from the MediaCache's folder."""

from __future__ import annotations

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


@router.get("/{kind}/{name}", summary="A cached generated image or video")
async def get_file(kind: Literal["image", "video"], name: str, rt: WorkerRuntime = Depends(runtime)) -> FileResponse:
    await rt.ensure_started()
    if not safe_name(name):
        raise APIError(404, "File not found.", "not_found", "name", "file_not_found")
    path = await rt.media.path_of.remote(kind, name)
    if path is None:
        raise APIError(404, "File not found.", "not_found", "name", "file_not_found")
    suffix = "." + name.rsplit(".", 1)[-1].lower() if "." in name else ""
    return FileResponse(path, media_type=_TYPES.get(suffix, "application/octet-stream"),
                        headers={"Cache-Control": "public, max-age=31536000, immutable",
                                 "Content-Disposition": "inline"})
