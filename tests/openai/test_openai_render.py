"""Renderer: chat.md §3.11 examples → OpenAI SSE / chat.completion (§4.2–§4.10)."""

from __future__ import annotations

import orjson
import pytest

from grok2api.openai.render import (
    ChatRenderer, RenderOptions, assemble_completion, filter_text, tool_card_line,
)
from grok2api.openai.usage import build_usage, estimate_tokens
from grok2api.upstream.errors import ErrorKind, UpstreamError
from grok2api.upstream.stream import Card, ModelResponse, TokenEvent, VideoProgress, parse_bytes
from upstream.grok_frames import (
    EXAMPLE_A, EXAMPLE_B, EXAMPLE_B_HEAVY, EXAMPLE_C_LEGACY, EXAMPLE_C_LITE, ndjson,
)

V1_EXAMPLE_B = (
    "<think>\n"
    "Thinking about your request- The user wants Tokyo's current population; I should check an official source."
    "[WebSearch] Tokyo population 2026\n"
    "Checking official estimates- The metropolitan government estimates about 14.2 million residents (Jan 2026).\n"
    "</think>\n"
    "Tokyo has about **14.2 million** residents (Tokyo Metropolis, January 2026)."
)
REASONING_B = (
    "Thinking about your request\n"
    "The user wants Tokyo's current population; I should check an official source.\n"
    "[WebSearch] Tokyo population 2026\n"
    "Checking official estimates\n"
    "The metropolitan government estimates about 14.2 million residents (Jan 2026)."
)
ANSWER_B = "Tokyo has about **14.2 million** residents (Tokyo Metropolis, January 2026)."


def sse_events(data: bytes) -> list:
    """Parse SSE bytes into JSON objects (and the ``[DONE]`` marker)."""
    assert data.endswith(b"\n\n")
    out = []
    for block in data.split(b"\n\n")[:-1]:
        assert block.startswith(b"data: "), block
        payload = block[6:]
        out.append("[DONE]" if payload == b"[DONE]" else orjson.loads(payload))
    return out


def deltas(events: list, field: str = "content") -> str:
    return "".join(e["choices"][0]["delta"].get(field) or "" for e in events
                   if isinstance(e, dict) and e.get("choices"))


async def render(lines: list[str], batch_per_line: bool = True, **opts) -> tuple[list, ChatRenderer]:
    ev = parse_bytes(ndjson(lines))
    r = ChatRenderer(RenderOptions(model="grok-4.1-expert", created=1773480065, **opts))
    out = b""
    for e in ev if batch_per_line else [ev]:
        out += await r.feed_many([e] if batch_per_line else e)
    out += await r.finish()
    return sse_events(out), r


async def test_example_a_stream_shape() -> None:
    events, r = await render(EXAMPLE_A)
    first = events[0]
    assert first["object"] == "chat.completion.chunk" and first["created"] == 1773480065
    assert first["model"] == "grok-4.1-expert" and first["id"].startswith("chatcmpl-")
    assert first["choices"] == [{"index": 0, "delta": {"role": "assistant", "content": ""}, "logprobs": None,
                                 "finish_reason": None}]
    assert deltas(events) == "Bonjour ! (Hello!)"
    assert len({e["id"] for e in events[:-1]}) == 1  # stable id
    stop = events[-2]
    assert stop["choices"] == [{"index": 0, "delta": {}, "logprobs": None, "finish_reason": "stop"}]
    assert stop["system_fingerprint"] == "YfRYOzNNGIHab5mzeRBUXNIJFqErFXS7DzirnIkOLW8="
    assert events[-1] == "[DONE]"
    assert all(e["choices"][0]["finish_reason"] is None for e in events[:-2])


async def test_example_b_v1_think_tags_rendering() -> None:
    events, r = await render(EXAMPLE_B, think_style="think_tags")
    assert deltas(events) == V1_EXAMPLE_B
    assert deltas(events, "reasoning_content") == ""
    assert events[-2]["system_fingerprint"] == "Q2sY0m1Zl9w3b8u1c7d2f4e6a8b0c2d4e6f8a0b2c4d="


async def test_example_b_reasoning_content_mode() -> None:
    events, r = await render(EXAMPLE_B)
    assert deltas(events, "reasoning_content") == REASONING_B
    assert deltas(events) == ANSWER_B
    # all reasoning chunks precede the first answer chunk
    kinds = ["r" if "reasoning_content" in e["choices"][0]["delta"] else "c"
             for e in events[1:-2] if e["choices"][0]["delta"]]
    assert kinds == sorted(kinds, key=lambda k: k == "c")


async def test_hidden_thinking() -> None:
    events, r = await render(EXAMPLE_B, show_thinking=False)
    assert deltas(events) == ANSWER_B and deltas(events, "reasoning_content") == ""
    events, r = await render(EXAMPLE_B, show_thinking=False, think_style="think_tags")
    assert deltas(events) == ANSWER_B


