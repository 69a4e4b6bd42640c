"""Control API: recorded requests, config switches (strict tokens, statsig, Cloudflare), stats, reset."""

from __future__ import annotations

import base64
import subprocess
import sys

import pytest

from fixtures.simulator import start_simulator

from .conftest import post_chat


async def test_recorded_requests(sim, client):
    await post_chat(client, sim, "rec", "hello there", headers={"x-statsig-id": "eDE6YWJj"})
    (entry,) = sim.requests(path="/rest/app-chat/conversations/new")
    assert entry["method"] == "POST" and entry["token"] == "rec"
    assert entry["json"]["message"] == "hello there" and entry["json"]["modeId"] == "fast"
    headers = {k.lower(): v for k, v in entry["headers"].items()}
    assert "sso=rec" in headers["cookie"] and "sso-rw=rec" in headers["cookie"]
    assert headers["x-statsig-id"] == "eDE6YWJj"
    assert sim.requests(token="nobody") == []
    assert sim.stats()["stats"]["requests.chat"] == 1
    sim.clear_requests()
    assert sim.requests() == []


async def test_strict_tokens(sim, client):
    sim.configure(strict_tokens=True)
    try:
        assert (await post_chat(client, sim, "unknown", "x"))[0] == 401
        sim.add_token("known")
        assert (await post_chat(client, sim, "known", "x"))[0] == 200
    finally:
        sim.configure(strict_tokens=False)


@pytest.mark.parametrize("policy,value,ok", [
    ("reject-e", base64.b64encode(b"e:TypeError: x").decode(), False),
    ("reject-e", base64.b64encode(b"x1:TypeError: x").decode(), True),
    ("x1", base64.b64encode(b"e:TypeError").decode(), False),
    ("x1", base64.b64encode(bytes(70)).decode(), True),
    ("base64", "%%%", False),
])
async def test_statsig_policy(sim, client, policy, value, ok):
    sim.configure(statsig=policy)
    try:
        status, raw, _ = await post_chat(client, sim, "s", "x", headers={"x-statsig-id": value})
    finally:
        sim.configure(statsig="off")
    assert status == (200 if ok else 403)
    if not ok:
        assert b"anti-bot" in raw


async def test_cloudflare_clearance_mode(sim, client):
    sim.configure(cf_clearance="good")
    try:
        status, _, r = await post_chat(client, sim, "c", "x")
        assert status == 403 and r.headers["cf-mitigated"] == "challenge"
        r = await client.post(sim.base_url + "/rest/rate-limits", json={"modelName": "fast"},
                              cookies={**sim.cookies("c"), "cf_clearance": "good"})
        assert r.status_code == 200
    finally:
        sim.configure(cf_clearance=None)


async def test_reset_forgets_everything(sim, client):
    sim.add_token("z", plan="super")
    sim.set_fault("500", token="z")
    sim.reset()
    assert sim.control("GET", "tokens")["tokens"] == []
    assert sim.control("GET", "faults")["faults"] == []
    assert (await post_chat(client, sim, "z", "x"))[0] == 200


def test_control_validation_and_masking(sim):
    with pytest.raises(AssertionError, match="400"):
        sim.add_token("x", plan="gold")
    with pytest.raises(AssertionError, match="400"):
        sim.set_fault("not-a-fault")
    sim.add_token("eyJhbGciOiJIUzI1NiJ9.secret-value")
    listed = sim.control("GET", "tokens")["tokens"]
    assert "secret-value" not in str(listed)


def test_cli_entry_points_and_preloaded_tokens():
    import argparse

    from grok2api.simulator import cli

    parser = argparse.ArgumentParser()
    cli.configure_parser(parser)
    args = parser.parse_args(["--port", "0", "--seed", "3", "--realistic", "--token-delay-ms", "5"])
    opts = cli.options_from(args)
    assert opts.seed == 3 and opts.token_delay_ms == 5 and opts.ttft_ms == 400
    handle = start_simulator("--token", "pre:super", "--strict-tokens", seed=None)
    try:
        assert handle.account("pre")["plan"] == "super"
    finally:
        handle.stop()
    assert handle.proc.returncode is not None


def test_module_help():
    out = subprocess.run([sys.executable, "-m", "grok2api.simulator", "--help"], capture_output=True, text=True,
                         timeout=30)
    assert out.returncode == 0 and "--strict-tokens" in out.stdout
