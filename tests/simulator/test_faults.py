"""Every scripted fault, selected per request (header / message marker), per token, per path, or next-N."""

from __future__ import annotations

import asyncio
import time

import orjson
import pytest
from curl_cffi.requests.exceptions import RequestException

from .conftest import CHAT, chat_body, frames, model_response, post_chat, responses


async def _fault(client, sim, fault: str, token: str = "t", message: str = "hello"):
    return await post_chat(client, sim, token, message, headers={"x-sim-fault": fault})


async def test_401_fault(sim, client):
    status, raw, _ = await _fault(client, sim, "401")
    assert status == 401
    assert orjson.loads(raw)["error"]["message"].endswith("[WKE=unauthenticated:invalid-credentials]")


async def test_cloudflare_challenge(sim, client):
    status, raw, r = await _fault(client, sim, "cloudflare")
    assert status == 403
    assert r.headers["server"] == "cloudflare" and r.headers["cf-mitigated"] == "challenge"
    assert r.headers["content-type"].startswith("text/html")
    assert b"<title>Just a moment...</title>" in raw and b"challenge-platform" in raw


async def test_antibot_and_blocked_json(sim, client):
    status, raw, _ = await _fault(client, sim, "antibot")
    assert status == 403 and orjson.loads(raw) == {
        "error": {"code": 7, "message": "Request rejected by anti-bot rules.", "details": []}}
    status, raw, _ = await _fault(client, sim, "blocked")
    assert status == 403 and "[WKE=unauthorized:blocked-user]" in orjson.loads(raw)["error"]["message"]


async def test_429_with_and_without_retry_after(sim, client):
    status, raw, r = await _fault(client, sim, "429")
    assert status == 429 and orjson.loads(raw)["error"]["code"] == 8 and "retry-after" not in r.headers
    status, _, r = await _fault(client, sim, "429:17")
    assert status == 429 and r.headers["retry-after"] == "17"


@pytest.mark.parametrize("fault,status,html", [("500", 500, False), ("502", 502, True), ("503", 503, False),
                                               ("504", 504, False), ("503:html", 503, True)])
async def test_5xx(sim, client, fault, status, html):
    got, raw, r = await _fault(client, sim, fault)
    assert got == status
    if html:
        assert r.headers["content-type"].startswith("text/html") and r.headers["server"] == "cloudflare"
    else:
        assert orjson.loads(raw)["error"]["code"] in (4, 13, 14)


async def test_slow_first_byte(sim, client):
    t0 = time.monotonic()
    status, _, _ = await _fault(client, sim, "slow_first_byte:300")
    assert status == 200 and time.monotonic() - t0 >= 0.3


async def test_stall_then_resume(sim, client):
    r = await client.post(sim.base_url + CHAT, json=chat_body("[[sim:tokens=3]] x"), cookies=sim.cookies("t"),
                          headers={"x-sim-fault": "stall:5:400"}, stream=True)
    stamps = []
    t0 = time.monotonic()
    async for line in r.aiter_lines():
        if line:
            stamps.append(time.monotonic() - t0)
    await r.aclose()
    gaps = [b - a for a, b in zip(stamps, stamps[1:])]
    assert max(gaps) >= 0.35 and gaps.index(max(gaps)) == 4  # silence between line 5 and line 6


async def test_stall_forever_trips_client_timeout(sim, client):
    with pytest.raises(RequestException):
        await client.post(sim.base_url + CHAT, json=chat_body("x"), cookies=sim.cookies("t"),
                          headers={"x-sim-fault": "stall:3"}, timeout=0.5)


async def test_reset_mid_stream(sim, client):
    r = await client.post(sim.base_url + CHAT, json=chat_body("x"), cookies=sim.cookies("t"),
                          headers={"x-sim-fault": "reset_after:3"}, stream=True)
    got = []
    with pytest.raises(RequestException):
        async for line in r.aiter_lines():
            if line:
                got.append(orjson.loads(line))
    assert len(got) == 3  # the three frames arrived, then the connection was reset