async def test_heavy_rollout_prefixes() -> None:
    events, r = await render(EXAMPLE_B_HEAVY, think_style="think_tags")
    assert deltas(events) == (
        "<think>\nPlanning the research[Agent 1][WebSearch] Tokyo population official estimate\n"
        "[Agent 1][AgentThink] Official figure: 14.2M (Jan 2026).\n- Agent 1 confirmed the official estimate.\n"
        "</think>\nTokyo has about 14.2 million residents.")
    events, r = await render(EXAMPLE_B_HEAVY)
    assert "[Agent 1][WebSearch] Tokyo population official estimate\n" in r.reasoning


async def test_example_c_legacy_images_via_callback() -> None:
    calls: list[str] = []

    async def image(path: str) -> str:
        calls.append(path)
        return f"![{path.split('/')[-2]}](https://gw.example/v1/files/image/{path})"

    ev = parse_bytes(ndjson(EXAMPLE_C_LEGACY))
    r = ChatRenderer(RenderOptions(model="grok-4", think_style="think_tags"), image_renderer=image)
    events = sse_events(await r.feed_many(ev) + await r.finish())
    text = deltas(events)
    assert text.startswith("Here are two foxes for you.<think>\ngenerating image 1, 25%\ngenerating image 2, 25%\n")
    assert "\n</think>\n![5b6c7d8e-9f0a-4b1c-8d2e-3f4a5b6c7d8e](https://gw.example/v1/files/image/users/" in text
    assert text.endswith("6c7d8e9f-0a1b-4c2d-9e3f-4a5b6c7d8e9f/image.jpg)\n")
    assert len(calls) == 2 and all("-part-0" not in c for c in calls)

    r2 = ChatRenderer(RenderOptions(model="grok-4"), image_renderer=image)
    await r2.feed_many(ev)
    await r2.finish()
    assert r2.content.startswith("Here are two foxes for you.\n![5b6c7d8e")
    assert r2.reasoning.count("generating image") == 5


async def test_default_image_rendering_uses_assets_host() -> None:
    ev = parse_bytes(ndjson(EXAMPLE_C_LEGACY))
    r = ChatRenderer(RenderOptions(model="grok-4", show_thinking=False, assets_url="https://assets.example"))
    await r.feed_many(ev)
    await r.finish()
    assert ("![5b6c7d8e-9f0a-4b1c-8d2e-3f4a5b6c7d8e](https://assets.example/users/4d2c1b0a-9f8e-4d7c-b6a5-"
            "948372615049/generated/5b6c7d8e-9f0a-4b1c-8d2e-3f4a5b6c7d8e/image.jpg)") in r.content
    assert not r.reasoning


async def test_example_c_lite_and_moderated_cards() -> None:
    async def image(path: str) -> str:
        return f"![image]({path})"

    ev = parse_bytes(ndjson(EXAMPLE_C_LITE))
    moderated = Card("m1", "render_file", "generated_image_card", {"id": "m1", "image_chunk": {
        "imageUrl": "users/x/generated/m/image.jpg", "progress": 100, "moderated": True}})
    r = ChatRenderer(RenderOptions(model="grok-imagine-image-lite"), image_renderer=image)
    await r.feed_many(ev + [moderated])
    await r.finish()
    assert r.content == ("![image](users/4d2c1b0a-9f8e-4d7c-b6a5-948372615049/generated/"
                         "5b6c7d8e-9f0a-4b1c-8d2e-3f4a5b6c7d8e/image.jpg)\n")


async def test_searched_image_card() -> None:
    card = {"id": "c9d8e7", "type": "render_searched_image", "cardType": "image_card",
            "image": {"title": "Red\nfox", "original": "https://upload.example.org/fox.jpg"}}
    r = ChatRenderer(RenderOptions(model="m"))
    await r.feed_many([TokenEvent("Look: ", tag="final"), Card("c9d8e7", "render_searched_image", "image_card", card),
                       TokenEvent('<grok:render card_id="c9d8e7" card_type="image_card" type="render_searched_image">'
                                  '</grok:render>', tag="final")])
    await r.finish()
    assert r.content == "Look: ![Red fox](https://upload.example.org/fox.jpg)\n"


