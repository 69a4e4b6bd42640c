"""OpenAI API boundary: request/response schemas and the Grok-stream → OpenAI renderer."""

from grok2api.openai.render import ChatRenderer, CompletionAssembler, RenderOptions, assemble_completion
from grok2api.openai.schemas import APIError, ChatCompletionRequest, error_body

__all__ = [
    "APIError", "ChatCompletionRequest", "ChatRenderer", "CompletionAssembler", "RenderOptions",
    "assemble_completion", "error_body",
]
