"""``POST /rest/app-chat/conversations/new``: payload builder and the opened chat stream (chat.md §2, §3).

:func:`open_chat` returns only after the HTTP status was checked *and* the first
frames were read ("preflight"), so every failure the gateway can still react to
(401/403/429/5xx, in-band anti-bot or rate-limit first line, empty stream) is
raised as an :class:`UpstreamError` before any byte goes to the client.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, AsyncIterator, Iterable, Literal, Mapping

import orjson

from grok2api.catalog import ModelSpec
from grok2api.upstream.context import UpstreamContext
from grok2api.upstream.errors import ErrorKind, UpstreamError
from grok2api.upstream.stream import (
    Conversation,
    Event,
    FinalMetadata,
    FrameParser,
    ModelResponse,
    SoftStop,
    UserTurn,
)
from grok2api.upstream.curl_stream import CurlStream
from grok2api.upstream.transport import raise_for_status

CHAT_PATH = "/rest/app-chat/conversations/new"

DEVICE_ENV_INFO: dict[str, Any] = {
    "darkModeEnabled": False,
    "devicePixelRatio": 2,
    "screenWidth": 2056,
    "screenHeight": 1329,
    "viewportWidth": 2056,
    "viewportHeight": 1083,
}

VIDEO_PRESET_FLAGS: dict[str, str] = {
    "fun": "--mode=extremely-crazy",
    "normal": "--mode=normal",
    "spicy": "--mode=extremely-spicy-or-crazy",
    "custom": "--mode=custom",
}

DEFAULT_TEMPERATURE = 0.8
DEFAULT_TOP_P = 0.95


@dataclass(slots=True)
class VideoOptions:
    """``videoGenModelConfig`` inputs (media: ``video_config`` of the OpenAI request)."""

    aspect_ratio: Literal["16:9", "9:16", "1:1", "2:3", "3:2"] = "2:3"
    video_length: Literal[6, 10, 15] = 6
    resolution_name: Literal["480p", "720p"] = "480p"
    preset: Literal["fun", "normal", "spicy", "custom"] = "normal"
    parent_post_id: str | None = None


def build_chat_payload(
    spec: ModelSpec,
    message: str,
    *,
    file_attachments: Iterable[str] = (),
    temporary: bool = True,
    disable_memory: bool = True,
    temperature: float | None = None,
    top_p: float | None = None,
    reasoning_effort: str | None = None,
    send_model_config: bool = True,
    tool_overrides: Mapping[str, Any] | None = None,
    custom_personality: str | None = None,
    video: VideoOptions | None = None,
    image_generation_count: int = 2,
    extra: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The full V1-style JSON body (§2.1) with the catalog's model selection (§2.2–2.3).

    ``send_model_config`` adds ``modelConfigOverride`` with ``temperature``/``topP``
    (OpenAI defaults 0.8/0.95 when omitted) and ``reasoningEffort`` when given.
    ``video`` switches on ``toolOverrides.videoGen``, appends the preset flag to
    the message and sends ``modelMap.videoGenModelConfig``.
    """
    if video is not None:
        flag = VIDEO_PRESET_FLAGS.get(video.preset, VIDEO_PRESET_FLAGS["normal"])
        message = f"{message} {flag}" if message else flag
    payload: dict[str, Any] = {
        "deviceEnvInfo": dict(DEVICE_ENV_INFO),
        "disableMemory": disable_memory,
        "disableSearch": False,
        "disableSelfHarmShortCircuit": False,
        "disableTextFollowUps": False,
        "enableImageGeneration": True,
        "enableImageStreaming": True,
        "enableSideBySide": True,
        "fileAttachments": list(file_attachments),
        "forceConcise": False,
        "forceSideBySide": False,
        "imageAttachments": [],
        "imageGenerationCount": image_generation_count,
        "isAsyncChat": False,
        "isReasoning": False,
        "message": message,
    }
    payload.update(spec.selection())
    response_metadata: dict[str, Any] = {}
    if spec.model_name:
        response_metadata["requestModelDetails"] = {"modelId": spec.model_name}
    override: dict[str, Any] = {}
    if video is not None:
        cfg: dict[str, Any] = {
            "aspectRatio": video.aspect_ratio,
            "videoLength": video.video_length,
            "resolutionName": video.resolution_name,
        }
        if video.parent_post_id:
            cfg["parentPostId"] = video.parent_post_id
        override["modelMap"] = {"videoGenModelConfig": cfg}
    elif send_model_config:
        override["temperature"] = DEFAULT_TEMPERATURE if temperature is None else temperature
        override["topP"] = DEFAULT_TOP_P if top_p is None else top_p
        if reasoning_effort is not None:
            override["reasoningEffort"] = reasoning_effort
    if override:
        response_metadata["modelConfigOverride"] = override
    payload["responseMetadata"] = response_metadata
    payload["returnImageBytes"] = False
    payload["returnRawGrokInXaiRequest"] = False
    payload["sendFinalMetadata"] = True
    payload["temporary"] = temporary
    tools: dict[str, Any] = dict(tool_overrides or {})
    if video is not None:
        tools["videoGen"] = True
    payload["toolOverrides"] = tools
    if custom_personality:
        payload["customPersonality"] = custom_personality
    if extra:
        payload.update(extra)
    return payload


