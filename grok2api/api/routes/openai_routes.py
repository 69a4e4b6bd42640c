"""The OpenAI-compatible endpoints: ``/v1/models`` and ``/v1/chat/completions``."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import ORJSONResponse, StreamingResponse

from grok2api.api.deps import api_key_auth
from grok2api.openai.schemas import ChatCompletionRequest, ModelList
from grok2api.worker.runtime import WorkerRuntime

router = APIRouter(prefix="/v1", tags=["openai"], dependencies=[Depends(api_key_auth)])

SSE_HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}


@router.get("/models", response_model=ModelList, summary="Every model id the gateway serves")
async def list_models(rt: WorkerRuntime = Depends(api_key_auth)) -> Any:
    return {"object": "list",
            "data": [{"id": m.id, "object": "model", "created": 0, "owned_by": "grok2api"} for m in rt.catalog]}


@router.post("/chat/completions", summary="Chat completion (streaming or not), OpenAI shapes")
async def chat_completions(body: ChatCompletionRequest, request: Request,
                           rt: WorkerRuntime = Depends(api_key_auth)) -> Any:
    prep = rt.chat.prepare(body, str(request.base_url))
    stream, ticket = await rt.chat.open(prep)
    if prep.stream:
        return StreamingResponse(rt.chat.sse(prep, stream, ticket), media_type="text/event-stream",
                                 headers=SSE_HEADERS)
    return ORJSONResponse(await rt.chat.complete(prep, stream, ticket))
