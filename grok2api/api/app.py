"""The FastAPI application every GrokWorker replica serves.

Built by :func:`build_app` on each replica (Serve's ingress builder form). Routes
find the replica's :class:`~grok2api.worker.runtime.WorkerRuntime` through
:func:`grok2api.api.deps.runtime`. Every failure a client can see is in the
OpenAI error shape ``{"error": {"message", "type", "param", "code"}}``.
"""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import ORJSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from grok2api import __version__
from grok2api.openai.schemas import APIError, error_body

log = logging.getLogger(__name__)

DEFAULT_MAX_BODY_BYTES = 64 * 1024 * 1024


class BodySizeLimit:
    """Reject bodies over ``limit`` bytes with 413 before reading them whole.

    Checks ``Content-Length`` up front and counts streamed (chunked) bytes as they arrive.
    """

    def __init__(self, app: ASGIApp, limit: int = DEFAULT_MAX_BODY_BYTES) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        for name, value in scope.get("headers", ()):
            if name == b"content-length":
                try:
                    too_big = int(value) > self.limit
                except ValueError:
                    too_big = False
                if too_big:
                    await _send_error(send, 413, "Request body too large.", "invalid_request_error",
                                      "request_too_large")
                    return
        seen = 0
        started = False

        async def limited_receive() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.limit:
                    raise _BodyTooLarge()
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, limited_receive, tracking_send)
        except _BodyTooLarge:
            if not started:
                await _send_error(send, 413, "Request body too large.", "invalid_request_error", "request_too_large")


class _BodyTooLarge(Exception):
    pass


async def _send_error(send: Send, status: int, message: str, type_: str, code: str) -> None:
    import orjson

    body = orjson.dumps(error_body(message, type_, None, code))
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})


def _validation_message(exc: RequestValidationError) -> tuple[str, str | None]:
    errors = exc.errors()
    if not errors:
        return "Invalid request body.", None
    first = errors[0]
    loc = [str(p) for p in first.get("loc", ()) if p != "body"]
    param = ".".join(loc) or None
    msg = first.get("msg", "invalid value")
    return (f"Invalid value for '{param}': {msg}" if param else f"Invalid request: {msg}"), param


def build_app(max_body_bytes: int = DEFAULT_MAX_BODY_BYTES) -> FastAPI:
    """A fresh application with every route of the gateway."""
    from grok2api.api.routes import admin, files, health, openai_routes

    app = FastAPI(
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
        message, param = _validation_message(exc)
        return ORJSONResponse(error_body(message, "invalid_request_error", param, "invalid_request"),
                              status_code=400)

    @app.exception_handler(StarletteHTTPException)
    async def _http(_: Request, exc: StarletteHTTPException) -> ORJSONResponse:
        kind = "not_found" if exc.status_code == 404 else "invalid_request_error"
        return ORJSONResponse(error_body(str(exc.detail), kind, None, str(exc.status_code)),
                              status_code=exc.status_code, headers=getattr(exc, "headers", None))

    @app.exception_handler(Exception)
    async def _unexpected(_: Request, exc: Exception) -> ORJSONResponse:
        log.exception("unhandled error: %s", type(exc).__name__)
        return ORJSONResponse(error_body("Internal server error.", "server_error", None, "internal_error"),
                              status_code=500)

    app.include_router(health.router)
    app.include_router(openai_routes.router)
    app.include_router(files.router)
    app.include_router(admin.router)
    app.add_middleware(BodySizeLimit, limit=max_body_bytes)
    return app
