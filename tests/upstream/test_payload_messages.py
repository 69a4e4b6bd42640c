"""Payload fields vs chat.md §2.1 and flattening examples from §2.4."""

from __future__ import annotations

import base64

import pytest

from grok2api.catalog import CATALOG
from grok2api.upstream.chat import VideoOptions, build_chat_payload
from grok2api.upstream.messages import (
    NO_TEXT_PROMPT, InvalidMessageError, decode_data_uri, file_name_for, flatten_messages,
)

V1_CONSTANTS = {
    "disableSearch": False, "disableSelfHarmShortCircuit": False, "disableTextFollowUps": False,
    "enableImageGeneration": True, "enableImageStreaming": True, "enableSideBySide": True, "forceConcise": False,
    "forceSideBySide": False, "imageAttachments": [], "imageGenerationCount": 2, "isAsyncChat": False,
    "isReasoning": False, "returnImageBytes": False, "returnRawGrokInXaiRequest": False, "sendFinalMetadata": True,
    "toolOverrides": {},
}


def test_v1_payload_matches_doc_example() -> None:
    spec = CATALOG.get("grok-4-thinking")
    msg = "system: You are terse.\n\nuser: hi\n\nassistant: Hello.\n\nWhat is 2+2?"
    p = build_chat_payload(spec, msg, file_attachments=["4f1d2c3b-5a6e-47f8-9b0a-1c2d3e4f5a6b"],
                           reasoning_effort="high")
    assert p["deviceEnvInfo"] == {"darkModeEnabled": False, "devicePixelRatio": 2, "screenWidth": 2056,
                                  "screenHeight": 1329, "viewportWidth": 2056, "viewportHeight": 1083}
    for k, v in V1_CONSTANTS.items():
        assert p[k] == v, k
    assert p["disableMemory"] is True and p["temporary"] is True
    assert p["fileAttachments"] == ["4f1d2c3b-5a6e-47f8-9b0a-1c2d3e4f5a6b"]
    assert p["message"] == msg
    assert p["modelName"] == "grok-4" and p["modelMode"] == "MODEL_MODE_GROK_4_THINKING" and "modeId" not in p
    assert p["responseMetadata"] == {"requestModelDetails": {"modelId": "grok-4"},
                                     "modelConfigOverride": {"temperature": 0.8, "topP": 0.95,
                                                             "reasoningEffort": "high"}}


def test_mode_id_selection_and_options() -> None:
    spec = CATALOG.get("grok-4.1-fast")
    p = build_chat_payload(spec, "hi", temporary=False, disable_memory=False, temperature=0.2, top_p=0.5,
                           tool_overrides={"webSearch": True}, custom_personality="be nice")
    assert p["modeId"] == "fast" and "modelName" not in p and "modelMode" not in p
    assert p["responseMetadata"]["requestModelDetails"] == {"modelId": "grok-4-1-thinking-1129"}
    assert p["responseMetadata"]["modelConfigOverride"] == {"temperature": 0.2, "topP": 0.5}
    assert p["temporary"] is False and p["disableMemory"] is False
    assert p["toolOverrides"] == {"webSearch": True} and p["customPersonality"] == "be nice"
    q = build_chat_payload(CATALOG.get("grok-4.20-0309"), "hi", send_model_config=False)
    assert q["modeId"] == "auto" and q["responseMetadata"] == {}


def test_image_edit_sends_null_model_mode() -> None:
    p = build_chat_payload(CATALOG.get("grok-imagine-1.0-edit"), "make it blue")
    assert p["modelName"] == "imagine-image-edit" and "modelMode" in p and p["modelMode"] is None


def test_video_payload() -> None:
    spec = CATALOG.get("grok-imagine-1.0-video")
    p = build_chat_payload(spec, "a cat surfing", video=VideoOptions("16:9", 10, "720p", "spicy", "post-1"))
    assert p["message"] == "a cat surfing --mode=extremely-spicy-or-crazy"
    assert p["toolOverrides"] == {"videoGen": True}
    assert p["responseMetadata"]["modelConfigOverride"] == {"modelMap": {"videoGenModelConfig": {
        "aspectRatio": "16:9", "videoLength": 10, "resolutionName": "720p", "parentPostId": "post-1"}}}
    assert build_chat_payload(spec, "x", video=VideoOptions(preset="fun"))["message"] == "x --mode=extremely-crazy"


# --------------------------------------------------------------------------- flattening
PNG = "data:image/png;base64," + base64.b64encode(b"\x89PNG\r\n\x1a\n" + b"0" * 200).decode()


def test_v1_flatten_example() -> None:
    flat = flatten_messages([
        {"role": "system", "content": "Be terse"}, {"role": "user", "content": "hi"},
        {"role": "assistant", "content": "Hello."}, {"role": "user", "content": "2+2?"},
    ])
    assert flat.message == "system: Be terse\n\nuser: hi\n\nassistant: Hello.\n\n2+2?"
    assert flat.attachments == []


