"""The upstream client against the Grok simulator over real sockets (no mocks)."""

from __future__ import annotations

import asyncio
import base64
import struct
import time
import zlib
from pathlib import Path
from typing import AsyncIterator

import pytest

from grok2api.catalog import CATALOG
from grok2api.openai.render import ChatRenderer, RenderOptions, assemble_completion
from grok2api.upstream import (
    ErrorKind, GrokClient, UpstreamError, UpstreamSettings, build_chat_payload, flatten_messages,
)
from grok2api.upstream.chat import VideoOptions
from grok2api.upstream.stream import ModelResponse, TokenEvent


def png_bytes(w: int = 32, h: int = 32) -> bytes:
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
    raw = b"".join(b"\x00" + bytes([(x * 7 + y * 3) % 256 for x in range(w * 3)]) for y in range(h))
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))


@pytest.fixture
async def client(sim) -> AsyncIterator[GrokClient]:
    c = GrokClient(UpstreamSettings(base_url=sim.base_url, assets_url=sim.assets_url,
                                    accounts_url=sim.accounts_url, idle_timeout=1.5, first_byte_timeout=3.0,
                                    connect_timeout=3.0))
    try:
        yield c
    finally:
        await c.aclose()


def payload(model: str, text: str, **kw) -> dict:
    return build_chat_payload(CATALOG.get(model), flatten_messages([{"role": "user", "content": text}]).message,
                              **kw)


async def stream_sse(client: GrokClient, token: str, body: dict, **opts) -> tuple[bytes, ChatRenderer]:
    stream = await client.open_chat(token, body)
    r = ChatRenderer(RenderOptions(model="grok-test", **opts))
    out = b""
    try:
        async for batch in stream.batches():
            out += await r.feed_many(batch)
        out += await r.finish()
    except UpstreamError as exc:
        out += r.error(exc)
    return out, r


async def test_plain_chat_stream_end_to_end(sim, client: GrokClient) -> None:
    sim.add_token("tok-plain")
    out, r = await stream_sse(client, "tok-plain", payload("grok-4.1-fast", "Say hello"), include_usage=True)
    text = out.decode()
    assert text.startswith("data: {") and text.endswith("data: [DONE]\n\n")
    assert '"delta":{"role":"assistant","content":""}' in text
    assert '"finish_reason":"stop"' in text and '"usage":{' in text
    assert "Say hello" in r.content
    assert r.fingerprint  # from llmInfo
    (req,) = sim.requests(path="/rest/app-chat/conversations/new")
    h = {k.lower(): v for k, v in req["headers"].items()}
    assert "sso=tok-plain" in h["cookie"] and "sso-rw=tok-plain" in h["cookie"]
    assert base64.b64decode(h["x-statsig-id"]).startswith(b"x1:")
    assert h["origin"] == sim.base_url and h["referer"] == sim.base_url + "/"
    assert req["json"]["modeId"] == "fast" and req["json"]["message"] == "Say hello"


async def test_thinking_stream_has_reasoning(sim, client: GrokClient) -> None:
    sim.add_token("tok-think", plan="super")
    out, r = await stream_sse(client, "tok-think", payload("grok-4.1-expert", "Why is the sky blue?"))
    assert r.reasoning and r.content
    assert b'"reasoning_content":' in out
    out2, r2 = await stream_sse(client, "tok-think", payload("grok-4.1-expert", "Why is the sky blue?"),
                                think_style="think_tags")
    assert r2.content.startswith("<think>\n") and "\n</think>\n" in r2.content
    out3, r3 = await stream_sse(client, "tok-think", payload("grok-4.1-expert", "Why?"), show_thinking=False)
    assert not r3.reasoning and "<think>" not in r3.content and r3.content


