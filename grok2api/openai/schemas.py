"""OpenAI API boundary: request/response models and the error body (``/v1/chat/completions``, ``/v1/models``).

Requests ignore unknown fields (clients send many optional OpenAI parameters;
anything not listed here is discarded). Content parts are validated for their
*shape* here; their values (URLs, data URIs) are checked by
:mod:`grok2api.upstream.messages` which reports precise ``param`` paths.
"""

from __future__ import annotations

from typing import Any, Literal, Union

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

Role = Literal["developer", "system", "user", "assistant", "tool"]
ReasoningEffort = Literal["none", "minimal", "low", "medium", "high", "xhigh"]


class _Lenient(BaseModel):
    model_config = ConfigDict(extra="ignore")


# ---------------------------------------------------------------------------
# Content parts
# ---------------------------------------------------------------------------
class ImageURL(_Lenient):
    url: str
    detail: Literal["auto", "low", "high"] | None = None


class InputAudio(_Lenient):
    data: str
    format: str | None = None  # wav | mp3 | ...


class FileData(_Lenient):
    file_data: str | None = None  # data URI (or bare base64 with filename)
    file_id: str | None = None
    filename: str | None = None


class TextPart(_Lenient):
    type: Literal["text", "input_text"]
    text: str


class ImagePart(_Lenient):
    type: Literal["image_url"]
    image_url: ImageURL

    @field_validator("image_url", mode="before")
    @classmethod
    def _str_url(cls, v: Any) -> Any:
        return {"url": v} if isinstance(v, str) else v


class AudioPart(_Lenient):
    type: Literal["input_audio"]
    input_audio: InputAudio


class FilePart(_Lenient):
    type: Literal["file"]
    file: FileData


ContentPart = Union[TextPart, ImagePart, AudioPart, FilePart]


# ---------------------------------------------------------------------------
# Messages and tools
# ---------------------------------------------------------------------------
class FunctionCall(_Lenient):
    name: str
    arguments: str = "{}"

    @field_validator("arguments", mode="before")
    @classmethod
    def _args_to_str(cls, v: Any) -> Any:
        if v is None:
            return "{}"
        if isinstance(v, (dict, list)):
            import orjson
            return orjson.dumps(v).decode()
        return v


class ToolCall(_Lenient):
    id: str = ""
    type: Literal["function"] = "function"
    function: FunctionCall


class ChatMessage(_Lenient):
    role: Role
    content: str | list[ContentPart] | None = None
    name: str | None = None
    tool_calls: list[ToolCall] | None = None
    tool_call_id: str | None = None

    @field_validator("content", mode="before")
    @classmethod
    def _single_part(cls, v: Any) -> Any:
        # a single part object given instead of a list (accepted by V2)
        if isinstance(v, dict):
            return [v]
        return v

    @model_validator(mode="after")
    def _check(self) -> "ChatMessage":
        if self.role != "user" and isinstance(self.content, list):
            for part in self.content:
                if not isinstance(part, TextPart):
                    raise ValueError(f"role '{self.role}' may only carry text content parts")
        return self


class FunctionDef(_Lenient):
    name: str
    description: str | None = None
    parameters: dict[str, Any] | None = None
    strict: bool | None = None


class Tool(_Lenient):
    type: Literal["function"] = "function"
    function: FunctionDef


class StreamOptions(_Lenient):
    include_usage: bool = False


class VideoConfig(_Lenient):
    aspect_ratio: Literal["16:9", "9:16", "1:1", "2:3", "3:2"] = "2:3"
    video_length: Literal[6, 10, 15] = 6
    resolution_name: Literal["480p", "720p"] = "480p"
    preset: Literal["fun", "normal", "spicy", "custom"] = "normal"


class ChatCompletionRequest(_Lenient):
    """``POST /v1/chat/completions`` body."""

    model: str
    messages: list[ChatMessage] = Field(min_length=1)
    stream: bool | None = None  # None → gateway default
    stream_options: StreamOptions | None = None
    temperature: float | None = Field(default=None, ge=0, le=2)
    top_p: float | None = Field(default=None, gt=0, le=1)
    reasoning_effort: ReasoningEffort | None = None
    thinking: Literal["enabled", "disabled"] | None = None
    tools: list[Tool] | None = None
    tool_choice: Union[Literal["none", "auto", "required"], dict[str, Any]] | None = None
    parallel_tool_calls: bool | None = None
    video_config: VideoConfig | None = None
    n: int | None = Field(default=None, ge=1, le=1)
    max_tokens: int | None = None  # accepted, ignored
    max_completion_tokens: int | None = None  # accepted, ignored
    user: str | None = None

    @property
    def include_usage(self) -> bool:
        return bool(self.stream_options and self.stream_options.include_usage)

    def show_thinking(self, default: bool = True) -> bool:
        """Whether reasoning is shown (chat.md §4.1): ``thinking`` wins, then ``reasoning_effort``, else the
        gateway default."""
        if self.thinking is not None:
            return self.thinking == "enabled"
        if self.reasoning_effort is not None:
            return self.reasoning_effort != "none"
        return default


