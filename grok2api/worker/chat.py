"""One chat completion, end to end: token lease → uploads → Grok stream → OpenAI output.

Failures before the first byte reaches the client are retried on another token
(429/401/blocked/5xx/transport) or after a backoff (Cloudflare/anti-bot), within
``retry.max_retry`` attempts and the ``retry.retry_budget`` seconds of sleeping.
After the first byte a failure ends the stream with an in-band error event and
``[DONE]``. Every ticket is finished exactly once, so the token pool always
learns the outcome and the lease is freed, also when the client disconnects.
"""

from __future__ import annotations

import asyncio
import base64
import logging
import random
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, AsyncIterator

from grok2api.catalog import ModelKind, ModelSpec
from grok2api.actors.media_cache import kind_of
from grok2api.openai.render import ChatRenderer, RenderOptions, assemble_completion, image_alt
from grok2api.openai.schemas import APIError, ChatCompletionRequest
from grok2api.pool.client import NoTokenAvailable, PoolUnavailable, Ticket
from grok2api.pool.leases import OutcomeKind
from grok2api.upstream.chat import ChatStream, VideoOptions, build_chat_payload, open_chat
from grok2api.upstream.errors import ErrorKind, UpstreamError
from grok2api.upstream.messages import FlatPrompt, InvalidMessageError, flatten_messages
from grok2api.worker.attachments import AttachmentError, load_attachment

if TYPE_CHECKING:
    from grok2api.worker.runtime import WorkerRuntime

log = logging.getLogger(__name__)

_OUTCOME = {
    ErrorKind.RATE_LIMITED: OutcomeKind.RATE_LIMITED,
    ErrorKind.AUTH_FAILED: OutcomeKind.AUTH_FAILED,
    ErrorKind.BLOCKED: OutcomeKind.BLOCKED,
    ErrorKind.CLOUDFLARE: OutcomeKind.CLOUDFLARE,
    ErrorKind.ANTI_BOT: OutcomeKind.ANTI_BOT,
}
_BACKOFF_KINDS = frozenset({ErrorKind.CLOUDFLARE, ErrorKind.ANTI_BOT, ErrorKind.SERVER, ErrorKind.TRANSPORT,
                            ErrorKind.IDLE_TIMEOUT})


NO_TOKEN_RETRY_AFTER_S = 30


def outcome_of(exc: UpstreamError) -> OutcomeKind:
    return _OUTCOME.get(exc.kind, OutcomeKind.UPSTREAM)


@dataclass(slots=True)
class PreparedChat:
    request: ChatCompletionRequest
    public_url: str  # where clients reach this gateway (``app.app_url`` or the request's own base URL)
    spec: ModelSpec
    prompt: FlatPrompt
    options: RenderOptions
    stream: bool


