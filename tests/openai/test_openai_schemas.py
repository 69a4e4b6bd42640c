"""Request/response models and the OpenAI error body."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from grok2api.openai.schemas import (
    APIError, ChatCompletion, ChatCompletionChunk, ChatCompletionRequest, ModelList, error_body,
)
from grok2api.upstream.errors import ErrorKind, UpstreamError


def test_minimal_and_full_requests() -> None:
    r = ChatCompletionRequest.model_validate({"model": "grok-4", "messages": [{"role": "user", "content": "hi"}]})
    assert r.stream is None and not r.include_usage and r.show_thinking() is True
    full = ChatCompletionRequest.model_validate({
        "model": "grok-imagine-1.0-video", "stream": True, "stream_options": {"include_usage": True},
        "temperature": 2, "top_p": 1, "reasoning_effort": "xhigh", "thinking": "disabled",
        "tools": [{"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}],
        "tool_choice": {"type": "function", "function": {"name": "f"}}, "parallel_tool_calls": False,
        "video_config": {"aspect_ratio": "16:9", "video_length": 15, "resolution_name": "720p", "preset": "spicy"},
        "n": 1, "max_tokens": 5, "user": "u", "frequency_penalty": 1.5, "logit_bias": {"1": 2},
        "messages": [
            {"role": "developer", "content": "d"}, {"role": "system", "content": [{"type": "text", "text": "s"}]},
            {"role": "user", "content": [{"type": "text", "text": "t"},
                                         {"type": "image_url", "image_url": "https://x.org/a.png"},
                                         {"type": "input_audio", "input_audio": {"data": "AAAA", "format": "wav"}},
                                         {"type": "file", "file": {"file_data": "data:application/pdf;base64,AA=="}}]},
            {"role": "assistant", "content": None, "tool_calls": [
                {"id": "c1", "type": "function", "function": {"name": "f", "arguments": {"a": 1}}}]},
            {"role": "tool", "tool_call_id": "c1", "content": "ok"},
        ]})
    assert full.include_usage and full.show_thinking() is False
    assert full.video_config.video_length == 15
    assert full.messages[2].content[1].image_url.url == "https://x.org/a.png"
    assert full.messages[3].tool_calls[0].function.arguments == '{"a":1}'
    assert not hasattr(full, "frequency_penalty")


@pytest.mark.parametrize("effort,thinking,expected", [
    ("none", None, False), ("low", None, True), (None, "enabled", True), ("high", "disabled", False),
])
def test_show_thinking(effort, thinking, expected) -> None:
    r = ChatCompletionRequest.model_validate({"model": "m", "messages": [{"role": "user", "content": "x"}],
                                              "reasoning_effort": effort, "thinking": thinking})
    assert r.show_thinking(default=not expected if effort is None and thinking is None else True) is expected


@pytest.mark.parametrize("patch,param", [
    ({"temperature": 2.5}, "temperature"),
    ({"top_p": 0}, "top_p"),
    ({"reasoning_effort": "extreme"}, "reasoning_effort"),
    ({"thinking": "maybe"}, "thinking"),
    ({"video_config": {"video_length": 7}}, "video_config.video_length"),
    ({"video_config": {"aspect_ratio": "4:3"}}, "video_config.aspect_ratio"),
    ({"messages": []}, "messages"),
    ({"messages": [{"role": "robot", "content": "x"}]}, "messages[0].role"),
    ({"n": 2}, "n"),
])
def test_invalid_requests(patch: dict, param: str) -> None:
    body = {"model": "m", "messages": [{"role": "user", "content": "x"}], **patch}
    with pytest.raises(ValidationError) as ei:
        ChatCompletionRequest.model_validate(body)
    err = APIError.from_validation(ei.value)
    assert err.status == 400 and err.param == param, (err.param, err.message)
    assert err.body()["error"]["type"] == "invalid_request_error"


def test_non_user_roles_only_text_parts() -> None:
    with pytest.raises(ValidationError):
        ChatCompletionRequest.model_validate({"model": "m", "messages": [
            {"role": "system", "content": [{"type": "image_url", "image_url": {"url": "https://x.org/a.png"}}]}]})


def test_error_body_and_api_error() -> None:
    assert error_body("bad", param="model", code="model_not_found") == {
        "error": {"message": "bad", "type": "invalid_request_error", "param": "model", "code": "model_not_found"}}
    e = APIError.from_upstream(UpstreamError(ErrorKind.RATE_LIMITED, 429, "Too many requests", retry_after=12))
    assert e.status == 429 and e.headers == {"Retry-After": "12"} and e.code == "rate_limit_exceeded"
    assert e.body()["error"]["type"] == "rate_limit_error"
    nf = APIError.model_not_found("nope")
    assert nf.param == "model" and nf.code == "model_not_found"


def test_response_models_accept_renderer_output() -> None:
    chunk = {"id": "c", "object": "chat.completion.chunk", "created": 1, "model": "m", "system_fingerprint": "",
             "choices": [{"index": 0, "delta": {"reasoning_content": "r"}, "logprobs": None, "finish_reason": None}]}
    assert ChatCompletionChunk.model_validate(chunk).choices[0].delta.reasoning_content == "r"
    comp = {"id": "c", "object": "chat.completion", "created": 1, "model": "m", "system_fingerprint": "x",
            "choices": [{"index": 0, "message": {"role": "assistant", "content": "hi", "refusal": None,
                                                 "annotations": []}, "logprobs": None, "finish_reason": "stop"}],
            "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2}}
    assert ChatCompletion.model_validate(comp).usage.total_tokens == 2
    ml = ModelList(data=[{"id": "grok-4"}])
    assert ml.model_dump() == {"object": "list", "data": [{"id": "grok-4", "object": "model", "created": 0,
                                                            "owned_by": "grok2api"}]}