async def test_non_streaming_assembly(sim, client: GrokClient) -> None:
    sim.add_token("tok-ns")
    stream = await client.open_chat("tok-ns", payload("grok-4.1-fast", "Say hi"))
    result = await assemble_completion(stream.batches(), RenderOptions(model="grok-4.1-fast", prompt_text="Say hi"))
    assert result["object"] == "chat.completion"
    msg = result["choices"][0]["message"]
    assert "Say hi" in msg["content"] and result["choices"][0]["finish_reason"] == "stop"
    assert result["usage"]["prompt_tokens"] > 4 and result["usage"]["completion_tokens"] > 0


async def test_image_generation_renders_through_callback(sim, client: GrokClient, tmp_path: Path) -> None:
    sim.add_token("tok-img")
    seen: list[str] = []

    async def render(path: str) -> str:
        dl = await client.download_asset("tok-img", path, tmp_path / path.replace("/", "-"))
        seen.append(path)
        assert dl.size > 100 and dl.content_type.startswith("image/")
        return f"![image](/v1/files/image/{path})"

    stream = await client.open_chat("tok-img", payload("grok-4", "generate an image of a fox"))
    r = ChatRenderer(RenderOptions(model="grok-4"), image_renderer=render)
    async for batch in stream.batches():
        await r.feed_many(batch)
    await r.finish()
    assert seen and all(f"![image](/v1/files/image/{p})" in r.content for p in seen)
    assert "generating image 1" in r.reasoning


async def test_lite_image_cards(sim, client: GrokClient) -> None:
    sim.add_token("tok-lite")
    out, r = await stream_sse(client, "tok-lite", payload("grok-imagine-image-lite", "Drawing: a red fox"))
    assert "![" in r.content and "/generated/" in r.content
    assert "<grok:render" not in r.content


async def test_video_stream(sim, client: GrokClient) -> None:
    sim.add_token("tok-vid", plan="super")
    body = payload("grok-imagine-1.0-video", "a cat surfing", video=VideoOptions("16:9", 6, "480p", "normal"))
    out, r = await stream_sse(client, "tok-vid", body)
    assert "<video src=" in r.content and "poster=" in r.content
    assert "generating video" in r.reasoning


async def test_upload_then_chat_with_attachment(sim, client: GrokClient) -> None:
    sim.add_token("tok-up")
    up = await client.upload_bytes("tok-up", "fox.png", "image/png", png_bytes())
    assert up.file_id and up.file_uri.endswith("/content") and up.mime == "image/png"
    up2 = await client.upload_data_uri("tok-up", "data:image/png;base64," + base64.b64encode(png_bytes(20, 20)).decode())
    assert up2.name == "file.png"
    out, r = await stream_sse(client, "tok-up", payload("grok-4.1-fast", "describe", file_attachments=[up.file_id]))
    assert r.content
    names = [(r["json"]["fileName"], r["json"]["fileMimeType"]) for r in sim.requests(path="/rest/app-chat/upload-file")]
    assert ("fox.png", "image/png") in names and ("file.png", "image/png") in names
    with pytest.raises(UpstreamError) as ei:
        await client.upload_bytes("tok-up", "dot.png", "image/png", b"\x89PNG" + b"\x00" * 10)
    assert ei.value.kind is ErrorKind.BAD_REQUEST
    with pytest.raises(UpstreamError) as ei:
        await client.upload_bytes("tok-up", "big.bin", "application/octet-stream", b"x" * 2000, max_bytes=1000)
    assert ei.value.kind is ErrorKind.BAD_REQUEST


async def test_rate_limits_both_styles(sim, client: GrokClient) -> None:
    sim.add_token("tok-rl", plan="super")
    legacy = await client.rate_limits("tok-rl", "grok-4-1-thinking-1129")
    assert legacy.remaining_tokens is not None and legacy.remaining == legacy.remaining_tokens
    assert legacy.window_seconds and legacy.high_effort is not None and legacy.high_effort.cost == 4
    mode = await client.rate_limits("tok-rl", "fast")
    assert mode.remaining_tokens is None and mode.remaining == mode.remaining_queries and mode.total
    bodies = [r["json"] for r in sim.requests(path="/rest/rate-limits")]
    assert {"requestKind": "DEFAULT", "modelName": "grok-4-1-thinking-1129"} in bodies
    assert {"modelName": "fast"} in bodies
    with pytest.raises(UpstreamError) as ei:
        await client.rate_limits("tok-rl", "no-such-model", style="legacy")
    assert ei.value.kind is ErrorKind.NOT_FOUND