class ChatStream:
    """An open, preflighted chat stream.

    Iterate :meth:`batches` (one list of events per upstream read — feed each to
    ``ChatRenderer.feed_many``) or :meth:`events`. Both close the connection at
    the end or on error; call :meth:`aclose` when abandoning early (client gone).
    ``async with`` works too.
    """

    def __init__(self, resp: CurlStream, parser: FrameParser, soft_stop_grace: float = 5.0) -> None:
        self._resp = resp
        self._grace = soft_stop_grace
        self.soft_stopped = False
        self.complete = False  # the answer's end (soft stop / final metadata / modelResponse) was seen
        self._parser = parser
        self._chunks = resp.chunks()
        self._buffer: list[Event] = []
        self.conversation_id: str | None = None
        self.status = resp.status

    @property
    def malformed_lines(self) -> int:
        return self._parser.malformed

    @property
    def frames(self) -> int:
        return self._parser.frames

    async def _preflight(self) -> None:
        """Read until a frame other than ``conversation`` arrived; raise in-band errors / empty stream."""
        p = self._parser
        try:
            while True:
                try:
                    chunk = await self._chunks.__anext__()
                except StopAsyncIteration:
                    self._buffer.extend(p.finish())
                    if p.error is not None:
                        raise p.error
                    if not any(not isinstance(e, Conversation) for e in self._buffer):
                        raise UpstreamError(ErrorKind.SERVER, 200, "upstream stream ended without any frame")
                    return
                self._buffer.extend(p.feed(chunk))
                if p.error is not None:
                    raise p.error
                for e in self._buffer:
                    if isinstance(e, Conversation):
                        self.conversation_id = e.conversation_id
                    else:
                        return
                if p.done:
                    raise UpstreamError(ErrorKind.SERVER, 200, "upstream stream ended without any frame")
        except BaseException:
            await self.aclose()
            raise

    def _note(self, batch: list[Event]) -> None:
        """Watch for the end of the answer: after the soft stop only the tail follows (shorter idle
        timeout), and a stream that never reaches it was cut off."""
        if not self.complete:
            for e in batch:
                kind = type(e)
                if kind is SoftStop or kind is ModelResponse or kind is FinalMetadata:
                    self.complete = True
                if kind is SoftStop:
                    self.soft_stopped = True
                    self._resp.idle_timeout = min(self._resp.idle_timeout, self._grace)
                    break

    def ready(self) -> bool:
        """Whether the next batch (or the end) is already here: reading it would not wait."""
        return bool(self._buffer) or self._parser.done or self._resp.ready()

    async def batches(self) -> AsyncIterator[list[Event]]:
        """Event batches, one per upstream read. Raises :class:`UpstreamError` (in-band, transport, idle)."""
        p = self._parser
        try:
            if self._buffer:
                buf, self._buffer = self._buffer, []
                self._note(buf)
                yield buf
            if p.done:
                return
            try:
                async for chunk in self._chunks:
                    batch = p.feed(chunk)
                    if batch:
                        self._note(batch)
                        yield batch
                    if p.error is not None:
                        raise p.error
                    if p.done:
                        return
            except UpstreamError as exc:
                # a silent tail after the soft stop is not a failure: the answer is complete
                if exc.kind is ErrorKind.IDLE_TIMEOUT and self.soft_stopped:
                    return
                raise
            batch = p.finish()
            if batch:
                self._note(batch)
                yield batch
            if p.error is not None:
                raise p.error
            if not self.complete:
                # The body ended before the answer did (no soft stop, final metadata or modelResponse):
                # a truncated answer must not pass for a complete one.
                raise UpstreamError(ErrorKind.SERVER, 200, "upstream stream ended before the answer was complete")
        finally:
            await self.aclose()

    async def events(self) -> AsyncIterator[Event]:
        async for batch in self.batches():
            for e in batch:
                yield e

    async def aclose(self) -> None:
        await self._resp.aclose()

    async def __aenter__(self) -> "ChatStream":
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()


async def open_chat(ctx: UpstreamContext, token: str, payload: Mapping[str, Any], *, preflight: bool = True,
                    idle_timeout: float | None = None, first_byte_timeout: float | None = None,
                    extra_headers: Mapping[str, str] | None = None) -> ChatStream:
    """Send ``payload`` with ``token`` and return the preflighted :class:`ChatStream`.

    Raises :class:`UpstreamError` (HTTP status, transport, in-band first-frame
    errors). On an anti-bot rejection the statsig provider is invalidated.
    """
    secrets = ctx.secrets(token)
    headers = await ctx.rest_headers(token, "POST", CHAT_PATH)
    if extra_headers:
        headers.update(extra_headers)
    try:
        resp = await ctx.transport.stream("POST", ctx.url(CHAT_PATH), headers=headers, data=orjson.dumps(payload),
                                          idle_timeout=idle_timeout, first_byte_timeout=first_byte_timeout,
                                          secrets=secrets)
        await raise_for_status(resp, *secrets)
        stream = ChatStream(resp, FrameParser(ctx.settings.max_line_bytes), ctx.settings.soft_stop_grace)
        if preflight:
            await stream._preflight()
        return stream
    except UpstreamError as exc:
        if exc.kind is ErrorKind.ANTI_BOT:
            ctx.statsig.invalidate(CHAT_PATH)
        raise


__all__ = ["CHAT_PATH", "ChatStream", "UserTurn", "VideoOptions", "build_chat_payload", "open_chat"]
