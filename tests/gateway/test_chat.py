"""Issue 4: the OpenAI-compatible chat API on Ray Serve, driven with the official ``openai`` client.

Every test runs against the session's real Ray/Serve gateway and the real simulator;
``pool`` gives each test an empty token pool and a reset simulator.
"""

from __future__ import annotations

import base64
import struct
import time
import zlib

import httpx
import openai
import pytest
import ray

from support import chat_requests, safe_tokens, wait_for

TOKEN_A = "tok-alpha-aaaaaaaaaaaaaaaaaaaa"
TOKEN_B = "tok-bravo-bbbbbbbbbbbbbbbbbbbb"


def png_bytes(width: int = 64, height: int = 64) -> bytes:
    """A real, decodable RGB PNG."""
    raw = b"".join(b"\x00" + bytes((x * 4 % 256, y * 4 % 256, 128) * 1) * 1 for y in range(height)
                   for x in [0]) if False else b"".join(
        b"\x00" + b"".join(bytes((x * 4 % 256, y * 4 % 256, 128)) for x in range(width)) for y in range(height))

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b"")


# -- happy paths -----------------------------------------------------------------------------


def test_models_lists_every_catalog_id(pool) -> None:
    from grok2api.catalog import CATALOG

    models = pool.client().models.list()
    ids = [m.id for m in models.data]
    assert ids == CATALOG.ids()
    for needed in ("grok-3", "grok-4", "grok-4-heavy", "grok-4.1-thinking", "grok-imagine-1.0",
                   "grok-imagine-1.0-video", "grok-3-fast", "grok-4.1"):
        assert needed in ids
    assert all(m.object == "model" for m in models.data)


def test_non_streaming_completion(pool) -> None:
    """The official client omits ``stream`` for a plain call: the answer must be one JSON object."""
    pool.add_tokens([TOKEN_A])
    resp = pool.client().chat.completions.create(
        model="grok-4", messages=[{"role": "user", "content": "What is the capital of France?"}])
    assert resp.object == "chat.completion"
    assert resp.model == "grok-4"
    assert resp.choices[0].finish_reason == "stop"
    assert resp.choices[0].message.role == "assistant"
    assert resp.choices[0].message.content.startswith("Echo: What is the capital of France?")
    assert resp.usage is not None and resp.usage.completion_tokens > 0


def test_streaming_completion_with_usage(pool) -> None:
    pool.add_tokens([TOKEN_A])
    chunks = list(pool.client().chat.completions.create(
        model="grok-3", stream=True, stream_options={"include_usage": True},
        messages=[{"role": "user", "content": "Stream please"}]))
    assert all(c.object == "chat.completion.chunk" for c in chunks)
    assert chunks[0].choices[0].delta.role == "assistant"
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text.startswith("Echo: Stream please")
    finish = [c for c in chunks if c.choices and c.choices[0].finish_reason]
    assert [c.choices[0].finish_reason for c in finish] == ["stop"]
    assert chunks[-1].usage is not None and chunks[-1].usage.total_tokens > 0


def test_history_is_flattened_into_one_grok_message(pool) -> None:
    pool.add_tokens([TOKEN_A])
    pool.client().chat.completions.create(model="grok-4", stream=False, messages=[
        {"role": "system", "content": "Be terse"},
        {"role": "user", "content": "hi"},
        {"role": "assistant", "content": "Hello."},
        {"role": "user", "content": "2+2?"},
    ])
    (req,) = chat_requests(pool.sim)
    body = req["json"]
    assert body["message"] == "system: Be terse\n\nuser: hi\n\nassistant: Hello.\n\n2+2?"
    assert body["modelName"] == "grok-4" and body["modelMode"] == "MODEL_MODE_GROK_4"
    assert req["headers"].get("Cookie", req["headers"].get("cookie", "")).startswith(f"sso={TOKEN_A}; sso-rw={TOKEN_A}")


