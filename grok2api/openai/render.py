"""Grok stream events → OpenAI output (protocol chat.md §4).

:class:`ChatRenderer` turns event batches into SSE bytes for one streaming
request; :class:`CompletionAssembler` runs the *same* state machine but collects
text for a non-streaming ``chat.completion`` (so both answers always agree).

Rules (V1 reference with the later fixes noted in chat.md §4.4):

- first chunk ``delta: {"role": "assistant", "content": ""}``;
- answer tokens → ``delta.content`` after tag filtering (§4.3): tool-usage cards
  become one line (``[WebSearch] q`` / ``[SearchImage] d`` / ``[AgentThink] m``,
  prefixed ``[<rolloutId>]`` in multi-agent streams) with a state machine that
  works across token boundaries; tokens containing another filtered tag
  (``<grok:render``, ``<xaiArtifact`` …, case-insensitive) are dropped;
- thinking → ``delta.reasoning_content`` (``think_style="reasoning_content"``,
  one line per thinking step, leading ``- `` removed) or V1 ``<think>\\n…\\n</think>\\n``
  text (``think_style="think_tags"``, tokens passed through as V1 does); hidden
  entirely when ``show_thinking`` is false; thinking after the answer started is dropped;
- image/video progress lines are thinking; generated images (legacy
  ``modelResponse.generatedImageUrls`` and lite ``image_chunk`` cards, moderated
  ones skipped) are rendered by the caller's async ``image_renderer``;
  searched-image cards become ``![title](original)``; finished videos an HTML
  ``<video>`` tag (or the URL);
- final chunk ``finish_reason: "stop"`` with ``system_fingerprint`` from
  ``llmInfo``; optional usage chunk; ``data: [DONE]``.

Hot path: chunk JSON prefix/suffix bytes are pre-built once per request (rebuilt
only when the fingerprint becomes known) and the text is spliced in as an
orjson-escaped string; consecutive pieces of one field within a ``feed_many``
call are coalesced into a single SSE chunk.
"""

from __future__ import annotations

import re
import random
import time
from typing import Any, Awaitable, Callable, Iterable, Literal

import orjson
from pydantic import BaseModel, ConfigDict

from grok2api.openai.usage import build_usage
from grok2api.upstream.errors import UpstreamError
from grok2api.upstream.stream import (
    Card, Event, ImageProgress, LlmInfo, ModelResponse, SoftStop, TokenEvent, VideoProgress,
)

ImageRenderer = Callable[[str], Awaitable[str]]
"""``async (asset_path) -> text`` inserted for a generated image (markdown, URL, base64 markdown...)."""
AssetUrl = Callable[[str], Awaitable[str]]
"""``async (asset_path) -> url`` of a downloaded asset (videos and their posters)."""

DEFAULT_FILTER_TAGS: tuple[str, ...] = ("xaiartifact", "xai:tool_usage_card", "grok:render")

SSE_DONE = b"data: [DONE]\n\n"  # the last bytes of every OpenAI stream

_CONTENT = 0
_REASONING = 1

_CARD_OPEN = "<xai:tool_usage_card"
_CARD_CLOSE = "</xai:tool_usage_card>"
_TOOL_NAME_RE = re.compile(r"<xai:tool_name>\s*(.*?)\s*</xai:tool_name>", re.S)
_TOOL_ARGS_RE = re.compile(r"<xai:tool_args>\s*(.*?)\s*</xai:tool_args>", re.S)
_CDATA_RE = re.compile(r"<!\[CDATA\[(.*?)\]\]>", re.S)
_ANY_TAG_RE = re.compile(r"<[^>]+>")
_RENDER_RE = re.compile(r"<grok:render\b([^>]*)>.*?</grok:render>|<grok:render\b[^>]*/>", re.S)
_CARD_ID_RE = re.compile(r'card_id="([^"]*)"')