async def test_assets_list_paging_delete_and_download(sim, client: GrokClient, tmp_path: Path) -> None:
    sim.add_token("tok-assets")
    ids = [(await client.upload_bytes("tok-assets", f"f{i}.png", "image/png", png_bytes(16 + i, 16))).file_id
           for i in range(5)]
    assets = await client.list_assets("tok-assets", page_size=2)
    assert {a["assetId"] for a in assets} >= set(ids)
    assert len(sim.requests(path="/rest/assets")) >= 3  # paged
    await client.delete_asset("tok-assets", ids[0])
    assert ids[0] not in {a["assetId"] for a in await client.list_assets("tok-assets")}
    with pytest.raises(UpstreamError) as ei:
        await client.delete_asset("tok-assets", ids[0])
    assert ei.value.kind is ErrorKind.NOT_FOUND
    key = next(a["key"] for a in assets if a["assetId"] == ids[1])
    dl = await client.download_asset("tok-assets", key, tmp_path / "a.png")
    assert dl.path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with pytest.raises(UpstreamError):
        await client.download_asset("tok-assets", key, tmp_path / "small.png", max_bytes=50)
    assert not (tmp_path / "small.png").exists() and not list(tmp_path.glob(".dl-*"))
    sim.set_fault("truncate", path="download", count=1)
    with pytest.raises(UpstreamError) as ei:
        await client.download_asset("tok-assets", key, tmp_path / "t.png")
    assert ei.value.kind is ErrorKind.TRANSPORT
    sim.set_fault("401", path="download", count=1)
    with pytest.raises(UpstreamError) as ei:
        await client.download_asset("tok-assets", key, tmp_path / "u.png")
    assert ei.value.kind is ErrorKind.AUTH_FAILED


@pytest.mark.parametrize("fault,kind,status", [
    ("401", ErrorKind.AUTH_FAILED, 401),
    ("cloudflare", ErrorKind.CLOUDFLARE, 403),
    ("antibot", ErrorKind.ANTI_BOT, 403),
    ("blocked", ErrorKind.BLOCKED, 403),
    ("400", ErrorKind.BAD_REQUEST, 400),
    ("404", ErrorKind.NOT_FOUND, 404),
    ("429:30", ErrorKind.RATE_LIMITED, 429),
    ("500", ErrorKind.SERVER, 500),
    ("502", ErrorKind.SERVER, 502),
    ("503", ErrorKind.SERVER, 503),
    ("504", ErrorKind.SERVER, 504),
])
async def test_chat_http_errors_are_classified_before_first_byte(sim, client: GrokClient, fault: str,
                                                                 kind: ErrorKind, status: int) -> None:
    sim.add_token("tok-err")
    sim.set_fault(fault, path="chat", count=1)
    with pytest.raises(UpstreamError) as ei:
        await client.open_chat("tok-err", payload("grok-4.1-fast", "hi"))
    assert ei.value.kind is kind and ei.value.status == status
    assert "tok-err" not in str(ei.value)
    if fault == "429:30":
        assert ei.value.retry_after == 30
    # the next request on the same client works again (fresh session after a 403)
    out, r = await stream_sse(client, "tok-err", payload("grok-4.1-fast", "hi again"))
    assert r.content


async def test_expired_and_blocked_accounts(sim, client: GrokClient) -> None:
    sim.add_token("tok-exp", state="expired")
    sim.add_token("tok-blk", state="blocked")
    for token, kind in (("tok-exp", ErrorKind.AUTH_FAILED), ("tok-blk", ErrorKind.BLOCKED)):
        with pytest.raises(UpstreamError) as ei:
            await client.rate_limits(token, "fast")
        assert ei.value.kind is kind