class ChatService:
    def __init__(self, runtime: "WorkerRuntime") -> None:
        self.rt = runtime

    # -- request → plan ------------------------------------------------------------------
    def prepare(self, req: ChatCompletionRequest, request_base_url: str = "") -> PreparedChat:
        """Validate what pydantic cannot (model, message parts) and fix the rendering options."""
        spec = self.rt.catalog.get(req.model)
        if spec is None:
            raise APIError.model_not_found(req.model)
        if req.video_config is not None and spec.kind is not ModelKind.VIDEO:
            raise APIError(400, "video_config is only accepted by video models.", "invalid_request_error",
                           "video_config", "invalid_request")
        try:
            prompt = flatten_messages(req.messages, tools_present=bool(req.tools))
        except InvalidMessageError as exc:
            raise APIError(400, exc.message, "invalid_request_error", exc.param, exc.code) from None
        if not prompt.message.strip() and not prompt.attachments:
            raise APIError(400, "The messages contain no text or attachments.", "invalid_request_error",
                           "messages", "invalid_request")
        cfg = self.rt.config
        options = RenderOptions(
            model=req.model,
            show_thinking=req.show_thinking(cfg.app.thinking),
            think_style=cfg.app.think_style,
            filter_tags=tuple(cfg.app.filter_tags),
            include_usage=req.include_usage,
            created=int(time.time()),
            prompt_text=prompt.message,
            video_format=cfg.app.video_format,
            assets_url=cfg.upstream.assets_url,
        )
        stream = cfg.app.stream if req.stream is None else req.stream
        public_url = (cfg.app.app_url or request_base_url).rstrip("/")
        return PreparedChat(req, public_url, spec, prompt, options, stream)

    # -- upstream, with retries ------------------------------------------------------------
    async def open(self, prep: PreparedChat) -> tuple[ChatStream, Ticket]:
        """A preflighted upstream stream on some token, or an :class:`APIError` for the client."""
        retry = self.rt.config.retry
        tried: set[str] = set()
        last: UpstreamError | None = None
        slept = 0.0
        for attempt in range(1, retry.max_retry + 1):
            try:
                ticket = await self.rt.leases.acquire(prep.spec.pools, prep.spec.cost, exclude=tried)
            except NoTokenAvailable as exc:
                if last is not None:
                    raise APIError.from_upstream(last) from None
                # No cooling token to wait for (none in the pools at all): suggest a short wait anyway.
                wait = int(exc.retry_after_s) if exc.retry_after_s else NO_TOKEN_RETRY_AFTER_S
                headers = {"Retry-After": str(max(1, wait))}
                raise APIError(429, "No available tokens. Please try again later.", "rate_limit_error", None,
                               "rate_limit_exceeded", headers=headers) from None
            except PoolUnavailable:
                raise APIError(503, "The token pool is not reachable right now; try again shortly.",
                               "server_error", None, "pool_unavailable", headers={"Retry-After": "2"}) from None
            try:
                stream = await self._open_on(prep, ticket)
                return stream, ticket
            except UpstreamError as exc:
                self.rt.leases.finish(ticket, outcome_of(exc), reason=exc.kind.value, retry_after_s=exc.retry_after)
                last = exc
                log.info("attempt %d on %s failed: %s", attempt, ticket.masked, exc)
                if not self._should_retry(exc, retry.retry_status_codes):
                    raise APIError.from_upstream(exc) from None
                if exc.switch_token:
                    tried.add(ticket.token)
                if exc.kind in _BACKOFF_KINDS and attempt < retry.max_retry:
                    delay = min(retry.retry_backoff_max,
                                retry.retry_backoff_base * retry.retry_backoff_factor ** (attempt - 1))
                    delay = random.uniform(0, delay)
                    if slept + delay > retry.retry_budget:
                        break
                    slept += delay
                    await asyncio.sleep(delay)
            except AttachmentError as exc:
                self.rt.leases.finish(ticket, OutcomeKind.CANCELLED)
                raise APIError(exc.status, exc.message, "invalid_request_error", exc.param, exc.code) from None
            except BaseException:
                self.rt.leases.finish(ticket, OutcomeKind.CANCELLED)
                raise
        assert last is not None
        raise APIError.from_upstream(last)

    @staticmethod
    def _should_retry(exc: UpstreamError, retry_status_codes: list[int]) -> bool:
        if not (exc.switch_token or exc.retryable):
            return False
        if exc.status and exc.status < 500 and exc.status not in retry_status_codes:
            return False
        return True

    async def _open_on(self, prep: PreparedChat, ticket: Ticket) -> ChatStream:
        assert self.rt.upstream is not None
        cfg = self.rt.config
        file_ids = await self._upload_attachments(prep.prompt, ticket)
        req = prep.request
        video = None
        if prep.spec.kind is ModelKind.VIDEO:
            vc = req.video_config
            video = VideoOptions(**vc.model_dump(exclude_none=True)) if vc is not None else VideoOptions()
        payload = build_chat_payload(
            prep.spec,
            prep.prompt.message,
            file_attachments=file_ids,
            temporary=cfg.app.temporary,
            disable_memory=cfg.app.disable_memory,
            temperature=req.temperature,
            top_p=req.top_p,
            reasoning_effort=req.reasoning_effort,
            custom_personality=cfg.app.custom_instruction or None,
            video=video,
        )
        idle = cfg.timeout.video_idle_timeout if video else cfg.timeout.stream_idle_timeout
        return await open_chat(self.rt.upstream, ticket.token, payload, idle_timeout=idle,
                               first_byte_timeout=cfg.chat.timeout)

    async def _upload_attachments(self, prompt: FlatPrompt, ticket: Ticket) -> list[str]:
        if not prompt.attachments:
            return []
        from grok2api.upstream.upload import upload_bytes

        assert self.rt.upstream is not None
        cfg = self.rt.config
        max_bytes = cfg.asset.max_upload_mb * 1024 * 1024
        ids: list[str] = []
        # Files first, then images (the order grok.com's own client uses).
        for att in prompt.files + prompt.images:
            name, mime, data = await load_attachment(att, max_bytes=max_bytes,
                                                     allow_private_hosts=cfg.asset.allow_private_hosts,
                                                     timeout=cfg.asset.download_timeout)
            result = await upload_bytes(self.rt.upstream, ticket.token, name, mime, data, max_bytes=max_bytes)
            ids.append(result.file_id)
        return ids

    # -- output ---------------------------------------------------------------------------
    def _renderer_callbacks(self, prep: PreparedChat, ticket: Ticket) -> tuple[Any, Any]:
        """Image and video URL renderers that go through the MediaCache with the ticket's token."""
        cfg = self.rt.config
        rt = self.rt  # the MediaCache handle is looked up (and the actor started) only for media answers
        app_url = prep.public_url
        fmt = cfg.app.image_format

        async def image(path: str) -> str:
            name = await rt.media.fetch.remote(path, ticket.token)
            alt = image_alt(path)
            if fmt == "base64":
                local = await rt.media.path_of.remote("image", name)
                data = await asyncio.to_thread(Path(local).read_bytes)
                mime = "image/png" if name.endswith(".png") else "image/jpeg"
                return f"![{alt}](data:{mime};base64,{base64.b64encode(data).decode()})"
            return f"![{alt}]({app_url}/v1/files/image/{name})"

        async def asset(path: str) -> str:
            name = await rt.media.fetch.remote(path, ticket.token)
            return f"{app_url}/v1/files/{kind_of(name)}/{name}"

        return image, asset

    async def sse(self, prep: PreparedChat, stream: ChatStream, ticket: Ticket) -> AsyncIterator[bytes]:
        """The SSE body, ending in ``[DONE]``. Finishes the ticket whatever happens (client disconnect too).

        Output is written once per wait on upstream: what was already read (the role chunk with the
        first batch, a whole fast answer with its closing chunks) goes out as one piece, so one
        write and one client read instead of one per event batch.
        """
        image, asset = self._renderer_callbacks(prep, ticket)
        renderer = ChatRenderer(prep.options, image_renderer=image, asset_url=asset)
        kind, reason, retry_after = OutcomeKind.SUCCESS, "", None
        pending = [renderer.start()]
        try:
            try:
                async for batch in stream.batches():
                    out = await renderer.feed_many(batch)
                    if out:
                        pending.append(out)
                    if pending and not stream.ready():
                        piece = b"".join(pending)
                        pending.clear()
                        yield piece
                pending.append(await renderer.finish())
            except UpstreamError as exc:
                kind, reason, retry_after = outcome_of(exc), exc.kind.value, exc.retry_after
                log.info("stream on %s failed after start: %s", ticket.masked, exc)
                pending.append(renderer.error(exc))
            except Exception as exc:  # noqa: BLE001 - the client must still get a clean end
                kind, reason = OutcomeKind.UPSTREAM, type(exc).__name__
                log.exception("stream on %s broke", ticket.masked)
                pending.append(renderer.error(exc))
            yield b"".join(pending)
        except (asyncio.CancelledError, GeneratorExit):
            # The client went away. Grok already counted the query, so the quota is still charged.
            reason = "client_cancelled"
            raise
        finally:
            await self._end(stream, ticket, kind, reason, retry_after)

    async def _end(self, stream: ChatStream, ticket: Ticket, kind: OutcomeKind, reason: str,
                   retry_after: float | None) -> None:
        """Close the upstream stream and report the outcome; the ticket is finished even if closing fails."""
        try:
            await stream.aclose()
        finally:
            self.rt.leases.finish(ticket, kind, reason=reason, retry_after_s=retry_after)

    async def complete(self, prep: PreparedChat, stream: ChatStream, ticket: Ticket) -> dict[str, Any]:
        """The non-streaming ``chat.completion`` body."""
        image, asset = self._renderer_callbacks(prep, ticket)
        kind, reason, retry_after = OutcomeKind.SUCCESS, "", None
        try:
            return await assemble_completion(stream.batches(), prep.options, image, asset)
        except UpstreamError as exc:
            kind, reason, retry_after = outcome_of(exc), exc.kind.value, exc.retry_after
            raise APIError.from_upstream(exc) from None
        except (asyncio.CancelledError, GeneratorExit):
            reason = "client_cancelled"
            raise
        finally:
            await self._end(stream, ticket, kind, reason, retry_after)

