"""Imagine WebSocket stages, gRPC-web NSFW / ToS, birth date, LiveKit token, session."""

from __future__ import annotations

import asyncio
import base64
import json
import struct
import time
import uuid

import orjson
import pytest
import websockets

from grok2api.simulator import grpcweb

from .mediacheck import check_jpeg, check_png

NSFW = "/auth_mgmt.AuthManagement/UpdateUserFeatureControls"
TOS = "/auth_mgmt.AuthManagement/SetTosAcceptedVersion"


def _imagine_request(prompt: str, nsfw: bool = False, ratio: str = "2:3") -> str:
    return json.dumps({"type": "conversation.item.create", "timestamp": int(time.time() * 1000), "item": {
        "type": "message", "content": [{"requestId": str(uuid.uuid4()), "text": prompt, "type": "input_text",
                                        "properties": {"section_count": 0, "is_kids_mode": False,
                                                       "enable_nsfw": nsfw, "skip_upsampler": False,
                                                       "is_initial": False, "aspect_ratio": ratio}}]}})


def _cookie(token: str) -> dict[str, str]:
    return {"Cookie": f"sso={token}; sso-rw={token}", "Origin": "https://grok.com"}


async def _collect(ws, n: int, timeout: float = 5.0) -> list[dict]:
    out = []
    for _ in range(n):
        out.append(json.loads(await asyncio.wait_for(ws.recv(), timeout)))
    return out


async def test_imagine_stages(sim, client):
    async with websockets.connect(sim.ws_url + "/ws/imagine/listen", additional_headers=_cookie("w")) as ws:
        await ws.send(_imagine_request("a red fox", ratio="3:2"))
        msgs = await _collect(ws, 6)
    assert all(m["type"] == "image" for m in msgs)
    by_order: dict[int, list[dict]] = {}
    for m in msgs:
        by_order.setdefault(m["order"], []).append(m)
    assert sorted(by_order) == [0, 1]
    for stages in by_order.values():
        preview, medium, final = stages
        assert preview["url"].endswith(".png") and medium["url"].endswith(".png") and final["url"].endswith(".jpg")
        med = base64.b64decode(medium["blob"])
        assert len(med) > 30_000 and check_png(med)
        assert check_png(base64.b64decode(preview["blob"]))
        fin = base64.b64decode(final["blob"])
        assert check_jpeg(fin) == (576, 384)
        r = await client.get(final["url"])  # the public URL serves the same bytes
        assert r.status_code == 200 and r.content == fin
    assert sim.account("w")["quota_remaining"] == 80 - 4


async def test_imagine_blocked_stops_after_medium(sim):
    async with websockets.connect(sim.ws_url + "/ws/imagine/listen", additional_headers=_cookie("w")) as ws:
        await ws.send(_imagine_request("anything [[sim:fault=moderated]]"))
        msgs = await _collect(ws, 4)
        with pytest.raises(asyncio.TimeoutError):
            await asyncio.wait_for(ws.recv(), 0.5)
    assert [m["percentage_complete"] for m in msgs] == [33, 33, 66, 66]


async def test_imagine_closed_early(sim):
    async with websockets.connect(sim.ws_url + "/ws/imagine/listen",
                                  additional_headers={**_cookie("w"), "x-sim-fault": "ws_close:2"}) as ws:
        await ws.send(_imagine_request("fox"))
        await _collect(ws, 2)
        with pytest.raises(websockets.ConnectionClosed) as info:
            await asyncio.wait_for(ws.recv(), 5)
    assert info.value.rcvd.code == 1011


async def test_imagine_upgrade_rejections(sim):
    with pytest.raises(websockets.InvalidStatus) as info:
        async with websockets.connect(sim.ws_url + "/ws/imagine/listen"):
            pass
    assert info.value.response.status_code == 401
    sim.add_token("w0", quota_total=3)
    with pytest.raises(websockets.InvalidStatus) as info:
        async with websockets.connect(sim.ws_url + "/ws/imagine/listen", additional_headers=_cookie("w0")):
            pass
    assert info.value.response.status_code == 429


async def test_imagine_bad_message_gets_error_frame(sim):
    async with websockets.connect(sim.ws_url + "/ws/imagine/listen", additional_headers=_cookie("w")) as ws:
        await ws.send("{}")
        msg = json.loads(await asyncio.wait_for(ws.recv(), 5))
    assert msg["type"] == "error" and msg["err_code"] and msg["err_msg"]


