"""The simulator's control API under ``/_sim/`` (JSON in, JSON out).

=========================  ==============================================================
``GET  /_sim/health``       ``{"ok": true}``
``POST /_sim/tokens``       add/update a token: ``{token, plan, state, nsfw, user_id, quota_total,
                            window_seconds}`` → the account summary
``GET  /_sim/tokens``       all accounts (tokens masked)
``GET|DELETE /_sim/tokens/{token}``  one account's live state / remove it
``POST /_sim/faults``       ``{fault, token?, path?, count?}`` → the rule; ``path`` is a category
                            (chat, upload, rate_limits, assets, download, media, ws, grpc, auth,
                            livekit, any) or a path prefix; ``count`` = next N matching requests
``GET|DELETE /_sim/faults`` list / clear (``?token=`` clears one token's rules)
``POST /_sim/reset``        forget all accounts, faults, recorded requests, stats, clock offset
``POST /_sim/clock``        ``{offset_seconds?, advance_seconds?}`` → ``{offset_seconds, now}``
``POST /_sim/quota``        ``{token?, remaining?}``: refill one token (or all), or set its remaining
``GET|DELETE /_sim/requests``  recorded requests (``?path=&token=&limit=``) / clear them
``GET  /_sim/stats``        counters
``GET|POST /_sim/config``   read / change runtime options (delays, statsig policy, ...)
=========================  ==============================================================
"""

from __future__ import annotations

from typing import Any, Literal

import orjson
from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from grok2api.simulator.faults import FaultError, parse_fault
from grok2api.simulator.state import SimState
from grok2api.storage.base import mask_token


class TokenSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")

    token: str = Field(min_length=1)
    plan: Literal["basic", "super", "heavy"] | None = None
    state: Literal["valid", "expired", "blocked"] | None = None
    nsfw: bool | None = None
    user_id: str | None = None
    quota_total: int | None = Field(default=None, ge=0)
    window_seconds: int | None = Field(default=None, ge=1)


class FaultSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")

    fault: str
    token: str | None = None
    path: str | None = None
    count: int | None = Field(default=None, ge=1)


class ClockSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")

    offset_seconds: float | None = None
    advance_seconds: float | None = None


class QuotaSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")

    token: str | None = None
    remaining: int | None = Field(default=None, ge=0)


class ConfigSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")

    seed: int | None = None
    strict_tokens: bool | None = None
    default_tokens: int | None = Field(default=None, ge=0)
    token_delay_ms: float | None = Field(default=None, ge=0)
    ttft_ms: float | None = Field(default=None, ge=0)
    video_ms: float | None = Field(default=None, ge=0)
    record: bool | None = None
    statsig: Literal["off", "base64", "reject-e", "x1"] | None = None
    cf_clearance: str | None = None
    require_birth_date: bool | None = None
    retry_after: int | None = None
    imagine_images: int | None = Field(default=None, ge=1, le=6)


def _json(data: Any, status: int = 200) -> web.Response:
    return web.Response(body=orjson.dumps(data), status=status, content_type="application/json")


async def _body(request: web.Request, model: type[BaseModel]) -> BaseModel | web.Response:
    try:
        raw = await request.read()
        return model.model_validate(orjson.loads(raw) if raw else {})
    except (orjson.JSONDecodeError, ValidationError) as exc:
        return _json({"error": str(exc)}, 400)