def test_reasoning_shows_as_reasoning_content(pool) -> None:
    pool.add_tokens([TOKEN_A])
    client = pool.client()
    chunks = list(client.chat.completions.create(
        model="grok-4.1-thinking", stream=True, reasoning_effort="high",
        messages=[{"role": "user", "content": "Think first"}]))
    reasoning = "".join((c.choices[0].delta.model_extra or {}).get("reasoning_content") or ""
                        for c in chunks if c.choices)
    content = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert "Thinking about your request" in reasoning
    assert "Thinking about your request" not in content
    assert content.startswith("Echo: Think first")
    (req,) = chat_requests(pool.sim)
    assert req["json"]["modeId"] == "expert"
    assert req["json"]["responseMetadata"]["modelConfigOverride"]["reasoningEffort"] == "high"
    hidden = client.chat.completions.create(model="grok-4.1-thinking", stream=False, reasoning_effort="none",
                                            messages=[{"role": "user", "content": "No thoughts"}])
    assert not (hidden.choices[0].message.model_extra or {}).get("reasoning_content")


def test_image_input_is_uploaded_and_attached(pool) -> None:
    pool.add_tokens([TOKEN_A])
    data_uri = "data:image/png;base64," + base64.b64encode(png_bytes()).decode()
    resp = pool.client().chat.completions.create(model="grok-4", stream=False, messages=[
        {"role": "user", "content": [{"type": "text", "text": "Describe this"},
                                     {"type": "image_url", "image_url": {"url": data_uri}}]}])
    assert resp.choices[0].message.content.startswith("Echo: Describe this")
    uploads = [r for r in pool.sim.requests() if r["path"].endswith("/upload-file")]
    assert len(uploads) == 1 and uploads[0]["json"]["fileMimeType"] == "image/png"
    (req,) = chat_requests(pool.sim)
    assert len(req["json"]["fileAttachments"]) == 1


# -- client errors -----------------------------------------------------------------------------


def test_unknown_model_is_404_in_openai_shape(pool) -> None:
    pool.add_tokens([TOKEN_A])
    with pytest.raises(openai.NotFoundError) as info:
        pool.client().chat.completions.create(model="gpt-unknown", messages=[{"role": "user", "content": "x"}])
    err = info.value.body
    assert err["code"] == "model_not_found" and err["param"] == "model"
    assert set(err) == {"message", "type", "param", "code"}


@pytest.mark.parametrize("body, param", [
    ({"model": "grok-4"}, "messages"),
    ({"model": "grok-4", "messages": []}, "messages"),
    ({"model": "grok-4", "messages": [{"role": "user", "content": "x"}], "temperature": 7}, "temperature"),
    ({"model": "grok-4", "messages": [{"role": "wizard", "content": "x"}]}, "messages"),
])
def test_bad_bodies_are_400_in_openai_shape(pool, body: dict, param: str) -> None:
    r = httpx.post(pool.api_url + "/chat/completions", json=body,
                   headers={"Authorization": f"Bearer {pool.api_key}"}, timeout=30)
    assert r.status_code == 400
    err = r.json()["error"]
    assert set(err) == {"message", "type", "param", "code"}
    assert err["type"] == "invalid_request_error"
    assert param in (err["param"] or "")


def test_malformed_json_is_400(pool) -> None:
    r = httpx.post(pool.api_url + "/chat/completions", content=b"{not json",
                   headers={"Authorization": f"Bearer {pool.api_key}", "Content-Type": "application/json"})
    assert r.status_code == 400 and "error" in r.json()


def test_api_key_is_required(pool) -> None:
    r = httpx.post(pool.api_url + "/chat/completions", json={"model": "grok-4", "messages": []},
                   headers={"Authorization": "Bearer wrong-key"})
    assert r.status_code == 401 and r.json()["error"]["code"] == "invalid_api_key"
    r = httpx.get(pool.api_url + "/models")
    assert r.status_code == 401


