"""Bare ASGI pieces shared by the middleware and the hot-path endpoint: JSON answers, OpenAI
errors, request headers, the bearer credential and a size-limited body read."""

from __future__ import annotations

from typing import Any, Sequence

import orjson
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import Receive, Scope, Send

from grok2api.openai.schemas import APIError


class BodyTooLarge(StarletteHTTPException):
    """A request body over the limit (declared by ``Content-Length`` or counted while streaming).

    An ``HTTPException`` so that FastAPI's body parsing re-raises it as it is (any other
    exception there becomes a 400 "error parsing the body") and the app answers 413.
    """

    code = "request_too_large"

    def __init__(self) -> None:
        super().__init__(413, "Request body too large.")

    def api_error(self) -> APIError:
        return APIError(self.status_code, str(self.detail), "invalid_request_error", None, self.code)


def header(scope: Scope, name: bytes) -> bytes | None:
    """The first value of request header ``name`` (lower-case bytes), or ``None``."""
    for key, value in scope.get("headers", ()):
        if key == name:
            return value
    return None


def bearer_of(authorization: bytes | str | None) -> str:
    """The credential of an ``Authorization: Bearer <key>`` value ('' when absent or another scheme)."""
    if not authorization:
        return ""
    text = authorization.decode("latin-1") if isinstance(authorization, bytes) else authorization
    scheme, _, value = text.partition(" ")
    return value.strip() if scheme.lower() == "bearer" else ""


def declared_too_large(scope: Scope, limit: int) -> bool:
    """Whether the request's ``Content-Length`` already says the body is over ``limit``."""
    value = header(scope, b"content-length")
    if value is None:
        return False
    try:
        return int(value) > limit
    except ValueError:
        return False


async def read_body(scope: Scope, receive: Receive, limit: int) -> bytes:
    """The whole request body; raises :class:`BodyTooLarge` as soon as it passes ``limit``."""
    if declared_too_large(scope, limit):
        raise BodyTooLarge()
    parts: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        kind = message["type"]
        if kind == "http.disconnect":
            break
        if kind == "http.request":
            chunk = message.get("body", b"")
            if chunk:
                size += len(chunk)
                if size > limit:
                    raise BodyTooLarge()
                parts.append(chunk)
            if not message.get("more_body", False):
                break
    return parts[0] if len(parts) == 1 else b"".join(parts)


def validation_message(errors: Sequence[Any]) -> tuple[str, str | None]:
    """The client message and ``param`` of a request body's first validation error."""
    if not errors:
        return "Invalid request body.", None
    first = errors[0]
    loc = [str(p) for p in first.get("loc", ()) if p != "body"]
    param = ".".join(loc) or None
    msg = first.get("msg", "invalid value")
    return (f"Invalid value for '{param}': {msg}" if param else f"Invalid request: {msg}"), param


async def send_json(send: Send, status: int, body: Any, headers: dict[str, str] | None = None) -> None:
    """A complete JSON response in two ASGI messages."""
    data = orjson.dumps(body)
    raw = [(b"content-type", b"application/json"), (b"content-length", str(len(data)).encode())]
    if headers:
        raw.extend((k.lower().encode("latin-1"), str(v).encode("latin-1")) for k, v in headers.items())
    await send({"type": "http.response.start", "status": status, "headers": raw})
    await send({"type": "http.response.body", "body": data})


async def send_api_error(send: Send, exc: APIError) -> None:
    """An :class:`APIError` as its status, OpenAI error body and extra headers."""
    await send_json(send, exc.status, exc.body(), exc.headers or None)


__all__ = ["BodyTooLarge", "bearer_of", "declared_too_large", "header", "read_body", "send_api_error",
           "send_json", "validation_message"]
