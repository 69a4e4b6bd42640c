"""The OpenAI-compatible endpoints served by FastAPI: ``/v1/models``.

``POST /v1/chat/completions`` is the hot path and is served by a bare ASGI handler
(:mod:`grok2api.api.chat_endpoint`); its request schema is published from here.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends

from grok2api.api.deps import api_key_auth
from grok2api.openai.schemas import ChatCompletionRequest, ModelList
from grok2api.worker.runtime import WorkerRuntime

router = APIRouter(prefix="/v1", tags=["openai"], dependencies=[Depends(api_key_auth)])


@router.get("/models", response_model=ModelList, summary="Every model id the gateway serves")
async def list_models(rt: WorkerRuntime = Depends(api_key_auth)) -> Any:
    return {"object": "list",
            "data": [{"id": m.id, "object": "model", "created": 0, "owned_by": "grok2api"} for m in rt.catalog]}


_SCHEMA_REF = "#/components/schemas/{model}"
CHAT_REQUEST_REF = _SCHEMA_REF.format(model="ChatCompletionRequest")


def request_body_schemas() -> dict[str, Any]:
    """OpenAPI components for bodies the handlers validate themselves (the chat request)."""
    schema = ChatCompletionRequest.model_json_schema(ref_template=_SCHEMA_REF)
    defs = schema.pop("$defs", {})
    return {"ChatCompletionRequest": schema, **defs}