@pytest.mark.parametrize("url", ["https://127.0.0.1:9/a.png", "https://localhost/a.png",
                                 "https://169.254.169.254/latest/meta-data", "https://[::1]/x.png"])
def test_private_image_url_is_refused(pool, url: str) -> None:
    pool.add_tokens([TOKEN_A])
    with pytest.raises(openai.BadRequestError) as info:
        pool.client().chat.completions.create(model="grok-4", messages=[
            {"role": "user", "content": [{"type": "text", "text": "x"},
                                         {"type": "image_url", "image_url": {"url": url}}]}])
    assert info.value.body["code"] == "forbidden_url"
    assert chat_requests(pool.sim) == []


# -- the token pool through the API ----------------------------------------------------------------


def test_empty_pool_is_429_with_retry_after(pool) -> None:
    r = httpx.post(pool.api_url + "/chat/completions",
                   json={"model": "grok-4", "messages": [{"role": "user", "content": "x"}]},
                   headers={"Authorization": f"Bearer {pool.api_key}"}, timeout=30)
    assert r.status_code == 429
    assert int(r.headers["Retry-After"]) >= 1
    assert r.json()["error"]["code"] == "rate_limit_exceeded"


def test_rotation_on_429_and_the_limited_token_cools(pool) -> None:
    pool.add_tokens([TOKEN_A, TOKEN_B])
    pool.sim.set_fault("429:600", token=TOKEN_A, path="chat")
    client = pool.client()
    for i in range(4):
        resp = client.chat.completions.create(model="grok-4", stream=False,
                                              messages=[{"role": "user", "content": f"q{i}"}])
        assert resp.choices[0].message.content.startswith(f"Echo: q{i}")
    tokens = wait_for(lambda: (t := pool.tokens()) and t[TOKEN_A]["status"] == "cooling"
                      and t[TOKEN_B]["use_count"] == 4 and t)
    assert tokens, f"token A should be cooling and B should have served all 4: {pool.tokens()}"
    assert tokens[TOKEN_A]["quota"] == 0
    # Once A cooled, nothing is sent with it any more.
    a_after = [r for r in chat_requests(pool.sim) if TOKEN_A in str(r["headers"])]
    assert len(a_after) <= 1


def test_repeated_401_expires_the_token(pool) -> None:
    pool.add_tokens([TOKEN_A])
    pool.sim.set_fault("401", token=TOKEN_A, path="chat")
    client = pool.client()
    for _ in range(3):  # fail_threshold = 3 in the session config
        with pytest.raises(openai.APIStatusError) as info:
            client.chat.completions.create(model="grok-4", messages=[{"role": "user", "content": "x"}])
        assert info.value.status_code == 502
        assert info.value.body["code"] == "upstream_auth_failed"
        assert TOKEN_A not in str(info.value.body)
    assert wait_for(lambda: pool.tokens()[TOKEN_A]["status"] == "expired")
    assert pool.tokens()[TOKEN_A]["fail_count"] == 3
    with pytest.raises(openai.RateLimitError):
        client.chat.completions.create(model="grok-4", messages=[{"role": "user", "content": "x"}])


def test_super_only_model_never_uses_a_basic_token(pool) -> None:
    pool.add_tokens([TOKEN_A], pool="basic")
    with pytest.raises(openai.RateLimitError):
        pool.client().chat.completions.create(model="grok-4-heavy", messages=[{"role": "user", "content": "x"}])
    assert chat_requests(pool.sim) == []
    pool.add_tokens([TOKEN_B], pool="super")
    resp = pool.client().chat.completions.create(model="grok-4-heavy", stream=False,
                                                 messages=[{"role": "user", "content": "heavy one"}])
    assert "Echo: heavy one" in resp.choices[0].message.content
    (req,) = chat_requests(pool.sim)
    assert TOKEN_B in str(req["headers"]) and req["json"]["modeId"] == "heavy"


