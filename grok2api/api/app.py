"""The FastAPI application every GrokWorker replica serves.

Built by :func:`build_app` on each replica (Serve's ingress builder form). Routes
find the replica's :class:`~grok2api.worker.runtime.WorkerRuntime` through
:func:`grok2api.api.deps.runtime`. Every failure a client can see is in the
OpenAI error shape ``{"error": {"message", "type", "param", "code"}}``.
"""

from __future__ import annotations

import inspect
import logging
from typing import Any, Awaitable, Callable

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import ORJSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from grok2api import __version__
from grok2api.api.asgi import BodyTooLarge, declared_too_large, send_api_error, validation_message
from grok2api.api.chat_endpoint import CHAT_COMPLETIONS_PATH, ChatCompletionsEndpoint, openapi_path_item
from grok2api.api.deps import runtime_of
from grok2api.api.security import body_limit_bytes
from grok2api.openai.schemas import APIError, error_body
from grok2api.worker.runtime import WorkerRuntime

log = logging.getLogger(__name__)

# Until a replica's runtime has loaded the config: the limit for the default asset.max_upload_mb (50).
DEFAULT_MAX_BODY_BYTES = body_limit_bytes(50)

Limit = int | Callable[[], int] | Callable[[], Awaitable[int]]


class BodySizeLimit:
    """Reject bodies over the limit with 413 before reading them whole.

    Checks ``Content-Length`` up front and counts streamed (chunked) bytes as they arrive;
    the route never sees more than the limit. ``limit`` is a number or a callable read once
    per request (so it can follow the hot-reloaded config; it may be a coroutine function).
    """

    def __init__(self, app: ASGIApp, limit: Limit = DEFAULT_MAX_BODY_BYTES) -> None:
        self.app = app
        self.limit = limit

    async def _current_limit(self) -> int:
        if callable(self.limit):
            try:
                value = self.limit()
                if inspect.isawaitable(value):
                    value = await value
                return int(value)
            except Exception:  # noqa: BLE001 - never fail a request over the limit lookup
                return DEFAULT_MAX_BODY_BYTES
        return int(self.limit)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = await self._current_limit()
        if declared_too_large(scope, limit):
            await send_api_error(send, BodyTooLarge().api_error())
            return
        seen = 0
        started = False

        async def limited_receive() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > limit:
                    raise BodyTooLarge()
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, limited_receive, tracking_send)
        except BodyTooLarge as exc:
            if not started:
                await send_api_error(send, exc.api_error())


def _install_log_masking() -> None:
    """Mask secrets in every record the replica's log handlers write (Ray sets those handlers up).

    ``grok2api.logging_setup`` masks when the CLI configures logging; inside a Ray replica the
    handlers are Ray's, so the masking filter is attached to them here (idempotent).
    """
    from grok2api.logging_setup import SecretMaskingFilter

    for name in ("", "ray", "ray.serve"):
        for handler in logging.getLogger(name).handlers:
            if not any(isinstance(f, SecretMaskingFilter) for f in handler.filters):
                handler.addFilter(SecretMaskingFilter())


def route_path(scope: Scope) -> str:
    """The request path below the app's mount point (``root_path``), as Starlette routes it."""
    path: str = scope["path"]
    root = scope.get("root_path", "")
    return path[len(root):] if root and path.startswith(root) else path


class GatewayApp(FastAPI):
    """FastAPI for every route but the hot one: ``/v1/chat/completions`` goes straight to its bare
    ASGI endpoint (:mod:`grok2api.api.chat_endpoint`), past FastAPI's middleware and routing."""

    chat_endpoint: ChatCompletionsEndpoint | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and self.chat_endpoint is not None and route_path(scope) == CHAT_COMPLETIONS_PATH:
            await self.chat_endpoint(scope, receive, send)
            return
        await super().__call__(scope, receive, send)


def build_app(max_body_bytes: int | None = None) -> FastAPI:
    """A fresh application with every route of the gateway.

    ``max_body_bytes`` fixes the request body limit; by default it follows ``asset.max_upload_mb``
    (:func:`grok2api.api.security.body_limit_bytes`) of the replica's hot-reloaded config.
    """
    from grok2api.api.routes import admin, files, health, openai_routes

    app = GatewayApp(
        title="grok2api",
        version=__version__,
        description="OpenAI-compatible gateway over a pool of Grok web accounts.",
        default_response_class=ORJSONResponse,
    )

    @app.exception_handler(APIError)
    async def _api_error(_: Request, exc: APIError) -> ORJSONResponse:
        return ORJSONResponse(exc.body(), status_code=exc.status, headers=exc.headers or None)

    @app.exception_handler(RequestValidationError)
    async def _validation(_: Request, exc: RequestValidationError) -> ORJSONResponse:
        message, param = validation_message(exc.errors())
        return ORJSONResponse(error_body(message, "invalid_request_error", param, "invalid_request"),
                              status_code=400)

    @app.exception_handler(StarletteHTTPException)
    async def _http(_: Request, exc: StarletteHTTPException) -> ORJSONResponse:
        kind = "not_found" if exc.status_code == 404 else "invalid_request_error"
        code = getattr(exc, "code", None) or str(exc.status_code)
        return ORJSONResponse(error_body(str(exc.detail), kind, None, code),
                              status_code=exc.status_code, headers=getattr(exc, "headers", None))

    @app.exception_handler(Exception)
    async def _unexpected(_: Request, exc: Exception) -> ORJSONResponse:
        log.exception("unhandled error: %s", type(exc).__name__)
        error = APIError.internal()
        return ORJSONResponse(error.body(), status_code=error.status)

    app.include_router(health.router)
    app.include_router(openai_routes.router)
    app.include_router(files.router)
    app.include_router(admin.login_router)
    app.include_router(admin.router)

    async def started_runtime() -> WorkerRuntime:
        rt = runtime_of(app)
        await rt.ensure_started()  # an O(1) config freshness check once started
        return rt

    def body_limit(rt: WorkerRuntime) -> int:
        return max_body_bytes if max_body_bytes is not None else body_limit_bytes(rt.config.asset.max_upload_mb)

    async def current_body_limit() -> int:
        # Read before any route runs: a body that is refused never reaches the route's dependencies.
        return body_limit(await started_runtime())

    app.add_middleware(BodySizeLimit, limit=max_body_bytes if max_body_bytes is not None else current_body_limit)
    app.chat_endpoint = ChatCompletionsEndpoint(started_runtime, body_limit)
    # First in the route table, undocumented (its OpenAPI entry is added below): Serve names each
    # request's route for its metrics by matching the table, and a path no route matched costs it
    # two full scans (with and without a trailing slash) on every chat request.
    app.router.routes.insert(0, Route(CHAT_COMPLETIONS_PATH, app.chat_endpoint, methods=["POST"],
                                      include_in_schema=False))
    _add_handler_validated_schemas(app, openai_routes.request_body_schemas(),
                                   {CHAT_COMPLETIONS_PATH: openapi_path_item(openai_routes.CHAT_REQUEST_REF)})
    _install_log_masking()
    return app


def _add_handler_validated_schemas(app: FastAPI, schemas: dict[str, Any], paths: dict[str, Any]) -> None:
    """Publish the schemas of request bodies that handlers validate themselves (after auth), and the
    routes served outside FastAPI's router."""
    generate = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema:
            return app.openapi_schema
        document = generate()
        components = document.setdefault("components", {}).setdefault("schemas", {})
        for name, schema in schemas.items():
            components.setdefault(name, schema)
        document.setdefault("paths", {}).update(paths)
        return document

    app.openapi = openapi  # type: ignore[method-assign]
