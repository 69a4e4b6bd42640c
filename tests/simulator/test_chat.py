"""conversations/new: frame order and field names (chat.md §3), scenarios, markers, both request styles."""

from __future__ import annotations

import time

import orjson
import pytest

from grok2api.catalog import DEFAULT_MODELS, ModelKind

from .conftest import CHAT, answer_text, chat_body, frames, model_response, post_chat, responses

# chat.md §3.11 A, reduced to (top-level kind, ordered keys of the response object).
EXAMPLE_A = [
    ("conversation", ["conversationId", "title", "starred", "createTime", "modifyTime", "systemPromptName",
                      "temporary", "mediaTypes"]),
    ("response", ["userResponse", "isThinking", "isSoftStop", "responseId"]),
    ("response", ["uiLayout", "isThinking", "isSoftStop", "responseId"]),
    ("response", ["llmInfo", "isThinking", "isSoftStop", "responseId"]),
    ("response", ["token", "isThinking", "isSoftStop", "responseId", "messageTag"]),
    ("response", ["token", "isThinking", "isSoftStop", "responseId"]),
    ("response", ["finalMetadata", "isThinking", "isSoftStop", "responseId"]),
    ("response", ["modelResponse", "isThinking", "isSoftStop", "responseId"]),
    ("title", ["newTitle"]),
]
USER_TURN_KEYS = ["responseId", "message", "sender", "createTime", "manual", "partial", "shared", "query",
                  "queryType", "webSearchResults", "xpostIds", "xposts", "generatedImageUrls",
                  "imageAttachments", "fileAttachments", "cardAttachmentsJson", "fileUris",
                  "fileAttachmentsMetadata", "isControl", "steps", "mediaTypes", "webpageUrls", "streamErrors"]
MODEL_TURN_KEYS = ["responseId", "message", "sender", "createTime", "parentResponseId", "manual", "partial",
                   "shared", "query", "queryType", "webSearchResults", "xpostIds", "xposts", "generatedImageUrls",
                   "imageAttachments", "fileAttachments", "cardAttachmentsJson", "fileUris",
                   "fileAttachmentsMetadata", "isControl", "steps", "mediaTypes", "webpageUrls", "metadata",
                   "uiLayout", "model", "requestMetadata", "streamErrors"]


def _shape(frame: dict) -> tuple[str, list[str]]:
    (top,) = frame.keys()
    inner = frame[top]
    (kind,) = inner.keys()
    return kind, list(inner[kind].keys())


async def test_plain_stream_matches_example_a(sim, client):
    status, raw, r = await post_chat(client, sim, "tok-plain", "Say hello in French.")
    assert status == 200
    assert r.headers["content-type"].startswith("application/json")
    assert raw.endswith(b"\n") and b"\n\n" not in raw
    shapes = [_shape(f) for f in frames(raw)]
    # collapse the run of answer tokens to one entry, as in example A
    collapsed = [s for i, s in enumerate(shapes) if i == 0 or s != shapes[i - 1] or s[0] != "response"]
    assert collapsed == EXAMPLE_A
    rs = responses(raw)
    assert list(rs[0]["userResponse"].keys()) == USER_TURN_KEYS
    assert rs[0]["userResponse"]["sender"] == "human"
    assert rs[0]["responseId"] == rs[0]["userResponse"]["responseId"]
    rid = rs[1]["responseId"]
    assert rid != rs[0]["responseId"] and all(x["responseId"] == rid for x in rs[1:])
    tokens = [x for x in rs if x.get("messageTag") == "final"]
    assert len(tokens) == 20
    assert tokens[0]["token"] == "Echo: Say hello in French."
    mr = model_response(raw)
    assert list(mr.keys()) == MODEL_TURN_KEYS
    assert mr["message"] == answer_text(raw)
    assert mr["sender"] == "ASSISTANT" and mr["parentResponseId"] == rs[0]["responseId"]
    assert mr["metadata"]["request_metadata"] == {"effort": "low", "mode": "fast",
                                                  "model": "grok-4-1-thinking-1129"}
    assert mr["metadata"]["llm_info"]["modelHash"] == rs[2]["llmInfo"]["modelHash"]
    soft = [x for x in rs if x.get("isSoftStop")]
    assert len(soft) == 1 and soft[0]["token"] == ""


