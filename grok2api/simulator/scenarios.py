"""Chat stream generation: which scenario a request gets and the NDJSON lines it produces.

A scenario turns one ``conversations/new`` request into a list of
``(delay_seconds, line_bytes)``; the server writes consecutive zero-delay lines
in one ``write()``. Field names and order follow protocol chat.md §3 (example
streams §3.11). Token frames are built from pre-serialised parts; other frames
go through ``orjson`` (dicts keep insertion order, so the key order is exact).
"""

from __future__ import annotations

import base64
import hashlib
import random
from dataclasses import dataclass, field
from typing import Any

import orjson

from grok2api.simulator.faults import Fault, first
from grok2api.simulator.state import Account, Asset, SimState, iso_ms, iso_us

SCENARIOS = (
    "plain", "thinking", "search", "citations", "searched_image", "heavy", "heavy_empty",
    "image", "image_lite", "image_moderated", "video", "artifact",
)

_WORDS = (
    "the", "simulated", "answer", "keeps", "going", "with", "plain", "words", "so", "clients", "can",
    "count", "tokens", "and", "check", "pacing", "while", "grok", "stays", "offline", "today", "again",
    "quietly", "every", "stream", "ends", "cleanly", "unless", "asked", "otherwise",
)
_THINKING_MODES = frozenset({
    "expert", "grok-420-computer-use-sa", "MODEL_MODE_EXPERT", "MODEL_MODE_GROK_3_MINI_THINKING",
    "MODEL_MODE_GROK_3_THINKING", "MODEL_MODE_GROK_4_MINI_THINKING", "MODEL_MODE_GROK_4_THINKING",
    "MODEL_MODE_GROK_4_1_MINI_THINKING", "MODEL_MODE_GROK_4_1_THINKING", "MODEL_MODE_GROK_420",
})
_HEAVY_MODES = frozenset({"heavy", "MODEL_MODE_HEAVY"})
_KEYWORDS: tuple[tuple[str, str], ...] = (
    ("drawing:", "image_lite"),
    ("generate an image", "image"),
    ("generate image", "image"),
    ("draw ", "image"),
    ("search the web", "search"),
    ("web search", "search"),
    ("with citations", "citations"),
    ("find images", "searched_image"),
    ("picture of", "searched_image"),
    ("xaiartifact", "artifact"),
    ("write a file", "artifact"),
)
_MODE_NAMES = {
    "fast": "MODEL_MODE_FAST", "expert": "MODEL_MODE_EXPERT", "heavy": "MODEL_MODE_HEAVY",
    "auto": "MODEL_MODE_AUTO", "grok-420-computer-use-sa": "MODEL_MODE_GROK_420",
}
USAGE_LIMIT_MESSAGE = "You've reached your usage limit. Please try again later."


def choose_scenario(explicit: str | None, mode: str | None, message: str, body: dict[str, Any]) -> str:
    if explicit:
        return explicit
    overrides = body.get("toolOverrides")
    if isinstance(overrides, dict) and overrides.get("videoGen"):
        return "video"
    if body.get("modelName") == "imagine-image-edit":
        return "image"
    low = message.lower()
    for word, scenario in _KEYWORDS:
        if (low.startswith(word) if word == "drawing:" else word in low):
            if scenario == "search" and mode not in _THINKING_MODES and mode not in _HEAVY_MODES:
                return "citations"
            return scenario
    if mode in _HEAVY_MODES:
        return "heavy"
    if mode in _THINKING_MODES:
        return "thinking"
    return "plain"


@dataclass
class ChatRequest:
    """Everything a scenario needs to know about one accepted chat request."""

    state: SimState
    account: Account
    body: dict[str, Any]
    message: str  # markers removed
    options: dict[str, str]
    faults: list[Fault]
    mode: str
    model: str
    effort: str
    scenario: str
    public_base: str = "http://127.0.0.1"
    seq: int = 0

    @property
    def uid(self) -> str:
        return self.account.user_id


@dataclass
class Plan:
    frames: list[tuple[float, bytes]] = field(default_factory=list)
    end: str = "eof"  # eof | reset

    def add(self, line: bytes, delay: float = 0.0) -> None:
        self.frames.append((delay, line))


def _dumps(obj: Any) -> bytes:
    return orjson.dumps(obj) + b"\n"