def test_quota_is_charged_by_effort(pool) -> None:
    pool.add_tokens([TOKEN_A])
    client = pool.client()
    client.chat.completions.create(model="grok-4", stream=False, messages=[{"role": "user", "content": "low"}])
    client.chat.completions.create(model="grok-4.1-expert", stream=False,
                                   messages=[{"role": "user", "content": "high"}])
    assert wait_for(lambda: pool.tokens()[TOKEN_A]["quota"] == 80 - 1 - 4)
    assert pool.tokens()[TOKEN_A]["use_count"] == 2


# -- upstream failures ---------------------------------------------------------------------------------


def test_upstream_5xx_on_every_token_is_502(pool) -> None:
    pool.add_tokens([TOKEN_A])
    pool.sim.set_fault("503", path="chat")
    with pytest.raises(openai.APIStatusError) as info:
        pool.client().chat.completions.create(model="grok-4", messages=[{"role": "user", "content": "x"}])
    assert info.value.status_code == 502
    assert info.value.body["type"] == "upstream_error"
    # 5xx is not the token's fault.
    assert pool.tokens()[TOKEN_A]["status"] == "active" and pool.tokens()[TOKEN_A]["fail_count"] == 0


def test_failure_after_streaming_began_ends_with_an_error_event(pool) -> None:
    pool.add_tokens([TOKEN_A])
    r = httpx.post(pool.api_url + "/chat/completions", timeout=30,
                   headers={"Authorization": f"Bearer {pool.api_key}"},
                   json={"model": "grok-4", "stream": True,
                         "messages": [{"role": "user", "content": "cut me [[sim:fault=reset_after:5]]"}]})
    assert r.status_code == 200
    events = [line[6:] for line in r.text.splitlines() if line.startswith("data: ")]
    assert events[-1] == "[DONE]"
    assert '"error"' in events[-2] and "upstream" in events[-2]
    assert "Echo:" in r.text  # the part that arrived before the reset was delivered


def test_stalled_stream_ends_by_idle_timeout(pool) -> None:
    pool.add_tokens([TOKEN_A])
    t0 = time.monotonic()
    r = httpx.post(pool.api_url + "/chat/completions", timeout=60,
                   headers={"Authorization": f"Bearer {pool.api_key}"},
                   json={"model": "grok-4", "stream": True,
                         "messages": [{"role": "user", "content": "stall [[sim:fault=stall:6]]"}]})
    events = [line[6:] for line in r.text.splitlines() if line.startswith("data: ")]
    assert events[-1] == "[DONE]"
    assert "stream_idle_timeout" in events[-2]
    assert time.monotonic() - t0 < 30  # ended by the 3 s idle timeout, not by the 600 s stall


def test_worker_stays_healthy_after_faults(pool) -> None:
    pool.add_tokens([TOKEN_A])
    client = pool.client()
    for marker in ("[[sim:fault=reset_after:3]]", "[[sim:fault=malformed:3]]", "[[sim:fault=close_after:4]]"):
        try:
            list(client.chat.completions.create(model="grok-4", stream=True,
                                                messages=[{"role": "user", "content": f"x {marker}"}]))
        except openai.APIError:
            pass
    resp = client.chat.completions.create(model="grok-4", stream=False,
                                          messages=[{"role": "user", "content": "still fine"}])
    assert resp.choices[0].message.content.startswith("Echo: still fine")


# -- process faults ---------------------------------------------------------------------------------------


def test_token_pool_actor_restart_loses_nothing(pool) -> None:
    pool.add_tokens([TOKEN_A, TOKEN_B])
    client = pool.client()
    for i in range(6):
        client.chat.completions.create(model="grok-4", stream=False, messages=[{"role": "user", "content": f"{i}"}])
    assert wait_for(lambda: sum(t["use_count"] for t in pool.tokens().values()) == 6)
    before = {t: (r["quota"], r["use_count"]) for t, r in pool.tokens().items()}
    ray.kill(pool.pool_actor(), no_restart=False)
    after = wait_for(lambda: safe_tokens(pool), timeout=30)
    assert {t: (r["quota"], r["use_count"]) for t, r in after.items()} == before
    resp = client.chat.completions.create(model="grok-4", stream=False,
                                          messages=[{"role": "user", "content": "after restart"}])
    assert resp.choices[0].message.content.startswith("Echo: after restart")
    assert wait_for(lambda: sum(t["use_count"] for t in (safe_tokens(pool) or {}).values()) == 7, timeout=10)



