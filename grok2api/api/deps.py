"""Request dependencies: the replica's runtime and the key checks of ``/v1`` and ``/v1/admin``."""

from __future__ import annotations

from fastapi import Depends, FastAPI, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from grok2api.api.security import LoginLimiter, bearer_credential, client_address, keys_match
from grok2api.openai.schemas import APIError
from grok2api.worker.runtime import WorkerRuntime

# Declared for the OpenAPI document only (``auto_error=False``): the checks below do the work.
api_key_scheme = HTTPBearer(scheme_name="ApiKey", auto_error=False,
                            description="`app.api_key` (when set) as a Bearer token.")
admin_key_scheme = HTTPBearer(scheme_name="AdminKey", auto_error=False,
                              description="The admin password `app.app_key` as a Bearer token.")


def runtime_of(app: FastAPI) -> WorkerRuntime:
    """The replica's runtime (found once through Serve's replica context, then cached on the app)."""
    rt = getattr(app.state, "runtime", None)
    if rt is None:
        from ray import serve

        rt = app.state.runtime = serve.get_replica_context().servable_object.runtime
    return rt


def runtime(request: Request) -> WorkerRuntime:
    """Dependency form of :func:`runtime_of`."""
    return runtime_of(request.app)


def _bearer(request: Request) -> str:
    return bearer_credential(request)


def check_api_key(presented: str, expected: str) -> None:
    """Raise 401 unless ``app.api_key`` is unset or ``presented`` (the Bearer credential) matches it."""
    if expected and not keys_match(presented, expected):
        raise APIError(401, "Invalid or missing API key.", "authentication_error", None, "invalid_api_key",
                       headers={"WWW-Authenticate": "Bearer"})


async def api_key_auth(request: Request,
                       _declared: HTTPAuthorizationCredentials | None = Depends(api_key_scheme)) -> WorkerRuntime:
    """Router dependency: start the runtime and enforce ``app.api_key`` (Bearer) before the body is read."""
    rt = runtime(request)
    await rt.ensure_started()
    check_api_key(_bearer(request), rt.config.app.api_key)
    return rt


def login_limiter(request: Request) -> LoginLimiter:
    """The app's failed-login limiter (one per app instance, i.e. per replica)."""
    limiter = getattr(request.app.state, "login_limiter", None)
    if limiter is None:
        limiter = request.app.state.login_limiter = LoginLimiter()
    return limiter


def check_admin_password(request: Request, presented: str, expected: str) -> None:
    """Raise 429 (locked out), 401 (missing or wrong) or return (right) — counting wrong guesses."""
    limiter = login_limiter(request)
    address = client_address(request)
    wait = limiter.retry_after(address)
    if wait is not None:
        raise APIError(429, "Too many failed admin logins; try again later.", "rate_limit_error", None,
                       "too_many_login_attempts", headers={"Retry-After": str(wait)})
    if not presented:
        raise APIError(401, "Missing admin key.", "authentication_error", None, "invalid_app_key",
                       headers={"WWW-Authenticate": "Bearer"})
    if not keys_match(presented, expected):
        limiter.failure(address)
        raise APIError(401, "Invalid admin key.", "authentication_error", None, "invalid_app_key",
                       headers={"WWW-Authenticate": "Bearer"})
    limiter.success(address)


async def admin_auth(request: Request,
                     _declared: HTTPAuthorizationCredentials | None = Depends(admin_key_scheme)) -> WorkerRuntime:
    """Router dependency of every ``/v1/admin`` route (except login): ``app.app_key`` as Bearer."""
    rt = runtime(request)
    await rt.ensure_started()
    check_admin_password(request, _bearer(request), rt.config.app.app_key)
    return rt


__all__ = ["admin_auth", "api_key_auth", "check_admin_password", "check_api_key", "keys_match", "login_limiter",
           "runtime", "runtime_of"]
