"""The NDJSON reader on the chat.md §3.11 examples and the §3.1 robustness variants."""

from __future__ import annotations

import orjson
import pytest

from grok2api.upstream.errors import ErrorKind, UpstreamError
from grok2api.upstream.stream import (
    Card, Conversation, FinalMetadata, FrameParser, ImageProgress, LlmInfo, ModelResponse, SearchResults, SoftStop,
    Title, TokenEvent, UiLayout, UserTurn, VideoProgress, parse_bytes, read_batches, split_objects,
)
from upstream.grok_frames import (
    EXAMPLE_A, EXAMPLE_B, EXAMPLE_B_HEAVY, EXAMPLE_C_LEGACY, EXAMPLE_C_LITE, EXAMPLE_D_ANTIBOT, EXAMPLE_D_ERROR_13,
    EXAMPLE_D_USAGE_LIMIT, ndjson,
)

ASSISTANT = "9e8d7c6b-5a4f-4e3d-8c2b-1a0f9e8d7c6b"


def kinds(events: list) -> list[str]:
    return [type(e).__name__ for e in events]


def test_example_a_plain_answer() -> None:
    ev = parse_bytes(ndjson(EXAMPLE_A))
    assert kinds(ev) == ["Conversation", "UserTurn", "UiLayout", "LlmInfo", "TokenEvent", "TokenEvent",
                         "TokenEvent", "SoftStop", "FinalMetadata", "ModelResponse", "Title"]
    assert ev[0] == Conversation("c5f0a2d4-1b3e-4c6f-8a9d-0e1f2a3b4c5d")
    assert ev[1] == UserTurn("3a4b5c6d-7e8f-4a0b-9c1d-2e3f4a5b6c7d")
    assert ev[3] == LlmInfo("YfRYOzNNGIHab5mzeRBUXNIJFqErFXS7DzirnIkOLW8=")
    tokens = [e for e in ev if isinstance(e, TokenEvent)]
    assert "".join(t.text for t in tokens) == "Bonjour ! (Hello!)"
    assert all(t.tag == "final" and not t.thinking and t.response_id == ASSISTANT for t in tokens)
    mr = ev[9]
    assert isinstance(mr, ModelResponse)
    assert mr.message == "Bonjour ! (Hello!)" and mr.response_id == ASSISTANT
    assert mr.model_hash == "YfRYOzNNGIHab5mzeRBUXNIJFqErFXS7DzirnIkOLW8=" and mr.generated_image_urls == []
    assert ev[10] == Title("Hello in French")


def test_example_b_thinking_tool_card_citation() -> None:
    ev = parse_bytes(ndjson(EXAMPLE_B))
    tokens = [e for e in ev if isinstance(e, TokenEvent)]
    thinking = [t for t in tokens if t.thinking]
    assert [t.tag for t in thinking] == ["header", "summary", "tool_usage_card", "header", "summary"]
    assert [t.step_id for t in thinking] == [0, 0, 1, 2, 2]
    assert thinking[2].text.startswith("<xai:tool_usage_card>")
    # the raw_function_result frame has an empty token (dropped) but its search results are kept
    sr = [e for e in ev if isinstance(e, SearchResults)]
    assert len(sr) == 1 and sr[0].results[0]["url"].startswith("https://www.metro.tokyo.lg.jp")
    assert sr[0].tool_card_id == "7e4b0c1a-2d3e-4f5a-8b9c-0d1e2f3a4b5c"
    cards = [e for e in ev if isinstance(e, Card)]
    assert len(cards) == 1 and cards[0].card_id == "b7c1d2" and cards[0].type == "render_inline_citation"
    assert cards[0].searched_image is None and cards[0].generated_image is None
    answer = "".join(t.text for t in tokens if not t.thinking)
    assert answer.startswith("Tokyo has about **14.2 million** residents<grok:render card_id=\"b7c1d2\"")
    mr = [e for e in ev if isinstance(e, ModelResponse)][0]
    assert mr.card_attachments and orjson.loads(mr.card_attachments[0])["id"] == "b7c1d2"
    assert isinstance(ev[0], UiLayout) and ev[0].will_think_long


