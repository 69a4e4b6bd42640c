"""The chat stream reader: NDJSON bytes → light typed events (protocol chat.md §3).

Hot path. Events are ``__slots__`` dataclasses, not pydantic models. The reader
works on raw chunks: it splits lines itself, parses with ``orjson`` and returns
one *batch* (list of events) per upstream read, so the renderer can coalesce
several tokens into one SSE chunk.

Robustness (§3.1): ``data:`` prefixes, ``event:`` lines, ``[DONE]``, blank lines,
CRLF, two objects on one line, malformed lines (skipped and counted), a trailing
object without newline. In-band errors (top-level ``error``, response-level
``error``, ``modelResponse.streamErrors``) become :class:`UpstreamError` — raised
*after* the events that preceded them in the same read have been delivered.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, AsyncIterator, Iterable

import orjson

from grok2api.upstream.errors import ErrorKind, UpstreamError, classify_inband, classify_stream_errors


# ---------------------------------------------------------------------------
# Events
# ---------------------------------------------------------------------------
@dataclass(slots=True)
class Conversation:
    conversation_id: str


@dataclass(slots=True)
class UserTurn:
    response_id: str


@dataclass(slots=True)
class TokenEvent:
    """A piece of thinking or answer text."""

    text: str
    thinking: bool = False
    tag: str | None = None  # messageTag: final | header | summary | tool_usage_card | raw_function_result ...
    step_id: int | None = None
    rollout_id: str | None = None
    response_id: str | None = None


@dataclass(slots=True)
class SoftStop:
    response_id: str | None = None


@dataclass(slots=True)
class ImageProgress:
    """Legacy ``streamingImageGenerationResponse``."""

    image_id: str
    image_index: int
    progress: int
    url: str | None
    moderated: bool = False


@dataclass(slots=True)
class VideoProgress:
    """``streamingVideoGenerationResponse``; at 100 carries ``video_url`` and ``thumbnail_url``."""

    video_id: str
    progress: int
    video_url: str | None = None
    thumbnail_url: str | None = None
    moderated: bool = False


@dataclass(slots=True)
class Card:
    """A ``cardAttachment`` (parsed ``jsonData``)."""

    card_id: str
    type: str  # render_inline_citation | render_searched_image | render_file | render_generated_image ...
    card_type: str
    data: dict[str, Any]

    @property
    def searched_image(self) -> tuple[str, str] | None:
        """(title, original URL) of a searched-image card."""
        img = self.data.get("image")
        if isinstance(img, dict):
            orig = img.get("original")
            if orig:
                return str(img.get("title") or "image"), str(orig)
        return None

    @property
    def image_chunk(self) -> dict[str, Any] | None:
        c = self.data.get("image_chunk") or self.data.get("imageChunk")
        return c if isinstance(c, dict) else None

    @property
    def generated_image(self) -> str | None:
        """Asset path of a finished, not moderated lite generated image."""
        c = self.image_chunk
        if not c or c.get("moderated") or c.get("progress") != 100:
            return None
        url = c.get("imageUrl") or c.get("image_url")
        return str(url) if url else None


@dataclass(slots=True)
class SearchResults:
    results: list[dict[str, Any]]
    tool_card_id: str | None = None


@dataclass(slots=True)
class LlmInfo:
    model_hash: str


@dataclass(slots=True)
class UiLayout:
    rollout_ids: list[str]
    will_think_long: bool = False


@dataclass(slots=True)
class FinalMetadata:
    data: dict[str, Any]


@dataclass(slots=True)
class ModelResponse:
    """The stored assistant turn near the end of the stream (§3.4)."""

    response_id: str
    message: str
    generated_image_urls: list[str] = field(default_factory=list)
    card_attachments: list[str] = field(default_factory=list)  # JSON strings
    file_attachments: list[str] = field(default_factory=list)
    model_hash: str | None = None
    raw: dict[str, Any] = field(default_factory=dict)


@dataclass(slots=True)
class Title:
    title: str


Event = (Conversation | UserTurn | TokenEvent | SoftStop | ImageProgress | VideoProgress | Card | SearchResults
         | LlmInfo | UiLayout | FinalMetadata | ModelResponse | Title)


# ---------------------------------------------------------------------------
# Frame → events
# ---------------------------------------------------------------------------
def _image_urls(obj: Any, out: list[str], seen: set[str]) -> None:
    """Collect ``generatedImageUrls``/``imageUrls``/``imageURLs`` anywhere inside ``obj``."""
    if isinstance(obj, dict):
        for k, v in obj.items():
            if k in ("generatedImageUrls", "imageUrls", "imageURLs") and isinstance(v, list):
                for u in v:
                    if isinstance(u, str) and u and u not in seen:
                        seen.add(u)
                        out.append(u)
            elif isinstance(v, (dict, list)):
                _image_urls(v, out, seen)
    elif isinstance(obj, list):
        for v in obj:
            if isinstance(v, (dict, list)):
                _image_urls(v, out, seen)


def _model_response(mr: dict[str, Any]) -> ModelResponse:
    urls: list[str] = []
    _image_urls(mr, urls, set())
    md = mr.get("metadata")
    mh = None
    if isinstance(md, dict):
        li = md.get("llm_info") or md.get("llmInfo")
        if isinstance(li, dict):
            mh = li.get("modelHash")
    cards = mr.get("cardAttachmentsJson") or []
    files = mr.get("fileAttachments") or []
    return ModelResponse(
        response_id=str(mr.get("responseId") or ""),
        message=str(mr.get("message") or ""),
        generated_image_urls=urls,
        card_attachments=[c if isinstance(c, str) else orjson.dumps(c).decode() for c in cards],
        file_attachments=[f for f in files if isinstance(f, str)],
        model_hash=mh,
        raw=mr,
    )


def _card(ca: Any) -> Card | None:
    if not isinstance(ca, dict):
        return None
    jd = ca.get("jsonData")
    if isinstance(jd, str):
        try:
            jd = orjson.loads(jd)
        except orjson.JSONDecodeError:
            return None
    if not isinstance(jd, dict):
        return None
    return Card(str(jd.get("id") or ""), str(jd.get("type") or ""), str(jd.get("cardType") or ""), jd)


_TOKEN_KEYS = frozenset({"token", "isThinking", "isSoftStop", "responseId", "messageTag", "messageStepId",
                         "rolloutId", "toolUsageCardId", "toolUsageCard"})


def frame_events(obj: Any, out: list[Event]) -> None:
    """Append the events of one parsed stream object to ``out``; raise on in-band errors."""
    if not isinstance(obj, dict):
        raise ValueError("frame is not an object")
    res = obj.get("result")
    if res is None:
        err = obj.get("error")
        if err is not None:
            raise classify_inband(err)
        return  # unknown top-level key: ignore
    if not isinstance(res, dict):
        return
    resp = res.get("response")
    if resp is None:
        conv = res.get("conversation")
        if isinstance(conv, dict):
            out.append(Conversation(str(conv.get("conversationId") or "")))
            return
        title = res.get("title")
        if isinstance(title, dict):
            out.append(Title(str(title.get("newTitle") or "")))
            return
        if "token" in res or "modelResponse" in res:  # flat follow-up form (§2.8)
            resp = res
        else:
            return
    if not isinstance(resp, dict):
        return

    # Fast path: a plain token frame.
    tok = resp.get("token")
    if tok is not None and resp.keys() <= _TOKEN_KEYS:
        get = resp.get
        if get("isSoftStop"):
            if tok:
                out.append(TokenEvent(tok, get("isThinking") is True, get("messageTag"), get("messageStepId"),
                                      get("rolloutId"), get("responseId")))
            out.append(SoftStop(get("responseId")))
            return
        if tok:
            out.append(TokenEvent(tok, get("isThinking") is True, get("messageTag"), get("messageStepId"),
                                  get("rolloutId"), get("responseId")))
        return

    err = resp.get("error")
    if err:
        raise classify_inband(err)

    ur = resp.get("userResponse")
    if isinstance(ur, dict):
        out.append(UserTurn(str(ur.get("responseId") or resp.get("responseId") or "")))
        return
    ui = resp.get("uiLayout")
    if isinstance(ui, dict):
        out.append(UiLayout([str(r) for r in ui.get("rolloutIds") or []], bool(ui.get("willThinkLong"))))
    li = resp.get("llmInfo")
    if isinstance(li, dict) and li.get("modelHash"):
        out.append(LlmInfo(str(li["modelHash"])))
    img = resp.get("streamingImageGenerationResponse")
    if isinstance(img, dict):
        out.append(ImageProgress(
            str(img.get("imageId") or img.get("imageUuid") or ""), int(img.get("imageIndex") or 0),
            int(img.get("progress") or 0), img.get("imageUrl"), bool(img.get("moderated")),
        ))
    vid = resp.get("streamingVideoGenerationResponse")
    if isinstance(vid, dict):
        out.append(VideoProgress(
            str(vid.get("videoId") or ""), int(vid.get("progress") or 0), vid.get("videoUrl") or None,
            vid.get("thumbnailImageUrl") or None, bool(vid.get("moderated")),
        ))
    ca = resp.get("cardAttachment")
    if ca is not None:
        card = _card(ca)
        if card is not None:
            out.append(card)
    for ca in resp.get("cardAttachments") or ():
        card = _card(ca)
        if card is not None:
            out.append(card)
    wsr = resp.get("webSearchResults")
    if isinstance(wsr, dict) and isinstance(wsr.get("results"), list):
        out.append(SearchResults(wsr["results"], resp.get("toolUsageCardId")))
    if tok is not None:
        if tok:
            out.append(TokenEvent(tok, bool(resp.get("isThinking")), resp.get("messageTag"),
                                  resp.get("messageStepId"), resp.get("rolloutId"), resp.get("responseId")))
        if resp.get("isSoftStop"):
            out.append(SoftStop(resp.get("responseId")))
    fm = resp.get("finalMetadata")
    if isinstance(fm, dict):
        out.append(FinalMetadata(fm))
    mr = resp.get("modelResponse")
    if isinstance(mr, dict):
        se = mr.get("streamErrors")
        if se:
            raise classify_stream_errors(se)
        out.append(_model_response(mr))


# ---------------------------------------------------------------------------
# Bytes → objects
# ---------------------------------------------------------------------------
def split_objects(line: bytes) -> list[Any]:
    """Balanced ``{...}`` objects found in ``line`` (text between objects is ignored)."""
    objs: list[Any] = []
    depth = 0
    start = -1
    in_str = False
    esc = False
    for i, b in enumerate(line):
        if in_str:
            if esc:
                esc = False
            elif b == 0x5C:  # backslash
                esc = True
            elif b == 0x22:
                in_str = False
            continue
        if b == 0x22:
            if depth:
                in_str = True
        elif b == 0x7B:
            if depth == 0:
                start = i
            depth += 1
        elif b == 0x7D and depth:
            depth -= 1
            if depth == 0:
                try:
                    objs.append(orjson.loads(line[start:i + 1]))
                except orjson.JSONDecodeError:
                    pass
    return objs


class FrameParser:
    """Incremental NDJSON parser. Feed raw chunks, get event batches."""

    __slots__ = ("_pending", "malformed", "done", "frames", "max_line", "_error")

    def __init__(self, max_line_bytes: int = 8 * 1024 * 1024) -> None:
        self._pending = b""
        self.malformed = 0
        self.frames = 0
        self.done = False  # saw ``[DONE]``
        self.max_line = max_line_bytes
        self._error: UpstreamError | None = None

    @property
    def error(self) -> UpstreamError | None:
        """An in-band error seen in the last :meth:`feed`, to raise after delivering its events."""
        return self._error

    def _line(self, line: bytes, out: list[Event]) -> None:
        line = line.strip()
        if not line:
            return
        if line[0] != 0x7B:  # not '{'
            if line.startswith(b"data:"):
                line = line[5:].strip()
                if not line:
                    return
            if line == b"[DONE]":
                self.done = True
                return
            if line.startswith(b"event:") or line.startswith(b":"):
                return
        try:
            obj = orjson.loads(line)
        except orjson.JSONDecodeError:
            objs = split_objects(line)
            if not objs:
                self.malformed += 1
                return
            for o in objs:
                self._obj(o, out)
            return
        self._obj(obj, out)

    def _obj(self, obj: Any, out: list[Event]) -> None:
        if not isinstance(obj, dict):
            self.malformed += 1
            return
        self.frames += 1
        frame_events(obj, out)

    def feed(self, chunk: bytes) -> list[Event]:
        """Events of every complete line in ``chunk`` (plus buffered bytes).

        An in-band error stops parsing: the events before it are returned and
        the error is available in :attr:`error` (see :meth:`StreamReader`).
        """
        out: list[Event] = []
        if self.done or self._error is not None:
            return out
        data = self._pending + chunk if self._pending else chunk
        lines = data.split(b"\n")
        self._pending = lines.pop()
        if len(self._pending) > self.max_line:
            self._pending = b""
            self.malformed += 1
        loads = orjson.loads
        try:
            for line in lines:
                if line[:1] == b"{":  # fast path: a bare NDJSON object (orjson skips a trailing \r)
                    try:
                        obj = loads(line)
                    except orjson.JSONDecodeError:
                        self._line(line, out)
                        continue
                    if type(obj) is dict:
                        self.frames += 1
                        frame_events(obj, out)
                    else:
                        self.malformed += 1
                else:
                    self._line(line, out)
                    if self.done:
                        break
        except UpstreamError as exc:
            self._error = exc
        except ValueError:
            self.malformed += 1
        return out

    def finish(self) -> list[Event]:
        """Parse whatever is left after EOF (a last line without newline)."""
        out: list[Event] = []
        rest, self._pending = self._pending, b""
        if rest and not self.done and self._error is None:
            try:
                self._line(rest, out)
            except UpstreamError as exc:
                self._error = exc
        return out


def parse_bytes(data: bytes) -> list[Event]:
    """All events of a complete stream body (tests, non-streaming helpers). Raises in-band errors."""
    p = FrameParser()
    events = p.feed(data)
    if p.error:
        raise p.error
    events.extend(p.finish())
    if p.error:
        raise p.error
    return events


async def read_batches(chunks: AsyncIterator[bytes], parser: FrameParser | None = None
                       ) -> AsyncIterator[list[Event]]:
    """Event batches, one per upstream read that produced events; raises in-band errors in order."""
    p = parser or FrameParser()
    async for chunk in chunks:
        batch = p.feed(chunk)
        if batch:
            yield batch
        if p.error is not None:
            raise p.error
        if p.done:
            return
    batch = p.finish()
    if batch:
        yield batch
    if p.error is not None:
        raise p.error


def iter_events(batches: Iterable[list[Event]]) -> Iterable[Event]:
    for b in batches:
        yield from b


__all__ = [
    "Card", "Conversation", "ErrorKind", "Event", "FinalMetadata", "FrameParser", "ImageProgress", "LlmInfo",
    "ModelResponse", "SearchResults", "SoftStop", "Title", "TokenEvent", "UiLayout", "UserTurn",
    "VideoProgress", "frame_events", "parse_bytes", "read_batches", "split_objects",
]