def add_routes(app: web.Application, st: SimState) -> None:
    r = app.router

    async def health(_: web.Request) -> web.Response:
        return _json({"ok": True})

    async def tokens_post(request: web.Request) -> web.Response:
        spec = await _body(request, TokenSpec)
        if isinstance(spec, web.Response):
            return spec
        assert isinstance(spec, TokenSpec)
        acc = st.upsert(spec.token, spec.plan, spec.state, spec.nsfw, spec.user_id, spec.quota_total,
                        spec.window_seconds)
        return _json({"token": mask_token(spec.token), **acc.summary(st.clock.now())})

    async def tokens_list(_: web.Request) -> web.Response:
        now = st.clock.now()
        return _json({"tokens": [{"token": mask_token(t), **a.summary(now)} for t, a in st.accounts.items()]})

    async def token_get(request: web.Request) -> web.Response:
        acc = st.accounts.get(request.match_info["token"])
        if acc is None:
            return _json({"error": "unknown token"}, 404)
        return _json({"token": mask_token(acc.token), **acc.summary(st.clock.now()),
                      "asset_ids": list(acc.assets), "upload_ids": sorted(acc.uploads),
                      "post_ids": list(acc.posts), "video_ids": sorted(acc.videos)})

    async def token_delete(request: web.Request) -> web.Response:
        return _json({"removed": st.remove(request.match_info["token"])})

    async def faults_post(request: web.Request) -> web.Response:
        spec = await _body(request, FaultSpec)
        if isinstance(spec, web.Response):
            return spec
        assert isinstance(spec, FaultSpec)
        try:
            fault = parse_fault(spec.fault)
        except FaultError as exc:
            return _json({"error": str(exc)}, 400)
        rule = st.faults.add(fault, spec.token, spec.path, spec.count)
        return _json(rule.describe())

    async def faults_list(_: web.Request) -> web.Response:
        return _json({"faults": [rule.describe() for rule in st.faults.rules]})

    async def faults_delete(request: web.Request) -> web.Response:
        return _json({"cleared": st.faults.clear(request.query.get("token"))})

    async def reset(_: web.Request) -> web.Response:
        st.reset()
        return _json({"ok": True})

    async def clock(request: web.Request) -> web.Response:
        spec = await _body(request, ClockSpec)
        if isinstance(spec, web.Response):
            return spec
        assert isinstance(spec, ClockSpec)
        if spec.offset_seconds is not None:
            st.clock.offset = spec.offset_seconds
        if spec.advance_seconds is not None:
            st.clock.offset += spec.advance_seconds
        return _json({"offset_seconds": st.clock.offset, "now": st.clock.now()})

    async def quota(request: web.Request) -> web.Response:
        spec = await _body(request, QuotaSpec)
        if isinstance(spec, web.Response):
            return spec
        assert isinstance(spec, QuotaSpec)
        if spec.token is not None:
            acc = st.accounts.get(spec.token)
            if acc is None:
                return _json({"error": "unknown token"}, 404)
            targets = [acc]
        else:
            targets = list(st.accounts.values())
        now = st.clock.now()
        for acc in targets:
            acc.refill()
            if spec.remaining is not None:
                acc.used = max(0, acc.quota_total - spec.remaining)
                acc.window_start = now if acc.used else None
        return _json({"refilled": len(targets)})

    async def requests_get(request: web.Request) -> web.Response:
        q = request.query
        path, token = q.get("path"), q.get("token")
        items = [e for e in st.requests
                 if (path is None or e["path"] == path or e["category"] == path)
                 and (token is None or e["token"] == token)]
        limit = int(q.get("limit", "0") or 0)
        if limit:
            items = items[-limit:]
        return _json({"requests": items})

    async def requests_delete(_: web.Request) -> web.Response:
        n = len(st.requests)
        st.requests.clear()
        return _json({"cleared": n})

    async def stats(_: web.Request) -> web.Response:
        return _json({"stats": dict(st.stats), "accounts": len(st.accounts), "faults": len(st.faults.rules),
                      "recorded": len(st.requests)})

    async def config_get(_: web.Request) -> web.Response:
        return _json(vars(st.options))

    async def config_post(request: web.Request) -> web.Response:
        spec = await _body(request, ConfigSpec)
        if isinstance(spec, web.Response):
            return spec
        assert isinstance(spec, ConfigSpec)
        for key, value in spec.model_dump(exclude_unset=True).items():
            setattr(st.options, key, value)
        return _json(vars(st.options))

    r.add_get("/_sim/health", health)
    r.add_post("/_sim/tokens", tokens_post)
    r.add_get("/_sim/tokens", tokens_list)
    r.add_get("/_sim/tokens/{token}", token_get)
    r.add_delete("/_sim/tokens/{token}", token_delete)
    r.add_post("/_sim/faults", faults_post)
    r.add_get("/_sim/faults", faults_list)
    r.add_delete("/_sim/faults", faults_delete)
    r.add_post("/_sim/reset", reset)
    r.add_post("/_sim/clock", clock)
    r.add_post("/_sim/quota", quota)
    r.add_get("/_sim/requests", requests_get)
    r.add_delete("/_sim/requests", requests_delete)
    r.add_get("/_sim/stats", stats)
    r.add_get("/_sim/config", config_get)
    r.add_post("/_sim/config", config_post)
