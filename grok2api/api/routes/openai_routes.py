"""The OpenAI-compatible endpoints: ``/v1/models`` and ``/v1/chat/completions``."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import ORJSONResponse, StreamingResponse
from pydantic import ValidationError

from grok2api.api.deps import api_key_auth
from grok2api.openai.schemas import ChatCompletionRequest, ModelList
from grok2api.worker.runtime import WorkerRuntime

router = APIRouter(prefix="/v1", tags=["openai"], dependencies=[Depends(api_key_auth)])

SSE_HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}


@router.get("/models", response_model=ModelList, summary="Every model id the gateway serves")
async def list_models(rt: WorkerRuntime = Depends(api_key_auth)) -> Any:
    return {"object": "list",
            "data": [{"id": m.id, "object": "model", "created": 0, "owned_by": "grok2api"} for m in rt.catalog]}


_SCHEMA_REF = "#/components/schemas/{model}"


def request_body_schemas() -> dict[str, Any]:
    """OpenAPI components for bodies the handlers validate themselves (see ``chat_completions``)."""
    schema = ChatCompletionRequest.model_json_schema(ref_template=_SCHEMA_REF)
    defs = schema.pop("$defs", {})
    return {"ChatCompletionRequest": schema, **defs}


@router.post(
    "/chat/completions",
    summary="Chat completion (streaming or not), OpenAI shapes",
    openapi_extra={"requestBody": {"required": True, "content": {"application/json": {
        "schema": {"$ref": _SCHEMA_REF.format(model="ChatCompletionRequest")}}}}},
)
async def chat_completions(request: Request, rt: WorkerRuntime = Depends(api_key_auth)) -> Any:
    # The body is read and validated here, after the API key check: with a declared body parameter
    # FastAPI would read (up to the body limit) and parse it before any dependency runs.
    try:
        body = ChatCompletionRequest.model_validate_json(await request.body())
    except ValidationError as exc:
        raise RequestValidationError(exc.errors(include_url=False)) from None
    prep = rt.chat.prepare(body, str(request.base_url))
    stream, ticket = await rt.chat.open(prep)
    if prep.stream:
        return StreamingResponse(rt.chat.sse(prep, stream, ticket), media_type="text/event-stream",
                                 headers=SSE_HEADERS)
    return ORJSONResponse(await rt.chat.complete(prep, stream, ticket))