class RenderOptions(BaseModel):
    """Per-request rendering options (built once per request by the worker)."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    model: str
    show_thinking: bool = True
    think_style: Literal["reasoning_content", "think_tags"] = "reasoning_content"
    filter_tags: tuple[str, ...] = DEFAULT_FILTER_TAGS
    include_usage: bool = False
    created: int | None = None
    completion_id: str | None = None
    prompt_text: str = ""  # the flattened prompt, for the usage estimate
    prompt_tokens: int | None = None  # or a precomputed prompt estimate
    video_format: Literal["html", "url"] = "html"
    image_progress_template: str = "generating image {index}, {progress}%"
    video_progress_template: str = "generating video, {progress}%"
    assets_url: str = "https://assets.grok.com"


def new_completion_id() -> str:
    # An identifier, not a secret: the non-cryptographic generator spares a getrandom() call per request.
    return f"chatcmpl-{random.getrandbits(96):024x}"


def image_alt(path: str) -> str:
    """Alt text for a generated image: its id, the second-to-last segment of the asset path."""
    parts = [p for p in path.split("?", 1)[0].split("/") if p]
    return parts[-2] if len(parts) >= 2 else (parts[-1] if parts else "image")


def tool_card_line(card: str, rollout_id: str | None = None) -> str:
    """One display line for a complete ``<xai:tool_usage_card>…</xai:tool_usage_card>`` block (§4.3)."""
    m = _TOOL_NAME_RE.search(card)
    name = m.group(1).strip() if m else ""
    a = _TOOL_ARGS_RE.search(card)
    raw_args = ""
    if a:
        raw_args = a.group(1)
        c = _CDATA_RE.search(raw_args)
        if c:
            raw_args = c.group(1)
        raw_args = raw_args.strip()
    args: Any = None
    if raw_args:
        try:
            args = orjson.loads(raw_args)
        except orjson.JSONDecodeError:
            args = None
    line = ""
    if isinstance(args, dict):
        if name == "web_search":
            q = args.get("query") or args.get("q")
            line = f"[WebSearch] {q}" if q else ""
        elif name == "search_images":
            d = args.get("image_description") or args.get("description") or args.get("query")
            line = f"[SearchImage] {d}" if d else ""
        elif name == "chatroom_send":
            msg = args.get("message")
            line = f"[AgentThink] {msg}" if msg else ""
    if not line and name:
        line = f"{name} {raw_args}".strip()
    if not line:
        line = " ".join(_ANY_TAG_RE.sub(" ", _CDATA_RE.sub(r"\1", card)).split())
    line = line.replace("\r", " ").replace("\n", " ")
    if rollout_id:
        line = f"[{rollout_id}]{line}"
    return line


def _partial_suffix(text: str, tag: str) -> int:
    """Length of the longest suffix of ``text`` that is a proper prefix of ``tag``."""
    start = text.rfind("<", max(0, len(text) - len(tag)))
    if start < 0:
        return 0
    tail = text[start:]
    return len(tail) if tag.startswith(tail) and len(tail) < len(tag) else 0


class _CardMachine:
    """Streams text through, replacing tool-usage cards by one line each, across token boundaries."""

    __slots__ = ("buf", "hold")

    def __init__(self) -> None:
        self.buf: str | None = None  # text of an unterminated card
        self.hold = ""  # a possible partial ``<xai:tool_usage_card`` at the end of the last token

    def feed(self, text: str, rollout_id: str | None) -> str:
        if self.buf is None and not self.hold and "<" not in text:
            return text
        data = self.hold + text if self.hold else text
        self.hold = ""
        out: list[str] = []
        while data:
            if self.buf is not None:
                end = data.find(_CARD_CLOSE)
                if end < 0:
                    self.buf += data
                    break
                card = self.buf + data[:end + len(_CARD_CLOSE)]
                self.buf = None
                data = data[end + len(_CARD_CLOSE):]
                if out and out[-1] and not out[-1].endswith("\n"):
                    out.append("\n")
                out.append(tool_card_line(card, rollout_id) + "\n")
            else:
                start = data.find(_CARD_OPEN)
                if start < 0:
                    k = _partial_suffix(data, _CARD_OPEN)
                    if k:
                        self.hold = data[-k:]
                        data = data[:-k]
                    out.append(data)
                    break
                out.append(data[:start])
                self.buf = ""
                data = data[start:]
        return "".join(out)

    def flush(self) -> str:
        """Text held back at end of stream (a partial tag prefix is plain text after all)."""
        held, self.hold = self.hold, ""
        self.buf = None  # an unterminated card is dropped
        return held


def _sse(obj: Any) -> bytes:
    return b"data: " + orjson.dumps(obj) + b"\n\n"


class ChatRenderer:
    """Streaming converter for one request. Not thread-safe; one instance per request.

    Usage: ``await feed_many(batch)`` for every event batch (returns SSE bytes,
    possibly empty), then ``await finish()``; on an exception after the first
    byte, ``error(exc)`` instead of ``finish()``.
    """

    def __init__(self, options: RenderOptions, image_renderer: ImageRenderer | None = None,
                 asset_url: AssetUrl | None = None) -> None:
        self.options = options
        self.completion_id = options.completion_id or new_completion_id()
        self.created = options.created if options.created is not None else int(time.time())
        self.fingerprint = ""
        self._image_renderer = image_renderer
        self._asset_url = asset_url
        self._show = options.show_thinking
        self._tags_mode = options.think_style == "think_tags"
        tags = tuple(t for t in options.filter_tags if t.lower() != "xai:tool_usage_card")
        self._convert_cards = any(t.lower() == "xai:tool_usage_card" for t in options.filter_tags)
        self._drop_markers = tuple(m for t in tags for m in (f"<{t.lower()}", f"</{t.lower()}"))
        self._cards = _CardMachine()
        self._started = False
        self._finished = False
        self._think_open = False
        self._answer_started = False
        self._reason_key: tuple[Any, ...] | None = None
        self._reason_tail = "\n"
        self._rendered: set[str] = set()  # asset paths / card ids already rendered
        self._final_images: dict[int, str] = {}  # legacy image progress at 100, by index
        self._content_parts: list[str] = []
        self._reasoning_parts: list[str] = []
        self._model_response: ModelResponse | None = None
        # SSE output state
        self._out: list[bytes] = []
        self._pend_field = -1
        self._pend: list[str] = []
        self._build_prefixes()

    # -- output ------------------------------------------------------------
    def _build_prefixes(self) -> None:
        head = orjson.dumps({
            "id": self.completion_id, "object": "chat.completion.chunk", "created": self.created,
            "model": self.options.model, "system_fingerprint": self.fingerprint,
        })[:-1]
        self._head = b"data: " + head
        self._prefix = (
            self._head + b',"choices":[{"index":0,"delta":{"content":',
            self._head + b',"choices":[{"index":0,"delta":{"reasoning_content":',
        )
        self._suffix = b'},"logprobs":null,"finish_reason":null}]}\n\n'

    def _emit(self, field: int, text: str) -> None:
        if field != self._pend_field:
            if self._pend:
                self._flush()
            self._pend_field = field
        self._pend.append(text)
        if field == _CONTENT:
            self._content_parts.append(text)
        else:
            self._reasoning_parts.append(text)

    def _flush(self) -> None:
        text = "".join(self._pend) if len(self._pend) > 1 else self._pend[0]
        self._pend.clear()
        self._out.append(self._prefix[self._pend_field] + orjson.dumps(text) + self._suffix)

    def _take(self) -> bytes:
        if self._pend:
            self._flush()
        if not self._out:
            return b""
        data = b"".join(self._out) if len(self._out) > 1 else self._out[0]
        self._out.clear()
        return data

    def _set_fingerprint(self, fp: str) -> None:
        if fp and fp != self.fingerprint:
            if self._pend:
                self._flush()
            self.fingerprint = fp
            self._build_prefixes()

    def start(self) -> bytes:
        """The role chunk (emitted automatically by the first :meth:`feed_many`)."""
        if self._started:
            return b""
        self._started = True
        return self._head + b',"choices":[{"index":0,"delta":{"role":"assistant","content":""},' \
                            b'"logprobs":null,"finish_reason":null}]}\n\n'

    # -- text channels -----------------------------------------------------
    def _answer(self, text: str) -> None:
        if not text:
            return
        if self._think_open:
            self._emit(_CONTENT, "\n</think>\n")
            self._think_open = False
        self._answer_started = True
        self._emit(_CONTENT, text)

    def _thinking(self, text: str, key: tuple[Any, ...] | None = None, strip_dash: bool = False) -> None:
        """Emit reasoning text. ``key`` identifies the thinking step; a new step starts a new line."""
        if not text:
            return
        if self._tags_mode:
            if not self._think_open:
                self._emit(_CONTENT, "<think>\n")
                self._think_open = True
            self._emit(_CONTENT, text)
            return
        if key is not None and key != self._reason_key:
            if self._reason_key is not None and not self._reason_tail.endswith("\n"):
                self._emit(_REASONING, "\n")
            self._reason_key = key
            if strip_dash and text.startswith("- "):
                text = text[2:]
        self._emit(_REASONING, text)
        self._reason_tail = text[-1]

    def _thinking_line(self, text: str) -> None:
        """A whole line of thinking (progress lines)."""
        if self._tags_mode:
            self._thinking(text + "\n")
            return
        if not self._reason_tail.endswith("\n"):
            self._emit(_REASONING, "\n")
        self._reason_key = None
        self._emit(_REASONING, text + "\n")
        self._reason_tail = "\n"

    def _filtered(self, text: str, rollout_id: str | None) -> str:
        if self._convert_cards:
            text = self._cards.feed(text, rollout_id)
            if not text:
                return text
        markers = self._drop_markers
        if markers and "<" in text:
            low = text.lower()
            for m in markers:
                if m in low:
                    return ""
        return text

    # -- events ------------------------------------------------------------
    async def _token(self, ev: TokenEvent) -> None:
        thinking = ev.thinking or bool(ev.step_id)
        if thinking:
            if not self._show or self._answer_started:
                return
            text = self._filtered(ev.text, ev.rollout_id)
            if text:
                tag = ev.tag
                self._thinking(text, (ev.rollout_id, ev.step_id, tag), tag in ("header", "summary", None))
        else:
            text = self._filtered(ev.text, ev.rollout_id)
            if text:
                self._answer(text)

    async def _render_image(self, path: str) -> None:
        if path in self._rendered:
            return
        self._rendered.add(path)
        if self._image_renderer is not None:
            try:
                text = await self._image_renderer(path)
            except Exception:
                text = self._default_image(path)
        else:
            text = self._default_image(path)
        if text:
            self._answer_block(text + "\n")

    def _answer_block(self, text: str) -> None:
        """Answer text that must start on its own line (generated images, videos)."""
        parts = self._content_parts
        if self._answer_started and parts and not parts[-1].endswith("\n") and not self._think_open:
            text = "\n" + text
        self._answer(text)

    def _asset_abs(self, path: str) -> str:
        if path.startswith(("http://", "https://")):
            return path
        return f"{self.options.assets_url.rstrip('/')}/{path.lstrip('/')}"

    def _default_image(self, path: str) -> str:
        return f"![{image_alt(path)}]({self._asset_abs(path)})"

    async def _url(self, path: str) -> str:
        if self._asset_url is not None:
            try:
                return await self._asset_url(path)
            except Exception:
                pass
        return self._asset_abs(path)

    async def _card(self, ev: Card) -> None:
        si = ev.searched_image
        if si is not None:
            key = "card:" + (ev.card_id or si[1])
            if key in self._rendered:
                return
            self._rendered.add(key)
            title = " ".join(si[0].split()) or "image"
            self._answer(f"![{title}]({si[1]})\n")
            return
        path = ev.generated_image
        if path:
            await self._render_image(path)

    async def _image_progress(self, ev: ImageProgress) -> None:
        if ev.progress >= 100 and ev.url and not ev.moderated:
            self._final_images[ev.image_index] = ev.url
        if self._show:  # shown even after answer text started (V1 behaviour)
            self._thinking_line(self.options.image_progress_template.format(
                index=ev.image_index + 1, progress=ev.progress))

    async def _video(self, ev: VideoProgress) -> None:
        if ev.progress < 100 or not ev.video_url:
            if self._show:
                self._thinking_line(self.options.video_progress_template.format(progress=ev.progress))
            return
        if ev.moderated or ev.video_url in self._rendered:
            return
        self._rendered.add(ev.video_url)
        if self._show:
            self._thinking_line(self.options.video_progress_template.format(progress=100))
        url = await self._url(ev.video_url)
        if self.options.video_format == "html":
            poster = await self._url(ev.thumbnail_url) if ev.thumbnail_url else ""
            attr = f' poster="{poster}"' if poster else ""
            self._answer_block(f'<video src="{url}" controls="controls"{attr}></video>\n')
        else:
            self._answer_block(url + "\n")

    async def _model_resp(self, ev: ModelResponse) -> None:
        self._model_response = ev
        if ev.model_hash:
            self._set_fingerprint(ev.model_hash)
        if not self._answer_started and ev.message:
            # no answer tokens were streamed (e.g. multi-agent): fall back to the stored message
            text = filter_text(ev.message, self.options.filter_tags, _cards_from_json(ev.card_attachments))
            if text:
                self._answer(text)
        for url in ev.generated_image_urls:
            await self._render_image(url)

    async def _dispatch(self, ev: Event) -> None:
        t = type(ev)
        if t is TokenEvent:
            await self._token(ev)  # type: ignore[arg-type]
        elif t is Card:
            await self._card(ev)  # type: ignore[arg-type]
        elif t is ImageProgress:
            await self._image_progress(ev)  # type: ignore[arg-type]
        elif t is VideoProgress:
            await self._video(ev)  # type: ignore[arg-type]
        elif t is LlmInfo:
            if not self.fingerprint:
                self._set_fingerprint(ev.model_hash)  # type: ignore[union-attr]
        elif t is ModelResponse:
            await self._model_resp(ev)  # type: ignore[arg-type]
        elif t is SoftStop:
            pass

    async def feed_many(self, events: Iterable[Event]) -> bytes:
        """SSE bytes for a batch of events (the role chunk is prepended on the first call)."""
        head = self.start() if not self._started else b""
        for ev in events:
            if type(ev) is TokenEvent and self._fast_ok(ev):  # type: ignore[arg-type]
                self._answer(ev.text)  # type: ignore[union-attr]
                continue
            await self._dispatch(ev)
        body = self._take()
        return head + body if head else body

    def _fast_ok(self, ev: TokenEvent) -> bool:
        """A plain answer token that needs no filtering."""
        return (not ev.thinking and not ev.step_id and "<" not in ev.text and self._cards.buf is None
                and not self._cards.hold and not self._think_open and bool(ev.text))

    async def feed(self, event: Event) -> bytes:
        return await self.feed_many((event,))

    async def _close_text(self) -> None:
        held = self._cards.flush()
        if held:
            self._answer(held)
        if self._model_response is None:
            # legacy images never confirmed by a modelResponse
            for _, url in sorted(self._final_images.items()):
                await self._render_image(url)
        if self._think_open:
            self._emit(_CONTENT, "</think>\n")
            self._think_open = False

    # -- end of stream -------------------------------------------------------
    async def finish(self) -> bytes:
        """Closing bytes: any open think block, the ``stop`` chunk, optional usage chunk, ``[DONE]``."""
        if self._finished:
            return b""
        self._finished = True
        head = self.start()
        await self._close_text()
        body = self._take()
        stop = self._head + b',"choices":[{"index":0,"delta":{},"logprobs":null,"finish_reason":"stop"}]}\n\n'
        parts = [head, body, stop]
        if self.options.include_usage:
            usage = self.usage()
            parts.append(self._head + b',"choices":[],"usage":' + orjson.dumps(usage) + b"}\n\n")
        parts.append(SSE_DONE)
        return b"".join(parts)

    def error(self, exc: BaseException) -> bytes:
        """An in-band SSE error event plus ``[DONE]`` for a failure after streaming began."""
        self._finished = True
        pending = self._take()
        if isinstance(exc, UpstreamError):
            body = exc.openai_error()
        else:
            body = {"error": {"message": "internal error while streaming", "type": "server_error",
                              "param": None, "code": "internal_error"}}
        return pending + _sse(body) + SSE_DONE

    # -- accessors -----------------------------------------------------------
    @property
    def content(self) -> str:
        return "".join(self._content_parts)

    @property
    def reasoning(self) -> str:
        return "".join(self._reasoning_parts)

    def usage(self) -> dict[str, Any]:
        return build_usage(self.options.prompt_text, self.content, self.reasoning,
                           prompt_tokens=self.options.prompt_tokens)


def _cards_from_json(items: Iterable[str]) -> dict[str, dict[str, Any]]:
    cards: dict[str, dict[str, Any]] = {}
    for s in items:
        try:
            d = orjson.loads(s)
        except (orjson.JSONDecodeError, TypeError):
            continue
        if isinstance(d, dict) and d.get("id"):
            cards[str(d["id"])] = d
    return cards


def filter_text(text: str, filter_tags: Iterable[str] = DEFAULT_FILTER_TAGS,
                cards: dict[str, dict[str, Any]] | None = None) -> str:
    """Non-streaming tag filtering of a whole text (§4.3, §4.10).

    ``<grok:render card_id=X>`` spans become ``![title](original)`` when card X is a
    searched image (with a newline first if not at line start), else are removed;
    tool-usage cards become their one-line form; other listed tags lose their
    markup (case-insensitive) but keep the text between them.
    """
    tags = [t.lower() for t in filter_tags]
    if "grok:render" in tags or cards:
        def repl(m: re.Match[str]) -> str:
            cid = _CARD_ID_RE.search(m.group(0))
            card = (cards or {}).get(cid.group(1)) if cid else None
            img = card.get("image") if isinstance(card, dict) else None
            if isinstance(img, dict) and img.get("original"):
                title = " ".join(str(img.get("title") or "image").split())
                start = m.start()
                nl = "" if start == 0 or m.string[start - 1] == "\n" else "\n"
                return f"{nl}![{title}]({img['original']})"
            return ""
        text = _RENDER_RE.sub(repl, text)
    if "xai:tool_usage_card" in tags and _CARD_OPEN in text:
        m = _CardMachine()
        text = m.feed(text, None) + m.flush()
    for t in tags:
        if t in ("grok:render", "xai:tool_usage_card"):
            continue
        text = re.sub(rf"</?{re.escape(t)}\b[^>]*>", "", text, flags=re.I)
    return text


class CompletionAssembler(ChatRenderer):
    """Non-streaming: the same state machine as :class:`ChatRenderer`, collecting text (§4.10)."""

    def _emit(self, field: int, text: str) -> None:
        if field == _CONTENT:
            self._content_parts.append(text)
        else:
            self._reasoning_parts.append(text)

    def _take(self) -> bytes:
        return b""

    def _set_fingerprint(self, fp: str) -> None:
        if fp and fp != self.fingerprint:
            self.fingerprint = fp

    async def result(self) -> dict[str, Any]:
        """The ``chat.completion`` object."""
        if not self._finished:
            self._finished = True
            await self._close_text()
        content = self.content
        message: dict[str, Any] = {"role": "assistant", "content": content}
        reasoning = self.reasoning
        if reasoning and self._show:
            message["reasoning_content"] = reasoning
        message["refusal"] = None
        message["annotations"] = []
        return {
            "id": self.completion_id,
            "object": "chat.completion",
            "created": self.created,
            "model": self.options.model,
            "system_fingerprint": self.fingerprint,
            "choices": [{"index": 0, "message": message, "logprobs": None, "finish_reason": "stop"}],
            "usage": self.usage(),
        }


async def assemble_completion(batches: Any, options: RenderOptions, image_renderer: ImageRenderer | None = None,
                              asset_url: AssetUrl | None = None) -> dict[str, Any]:
    """Read a whole stream (async iterable of event batches or events, or a plain iterable) into a
    ``chat.completion`` dict. In-band upstream errors propagate as :class:`UpstreamError`."""
    asm = CompletionAssembler(options, image_renderer, asset_url)
    if hasattr(batches, "__aiter__"):
        async for item in batches:
            await asm.feed_many(item if isinstance(item, list) else (item,))
    else:
        for item in batches:
            await asm.feed_many(item if isinstance(item, list) else (item,))
    return await asm.result()


__all__ = [
    "AssetUrl", "ChatRenderer", "CompletionAssembler", "DEFAULT_FILTER_TAGS", "ImageRenderer", "RenderOptions",
    "SSE_DONE", "assemble_completion", "filter_text", "new_completion_id", "tool_card_line",
]
