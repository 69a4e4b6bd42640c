"""gRPC-web framing, NSFW/ToS message bytes, impersonation fallback and proxy normalisation."""

from __future__ import annotations

import pytest

from grok2api.upstream.account import TOS_MESSAGE, grpc_web_frame, nsfw_message, parse_grpc_web
from grok2api.upstream.transport import normalize_proxy, resolve_impersonate


def test_grpc_web_frame_roundtrip() -> None:
    frame = grpc_web_frame(b"\x10\x01")
    assert frame == b"\x00\x00\x00\x00\x02\x10\x01"
    body = frame + grpc_web_frame(b"grpc-status: 0\r\ngrpc-message: \r\n", 0x80)
    parsed = parse_grpc_web(body)
    assert parsed.messages == [b"\x10\x01"] and parsed.status == 0 and parsed.message == ""
    err = parse_grpc_web(grpc_web_frame(b"grpc-status:7\r\ngrpc-message:not%20allowed", 0x80))
    assert err.messages == [] and err.status == 7 and err.message == "not allowed"
    assert parse_grpc_web(b"", {"grpc-status": "16"}).status == 16
    with pytest.raises(ValueError):
        parse_grpc_web(b"\x00\x00\x00\x00\x09abc")


def test_nsfw_and_tos_bytes() -> None:
    feature = b"always_show_nsfw_content"
    assert nsfw_message() == bytes([0x0A, 0x02, 0x10, 0x01, 0x12, len(feature) + 2, 0x0A, len(feature)]) + feature
    assert TOS_MESSAGE == b"\x10\x01"


def test_impersonate_fallback() -> None:
    assert resolve_impersonate("chrome136") == "chrome136"
    assert resolve_impersonate("chrome137") == "chrome136"
    assert resolve_impersonate("chrome10") .startswith("chrome")
    assert resolve_impersonate("firefox999").startswith("firefox")
    assert resolve_impersonate("nonsense").startswith("chrome")


def test_proxy_normalisation() -> None:
    assert normalize_proxy("socks5://u:p@h:1080") == "socks5h://u:p@h:1080"
    assert normalize_proxy("socks4://h:1") == "socks4a://h:1"
    assert normalize_proxy(" http://h:8080 ") == "http://h:8080"
    assert normalize_proxy("") == ""