async def test_missing_or_mismatched_cookie_is_401(sim, client):
    expected = {"error": {"code": 16, "message": "Failed to look up session ID. "
                          "[WKE=unauthenticated:invalid-credentials]", "details": []}}
    r = await client.post(sim.base_url + CHAT, json=chat_body("hi"))
    assert r.status_code == 401 and r.json() == expected
    r = await client.post(sim.base_url + CHAT, json=chat_body("hi"), cookies={"sso": "a", "sso-rw": "b"})
    assert r.status_code == 401 and r.json() == expected


async def test_token_states(sim, client):
    sim.add_token("tok-exp", state="expired")
    sim.add_token("tok-blk", state="blocked")
    status, raw, _ = await post_chat(client, sim, "tok-exp", "hi")
    assert status == 401 and orjson.loads(raw)["error"]["code"] == 16
    status, raw, _ = await post_chat(client, sim, "tok-blk", "hi")
    assert status == 403 and "blocked-user" in orjson.loads(raw)["error"]["message"]


@pytest.mark.parametrize("spec", [m for m in DEFAULT_MODELS if m.kind in (ModelKind.CHAT, ModelKind.VIDEO,
                                                                          ModelKind.IMAGE_EDIT)],
                         ids=lambda m: m.id)
async def test_every_catalog_selection_is_accepted(sim, client, spec):
    selections = [spec.selection()]
    if spec.model_name:  # the legacy pair is accepted too
        selections.append({"modelName": spec.model_name, "modelMode": spec.model_mode})
    for sel in selections:
        body = chat_body("[[sim:tokens=2]] hi")
        body.pop("modeId")
        body.update(sel)
        if spec.kind == ModelKind.VIDEO:
            body["toolOverrides"] = {"videoGen": True}
        r = await client.post(sim.base_url + CHAT, json=body, cookies=sim.cookies("tok-" + spec.id),
                              headers={})
        assert r.status_code == 200, (sel, r.text)
        assert model_response(r.content)["streamErrors"] == []


async def test_unknown_model_and_bad_body(sim, client):
    status, raw, _ = await post_chat(client, sim, "t", "hi", modeId="warp")
    assert status == 400 and orjson.loads(raw)["error"]["code"] == 3
    r = await client.post(sim.base_url + CHAT, json={"message": 5, "modeId": "fast"}, cookies=sim.cookies("t"))
    assert r.status_code == 400


async def test_tokens_and_delay_markers(sim, client):
    t0 = time.monotonic()
    status, raw, _ = await post_chat(client, sim, "t", "count me\n[[sim:tokens=5;delay_ms=40]]")
    elapsed = time.monotonic() - t0
    assert status == 200
    finals = [x for x in responses(raw) if x.get("messageTag") == "final"]
    assert len(finals) == 5 and finals[0]["token"] == "Echo: count me"
    assert elapsed >= 4 * 0.04
    # the user turn keeps the message as sent; the echo drops the marker
    assert "[[sim:tokens=5" in responses(raw)[0]["userResponse"]["message"]


async def test_streams_incrementally_with_delay(sim, client):
    r = await client.post(sim.base_url + CHAT, json=chat_body("[[sim:tokens=4;delay_ms=150]] x"),
                          cookies=sim.cookies("t"), stream=True)
    arrivals = []
    t0 = time.monotonic()
    async for line in r.aiter_lines():
        if b'"messageTag":"final"' in line:
            arrivals.append(time.monotonic() - t0)
    await r.aclose()
    assert len(arrivals) == 4
    assert arrivals[-1] - arrivals[0] >= 0.3  # tokens arrive spread out, not in one burst


async def test_seed_makes_answers_deterministic(sim, client):
    _, a, _ = await post_chat(client, sim, "t1", "same prompt")
    _, b, _ = await post_chat(client, sim, "t2", "same prompt")
    _, c, _ = await post_chat(client, sim, "t1", "other prompt")
    assert answer_text(a) == answer_text(b)
    assert answer_text(a) != answer_text(c)