def test_example_b_heavy_rollouts() -> None:
    ev = parse_bytes(ndjson(EXAMPLE_B_HEAVY))
    assert isinstance(ev[0], UiLayout) and ev[0].rollout_ids == ["Grok", "Agent 1", "Agent 2", "Agent 3"]
    tokens = [e for e in ev if isinstance(e, TokenEvent)]
    assert [t.rollout_id for t in tokens] == ["Grok", "Agent 1", "Agent 1", "Grok", "Grok"]
    assert tokens[-1].tag == "final" and not tokens[-1].thinking


def test_example_c_legacy_images() -> None:
    ev = parse_bytes(ndjson(EXAMPLE_C_LEGACY))
    prog = [e for e in ev if isinstance(e, ImageProgress)]
    assert [(p.image_index, p.progress) for p in prog] == [(0, 25), (1, 25), (0, 75), (0, 100), (1, 100)]
    assert prog[3].url.endswith("5b6c7d8e-9f0a-4b1c-8d2e-3f4a5b6c7d8e/image.jpg")
    assert "-part-0" in prog[0].url
    mr = [e for e in ev if isinstance(e, ModelResponse)][0]
    assert len(mr.generated_image_urls) == 2
    assert all(u.startswith("users/4d2c1b0a") for u in mr.generated_image_urls)


def test_example_c_lite_image_cards() -> None:
    ev = parse_bytes(ndjson(EXAMPLE_C_LITE))
    cards = [e for e in ev if isinstance(e, Card)]
    assert [c.card_id for c in cards] == ["x1Xyo", "x1Xyo"]
    assert cards[0].image_chunk is None and cards[0].generated_image is None
    assert cards[1].generated_image == (
        "users/4d2c1b0a-9f8e-4d7c-b6a5-948372615049/generated/5b6c7d8e-9f0a-4b1c-8d2e-3f4a5b6c7d8e/image.jpg")
    assert isinstance(ev[-1], SoftStop)


def test_moderated_lite_image_is_not_a_generated_image() -> None:
    card = {"id": "m1", "type": "render_file", "cardType": "generated_image_card",
            "image_chunk": {"imageUuid": "u", "imageUrl": "users/x/generated/u/image.jpg", "progress": 100,
                            "moderated": True}}
    line = orjson.dumps({"result": {"response": {"cardAttachment": {"jsonData": orjson.dumps(card).decode()}}}})
    (c,) = parse_bytes(line + b"\n")
    assert isinstance(c, Card) and c.generated_image is None


@pytest.mark.parametrize("lines,kind,code", [
    (EXAMPLE_D_ERROR_13, ErrorKind.SERVER, 13),
    (EXAMPLE_D_ANTIBOT, ErrorKind.ANTI_BOT, 7),
    (EXAMPLE_D_USAGE_LIMIT, ErrorKind.RATE_LIMITED, None),
])
def test_example_d_inband_errors(lines: list[str], kind: ErrorKind, code: int | None) -> None:
    with pytest.raises(UpstreamError) as ei:
        parse_bytes(ndjson(lines))
    assert ei.value.kind is kind
    assert ei.value.grpc_code == code


def test_events_before_an_inband_error_are_delivered_first() -> None:
    p = FrameParser()
    events = p.feed(ndjson(EXAMPLE_D_ERROR_13))
    assert kinds(events) == ["Conversation", "TokenEvent"]
    assert p.error is not None and p.error.kind is ErrorKind.SERVER


def test_stream_errors_in_model_response() -> None:
    line = {"result": {"response": {"modelResponse": {"responseId": "r", "message": "x",
                                                      "streamErrors": [{"message": "Stream interrupted", "code": 13}]}}}}
    with pytest.raises(UpstreamError) as ei:
        parse_bytes(orjson.dumps(line) + b"\n")
    assert ei.value.kind is ErrorKind.SERVER
    line["result"]["response"]["modelResponse"]["streamErrors"] = ["Too many requests"]
    with pytest.raises(UpstreamError) as ei:
        parse_bytes(orjson.dumps(line) + b"\n")
    assert ei.value.kind is ErrorKind.RATE_LIMITED


