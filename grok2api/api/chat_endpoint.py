"""``POST /v1/chat/completions`` as a bare ASGI handler: the gateway's hot path.

Every chat request and every streamed piece of its answer would otherwise cross FastAPI's
middleware stack (error, exception, telemetry and body-limit middlewares, the router,
dependency solving) and Starlette's ``StreamingResponse`` (an anyio task group per response,
one ``send`` through every layer per yielded piece). On this 2-core machine that stack cost
more than Serve's own HTTP handling (``bench/README.md``, "Gateway (chat)"), so
:class:`~grok2api.api.app.GatewayApp` hands this one route to :class:`ChatCompletionsEndpoint`
before FastAPI sees it. The route keeps its place in the OpenAPI document.

The handler does what the FastAPI route did, in the same order: API key check before the body
is read, size-limited body read, pydantic validation, then :class:`~grok2api.worker.chat.ChatService`.
Every failure before the response starts is an OpenAI error body with its status; after it
starts, the service ends the stream in-band. A client disconnect cancels this handler's task
(Serve watches the connection), which closes the upstream stream and finishes the ticket.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any, Awaitable, Callable

from pydantic import ValidationError
from starlette.types import Receive, Scope, Send

from grok2api.api.asgi import (BodyTooLarge, bearer_of, header, read_body, send_api_error, send_json,
                              validation_message)
from grok2api.api.deps import check_api_key
from grok2api.openai.schemas import APIError, ChatCompletionRequest
from grok2api.openai.render import SSE_DONE

if TYPE_CHECKING:
    from grok2api.worker.runtime import WorkerRuntime

log = logging.getLogger(__name__)

CHAT_COMPLETIONS_PATH = "/v1/chat/completions"

SSE_RESPONSE_HEADERS = [
    (b"content-type", b"text/event-stream; charset=utf-8"),
    (b"cache-control", b"no-cache"),
    (b"x-accel-buffering", b"no"),
]


def request_base_url(scope: Scope) -> str:
    """``scheme://host[:port]/root_path/`` of the request, as the client addressed it."""
    scheme = scope.get("scheme", "http")
    host = header(scope, b"host")
    if host:
        netloc = host.decode("latin-1")
    else:
        server = scope.get("server") or ("localhost", None)
        default = {"http": 80, "https": 443}.get(scheme)
        netloc = server[0] if server[1] in (None, default) else f"{server[0]}:{server[1]}"
    return f"{scheme}://{netloc}{scope.get('root_path', '')}/"


class ChatCompletionsEndpoint:
    """The ASGI callable for ``/v1/chat/completions`` (``runtime`` finds the replica's runtime,
    started; ``body_limit`` gives the current request body limit in bytes)."""

    def __init__(self, runtime: Callable[[], Awaitable["WorkerRuntime"]],
                 body_limit: Callable[["WorkerRuntime"], int]) -> None:
        self._runtime = runtime
        self._body_limit = body_limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["method"] != "POST":
            await send_api_error(send, APIError(405, "Method not allowed; use POST.", "invalid_request_error",
                                                None, "method_not_allowed", headers={"Allow": "POST"}))
            return
        try:
            rt = await self._runtime()
            check_api_key(bearer_of(header(scope, b"authorization")), rt.config.app.api_key)
            body = await read_body(scope, receive, self._body_limit(rt))
            request = parse_request(body)
            prep = rt.chat.prepare(request, request_base_url(scope))
            stream, ticket = await rt.chat.open(prep)
            if prep.stream:
                pieces = rt.chat.sse(prep, stream, ticket)
            else:
                answer = await rt.chat.complete(prep, stream, ticket)
        except BodyTooLarge as exc:
            await send_api_error(send, exc.api_error())
            return
        except APIError as exc:
            await send_api_error(send, exc)
            return
        except Exception as exc:  # noqa: BLE001 - the client gets a clean 500, the log gets the cause
            log.exception("chat request failed: %s", type(exc).__name__)
            await send_api_error(send, APIError.internal())
            return
        if prep.stream:
            await self._stream(send, pieces)
        else:
            await send_json(send, 200, answer)

    @staticmethod
    async def _stream(send: Send, pieces: Any) -> None:
        """Send the SSE pieces as they come; the piece that ends in ``[DONE]`` closes the body."""
        await send({"type": "http.response.start", "status": 200, "headers": SSE_RESPONSE_HEADERS})
        closed = False
        try:
            async for piece in pieces:
                closed = piece.endswith(SSE_DONE)
                await send({"type": "http.response.body", "body": piece, "more_body": not closed})
            if not closed:
                await send({"type": "http.response.body", "body": b"", "more_body": False})
        finally:
            await pieces.aclose()  # a cancelled send leaves the generator suspended: finish its ticket


def parse_request(body: bytes) -> ChatCompletionRequest:
    """Validate the JSON body; the first problem becomes a 400 in the OpenAI error shape."""
    try:
        return ChatCompletionRequest.model_validate_json(body)
    except ValidationError as exc:
        message, param = validation_message(exc.errors(include_url=False))
        raise APIError(400, message, "invalid_request_error", param, "invalid_request") from None


def openapi_path_item(schema_ref: str) -> dict[str, Any]:
    """The route's OpenAPI entry (it is not a FastAPI route, so FastAPI cannot describe it)."""
    error = {"content": {"application/json": {"schema": {"type": "object", "required": ["error"]}}}}
    return {"post": {
        "tags": ["openai"],
        "summary": "Chat completion (streaming or not), OpenAI shapes",
        "operationId": "chat_completions_v1_chat_completions_post",
        "security": [{"ApiKey": []}],
        "requestBody": {"required": True, "content": {"application/json": {"schema": {"$ref": schema_ref}}}},
        "responses": {
            "200": {"description": "A `chat.completion` object, or `text/event-stream` of "
                                   "`chat.completion.chunk` events ending in `data: [DONE]`",
                    "content": {"application/json": {"schema": {}}, "text/event-stream": {"schema": {}}}},
            "400": {"description": "Invalid request", **error},
            "401": {"description": "Missing or wrong API key", **error},
            "404": {"description": "Unknown model", **error},
            "413": {"description": "Request body too large", **error},
            "429": {"description": "No token available", **error},
            "502": {"description": "Upstream failure", **error},
        },
    }}


__all__ = ["CHAT_COMPLETIONS_PATH", "ChatCompletionsEndpoint", "openapi_path_item", "parse_request",
           "request_base_url"]