def test_client_disconnect_cancels_upstream_and_finishes_the_ticket(pool) -> None:
    pool.add_tokens([TOKEN_A])
    body = {"model": "grok-4", "stream": True,
            "messages": [{"role": "user", "content": "slow one [[sim:tokens=50;delay_ms=100]]"}]}
    t0 = time.monotonic()
    with httpx.stream("POST", pool.api_url + "/chat/completions", json=body, timeout=30,
                      headers={"Authorization": f"Bearer {pool.api_key}"}) as r:
        for line in r.iter_lines():
            if "Echo: slow one" in line:
                break  # first answer token seen: hang up (the full answer would take ~5 s)
    gone = wait_for(lambda: pool.sim.stats()["stats"].get("streams.client_gone", 0) >= 1, timeout=4)
    assert gone, f"the upstream stream was not cancelled: {pool.sim.stats()['stats']}"
    assert pool.sim.stats()["stats"].get("streams.completed", 0) == 0
    # The ticket was finished (Grok counted the query, so it is charged) and the lease is usable again.
    charged = wait_for(lambda: pool.tokens()[TOKEN_A]["use_count"] == 1, timeout=4)
    assert charged, f"the ticket's outcome never reached the pool: {pool.tokens()[TOKEN_A]}"
    assert time.monotonic() - t0 < 5, "finished only when the upstream stream would have ended anyway"
    resp = pool.client().chat.completions.create(model="grok-4", stream=False,
                                                 messages=[{"role": "user", "content": "next"}])
    assert resp.choices[0].message.content.startswith("Echo: next")


# -- generated media through the MediaCache --------------------------------------------------------


def test_generated_images_are_cached_and_served_by_the_gateway(pool) -> None:
    pool.add_tokens([TOKEN_A])
    resp = pool.client().chat.completions.create(model="grok-4", stream=False,
                                                 messages=[{"role": "user", "content": "draw a red fox"}])
    content = resp.choices[0].message.content
    import re

    urls = re.findall(r"!\[[^\]]*\]\((http[^)]+)\)", content)
    assert urls, content
    assert all(u.startswith(pool.base_url + "/v1/files/image/") for u in urls)
    img = httpx.get(urls[0], timeout=30)
    assert img.status_code == 200
    assert img.headers["content-type"].startswith("image/")
    assert img.content[:3] == b"\xff\xd8\xff" or img.content[:8] == b"\x89PNG\r\n\x1a\n"
    # Served from the cache: the asset host was asked once per image, however often it is read.
    downloads = [r for r in pool.sim.requests() if "/generated/" in r["path"]]
    httpx.get(urls[0], timeout=30)
    assert len([r for r in pool.sim.requests() if "/generated/" in r["path"]]) == len(downloads)
    assert TOKEN_A not in content


def test_media_cache_follows_cache_settings_by_hot_reload(pool) -> None:
    import ray

    pool.add_tokens([TOKEN_A])
    pool.client().chat.completions.create(model="grok-4", stream=False,
                                          messages=[{"role": "user", "content": "draw a red fox"}])
    media = ray.get_actor("MediaCache", namespace="grok2api")  # started by the replica for that image
    mib = 1024 * 1024
    before = ray.get(media.usage.remote(), timeout=30)["limit_bytes"] // mib
    _config_set(pool, "cache.limit_mb", str(before + 7))
    try:
        def applied(mb: int) -> bool:
            pool.client().models.list()  # any request lets the replica see the new config
            return ray.get(media.usage.remote(), timeout=30)["limit_bytes"] == mb * mib

        assert wait_for(lambda: applied(before + 7), timeout=15, interval=0.5), "cache.limit_mb not applied"
    finally:
        _config_set(pool, "cache.limit_mb", str(before))
        wait_for(lambda: applied(before), timeout=15, interval=0.5)