async def test_thinking_scenario(sim, client):
    status, raw, _ = await post_chat(client, sim, "t", "why?", modeId="expert")
    assert status == 200
    rs = responses(raw)
    thinking = [x for x in rs if x.get("isThinking")]
    assert [x["messageTag"] for x in thinking] == ["header", "summary", "header", "summary"]
    assert [x["messageStepId"] for x in thinking] == [0, 0, 1, 1]
    first_answer = next(i for i, x in enumerate(rs) if x.get("messageTag") == "final")
    assert all(rs.index(x) < first_answer for x in thinking)
    assert rs[1]["uiLayout"]["willThinkLong"] is True
    mr = model_response(raw)
    assert mr["metadata"]["request_metadata"]["effort"] == "high"
    assert "thinkingStartTime" in mr and "thinkingEndTime" in mr


async def test_search_scenario_tool_card_and_citation(sim, client):
    status, raw, _ = await post_chat(client, sim, "t", "search the web for tokyo population", modeId="expert")
    assert status == 200
    rs = responses(raw)
    card = next(x for x in rs if x.get("messageTag") == "tool_usage_card")
    assert card["isThinking"] is True
    assert "<xai:tool_name>web_search</xai:tool_name>" in card["token"]
    assert "<![CDATA[" in card["token"]
    assert card["toolUsageCard"]["webSearch"]["args"]["num_results"] == 10
    result = next(x for x in rs if x.get("messageTag") == "raw_function_result")
    assert result["toolUsageCardId"] == card["toolUsageCardId"]
    assert len(result["webSearchResults"]["results"]) == 2
    cards = [x for x in rs if "cardAttachment" in x]
    data = orjson.loads(cards[0]["cardAttachment"]["jsonData"])
    assert data["type"] == "render_inline_citation" and data["cardType"] == "citation_card"
    render = next(x["token"] for x in rs if "<grok:render" in x.get("token", ""))
    assert render.startswith(f'<grok:render card_id="{data["id"]}" card_type="citation_card" '
                             f'type="render_inline_citation">')
    mr = model_response(raw)
    assert render in mr["message"]
    assert mr["cardAttachmentsJson"] == [cards[0]["cardAttachment"]["jsonData"]]
    assert isinstance(mr["webSearchResults"], list) and mr["webSearchResults"][0]["url"] == data["url"]


async def test_searched_image_card_points_at_a_real_image(sim, client):
    status, raw, _ = await post_chat(client, sim, "t", "x", headers={"x-sim-scenario": "searched_image"})
    card = next(orjson.loads(x["cardAttachment"]["jsonData"]) for x in responses(raw) if "cardAttachment" in x)
    assert card["cardType"] == "image_card" and card["type"] == "render_searched_image"
    img = await client.get(card["image"]["original"])
    assert img.status_code == 200 and img.content[:3] == b"\xff\xd8\xff"


async def test_heavy_multi_agent(sim, client):
    sim.add_token("t-super", plan="super")
    status, raw, _ = await post_chat(client, sim, "t-super", "plan a trip", modeId="heavy")
    assert status == 200
    rs = responses(raw)
    assert rs[1]["uiLayout"]["rolloutIds"] == ["Grok", "Agent 1", "Agent 2", "Agent 3"]
    tools = [x for x in rs if x.get("messageTag") == "tool_usage_card"]
    names = {x["rolloutId"]: x["token"] for x in tools}
    assert any("chatroom_send" in t for t in names.values())
    assert "searchImages" in str([x["toolUsageCard"] for x in tools])
    finals = [x for x in rs if x.get("messageTag") == "final"]
    assert finals and all(x["rolloutId"] == "Grok" for x in finals)
    assert sim.account("t-super")["quota_remaining"] == 140 - 4


async def test_heavy_empty_message_variant(sim, client):
    _, raw, _ = await post_chat(client, sim, "t", "x", headers={"x-sim-scenario": "heavy_empty"})
    assert model_response(raw)["message"] == "" and answer_text(raw)


async def test_artifact_scenario(sim, client):
    _, raw, _ = await post_chat(client, sim, "t", "[[sim:scenario=artifact]] notes")
    text = answer_text(raw)
    assert "<xaiArtifact artifact_id=" in text and text.endswith("</xaiArtifact>")