class _Lines:
    """Builders for the frames of one assistant response (``responseId`` fixed)."""

    def __init__(self, rid: str) -> None:
        self.rid = rid
        r = rid.encode()
        self._final_tail = b',"isThinking":false,"isSoftStop":false,"responseId":"' + r + b'","messageTag":"final"}}}\n'
        self._head = b'{"result":{"response":{"token":'

    def final(self, text: str) -> bytes:
        return self._head + orjson.dumps(text) + self._final_tail

    def resp(self, payload: dict[str, Any], thinking: bool = False, tag: str | None = None,
             **extra: Any) -> bytes:
        body: dict[str, Any] = dict(payload)
        body["isThinking"] = thinking
        body["isSoftStop"] = False
        body["responseId"] = self.rid
        if tag is not None:
            body["messageTag"] = tag
        body.update(extra)
        return _dumps({"result": {"response": body}})

    def think(self, text: str, tag: str, step: int, rollout: str | None = None, **extra: Any) -> bytes:
        kw: dict[str, Any] = {"messageStepId": step}
        if rollout is not None:
            kw["rolloutId"] = rollout
        kw.update(extra)
        return self.resp({"token": text}, thinking=True, tag=tag, **kw)

    def soft_stop(self) -> bytes:
        return _dumps({"result": {"response": {"token": "", "isThinking": False, "isSoftStop": True,
                                               "responseId": self.rid}}})


def _last_line(message: str) -> str:
    for line in reversed(message.strip().splitlines()):
        if line.strip():
            text = line.strip()
            return text if len(text) <= 120 else text[:117] + "..."
    return "(empty)"


def answer_tokens(req: ChatRequest, count: int) -> list[str]:
    """``count`` answer pieces: ``Echo: <last line of the prompt>`` then seeded filler words."""
    if count <= 0:
        return []
    seeded = req.state.options.seed is not None
    key = (req.state.options.seed, req.message, count)
    if seeded and key in _ANSWER_CACHE:
        return _ANSWER_CACHE[key]
    rng = req.state.rng("answer", req.message) if seeded else random.Random(
        hashlib.sha256(req.message.encode()).digest() + random.randbytes(4))
    out = [f"Echo: {_last_line(req.message)}"]
    for i in range(1, count):
        word = rng.choice(_WORDS)
        out.append(" " + word + ("." if i == count - 1 else ""))
    if seeded:
        if len(_ANSWER_CACHE) >= 2048:
            _ANSWER_CACHE.clear()
        _ANSWER_CACHE[key] = out
    return out


_ANSWER_CACHE: dict[tuple[Any, ...], list[str]] = {}


def _model_hash(model: str, mode: str) -> str:
    return base64.b64encode(hashlib.sha256(f"{model}/{mode}".encode()).digest()).decode()


def _turn(rid: str, message: str, sender: str, ts: float, **extra: Any) -> dict[str, Any]:
    turn: dict[str, Any] = {
        "responseId": rid, "message": message, "sender": sender, "createTime": iso_ms(ts),
    }
    if "parentResponseId" in extra:
        turn["parentResponseId"] = extra.pop("parentResponseId")
    turn.update({
        "manual": False, "partial": False, "shared": False, "query": "", "queryType": "",
        "webSearchResults": [], "xpostIds": [], "xposts": [], "generatedImageUrls": [],
        "imageAttachments": [], "fileAttachments": [], "cardAttachmentsJson": [], "fileUris": [],
        "fileAttachmentsMetadata": [], "isControl": False, "steps": [], "mediaTypes": [], "webpageUrls": [],
    })
    turn.update(extra)
    turn.setdefault("streamErrors", [])
    return turn


def _tool_card_xml(card_id: str, name: str, args: dict[str, Any], pretty: bool) -> str:
    a = orjson.dumps(args).decode()
    if pretty:
        return (f"<xai:tool_usage_card>\n  <xai:tool_usage_card_id>{card_id}</xai:tool_usage_card_id>\n"
                f"  <xai:tool_name>{name}</xai:tool_name>\n  <xai:tool_args><![CDATA[{a}]]></xai:tool_args>\n"
                f"</xai:tool_usage_card>")
    return (f"<xai:tool_usage_card><xai:tool_usage_card_id>{card_id}</xai:tool_usage_card_id>"
            f"<xai:tool_name>{name}</xai:tool_name><xai:tool_args><![CDATA[{a}]]></xai:tool_args>"
            f"</xai:tool_usage_card>")


