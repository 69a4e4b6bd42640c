"""Liveness and readiness."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends
from fastapi.responses import ORJSONResponse

from grok2api.api.deps import runtime
from grok2api.worker.runtime import WorkerRuntime

router = APIRouter(tags=["health"])


@router.get("/health", summary="Liveness: the replica answers")
async def health() -> dict[str, str]:
    return {"status": "ok"}


@router.get("/ready", summary="Readiness: Ray, the TokenPool actor and the storage answer")
async def ready(rt: WorkerRuntime = Depends(runtime)) -> Any:
    await rt.ensure_started()
    report = await rt.ready_report()
    return ORJSONResponse(report, status_code=200 if report["ok"] else 503)