async def test_tool_card_split_across_tokens() -> None:
    parts = ["Searching now<xai:tool_us", "age_card><xai:tool_name>web_search</xai:tool_name><xai:tool_args>",
             '<![CDATA[{"query":"tokyo', ' population"}]]></xai:tool_args></xai:tool_usage_card>done. ',
             "<xai:tool_usage_card><xai:tool_name>search_images</xai:tool_name><xai:tool_args><![CDATA["
             '{"image_description":"red fox"}]]></xai:tool_args></xai:tool_usage_card>',
             "<xai:tool_usage_card><xai:tool_name>browse_page</xai:tool_name><xai:tool_args><![CDATA["
             '{"url":"https://x.org"}]]></xai:tool_args></xai:tool_usage_card>']
    r = ChatRenderer(RenderOptions(model="m", think_style="think_tags"))
    out = b""
    for i, p in enumerate(parts):
        out += await r.feed_many([TokenEvent(p, thinking=True, tag="tool_usage_card", step_id=i)])
    out += await r.finish()
    r2 = ChatRenderer(RenderOptions(model="m", think_style="think_tags"))
    await r2.feed_many([TokenEvent("Now " + "".join(parts[:4])[13:], thinking=True)])
    assert r2.content == "<think>\nNow \n[WebSearch] tokyo population\ndone. "
    # a newline is only inserted before a card when text precedes it in the same token (V1, chat.md §4.2 B)
    assert deltas(sse_events(out)) == ("<think>\nSearching now[WebSearch] tokyo population\ndone. "
                                       "[SearchImage] red fox\nbrowse_page {\"url\":\"https://x.org\"}\n</think>\n")


def test_tool_card_line_variants() -> None:
    card = ("<xai:tool_usage_card><xai:tool_name>chatroom_send</xai:tool_name><xai:tool_args><![CDATA["
            '{"to":"Grok","message":"hi there"}]]></xai:tool_args></xai:tool_usage_card>')
    assert tool_card_line(card) == "[AgentThink] hi there"
    assert tool_card_line(card, "Agent 2") == "[Agent 2][AgentThink] hi there"
    assert tool_card_line("<xai:tool_usage_card>just text</xai:tool_usage_card>") == "just text"
    q = ('<xai:tool_usage_card><xai:tool_name>web_search</xai:tool_name><xai:tool_args>{"q":"x"}</xai:tool_args>'
         '</xai:tool_usage_card>')
    assert tool_card_line(q) == "[WebSearch] x"


async def test_filtered_tags_drop_whole_tokens_case_insensitive() -> None:
    r = ChatRenderer(RenderOptions(model="m"))
    await r.feed_many([TokenEvent("Here:", tag="final"), TokenEvent('<xaiArtifact id="1" title="a.py">'),
                       TokenEvent("print(1)"), TokenEvent("</xaiArtifact>"), TokenEvent(" <b>ok</b>")])
    await r.finish()
    assert r.content == "Here:print(1) <b>ok</b>"
    r2 = ChatRenderer(RenderOptions(model="m", filter_tags=()))
    await r2.feed_many([TokenEvent('<grok:render card_id="x"></grok:render>')])
    await r2.finish()
    assert "<grok:render" in r2.content


async def test_coalescing_one_chunk_per_batch() -> None:
    r = ChatRenderer(RenderOptions(model="m"))
    out = await r.feed_many([TokenEvent("a"), TokenEvent("b"), TokenEvent("c\n\"q\"")])
    events = sse_events(out)
    assert len(events) == 2  # role + one content chunk
    assert events[1]["choices"][0]["delta"] == {"content": "abc\n\"q\""}
    out = await r.feed_many([TokenEvent("think", thinking=True), TokenEvent("d"), TokenEvent("e")])
    # thinking after the answer started is dropped
    assert [e["choices"][0]["delta"] for e in sse_events(out)] == [{"content": "de"}]


async def test_usage_chunk() -> None:
    r = ChatRenderer(RenderOptions(model="m", include_usage=True, prompt_text="Say hello in French."))
    out = await r.feed_many(parse_bytes(ndjson(EXAMPLE_A))) + await r.finish()
    events = sse_events(out)
    usage_chunk = events[-2]
    assert usage_chunk["choices"] == []
    assert usage_chunk["usage"] == build_usage("Say hello in French.", "Bonjour ! (Hello!)")
    assert usage_chunk["usage"]["prompt_tokens"] == estimate_tokens("Say hello in French.") + 4
    assert events[-3]["choices"][0]["finish_reason"] == "stop"


def test_estimate_tokens() -> None:
    assert estimate_tokens("") == 0
    assert estimate_tokens("a") == 1
    assert estimate_tokens("Bonjour ! (Hello!)") == 5  # 18 bytes → 5; 6 segments → 5
    assert estimate_tokens("你好世界") == 3  # 12 bytes → 3; 1 segment
    assert estimate_tokens(", , , , , , , , ,") == 7  # 17 bytes → 5; 9 punct → 7
    u = build_usage("p", "c", "r")
    assert u["total_tokens"] == u["prompt_tokens"] + u["completion_tokens"]
    assert u["completion_tokens_details"]["reasoning_tokens"] == 1