_TOOL_KEYS = {"web_search": "webSearch", "search_images": "searchImages", "chatroom_send": "chatroomSend"}


def _render(card_id: str, card_type: str, kind: str, arg: str, value: str) -> str:
    return (f'<grok:render card_id="{card_id}" card_type="{card_type}" type="{kind}">'
            f'<argument name="{arg}">{value}</argument></grok:render>')


class _Builder:
    """Builds one stream; scenario methods append frames, ``finish`` adds the tail."""

    def __init__(self, req: ChatRequest) -> None:
        self.req = req
        st = req.state
        self.rng = st.rng("ids", req.account.token, req.message, req.seq)
        self.now = st.clock.now()
        self.conv_id = st.uuid_from(self.rng)
        self.user_rid = st.uuid_from(self.rng)
        self.rid = st.uuid_from(self.rng)
        self.lines = _Lines(self.rid)
        self.plan = Plan()
        self.opts = st.options
        o = req.options
        self.token_delay = float(o.get("delay_ms", self.opts.token_delay_ms)) / 1000.0
        self.ttft = float(o.get("ttft_ms", self.opts.ttft_ms)) / 1000.0
        self.n_tokens = int(o.get("tokens", self.opts.default_tokens))
        self.first_token_sent = False
        self.message_parts: list[str] = []
        self.cards: list[str] = []
        self.web_results: list[dict[str, Any]] = []
        self.generated: list[str] = []
        self.file_attachments: list[str] = []
        self.steps: list[dict[str, Any]] = []
        self.rollouts: list[str] = []
        self.model_hash = _model_hash(req.model, req.mode)
        self.moderated = first(req.faults, ["moderated"]) is not None or req.scenario == "image_moderated"
        self.thinking_start: float | None = None
        self.empty_message = False
        self.end_early = False

    # -- pacing --------------------------------------------------------------
    def _token_delay(self) -> float:
        if not self.first_token_sent:
            self.first_token_sent = True
            return self.ttft
        return self.token_delay

    def final(self, text: str, record: bool = True) -> None:
        self.plan.add(self.lines.final(text), self._token_delay())
        if record:
            self.message_parts.append(text)

    def think(self, text: str, tag: str, step: int, rollout: str | None = None, **extra: Any) -> None:
        if self.thinking_start is None:
            self.thinking_start = self.req.state.clock.now()
        self.plan.add(self.lines.think(text, tag, step, rollout, **extra), self._token_delay())

    def answer(self, count: int | None = None) -> None:
        for piece in answer_tokens(self.req, self.n_tokens if count is None else count):
            self.final(piece)

    # -- head ----------------------------------------------------------------
    def head(self, will_think: bool = False) -> None:
        req, b = self.req, self.req.body
        now = self.now
        self.plan.add(_dumps({"result": {"conversation": {
            "conversationId": self.conv_id, "title": "New conversation", "starred": False,
            "createTime": iso_us(now), "modifyTime": iso_us(now), "systemPromptName": "",
            "temporary": bool(b.get("temporary", True)), "mediaTypes": [],
        }}}))
        user = _turn(self.user_rid, b.get("message", ""), "human", now,
                     fileAttachments=list(b.get("fileAttachments") or []))
        self.plan.add(_dumps({"result": {"response": {
            "userResponse": user, "isThinking": False, "isSoftStop": False, "responseId": self.user_rid,
        }}}))
        self.plan.add(self.lines.resp({"uiLayout": self.ui_layout(will_think)}))
        self.plan.add(self.lines.resp({"llmInfo": {"modelHash": self.model_hash}}))
        del req

    def ui_layout(self, will_think: bool) -> dict[str, Any]:
        return {"reasoningUiLayout": "FUNCTION_CALL", "willThinkLong": will_think, "rolloutIds": self.rollouts}

    # -- tail ----------------------------------------------------------------
    def finish(self) -> Plan:
        req = self.req
        if self.end_early:
            return self.plan
        if first(req.faults, ["response_error"]):
            self.plan.add(self.lines.resp({"error": {"message": USAGE_LIMIT_MESSAGE}}))
            return self.plan
        self.plan.add(self.lines.soft_stop())
        final_meta = self.lines.resp({"finalMetadata": {"followUpSuggestions": [], "feedbackLabels": [],
                                                        "toolsUsed": {}}})
        variants = set(filter(None, req.options.get("variant", "").split(",")))
        mr = self.lines.resp({"modelResponse": self.model_response()})
        if "no_model_response" in variants:
            self.plan.add(final_meta)
        elif "model_response_first" in variants:
            self.plan.add(mr)
            self.plan.add(final_meta)
        else:
            self.plan.add(final_meta)
            self.plan.add(mr)
        words = _last_line(req.message).split()[:4]
        self.plan.add(_dumps({"result": {"title": {"newTitle": " ".join(words) or "New conversation"}}}))
        return self.plan

    def model_response(self) -> dict[str, Any]:
        req = self.req
        end = req.state.clock.now()
        stream_errors: list[Any] = []
        if first(req.faults, ["stream_errors"]):
            stream_errors = [{"message": "Stream interrupted", "code": 13}]
        meta: dict[str, Any] = {
            "llm_info": {"modelHash": self.model_hash},
            "request_metadata": {"effort": req.effort, "mode": req.mode, "model": req.model},
        }
        extra: dict[str, Any] = {
            "parentResponseId": self.user_rid,
            "webSearchResults": self.web_results,
            "generatedImageUrls": self.generated,
            "fileAttachments": self.file_attachments,
            "cardAttachmentsJson": self.cards,
            "steps": self.steps,
            "metadata": meta,
            "uiLayout": self.ui_layout(self.thinking_start is not None),
        }
        if self.thinking_start is not None:
            extra["thinkingStartTime"] = iso_ms(self.thinking_start)
            extra["thinkingEndTime"] = iso_ms(end)
        mode_name = _MODE_NAMES.get(req.mode, req.mode)
        extra["model"] = req.model
        extra["requestMetadata"] = {"model": req.model, "mode": mode_name, "effort": req.effort.upper()}
        extra["streamErrors"] = stream_errors
        message = "" if self.empty_message else "".join(self.message_parts)
        return _turn(self.rid, message, "ASSISTANT", end, **extra)

    # -- helpers -------------------------------------------------------------
    def new_id(self) -> str:
        return self.req.state.uuid_from(self.rng)

    def short_id(self) -> str:
        return "".join(self.rng.choice("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789")
                       for _ in range(6))

    def card(self, data: dict[str, Any]) -> None:
        js = orjson.dumps(data).decode()
        if data.get("cardType") != "generated_image_card" or data.get("image_chunk"):
            if js not in self.cards:
                self.cards.append(js)
        self.plan.add(self.lines.resp({"cardAttachment": {"jsonData": js}}, tag="final"))

    def tool_card(self, step: int, name: str, args: dict[str, Any], rollout: str | None = None,
                  pretty: bool = False) -> str:
        card_id = self.new_id()
        key = _TOOL_KEYS.get(name, name)
        self.think(_tool_card_xml(card_id, name, args, pretty), "tool_usage_card", step, rollout,
                   toolUsageCardId=card_id, toolUsageCard={"toolUsageCardId": card_id, key: {"args": args}})
        self.steps.append({"text": [_tool_card_xml(card_id, name, args, pretty)], "tags": ["tool_usage_card"],
                           "toolUsageCards": [{"toolUsageCardId": card_id, key: {"args": args}}]})
        return card_id

    def search_results(self, query: str) -> list[dict[str, Any]]:
        slug = "-".join(query.lower().split()[:4]) or "query"
        return [
            {"url": f"https://example.org/{slug}", "title": f"{query} - overview",
             "preview": f"An overview of {query} for the simulator."},
            {"url": f"https://en.wikipedia.org/wiki/{slug}", "title": f"{query} - Wikipedia",
             "preview": f"{query} ... encyclopedia entry."},
        ]

    def register_image(self, image_id: str, w: int = 512, h: int = 512) -> str:
        st, acc = self.req.state, self.req.account
        key = f"users/{acc.user_id}/generated/{image_id}/image.jpg"
        asset = Asset(asset_id=image_id, key=key, mime="image/jpeg", name="image.jpg",
                      create_time=st.clock.now(), source="IMAGINE_SELF_GENERATED_FILE_SOURCE",
                      generated=True, kind="image", size=(w, h))
        st.add_asset(acc, asset)
        part = Asset(asset_id=image_id, key=f"users/{acc.user_id}/generated/{image_id}-part-0/image.jpg",
                     mime="image/jpeg", name="image.jpg", create_time=asset.create_time, generated=True,
                     kind="image_part", size=(w // 4, h // 4))
        st.add_asset(acc, part, listed=False)
        return key


# --------------------------------------------------------------------------- scenarios


def _plain(b: _Builder) -> None:
    b.head()
    b.answer()


def _thinking(b: _Builder) -> None:
    b.head(will_think=True)
    last = _last_line(b.req.message)
    b.think("Thinking about your request", "header", 0)
    b.think(f"- The user wrote: {last}", "summary", 0)
    b.think("Drafting the answer", "header", 1)
    b.think("- Keep it short and echo the prompt.", "summary", 1)
    b.steps += [{"text": ["Thinking about your request"], "tags": ["header"]},
                {"text": ["Drafting the answer"], "tags": ["header"]}]
    b.answer()


def _search(b: _Builder) -> None:
    b.head(will_think=True)
    query = " ".join(_last_line(b.req.message).split()[:6])
    b.think("Thinking about your request", "header", 0)
    b.think(f"- The user wants current information about: {query}", "summary", 0)
    card_id = b.tool_card(1, "web_search", {"query": query, "num_results": 10}, pretty=True)
    results = b.search_results(query)
    b.web_results.extend(results)
    b.plan.add(b.lines.think("", "raw_function_result", 1, toolUsageCardId=card_id,
                             webSearchResults={"results": results}), b._token_delay())
    b.think("Checking sources", "header", 2)
    b.think("- Two sources agree.", "summary", 2)
    _answer_with_citation(b, results[0]["url"])


def _answer_with_citation(b: _Builder, url: str) -> None:
    pieces = answer_tokens(b.req, b.n_tokens)
    half = max(1, len(pieces) // 2) if pieces else 0
    for p in pieces[:half]:
        b.final(p)
    cid = b.short_id()
    b.card({"id": cid, "type": "render_inline_citation", "cardType": "citation_card", "url": url})
    b.final(_render(cid, "citation_card", "render_inline_citation", "citation_id", "0"))
    for p in pieces[half:]:
        b.final(p)


def _citations(b: _Builder) -> None:
    b.head()
    query = " ".join(_last_line(b.req.message).split()[:6])
    results = b.search_results(query)
    b.web_results.extend(results)
    _answer_with_citation(b, results[0]["url"])


def _searched_image(b: _Builder) -> None:
    b.head()
    pieces = answer_tokens(b.req, b.n_tokens)
    if pieces:
        b.final(pieces[0])
    cid = b.short_id()
    img = b.new_id()
    b.card({"id": cid, "type": "render_searched_image", "cardType": "image_card", "image": {
        "title": _last_line(b.req.message)[:40],
        "original": f"{b.req.public_base}/sim-images/{img}.jpg",
        "thumbnail": f"{b.req.public_base}/sim-images/{img}-thumb.jpg",
        "link": f"https://example.org/images/{img}",
    }})
    b.final(_render(cid, "image_card", "render_searched_image", "size", "LARGE"))
    for p in pieces[1:]:
        b.final(p)


def _heavy(b: _Builder) -> None:
    b.rollouts = ["Grok", "Agent 1", "Agent 2", "Agent 3"]
    b.head(will_think=True)
    query = " ".join(_last_line(b.req.message).split()[:6])
    b.think("Planning the research", "header", 0, "Grok")
    b.tool_card(0, "web_search", {"query": query}, rollout="Agent 1")
    b.tool_card(0, "search_images", {"image_description": query}, rollout="Agent 2")
    b.tool_card(1, "chatroom_send", {"to": "Grok", "message": f"Found two sources on {query}."}, rollout="Agent 1")
    b.think("Cross-checking", "header", 0, "Agent 3")
    b.think("- Agent 1 confirmed the sources.", "summary", 1, "Grok")
    for piece in answer_tokens(b.req, b.n_tokens):
        b.plan.add(b.lines.resp({"token": piece}, tag="final", rolloutId="Grok"), b._token_delay())
        b.message_parts.append(piece)
    if b.req.scenario == "heavy_empty":
        b.empty_message = True


def _image(b: _Builder) -> None:
    b.head()
    count = int(b.req.options.get("images", b.req.body.get("imageGenerationCount") or 2))
    count = max(1, min(count, 4))
    b.answer(min(b.n_tokens, 6) if "tokens" not in b.req.options else None)
    ids = [b.new_id() for _ in range(count)]
    uid = b.req.uid
    seqs = {i: 0 for i in range(count)}

    def frame(i: int, progress: int, final: bool) -> None:
        path = f"users/{uid}/generated/{ids[i]}{'' if final else '-part-0'}/image.jpg"
        moderated = b.moderated and final
        b.plan.add(b.lines.resp({"streamingImageGenerationResponse": {
            "imageId": ids[i], "imageUrl": path, "seq": seqs[i], "progress": progress, "imageIndex": i,
            "moderated": moderated,
        }}), b.token_delay)
        seqs[i] += 1

    for progress in (25, 50, 75):
        for i in range(count):
            frame(i, progress, False)
    for i in range(count):
        frame(i, 100, True)
        key = b.register_image(ids[i])
        if not b.moderated:
            b.generated.append(key)


def _image_lite(b: _Builder) -> None:
    b.head()
    count = max(1, min(int(b.req.options.get("images", 2)), 4))
    uid = b.req.uid
    entries = []
    for i in range(count):
        cid = b.short_id()
        image_id = b.new_id()
        entries.append((cid, image_id))
        b.card({"id": cid, "type": "render_file", "cardType": "generated_image_card", "image_chunk": None})
        b.final(_render(cid, "generated_image_card", "render_file", "file_path",
                        f"/home/workdir/artifacts/imagine_images/image_{i}.jpg"))
    for progress in (50, 100):
        for cid, image_id in entries:
            key = f"users/{uid}/generated/{image_id}/image.jpg"
            chunk = {"imageUuid": image_id, "imageUrl": key, "progress": progress,
                     "moderated": b.moderated and progress == 100, "imageModel": "imagine_x_1"}
            b.card({"id": cid, "type": "render_file", "cardType": "generated_image_card", "image_chunk": chunk})
            if progress == 100:
                b.register_image(image_id)
                if not b.moderated:
                    b.generated.append(key)
            b.plan.frames[-1] = (b.token_delay, b.plan.frames[-1][1])


def _video(b: _Builder) -> None:
    req = b.req
    b.head()
    video_id = b.new_id()
    cfg = ((req.body.get("responseMetadata") or {}).get("modelConfigOverride") or {}).get("modelMap") or {}
    vcfg = cfg.get("videoGenModelConfig") or {}
    post_id = vcfg.get("parentPostId") or video_id
    stuck = first(req.faults, ["video_stuck"])
    steps = list(range(0, 101, 10))
    total = float(req.options.get("video_ms", b.opts.video_ms)) / 1000.0
    gap = total / (len(steps) - 1) if total > 0 else 0.0
    uid = req.uid
    base = {"videoId": video_id, "videoPostId": post_id}
    if stuck is not None:
        limit = max(0, min(99, stuck.int_arg(0, 50)))
        steps = sorted({p for p in steps if p < limit} | {limit})
    for progress in steps:
        frame: dict[str, Any] = {**base, "progress": progress, "moderated": False}
        if progress == 100:
            frame["moderated"] = b.moderated
            if not b.moderated:
                video_key = f"users/{uid}/generated/{video_id}/generated_video.mp4"
                thumb_key = f"users/{uid}/generated/{video_id}/preview_image.jpg"
                frame["videoUrl"] = video_key
                frame["thumbnailImageUrl"] = thumb_key
                frame["resolutionName"] = vcfg.get("resolutionName", "480p")
                st, acc = req.state, req.account
                now = st.clock.now()
                seconds = int(vcfg.get("videoLength") or 6)
                st.add_asset(acc, Asset(asset_id=video_id, key=video_key, mime="video/mp4",
                                        name="generated_video.mp4", create_time=now, generated=True,
                                        source="IMAGINE_SELF_GENERATED_FILE_SOURCE", kind="video",
                                        size=(seconds, 0)))
                st.add_asset(acc, Asset(asset_id=video_id, key=thumb_key, mime="image/jpeg",
                                        name="preview_image.jpg", create_time=now, generated=True,
                                        kind="thumbnail"), listed=False)
                acc.videos.add(video_id)
                b.file_attachments.append(video_key)
        b.plan.add(b.lines.resp({"streamingVideoGenerationResponse": frame}), gap if progress else 0.0)
    if stuck is not None:
        b.plan.frames.append((stuck.int_arg(1, 600000) / 1000.0, b""))  # stuck: silence, then the tail


def _artifact(b: _Builder) -> None:
    b.head()
    aid, vid = b.new_id(), b.new_id()
    b.final("Here is the file you asked for:\n")
    b.final(f'<xaiArtifact artifact_id="{aid}" artifact_version_id="{vid}" title="notes.md" '
            f'contentType="text/markdown">\n')
    b.answer()
    b.final("\n</xaiArtifact>")


_BUILDERS = {
    "plain": _plain, "thinking": _thinking, "search": _search, "citations": _citations,
    "searched_image": _searched_image, "heavy": _heavy, "heavy_empty": _heavy, "image": _image,
    "image_lite": _image_lite, "image_moderated": _image, "video": _video, "artifact": _artifact,
}


def usage_limit_stream(req: ChatRequest) -> Plan:
    """Lite image generation on an exhausted account: HTTP 200 with a response-level error."""
    b = _Builder(req)
    b.head()
    b.plan.add(b.lines.resp({
        "error": {"message": USAGE_LIMIT_MESSAGE},
        "cardAttachment": {"jsonData": orjson.dumps({"image_chunk": {"progress": 100,
                                                                     "systemErrCode": "rate_limit"}}).decode()},
    }))
    return b.plan


def build_stream(req: ChatRequest) -> Plan:
    b = _Builder(req)
    _BUILDERS[req.scenario](b)
    plan = b.finish()
    return apply_faults(plan, req)


# --------------------------------------------------------------------------- faults and variants

_ERROR_MESSAGES = {
    7: "Request rejected by anti-bot rules.",
    8: "Too many requests",
    13: "Internal error: stream interrupted",
    14: "Service unavailable",
    16: "Failed to look up session ID. [WKE=unauthenticated:invalid-credentials]",
}


def error_line(code: int) -> bytes:
    return _dumps({"error": {"code": code, "message": _ERROR_MESSAGES.get(code, "Internal error"), "details": []}})


def apply_faults(plan: Plan, req: ChatRequest) -> Plan:
    frames = plan.frames
    for f in req.faults:
        if f.name == "antibot_inband":
            frames = [(0.0, error_line(7))]
        elif f.name == "error_after":
            n = f.int_arg(0, 2)
            frames = frames[:n] + [(0.0, error_line(f.int_arg(1, 13)))]
        elif f.name == "close_after":
            frames = frames[: f.int_arg(0, 2)]
        elif f.name == "reset_after":
            frames = frames[: f.int_arg(0, 2)]
            plan.end = "reset"
        elif f.name == "malformed":
            n = f.int_arg(0, 2)
            kind = f.str_arg(1, "garbage")
            if kind == "truncated":
                whole = frames[n][1] if n < len(frames) else error_line(13)
                frames = frames[:n] + [(0.0, whole[: len(whole) // 2])]
            elif kind == "two_per_line" and n + 1 < len(frames):
                joined = frames[n][1].rstrip(b"\n") + frames[n + 1][1]
                frames = frames[:n] + [(frames[n][0], joined)] + frames[n + 2:]
            else:
                bad = {"garbage": b"<html>oops not json\n", "nonobject": b'["not","an","object"]\n',
                       "unknown_key": b'{"surprise":{"value":1}}\n'}.get(kind, b"<html>oops not json\n")
                frames = frames[:n] + [(0.0, bad)] + frames[n:]
        elif f.name == "stall":
            n = f.int_arg(0, 2)
            pause = f.int_arg(1, 600000) / 1000.0
            if n < len(frames):
                frames[n] = (frames[n][0] + pause, frames[n][1])
            else:
                frames.append((pause, b""))
    variants = set(filter(None, req.options.get("variant", "").split(",")))
    if variants & {"sse", "crlf", "blank_lines", "done"}:
        out = []
        for delay, line in frames:
            if not line:
                out.append((delay, line))
                continue
            body = line.rstrip(b"\n")
            if "sse" in variants:
                body = b"data: " + body
            end = b"\r\n" if "crlf" in variants else b"\n"
            if "blank_lines" in variants or "sse" in variants:
                end += end
            out.append((delay, body + end))
        if "done" in variants or "sse" in variants:
            out.append((0.0, b"data: [DONE]\n\n"))
        frames = out
    plan.frames = frames
    return plan