async def test_quota_exhaustion_429(sim, client: GrokClient) -> None:
    sim.add_token("tok-quota", quota_total=1)
    await stream_sse(client, "tok-quota", payload("grok-4.1-fast", "one"))
    with pytest.raises(UpstreamError) as ei:
        await client.open_chat("tok-quota", payload("grok-4.1-fast", "two"))
    assert ei.value.kind is ErrorKind.RATE_LIMITED and ei.value.token_fault


async def test_inband_antibot_first_line_fails_preflight(sim, client: GrokClient) -> None:
    sim.add_token("tok-ab")
    with pytest.raises(UpstreamError) as ei:
        await client.open_chat("tok-ab", payload("grok-4.1-fast", "hi [[sim:fault=antibot_inband]]"))
    assert ei.value.kind is ErrorKind.ANTI_BOT and ei.value.status == 0


async def test_reset_mid_stream_is_a_transport_error(sim, client: GrokClient) -> None:
    sim.add_token("tok-reset")
    stream = await client.open_chat("tok-reset", payload("grok-4.1-fast", "hi [[sim:fault=reset_after:6]]"))
    with pytest.raises(UpstreamError) as ei:
        async for _ in stream.events():
            pass
    assert ei.value.kind is ErrorKind.TRANSPORT
    out, r = await stream_sse(client, "tok-reset", payload("grok-4.1-fast", "hi [[sim:fault=reset_after:6]]"))
    assert out.endswith(b"data: [DONE]\n\n") and b'"code":"upstream_connection_error"' in out


async def test_stall_hits_idle_timeout_quickly(sim, client: GrokClient) -> None:
    sim.add_token("tok-stall")
    stream = await client.open_chat("tok-stall", payload("grok-4.1-fast", "hi [[sim:fault=stall:4]]"),
                                    idle_timeout=0.5)
    t0 = time.monotonic()
    with pytest.raises(UpstreamError) as ei:
        async for _ in stream.events():
            pass
    assert ei.value.kind is ErrorKind.IDLE_TIMEOUT
    assert time.monotonic() - t0 < 3.0
    # the client still works afterwards
    out, r = await stream_sse(client, "tok-stall", payload("grok-4.1-fast", "after stall"))
    assert r.content


async def test_idle_timeouts_of_concurrent_streams_expire_independently(sim, client: GrokClient) -> None:
    """Waiting readers share one timer per connection pool: a short idle timeout registered after a
    long one still fires on time, and the long-timeout stream is not cut by it."""
    sim.add_token("tok-idle-a")
    sim.add_token("tok-idle-b")
    slow = await client.open_chat("tok-idle-b", payload("grok-4.1-fast", "hi [[sim:tokens=4;delay_ms=700]]"),
                                  idle_timeout=3.0)
    stalled = await client.open_chat("tok-idle-a", payload("grok-4.1-fast", "hi [[sim:fault=stall:4]]"),
                                     idle_timeout=0.4)

    async def tokens(stream) -> int:  # type: ignore[no-untyped-def]
        return len([e async for e in stream.events() if isinstance(e, TokenEvent)])

    slow_task = asyncio.ensure_future(tokens(slow))
    t0 = time.monotonic()
    with pytest.raises(UpstreamError) as ei:
        await tokens(stalled)
    assert ei.value.kind is ErrorKind.IDLE_TIMEOUT
    assert time.monotonic() - t0 < 1.5
    assert await slow_task == 4  # 700 ms gaps, under its own 3 s idle timeout


async def test_stall_before_first_frame_fails_preflight(sim, client: GrokClient) -> None:
    sim.add_token("tok-stall0")
    t0 = time.monotonic()
    with pytest.raises(UpstreamError) as ei:
        await client.open_chat("tok-stall0", payload("grok-4.1-fast", "hi [[sim:fault=stall:0]]"), idle_timeout=0.5,
                               first_byte_timeout=0.5)
    # no response headers at all → a transport (header) timeout; headers but no frame → idle timeout
    assert ei.value.kind in (ErrorKind.TRANSPORT, ErrorKind.IDLE_TIMEOUT)
    assert time.monotonic() - t0 < 4.5


