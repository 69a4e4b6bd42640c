"""Admin API (``/v1/admin``): login and tokens. Guarded by ``app.app_key``.

Every route except ``POST /v1/admin/login`` sits on :data:`router`, whose one router-level
dependency (:func:`grok2api.api.deps.admin_auth`) checks the Bearer admin key, so a route
added here cannot forget the guard. Wrong keys count towards the per-address login limiter
(see :mod:`grok2api.api.security`), on the login route and on every guarded route alike.
Token values never leave the gateway unmasked.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel, Field

from grok2api.api.deps import admin_auth, admin_key_scheme, check_admin_password, runtime
from grok2api.api.security import bearer_credential
from grok2api.storage.base import mask_token
from grok2api.worker.runtime import WorkerRuntime

router = APIRouter(prefix="/v1/admin", tags=["admin"], dependencies=[Depends(admin_auth)])
login_router = APIRouter(prefix="/v1/admin", tags=["admin"])


class LoginIn(BaseModel):
    password: str = Field(min_length=1, max_length=4096)


class LoginOut(BaseModel):
    ok: bool = True


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


@login_router.post("/login", response_model=LoginOut, summary="Check the admin password (rate-limited)",
                   responses={401: {"description": "Wrong or missing password"},
                              429: {"description": "Too many failed attempts from this address"}})
async def login(request: Request, body: LoginIn | None = None, rt: WorkerRuntime = Depends(runtime),
                _declared: Any = Depends(admin_key_scheme)) -> LoginOut:
    """``{"password": ...}`` in the body or the admin key as a Bearer token → 200, else 401/429."""
    await rt.ensure_started()
    presented = body.password if body is not None else bearer_credential(request)
    check_admin_password(request, presented, rt.config.app.app_key)
    return LoginOut()


@router.get("/tokens", summary="Every token, masked, with its state")
async def list_tokens(rt: WorkerRuntime = Depends(runtime)) -> dict[str, Any]:
    return {"tokens": _masked_listing(await rt.pool.handle.list_tokens.remote())}


@router.post("/tokens", summary="Add tokens to a pool (duplicates skipped)")
async def add_tokens(body: TokensIn, rt: WorkerRuntime = Depends(runtime)) -> Any:
    return await rt.pool.handle.add_tokens.remote(body.tokens, body.pool)


@router.delete("/tokens", summary="Remove tokens")
async def remove_tokens(body: TokenRefs, rt: WorkerRuntime = Depends(runtime)) -> Any:
    return {"removed": await rt.pool.handle.remove_tokens.remote(body.tokens)}


@router.post("/tokens/refresh", summary="Re-sync quotas from Grok's rate-limits endpoint")
async def refresh_tokens(body: TokenRefs, rt: WorkerRuntime = Depends(runtime)) -> Any:
    return {"results": await rt.pool.handle.refresh.remote(body.tokens)}