async def test_close_after_is_clean_but_incomplete(sim, client):
    status, raw, _ = await _fault(client, sim, "close_after:6")
    assert status == 200 and len(frames(raw)) == 6
    assert not any(x.get("isSoftStop") for x in responses(raw))


@pytest.mark.parametrize("kind,check", [
    ("garbage", lambda line: not line.startswith(b"{")),
    ("nonobject", lambda line: orjson.loads(line) == ["not", "an", "object"]),
    ("unknown_key", lambda line: "surprise" in orjson.loads(line)),
])
async def test_malformed_line(sim, client, kind, check):
    status, raw, _ = await _fault(client, sim, f"malformed:4:{kind}")
    lines = [line for line in raw.split(b"\n") if line]
    assert status == 200 and check(lines[4])
    assert b'"modelResponse"' in raw  # the stream goes on after the bad line


async def test_malformed_truncated_and_two_per_line(sim, client):
    _, raw, _ = await _fault(client, sim, "malformed:4:truncated")
    lines = raw.split(b"\n")
    assert len([x for x in lines if x]) == 5
    with pytest.raises(orjson.JSONDecodeError):
        orjson.loads(lines[4])
    _, raw, _ = await _fault(client, sim, "malformed:4:two_per_line")
    line = raw.split(b"\n")[4]
    assert line.count(b'{"result"') == 2


async def test_inband_error_after_tokens(sim, client):
    status, raw, _ = await _fault(client, sim, "error_after:6:8")
    fs = frames(raw)
    assert status == 200 and len(fs) == 7
    assert fs[-1] == {"error": {"code": 8, "message": "Too many requests", "details": []}}
    assert any(x.get("messageTag") == "final" for x in responses(raw))


async def test_inband_antibot_first_line(sim, client):
    status, raw, _ = await _fault(client, sim, "antibot_inband")
    assert status == 200 and frames(raw) == [
        {"error": {"code": 7, "message": "Request rejected by anti-bot rules.", "details": []}}]


async def test_response_level_error_and_stream_errors(sim, client):
    _, raw, _ = await _fault(client, sim, "response_error")
    assert responses(raw)[-1]["error"]["message"].startswith("You've reached your usage limit")
    _, raw, _ = await _fault(client, sim, "stream_errors")
    assert model_response(raw)["streamErrors"] == [{"message": "Stream interrupted", "code": 13}]


async def test_message_marker_fault(sim, client):
    status, _, _ = await post_chat(client, sim, "t", "hello [[sim:fault=429]]")
    assert status == 429


async def test_unknown_fault_is_rejected(sim, client):
    status, raw, _ = await _fault(client, sim, "meteor")
    assert status == 400 and b"unknown fault" in raw


async def test_control_fault_per_token(sim, client):
    sim.set_fault("401", token="bad")
    assert (await post_chat(client, sim, "bad", "x"))[0] == 401
    assert (await post_chat(client, sim, "bad", "x"))[0] == 401
    assert (await post_chat(client, sim, "good", "x"))[0] == 200
    sim.clear_faults()
    assert (await post_chat(client, sim, "bad", "x"))[0] == 200


async def test_control_fault_next_n_and_path(sim, client):
    sim.set_fault("503", path="chat", count=2)
    statuses = [(await post_chat(client, sim, "t", "x"))[0] for _ in range(3)]
    assert statuses == [503, 503, 200]
    sim.set_fault("429", path="rate_limits")
    r = await client.post(sim.base_url + "/rest/rate-limits", json={"modelName": "fast"}, cookies=sim.cookies("t"))
    assert r.status_code == 429
    assert (await post_chat(client, sim, "t", "x"))[0] == 200


async def test_faults_do_not_leak_between_concurrent_requests(sim, client):
    results = await asyncio.gather(
        post_chat(client, sim, "t", "a", headers={"x-sim-fault": "500"}),
        post_chat(client, sim, "t", "b"),
    )
    assert [r[0] for r in results] == [500, 200]