async def test_slow_first_byte_times_out(sim, client: GrokClient) -> None:
    sim.add_token("tok-slow")
    sim.set_fault("slow_first_byte:5000", path="chat", count=1)
    t0 = time.monotonic()
    with pytest.raises(UpstreamError) as ei:
        await client.open_chat("tok-slow", payload("grok-4.1-fast", "hi"), first_byte_timeout=0.5)
    assert ei.value.kind is ErrorKind.TRANSPORT and time.monotonic() - t0 < 4.5


async def test_inband_errors_mid_stream(sim, client: GrokClient) -> None:
    sim.add_token("tok-inband")
    for marker, kind in (("error_after:5", ErrorKind.SERVER), ("error_after:5:8", ErrorKind.RATE_LIMITED),
                         ("stream_errors", ErrorKind.SERVER), ("response_error", ErrorKind.RATE_LIMITED)):
        with pytest.raises(UpstreamError) as ei:
            # raised by the preflight when the error is already in the first read, else while iterating
            stream = await client.open_chat("tok-inband", payload("grok-4.1-fast", f"hi [[sim:fault={marker}]]"))
            async for _ in stream.events():
                pass
        assert ei.value.kind is kind, marker
    sim.configure(token_delay_ms=20)
    try:
        stream = await client.open_chat("tok-inband", payload("grok-4.1-fast", "hi [[sim:fault=error_after:8:8]]"))
        got: list = []
        with pytest.raises(UpstreamError) as ei:
            async for e in stream.events():
                got.append(e)
        assert ei.value.kind is ErrorKind.RATE_LIMITED and any(isinstance(e, TokenEvent) for e in got)
    finally:
        sim.configure(token_delay_ms=0)


async def test_malformed_lines_are_counted_and_skipped(sim, client: GrokClient) -> None:
    sim.add_token("tok-mal")
    for kind in ("garbage", "nonobject", "unknown_key", "two_per_line"):
        stream = await client.open_chat("tok-mal", payload("grok-4.1-fast", f"hi [[sim:fault=malformed:5:{kind}]]"))
        events = [e async for e in stream.events()]
        assert any(isinstance(e, ModelResponse) for e in events), kind
        assert any(isinstance(e, TokenEvent) for e in events)
        if kind in ("garbage", "nonobject"):
            assert stream.malformed_lines == 1, kind


async def test_a_stream_cut_before_the_answer_ended_is_an_error(sim, client: GrokClient) -> None:
    """``close_after``: the body ends cleanly but without soft stop / modelResponse: truncated, not done."""
    sim.add_token("tok-close")
    out, r = await stream_sse(client, "tok-close", payload("grok-4.1-fast", "hi [[sim:fault=close_after:6]]"))
    assert out.endswith(b"data: [DONE]\n\n")
    assert b'"finish_reason":"stop"' not in out
    assert b"ended before the answer was complete" in out and b'"code":"upstream_error"' in out


async def test_statsig_policy(sim, client: GrokClient) -> None:
    sim.add_token("tok-sig")
    sim.configure(statsig="reject-e")
    try:
        out, r = await stream_sse(client, "tok-sig", payload("grok-4.1-fast", "x1 passes"))
        assert r.content
        legacy = GrokClient(UpstreamSettings(base_url=sim.base_url, statsig_mode="e"))
        try:
            with pytest.raises(UpstreamError) as ei:
                await legacy.open_chat("tok-sig", payload("grok-4.1-fast", "e is rejected"))
            assert ei.value.kind is ErrorKind.ANTI_BOT and ei.value.reset_session
        finally:
            await legacy.aclose()
    finally:
        sim.configure(statsig="off")


