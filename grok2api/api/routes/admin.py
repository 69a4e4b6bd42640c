"""Admin API (``/v1/admin``): login, tokens, config, cache. Guarded by ``app.app_key``."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel, Field

from grok2api.api.deps import keys_match, runtime
from grok2api.openai.schemas import APIError
from grok2api.storage.base import mask_token
from grok2api.worker.runtime import WorkerRuntime

router = APIRouter(prefix="/v1/admin", tags=["admin"])


async def admin(request: Request, rt: WorkerRuntime = Depends(runtime)) -> WorkerRuntime:
    await rt.ensure_started()
    header = request.headers.get("authorization", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() != "bearer" or not keys_match(value.strip(), rt.config.app.app_key):
        raise APIError(401, "Invalid or missing admin key.", "authentication_error", None, "invalid_app_key",
                       headers={"WWW-Authenticate": "Bearer"})
    return rt


class TokensIn(BaseModel):
    tokens: list[str] = Field(min_length=1, max_length=10_000)
    pool: str = Field("basic", pattern="^(basic|super|heavy)$")


class TokenRefs(BaseModel):
    tokens: list[str] = Field(min_length=1, max_length=10_000)


def _masked_listing(items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    out = []
    for item in items:
        item = dict(item)
        item["token"] = mask_token(item["token"])
        out.append(item)
    return out


@router.get("/tokens", summary="Every token, masked, with its state")
async def list_tokens(rt: WorkerRuntime = Depends(runtime), _: Any = Depends(admin)) -> dict[str, Any]:
    await rt.ensure_started()
    return {"tokens": _masked_listing(await rt.pool.handle.list_tokens.remote())}


@router.post("/tokens", summary="Add tokens to a pool (duplicates skipped)")
async def add_tokens(body: TokensIn, rt: WorkerRuntime = Depends(runtime), _: Any = Depends(admin)) -> Any:
    await rt.ensure_started()
    return await rt.pool.handle.add_tokens.remote(body.tokens, body.pool)


@router.delete("/tokens", summary="Remove tokens")
async def remove_tokens(body: TokenRefs, rt: WorkerRuntime = Depends(runtime), _: Any = Depends(admin)) -> Any:
    await rt.ensure_started()
    return {"removed": await rt.pool.handle.remove_tokens.remote(body.tokens)}


@router.post("/tokens/refresh", summary="Re-sync quotas from Grok's rate-limits endpoint")
async def refresh_tokens(body: TokenRefs, rt: WorkerRuntime = Depends(runtime), _: Any = Depends(admin)) -> Any:
    await rt.ensure_started()
    return {"results": await rt.pool.handle.refresh.remote(body.tokens)}