def test_parts_are_stripped_joined_and_media_collected() -> None:
    flat = flatten_messages([
        {"role": "developer", "content": [{"type": "text", "text": "  rules  "}]},
        {"role": "user", "content": [
            {"type": "text", "text": " look "}, {"type": "image_url", "image_url": {"url": PNG}},
            {"type": "text", "text": "here"},
            {"type": "file", "file": {"file_data": "data:application/pdf;base64,JVBERi0=", "filename": "a.pdf"}},
            {"type": "input_audio", "input_audio": {"data": "UklGRg==", "format": "wav"}},
            {"type": "image_url", "image_url": "https://example.org/cat.jpg"},
        ]},
        {"role": "assistant", "content": ""},  # no text: skipped
    ])
    assert flat.message == "developer: rules\n\nlook\nhere"
    assert [a.kind for a in flat.attachments] == ["file", "audio", "image", "image"]  # files first, then images
    assert flat.attachments[1].source == "data:audio/wav;base64,UklGRg=="
    assert flat.attachments[0].filename == "a.pdf"
    assert flat.attachments[3].source == "https://example.org/cat.jpg"
    assert flat.attachments[2].param == "messages[1].content[1].image_url"


def test_only_attachments_gives_refer_prompt() -> None:
    flat = flatten_messages([{"role": "user", "content": [{"type": "image_url", "image_url": {"url": PNG}}]}])
    assert flat.message == NO_TEXT_PROMPT and len(flat.images) == 1


def test_tool_history_without_tools() -> None:
    flat = flatten_messages([
        {"role": "user", "content": "weather?"},
        {"role": "assistant", "content": None, "tool_calls": [
            {"id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": '{"city":"Paris"}'}}]},
        {"role": "tool", "tool_call_id": "call_1", "content": "sunny"},
        {"role": "user", "content": "thanks"},
    ])
    assert flat.message == ('user: weather?\n\nassistant: [tool_call] get_weather {"city":"Paris"}\n\n'
                            'tool[get_weather]#call_1: sunny\n\nthanks')


def test_tool_history_with_tools() -> None:
    flat = flatten_messages([
        {"role": "user", "content": "weather?"},
        {"role": "assistant", "content": "Let me check.", "tool_calls": [
            {"id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": '{"city":"Paris"}'}}]},
        {"role": "tool", "tool_call_id": "call_1", "content": "sunny"},
    ], tools_present=True)
    assert flat.message == ('user: weather?\n\nassistant: Let me check.\n<tool_call>{"name":"get_weather",'
                            '"arguments":{"city":"Paris"}}</tool_call>\n\ntool (get_weather, call_1): sunny')


@pytest.mark.parametrize("messages,param", [
    ([{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "http://x.org/a.png"}}]}],
     "messages[0].content[0].image_url"),
    ([{"role": "user", "content": "hi"}, {"role": "user", "content": [
        {"type": "text", "text": "a"}, {"type": "image_url", "image_url": {"url": "aGVsbG8="}}]}],
     "messages[1].content[1].image_url"),
    ([{"role": "system", "content": [{"type": "image_url", "image_url": {"url": PNG}}]}],
     "messages[0].content[0].type"),
    ([{"role": "user", "content": [{"type": "video", "video": {}}]}], "messages[0].content[0].type"),
    ([{"role": "robot", "content": "x"}], "messages[0].role"),
    ([{"role": "user", "content": [{"type": "file", "file": {"file_id": "f-1"}}]}],
     "messages[0].content[0].file.file_id"),
    ([{"role": "user", "content": ""}], "messages"),
])
def test_invalid_input_reports_param(messages: list, param: str) -> None:
    with pytest.raises(InvalidMessageError) as ei:
        flatten_messages(messages)
    assert ei.value.param == param
    assert isinstance(ei.value, ValueError)


def test_decode_data_uri() -> None:
    mime, data = decode_data_uri("data:image/png;base64,aGVs\nbG8=")
    assert (mime, data) == ("image/png", b"hello")
    with pytest.raises(InvalidMessageError):
        decode_data_uri("data:image/png,hello")
    with pytest.raises(InvalidMessageError) as ei:
        decode_data_uri("data:image/png;base64," + base64.b64encode(b"x" * 100).decode(), max_bytes=10)
    assert ei.value.code == "file_too_large"
    with pytest.raises(InvalidMessageError):
        decode_data_uri("data:image/png;base64,@@@@")
    assert file_name_for("image/jpeg") == "file.jpeg" and file_name_for("application/pdf") == "file.pdf"
    assert file_name_for("x/y", "given.txt") == "given.txt"


def test_pydantic_messages_are_accepted() -> None:
    from grok2api.openai.schemas import ChatCompletionRequest

    req = ChatCompletionRequest.model_validate({"model": "grok-4", "messages": [
        {"role": "system", "content": "S"}, {"role": "user", "content": [{"type": "text", "text": "U"}]}]})
    assert flatten_messages(req.messages).message == "system: S\n\nU"