async def test_cf_clearance_cookie(sim) -> None:
    sim.add_token("tok-cf")
    sim.configure(cf_clearance="clear-123")
    try:
        bad = GrokClient(UpstreamSettings(base_url=sim.base_url))
        good = GrokClient(UpstreamSettings(base_url=sim.base_url, cf_clearance="clear-123"))
        try:
            with pytest.raises(UpstreamError) as ei:
                await bad.rate_limits("tok-cf", "fast")
            assert ei.value.kind is ErrorKind.CLOUDFLARE
            assert (await good.rate_limits("tok-cf", "fast")).total
        finally:
            await bad.aclose()
            await good.aclose()
    finally:
        sim.configure(cf_clearance=None)


async def test_account_calls(sim, client: GrokClient) -> None:
    sim.add_token("tok-acct")
    with pytest.raises(UpstreamError) as ei:
        await client.enable_nsfw("tok-acct")  # needs a birth date first
    assert ei.value.kind is ErrorKind.BAD_REQUEST
    await client.set_birth_date("tok-acct", "1990-05-01")
    await client.enable_nsfw("tok-acct")
    await client.accept_tos("tok-acct")
    acc = sim.account("tok-acct")
    assert acc["nsfw"] is True and acc["birth_date"] == "1990-05-01" and acc["tos_version"]
    with pytest.raises(UpstreamError) as ei:
        await client.set_birth_date("tok-acct", "2020-01-01")
    assert ei.value.kind is ErrorKind.BAD_REQUEST
    sim.add_token("tok-acct-exp", state="expired")
    with pytest.raises(UpstreamError) as ei:
        await client.accept_tos("tok-acct-exp")
    assert ei.value.kind is ErrorKind.AUTH_FAILED


async def test_concurrent_streams_share_sessions(sim, client: GrokClient) -> None:
    import asyncio

    sim.add_token("tok-many", quota_total=1000)
    results = await asyncio.gather(*[stream_sse(client, "tok-many", payload("grok-4.1-fast", f"n{i}"))
                                     for i in range(20)])
    assert all(r.content for _, r in results)


async def test_stream_consumed_in_another_task(sim, client: GrokClient) -> None:
    """Preflight in one task, iteration in another (as a web framework's streaming response does)."""
    import asyncio

    sim.add_token("tok-task")
    sim.configure(token_delay_ms=5)
    try:
        stream = await client.open_chat("tok-task", payload("grok-4.1-fast", "hi"))

        async def consume() -> int:
            return len([e async for b in stream.batches() for e in b])

        assert await asyncio.create_task(consume()) > 3
        stream = await client.open_chat("tok-task", payload("grok-4.1-fast", "hi [[sim:fault=stall:5]]"),
                                        idle_timeout=0.4)
        with pytest.raises(UpstreamError) as ei:
            await asyncio.wait_for(asyncio.create_task(consume()), 5)
        assert ei.value.kind is ErrorKind.IDLE_TIMEOUT
    finally:
        sim.configure(token_delay_ms=0)


async def test_silent_tail_after_soft_stop_ends_normally(sim, client: GrokClient) -> None:
    from grok2api.upstream.stream import SoftStop

    sim.add_token("tok-tail")
    stream = await client.open_chat("tok-tail", payload("grok-4.1-fast", "hi [[sim:tokens=3]]"))
    events = [e async for e in stream.events()]
    soft = next(i for i, e in enumerate(events) if isinstance(e, SoftStop))
    grace = GrokClient(UpstreamSettings(base_url=sim.base_url, idle_timeout=30, soft_stop_grace=0.3))
    try:
        t0 = time.monotonic()
        stream = await grace.open_chat("tok-tail", payload("grok-4.1-fast", f"hi [[sim:tokens=3]] "
                                                           f"[[sim:fault=stall:{soft + 1}]]"))
        tail = [e async for e in stream.events()]  # no exception: the answer was complete
        assert time.monotonic() - t0 < 5
        assert any(isinstance(e, SoftStop) for e in tail) and stream.soft_stopped
        assert not any(isinstance(e, ModelResponse) for e in tail)
    finally:
        await grace.aclose()