def _grpc_headers() -> dict[str, str]:
    return {"Content-Type": "application/grpc-web+proto", "x-grpc-web": "1"}


def _split(body: bytes) -> list[tuple[int, bytes]]:
    out, pos = [], 0
    while pos < len(body):
        flag, length = struct.unpack(">BI", body[pos:pos + 5])
        out.append((flag, body[pos + 5:pos + 5 + length]))
        pos += 5 + length
    return out


def test_nsfw_message_bytes_match_the_protocol():
    msg = grpcweb.nsfw_request(True)
    assert msg[:4] == bytes.fromhex("0a021001")
    assert msg[4:] == b"\x12\x1a\x0a\x18always_show_nsfw_content"
    assert grpcweb.frame(msg)[:5] == b"\x00\x00\x00\x00\x20"


async def test_nsfw_enablement_flow(sim, client):
    body = grpcweb.frame(grpcweb.nsfw_request(True))
    r = await client.post(sim.base_url + NSFW, data=body, headers=_grpc_headers(), cookies=sim.cookies("n"))
    assert r.status_code == 200 and r.headers["content-type"] == "application/grpc-web+proto"
    trailer = _split(r.content)[-1]
    assert trailer[0] == 0x80 and b"grpc-status:9" in trailer[1]  # birth date first
    r = await client.post(sim.base_url + "/rest/auth/set-birth-date", json={"birthDate": "2015-01-01"},
                          cookies=sim.cookies("n"))
    assert r.status_code == 400
    r = await client.post(sim.base_url + "/rest/auth/set-birth-date", json={"birthDate": "1990-05-04"},
                          cookies=sim.cookies("n"))
    assert r.status_code == 200
    r = await client.post(sim.base_url + NSFW, data=body, headers=_grpc_headers(), cookies=sim.cookies("n"))
    frames = _split(r.content)
    assert frames[0] == (0x00, b"") and frames[-1] == (0x80, b"grpc-status:0\r\ngrpc-message:\r\n")
    acc = sim.account("n")
    assert acc["nsfw"] is True and acc["birth_date"] == "1990-05-04"


async def test_grpc_errors(sim, client):
    body = grpcweb.frame(grpcweb.nsfw_request(True))
    r = await client.post(sim.base_url + NSFW, data=body, headers=_grpc_headers())
    assert b"grpc-status:16" in _split(r.content)[-1][1]
    r = await client.post(sim.base_url + NSFW, data=body[:-3], headers=_grpc_headers(), cookies=sim.cookies("n"))
    assert b"grpc-status:13" in _split(r.content)[-1][1]
    r = await client.post(sim.base_url + NSFW, data=body, headers={"Content-Type": "application/json"},
                          cookies=sim.cookies("n"))
    assert r.status_code == 415


async def test_accept_tos_on_accounts_host(sim, client):
    r = await client.post(sim.accounts_url + TOS, data=grpcweb.frame(bytes.fromhex("1001")),
                          headers=_grpc_headers(), cookies=sim.cookies("a"))
    assert _split(r.content)[-1] == (0x80, b"grpc-status:0\r\ngrpc-message:\r\n")
    assert sim.account("a")["tos_version"] == 1


async def test_livekit_token(sim, client):
    payload = json.dumps({"voice": "ara", "personality": "assistant", "playback_speed": 1.0,
                          "enable_vision": False, "turn_detection": {"type": "server_vad"}})
    r = await client.post(sim.base_url + "/rest/livekit/tokens",
                          json={"sessionPayload": payload, "requestAgentDispatch": False,
                                "livekitUrl": "wss://livekit.grok.com", "params": {}}, cookies=sim.cookies("l"))
    assert r.status_code == 200
    token = r.json()["token"]
    head, claims, sig = token.split(".")
    data = orjson.loads(base64.urlsafe_b64decode(claims + "=" * (-len(claims) % 4)))
    assert data["video"]["roomJoin"] is True and data["sub"] == sim.account("l")["user_id"]
    assert orjson.loads(data["metadata"])["voice"] == "ara"
    r = await client.post(sim.base_url + "/rest/livekit/tokens", json={"sessionPayload": "{"},
                          cookies=sim.cookies("l"))
    assert r.status_code == 400


async def test_session_endpoint(sim, client):
    r = await client.get(sim.base_url + "/api/auth/session", cookies=sim.cookies("s1"))
    assert r.json()["user"]["userId"] == sim.account("s1")["user_id"]