def test_video_model_with_video_config_returns_a_playable_video(pool) -> None:
    pool.add_tokens([TOKEN_A])
    resp = httpx.post(pool.api_url + "/chat/completions", timeout=60,
                      headers={"Authorization": f"Bearer {pool.api_key}"},
                      json={"model": "grok-imagine-1.0-video", "stream": False,
                            "messages": [{"role": "user", "content": "a cat surfing"}],
                            "video_config": {"aspect_ratio": "16:9", "video_length": 6,
                                             "resolution_name": "480p", "preset": "fun"}})
    assert resp.status_code == 200, resp.text
    content = resp.json()["choices"][0]["message"]["content"]
    import re

    src = re.search(r'<video[^>]*src="([^"]+)"', content) or re.search(r"(http\S+\.mp4)", content)
    assert src, content
    video = httpx.get(src.group(1), timeout=30)
    assert video.status_code == 200 and video.headers["content-type"] == "video/mp4"
    assert video.content[4:8] == b"ftyp"
    (req,) = chat_requests(pool.sim)
    body = req["json"]
    assert body["toolOverrides"]["videoGen"] is True
    assert body["message"].endswith("--mode=extremely-crazy")
    cfg = body["responseMetadata"]["modelConfigOverride"]["modelMap"]["videoGenModelConfig"]
    assert cfg == {"aspectRatio": "16:9", "videoLength": 6, "resolutionName": "480p"}


def test_video_config_on_a_chat_model_is_rejected(pool) -> None:
    pool.add_tokens([TOKEN_A])
    r = httpx.post(pool.api_url + "/chat/completions", timeout=30,
                   headers={"Authorization": f"Bearer {pool.api_key}"},
                   json={"model": "grok-4", "messages": [{"role": "user", "content": "x"}],
                         "video_config": {"aspect_ratio": "16:9"}})
    assert r.status_code == 400 and r.json()["error"]["param"] == "video_config"


# -- config hot reload through the real CLI ------------------------------------------------------------


def _config_set(pool, key: str, value: str) -> None:
    import os
    import subprocess
    import sys

    env = {**os.environ, "DATA_DIR": str(pool.settings.data_dir)}
    done = subprocess.run([sys.executable, "-m", "grok2api", "config", "set", key, value], env=env,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr


def _stream_text(pool, model: str, prompt: str) -> tuple[str, str]:
    chunks = list(pool.client().chat.completions.create(model=model, stream=True,
                                                        messages=[{"role": "user", "content": prompt}]))
    content = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    reasoning = "".join((c.choices[0].delta.model_extra or {}).get("reasoning_content") or ""
                        for c in chunks if c.choices)
    return content, reasoning


def test_think_style_switches_by_hot_reload_without_restart(pool) -> None:
    pool.add_tokens([TOKEN_A])
    content, reasoning = _stream_text(pool, "grok-4.1-thinking", "before")
    assert "<think>" not in content and "Thinking about your request" in reasoning
    _config_set(pool, "app.think_style", "think_tags")
    try:
        switched = wait_for(lambda: "<think>" in _stream_text(pool, "grok-4.1-thinking", "after")[0],
                            timeout=15, interval=0.5)
        assert switched, "the replicas did not pick up the config change"
        content, reasoning = _stream_text(pool, "grok-4.1-thinking", "after")
        assert content.startswith("<think>\n") and "</think>" in content and not reasoning
        assert content.split("</think>", 1)[1].strip().startswith("Echo: after")
    finally:
        _config_set(pool, "app.think_style", "reasoning_content")
        wait_for(lambda: "<think>" not in _stream_text(pool, "grok-4.1-thinking", "reset")[0], timeout=15,
                 interval=0.5)
