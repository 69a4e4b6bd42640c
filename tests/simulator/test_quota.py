"""Quota windows by plan and effort, /rest/rate-limits in both request styles, refill by clock."""

from __future__ import annotations

import orjson

from .conftest import post_chat

RL = "/rest/rate-limits"


async def _limits(client, sim, token, body):
    r = await client.post(sim.base_url + RL, json=body, cookies=sim.cookies(token))
    return r.status_code, r.json()


async def test_legacy_rate_limits_shape_and_live_quota(sim, client):
    sim.add_token("s", plan="super")
    status, data = await _limits(client, sim, "s", {"requestKind": "DEFAULT", "modelName": "grok-4-1-thinking-1129"})
    assert status == 200
    assert list(data) == ["windowSizeSeconds", "remainingQueries", "totalQueries", "remainingTokens",
                          "totalTokens", "lowEffortRateLimits", "highEffortRateLimits", "waitTimeSeconds",
                          "preGenerationDelayMs"]
    assert data["windowSizeSeconds"] == 7200 and data["remainingTokens"] == 140 and data["totalTokens"] == 140
    assert data["highEffortRateLimits"] == {"cost": 4, "remainingQueries": 35, "waitTimeSeconds": 0}
    await post_chat(client, sim, "s", "x", modeId="fast")  # low: 1
    await post_chat(client, sim, "s", "x", modeId="expert")  # high: 4
    _, data = await _limits(client, sim, "s", {"requestKind": "DEFAULT", "modelName": "grok-3"})
    assert data["remainingTokens"] == 135 and data["lowEffortRateLimits"]["remainingQueries"] == 135


async def test_flat_per_mode_rate_limits(sim, client):
    status, data = await _limits(client, sim, "b", {"modelName": "fast"})
    assert status == 200
    assert data == {"windowSizeSeconds": 72000, "remainingQueries": 80, "totalQueries": 80,
                    "lowEffortRateLimits": None, "highEffortRateLimits": None}
    _, data = await _limits(client, sim, "b", {"modelName": "expert"})
    assert data["remainingQueries"] == 20 and data["totalQueries"] == 20


async def test_unknown_model_is_404(sim, client):
    status, data = await _limits(client, sim, "b", {"modelName": "grok-99"})
    assert status == 404 and data["error"]["code"] == 5


async def test_quota_exhaustion_429_and_refill_after_window(sim, client):
    sim.add_token("q", quota_total=5, window_seconds=3600)
    assert (await post_chat(client, sim, "q", "x", modeId="expert"))[0] == 200  # 4 of 5
    status, raw, r = await post_chat(client, sim, "q", "x", modeId="expert")  # needs 4, has 1
    assert status == 429 and orjson.loads(raw) == {"error": {"code": 8, "message": "Too many requests",
                                                             "details": []}}
    assert (await post_chat(client, sim, "q", "x", modeId="fast"))[0] == 200  # 1 left → 0
    assert (await post_chat(client, sim, "q", "x", modeId="fast"))[0] == 429
    _, data = await _limits(client, sim, "q", {"modelName": "fast"})
    assert data["remainingQueries"] == 0 and 0 < data["waitTimeSeconds"] <= 3600
    sim.advance_clock(3601)
    _, data = await _limits(client, sim, "q", {"modelName": "fast"})
    assert data["remainingQueries"] == 5 and "waitTimeSeconds" not in data
    assert (await post_chat(client, sim, "q", "x"))[0] == 200


async def test_faulted_requests_do_not_spend_quota(sim, client):
    sim.add_token("f", quota_total=2)
    await post_chat(client, sim, "f", "x", headers={"x-sim-fault": "503"})
    assert sim.account("f")["quota_remaining"] == 2


async def test_retry_after_on_quota_429_and_refill_control(sim, client):
    sim.add_token("r", quota_total=1, window_seconds=600)
    sim.configure(retry_after=-1)
    try:
        await post_chat(client, sim, "r", "x")
        status, _, r = await post_chat(client, sim, "r", "x")
        assert status == 429 and 0 < int(r.headers["retry-after"]) <= 600
    finally:
        sim.configure(retry_after=None)
    sim.refill("r")
    assert (await post_chat(client, sim, "r", "x"))[0] == 200
    sim.refill("r", remaining=0)
    assert (await post_chat(client, sim, "r", "x"))[0] == 429


async def test_plan_defaults(sim, client):
    sim.add_token("h", plan="heavy")
    assert sim.account("h")["quota_total"] == 400
    assert sim.add_token("b")["window_seconds"] == 72000