async def test_legacy_image_generation_downloads_real_jpegs(sim, client):
    status, raw, _ = await post_chat(client, sim, "t-img", "draw a red fox")
    assert status == 200
    progress = [x["streamingImageGenerationResponse"] for x in responses(raw)
                if "streamingImageGenerationResponse" in x]
    assert {p["imageIndex"] for p in progress} == {0, 1}
    for idx in (0, 1):
        mine = [p for p in progress if p["imageIndex"] == idx]
        assert [p["progress"] for p in mine] == [25, 50, 75, 100]
        assert [p["seq"] for p in mine] == [0, 1, 2, 3]
        assert "-part-0/" in mine[0]["imageUrl"] and "-part-0/" not in mine[-1]["imageUrl"]
    urls = model_response(raw)["generatedImageUrls"]
    assert len(urls) == 2 and all(u.startswith("users/") and u.endswith("/image.jpg") for u in urls)
    for path in urls + [progress[0]["imageUrl"]]:
        img = await client.get(f"{sim.assets_url}/{path}", cookies=sim.cookies("t-img"))
        assert img.status_code == 200 and img.headers["content-type"] == "image/jpeg"
        assert img.content[:2] == b"\xff\xd8" and img.content[-2:] == b"\xff\xd9"


async def test_moderated_image(sim, client):
    _, raw, _ = await post_chat(client, sim, "t", "draw a thing [[sim:fault=moderated]]")
    last = [x["streamingImageGenerationResponse"] for x in responses(raw)
            if "streamingImageGenerationResponse" in x and x["streamingImageGenerationResponse"]["progress"] == 100]
    assert last and all(p["moderated"] for p in last)
    assert model_response(raw)["generatedImageUrls"] == []


async def test_lite_image_cards(sim, client):
    _, raw, _ = await post_chat(client, sim, "t", "Drawing: a red fox")
    cards = [orjson.loads(x["cardAttachment"]["jsonData"]) for x in responses(raw) if "cardAttachment" in x]
    assert cards[0]["image_chunk"] is None and cards[0]["cardType"] == "generated_image_card"
    done = [c for c in cards if c["image_chunk"] and c["image_chunk"]["progress"] == 100]
    assert len(done) == 2 and not any(c["image_chunk"]["moderated"] for c in done)
    render = next(x["token"] for x in responses(raw) if "<grok:render" in x.get("token", ""))
    assert 'card_type="generated_image_card" type="render_file"' in render
    url = done[0]["image_chunk"]["imageUrl"]
    img = await client.get(f"{sim.assets_url}/{url}", cookies=sim.cookies("t"))
    assert img.status_code == 200 and img.content[:3] == b"\xff\xd8\xff"


async def test_lite_image_on_exhausted_account_is_inband_error(sim, client):
    sim.add_token("t-empty", quota_total=0)
    status, raw, _ = await post_chat(client, sim, "t-empty", "Drawing: a cat")
    assert status == 200
    err = responses(raw)[-1]
    assert err["error"]["message"].startswith("You've reached your usage limit")


async def test_file_attachments_must_be_uploads_of_the_token(sim, client):
    status, raw, _ = await post_chat(client, sim, "t", "hi", fileAttachments=["nope"])
    assert status == 400 and orjson.loads(raw)["error"]["code"] == 3


async def test_variants_sse_framing(sim, client):
    _, raw, _ = await post_chat(client, sim, "t", "[[sim:variant=sse;tokens=2]] x")
    lines = [line for line in raw.split(b"\n") if line]
    assert all(line.startswith(b"data: ") for line in lines)
    assert lines[-1] == b"data: [DONE]"


async def test_model_response_order_variant(sim, client):
    _, raw, _ = await post_chat(client, sim, "t", "[[sim:variant=model_response_first;tokens=1]] x")
    kinds = [next(iter(x)) for x in responses(raw)]
    assert kinds.index("modelResponse") < kinds.index("finalMetadata")
    _, raw, _ = await post_chat(client, sim, "t", "[[sim:variant=no_model_response;tokens=1]] x")
    assert not any("modelResponse" in x for x in responses(raw))


async def test_ttft_and_header_options(sim, client):
    r = await client.post(sim.base_url + CHAT, json=chat_body("x"), cookies=sim.cookies("t"), stream=True,
                          headers={"x-sim-options": "tokens=3;ttft_ms=300"})
    t0 = time.monotonic()
    first_token = None
    count = 0
    async for line in r.aiter_lines():
        if b'"messageTag":"final"' in line:
            count += 1
            if first_token is None:
                first_token = time.monotonic() - t0
    await r.aclose()
    assert count == 3 and first_token is not None and first_token >= 0.25