# ---------------------------------------------------------------------------
# Responses
# ---------------------------------------------------------------------------
class PromptTokensDetails(BaseModel):
    cached_tokens: int = 0
    text_tokens: int = 0
    audio_tokens: int = 0
    image_tokens: int = 0


class CompletionTokensDetails(BaseModel):
    text_tokens: int = 0
    audio_tokens: int = 0
    reasoning_tokens: int = 0


class Usage(BaseModel):
    prompt_tokens: int = 0
    completion_tokens: int = 0
    total_tokens: int = 0
    prompt_tokens_details: PromptTokensDetails = Field(default_factory=PromptTokensDetails)
    completion_tokens_details: CompletionTokensDetails = Field(default_factory=CompletionTokensDetails)


class AssistantMessage(BaseModel):
    role: Literal["assistant"] = "assistant"
    content: str | None = ""
    reasoning_content: str | None = None
    refusal: str | None = None
    annotations: list[dict[str, Any]] = Field(default_factory=list)
    tool_calls: list[ToolCall] | None = None


class Choice(BaseModel):
    index: int = 0
    message: AssistantMessage
    logprobs: Any = None
    finish_reason: Literal["stop", "tool_calls", "length", "content_filter"] | None = "stop"


class ChatCompletion(BaseModel):
    id: str
    object: Literal["chat.completion"] = "chat.completion"
    created: int
    model: str
    system_fingerprint: str | None = ""
    choices: list[Choice]
    usage: Usage | None = None


class ChunkDelta(BaseModel):
    role: Literal["assistant"] | None = None
    content: str | None = None
    reasoning_content: str | None = None
    tool_calls: list[dict[str, Any]] | None = None


class ChunkChoice(BaseModel):
    index: int = 0
    delta: ChunkDelta
    logprobs: Any = None
    finish_reason: Literal["stop", "tool_calls", "length", "content_filter"] | None = None


class ChatCompletionChunk(BaseModel):
    id: str
    object: Literal["chat.completion.chunk"] = "chat.completion.chunk"
    created: int
    model: str
    system_fingerprint: str | None = ""
    choices: list[ChunkChoice]
    usage: Usage | None = None


class ModelCard(BaseModel):
    id: str
    object: Literal["model"] = "model"
    created: int = 0
    owned_by: str = "grok2api"


class ModelList(BaseModel):
    object: Literal["list"] = "list"
    data: list[ModelCard]


# ---------------------------------------------------------------------------
# Errors
# ---------------------------------------------------------------------------
def error_body(message: str, type: str = "invalid_request_error", param: str | None = None,
               code: str | None = None) -> dict[str, Any]:
    """The OpenAI error body ``{"error": {"message", "type", "param", "code"}}``."""
    return {"error": {"message": message, "type": type, "param": param, "code": code}}


class APIError(Exception):
    """An error to answer the OpenAI client with (status + OpenAI error body + extra headers)."""

    def __init__(self, status: int, message: str, type: str = "invalid_request_error", param: str | None = None,
                 code: str | None = None, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.type = type
        self.param = param
        self.code = code
        self.headers = headers or {}

    def body(self) -> dict[str, Any]:
        return error_body(self.message, self.type, self.param, self.code)

    @classmethod
    def from_upstream(cls, exc: Any) -> "APIError":
        """From an :class:`~grok2api.upstream.errors.UpstreamError`."""
        headers = {}
        if getattr(exc, "retry_after", None):
            headers["Retry-After"] = str(int(exc.retry_after))
        return cls(exc.client_status, str(exc), exc.client_type, None, exc.client_code, headers)

    @classmethod
    def from_validation(cls, exc: Any) -> "APIError":
        """From a pydantic ``ValidationError`` of a request body (first error wins)."""
        errs = exc.errors() if hasattr(exc, "errors") else []
        if not errs:
            return cls(400, str(exc))
        e = errs[0]
        loc = e.get("loc", ())
        param = ""
        for part in loc:
            if isinstance(part, int):
                param += f"[{part}]"
            else:
                # skip pydantic's union-branch tags like "TextPart"
                if part and part[0].isupper():
                    continue
                param += f".{part}" if param else str(part)
        return cls(400, f"{e.get('msg', 'invalid value')}", "invalid_request_error", param or None,
                   "invalid_request")

    @classmethod
    def internal(cls) -> "APIError":
        """The 500 a client sees for a failure of the gateway itself (the cause goes to the log only)."""
        return cls(500, "Internal server error.", "server_error", None, "internal_error")

    @classmethod
    def model_not_found(cls, model: str) -> "APIError":
        return cls(404, f"The model '{model}' does not exist", "invalid_request_error", "model", "model_not_found")