# --------------------------------------------------------------------------- robustness
def _texts(events: list) -> str:
    return "".join(e.text for e in events if isinstance(e, TokenEvent))


def test_data_prefix_done_and_blank_lines() -> None:
    raw = b"\n".join([b"event: message", b"data: " + EXAMPLE_A[4].encode(), b"", b"data:" + EXAMPLE_A[5].encode(),
                      b":comment", b"data: [DONE]", EXAMPLE_A[6].encode()]) + b"\n"
    ev = parse_bytes(raw)
    assert _texts(ev) == "Bonjour !"  # nothing after [DONE]


def test_crlf_line_endings() -> None:
    ev = parse_bytes(ndjson(EXAMPLE_A, sep="\r\n"))
    assert _texts(ev) == "Bonjour ! (Hello!)"


def test_two_objects_on_one_line_and_text_between() -> None:
    raw = (EXAMPLE_A[4] + EXAMPLE_A[5] + " junk " + EXAMPLE_A[6] + "\n").encode()
    p = FrameParser()
    ev = p.feed(raw)
    assert _texts(ev) == "Bonjour ! (Hello!)"
    assert p.malformed == 0


def test_malformed_lines_are_skipped_and_counted() -> None:
    raw = "\n".join([EXAMPLE_A[4], "this is not json", '{"result": {"respo', "[1,2,3]", '{"weird": 1}',
                     EXAMPLE_A[5]]).encode() + b"\n"
    p = FrameParser()
    ev = p.feed(raw)
    assert _texts(ev) == "Bonjour !"
    assert p.malformed == 3  # garbage, truncated object, non-object; unknown key is ignored silently


def test_split_across_chunks_and_trailing_line_without_newline() -> None:
    raw = ndjson(EXAMPLE_A).rstrip(b"\n")
    p = FrameParser()
    ev: list = []
    for i in range(0, len(raw), 7):
        ev.extend(p.feed(raw[i:i + 7]))
    ev.extend(p.finish())
    assert kinds(ev) == kinds(parse_bytes(ndjson(EXAMPLE_A)))


def test_flat_followup_frames() -> None:
    raw = b'{"result":{"token":"P","messageTag":"final","responseId":"r"}}\n'
    (t,) = parse_bytes(raw)
    assert isinstance(t, TokenEvent) and t.text == "P"


def test_video_progress_frames() -> None:
    frames = [
        {"result": {"response": {"streamingVideoGenerationResponse": {"videoId": "v1", "progress": 40}}}},
        {"result": {"response": {"streamingVideoGenerationResponse": {
            "videoId": "v1", "progress": 100, "videoUrl": "users/u/generated/v1/generated_video.mp4",
            "thumbnailImageUrl": "users/u/generated/v1/preview_image.jpg", "moderated": False}}}},
    ]
    ev = parse_bytes(b"\n".join(orjson.dumps(f) for f in frames) + b"\n")
    assert ev == [VideoProgress("v1", 40), VideoProgress("v1", 100, "users/u/generated/v1/generated_video.mp4",
                                                         "users/u/generated/v1/preview_image.jpg", False)]


def test_oversized_line_is_dropped() -> None:
    p = FrameParser(max_line_bytes=1024)
    p.feed(b'{"result":{"response":{"token":"' + b"x" * 5000)
    ev = p.feed(b'"}}}\n' + EXAMPLE_A[4].encode() + b"\n")
    assert p.malformed >= 1
    assert _texts(ev) == "Bonjour"


def test_split_objects_respects_strings() -> None:
    objs = split_objects(b'{"a":"}{"}{"b":"\\"}"}')
    assert objs == [{"a": "}{"}, {"b": '"}'}]


async def test_read_batches_one_batch_per_chunk() -> None:
    async def chunks():
        yield ndjson(EXAMPLE_A[:5])
        yield ndjson(EXAMPLE_A[5:7])
        yield ndjson(EXAMPLE_A[7:])

    batches = [b async for b in read_batches(chunks())]
    assert [len(b) for b in batches] == [5, 2, 4]
    assert isinstance(batches[-1][-1], Title)
    assert isinstance(batches[1][0], TokenEvent) and isinstance(batches[2][1], FinalMetadata)
