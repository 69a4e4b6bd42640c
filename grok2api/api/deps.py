"""Request dependencies: the replica's runtime and API-key checks."""

from __future__ import annotations

import hmac

from fastapi import Request

from grok2api.openai.schemas import APIError
from grok2api.worker.runtime import WorkerRuntime


def runtime(request: Request) -> WorkerRuntime:
    """The replica's runtime (found once through Serve's replica context, then cached on the app)."""
    rt = getattr(request.app.state, "runtime", None)
    if rt is None:
        from ray import serve

        rt = serve.get_replica_context().servable_object.runtime
        request.app.state.runtime = rt
    return rt


def _bearer(request: Request) -> str:
    header = request.headers.get("authorization", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() == "bearer":
        return value.strip()
    return ""


def keys_match(given: str, expected: str) -> bool:
    """Constant-time comparison of a presented key with the configured one."""
    return hmac.compare_digest(given.encode(), expected.encode())


async def api_key_auth(request: Request) -> WorkerRuntime:
    """Router dependency: start the runtime and enforce ``app.api_key`` (Bearer) before the body is read."""
    rt = runtime(request)
    await rt.ensure_started()
    expected = rt.config.app.api_key
    if expected and not keys_match(_bearer(request), expected):
        raise APIError(401, "Invalid or missing API key.", "authentication_error", None, "invalid_api_key",
                       headers={"WWW-Authenticate": "Bearer"})
    return rt