async def test_error_after_stream_began() -> None:
    r = ChatRenderer(RenderOptions(model="m"))
    first = await r.feed_many([TokenEvent("partial")])
    tail = r.error(UpstreamError(ErrorKind.TRANSPORT, 0, "connection reset"))
    events = sse_events(first + tail)
    assert deltas(events) == "partial"
    assert events[-2]["error"]["code"] == "upstream_connection_error"
    assert events[-2]["error"]["type"] == "upstream_error" and "message" in events[-2]["error"]
    assert events[-1] == "[DONE]"
    assert sse_events(ChatRenderer(RenderOptions(model="m")).error(RuntimeError("x")))[0]["error"]["code"] \
        == "internal_error"


async def test_video_rendering() -> None:
    async def url(path: str) -> str:
        return "https://gw.example/v1/files/video/" + path

    evs = [VideoProgress("v", 30), VideoProgress("v", 100, "users/u/generated/v/generated_video.mp4",
                                                 "users/u/generated/v/preview.jpg")]
    r = ChatRenderer(RenderOptions(model="grok-imagine-1.0-video"), asset_url=url)
    await r.feed_many(evs)
    await r.finish()
    assert r.content == ('<video src="https://gw.example/v1/files/video/users/u/generated/v/generated_video.mp4" '
                         'controls="controls" poster="https://gw.example/v1/files/video/users/u/generated/v/'
                         'preview.jpg"></video>\n')
    assert r.reasoning == "generating video, 30%\ngenerating video, 100%\n"
    r2 = ChatRenderer(RenderOptions(model="v", video_format="url", show_thinking=False))
    await r2.feed_many(evs)
    await r2.finish()
    assert r2.content == "https://assets.grok.com/users/u/generated/v/generated_video.mp4\n"
    r3 = ChatRenderer(RenderOptions(model="v"))
    await r3.feed_many([VideoProgress("v", 100, "users/u/v.mp4", None, moderated=True)])
    await r3.finish()
    assert r3.content == ""


# --------------------------------------------------------------------------- non-streaming
async def test_non_stream_example_b() -> None:
    ev = parse_bytes(ndjson(EXAMPLE_B))
    result = await assemble_completion([ev], RenderOptions(model="grok-4.1-expert", created=1773480065))
    assert result["object"] == "chat.completion" and result["created"] == 1773480065
    assert result["system_fingerprint"] == "Q2sY0m1Zl9w3b8u1c7d2f4e6a8b0c2d4e6f8a0b2c4d="
    choice = result["choices"][0]
    assert choice["finish_reason"] == "stop" and choice["index"] == 0
    msg = choice["message"]
    assert msg["role"] == "assistant" and msg["content"] == ANSWER_B and msg["reasoning_content"] == REASONING_B
    assert msg["refusal"] is None and msg["annotations"] == []
    assert result["usage"]["completion_tokens_details"]["reasoning_tokens"] == estimate_tokens(REASONING_B)
    hidden = await assemble_completion([ev], RenderOptions(model="m", show_thinking=False))
    assert "reasoning_content" not in hidden["choices"][0]["message"]
    tags = await assemble_completion([ev], RenderOptions(model="m", think_style="think_tags"))
    assert tags["choices"][0]["message"]["content"] == V1_EXAMPLE_B


async def test_non_stream_falls_back_to_model_response_message() -> None:
    card = orjson.dumps({"id": "c9", "type": "render_searched_image",
                         "image": {"title": "Fox", "original": "https://x.org/fox.jpg"}}).decode()
    mr = ModelResponse("r1", 'Foxes:<grok:render card_id="c9" card_type="image_card" type="render_searched_image">'
                             '</grok:render> and <grok:render card_id="zz"></grok:render>more',
                       card_attachments=[card], model_hash="H")

    async def events():
        yield [TokenEvent("thinking only", thinking=True, step_id=1)]
        yield mr

    result = await assemble_completion(events(), RenderOptions(model="m"))
    assert result["choices"][0]["message"]["content"] == "Foxes:\n![Fox](https://x.org/fox.jpg) and more"
    assert result["system_fingerprint"] == "H"


async def test_non_stream_inband_error_propagates() -> None:
    async def events():
        yield [TokenEvent("a")]
        raise UpstreamError(ErrorKind.RATE_LIMITED, 0, "usage limit")

    with pytest.raises(UpstreamError):
        await assemble_completion(events(), RenderOptions(model="m"))


def test_filter_text() -> None:
    assert filter_text('a<xaiArtifact id="1">code</xaiArtifact>b') == "acodeb"
    assert filter_text('x<grok:render card_id="1"><argument name="a">0</argument></grok:render>y') == "xy"
    assert filter_text("p<xai:tool_usage_card><xai:tool_name>web_search</xai:tool_name><xai:tool_args>"
                       '{"query":"q"}</xai:tool_args></xai:tool_usage_card>') == "p\n[WebSearch] q\n"
