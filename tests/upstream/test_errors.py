"""Error classification per chat.md §8.1 bodies, in-band errors and transport failures."""

from __future__ import annotations

import pytest

from grok2api.upstream.errors import (
    ErrorKind, UpstreamError, classify_exception, classify_http, classify_inband, scrub,
)

CF_HTML = ('<!DOCTYPE html><html lang="en-US"><head><title>Just a moment...</title></head><body>'
           '<script src="/cdn-cgi/challenge-platform/h/b/orchestrate/chl_page/v1?ray=abc"></script></body></html>')
CF_HEADERS = {"Server": "cloudflare", "cf-mitigated": "challenge", "Content-Type": "text/html; charset=UTF-8"}


@pytest.mark.parametrize("status,body,headers,kind", [
    (400, '{"error":{"code":3,"message":"bad image","details":[]}}', {}, ErrorKind.BAD_REQUEST),
    (401, '{"error":{"code":16,"message":"Failed to look up session ID. [WKE=unauthenticated:invalid-credentials]",'
          '"details":[]}}', {}, ErrorKind.AUTH_FAILED),
    (403, CF_HTML, CF_HEADERS, ErrorKind.CLOUDFLARE),
    (403, CF_HTML, {"Content-Type": "text/html"}, ErrorKind.CLOUDFLARE),
    (403, '{"error":{"code":7,"message":"Request rejected by anti-bot rules.","details":[]}}', {},
     ErrorKind.ANTI_BOT),
    (403, '{"error":"User is blocked [WKE=unauthorized:blocked-user]"}', {}, ErrorKind.BLOCKED),
    (403, '{"error":{"code":7,"message":"User is blocked [WKE=unauthorized:blocked-user]"}}', {},
     ErrorKind.BLOCKED),
    (403, '{"error":{"code":7,"message":"This model is not available on your plan"}}', {}, ErrorKind.ANTI_BOT),
    (403, '{"error":{"message":"This model is not available on your plan"}}', {}, ErrorKind.FORBIDDEN),
    (404, '{"error":{"code":5,"message":"Model not found","details":[]}}', {}, ErrorKind.NOT_FOUND),
    (429, '{"error":{"code":8,"message":"Too many requests","details":[]}}', {"Retry-After": "30"},
     ErrorKind.RATE_LIMITED),
    (500, '{"error":{"code":13,"message":"internal"}}', {}, ErrorKind.SERVER),
    (502, "error code: 502", {"Content-Type": "text/html"}, ErrorKind.SERVER),
    (503, '{"error":{"code":14,"message":"unavailable"}}', {}, ErrorKind.SERVER),
])
def test_http_classification(status: int, body: str, headers: dict, kind: ErrorKind) -> None:
    err = classify_http(status, body.encode(), headers)
    assert err.kind is kind
    assert err.status == status


def test_retry_after_and_grpc_code() -> None:
    err = classify_http(429, b'{"error":{"code":8,"message":"Too many requests"}}', {"retry-after": "12"})
    assert err.retry_after == 12.0 and err.grpc_code == 8 and err.message == "Too many requests"


def test_policy_helpers() -> None:
    auth = UpstreamError(ErrorKind.AUTH_FAILED, 401)
    assert auth.token_fault and auth.switch_token and not auth.retryable
    blocked = UpstreamError(ErrorKind.BLOCKED, 403)
    assert blocked.token_fault and blocked.disables_token
    cf = UpstreamError(ErrorKind.CLOUDFLARE, 403)
    assert not cf.token_fault and cf.retryable and cf.reset_session and not cf.switch_token
    rl = UpstreamError(ErrorKind.RATE_LIMITED, 429)
    assert rl.token_fault and rl.switch_token and not rl.retryable and rl.client_status == 429
    server = UpstreamError(ErrorKind.SERVER, 502)
    assert not server.token_fault and server.retryable and server.switch_token
    bad = UpstreamError(ErrorKind.BAD_REQUEST, 400)
    assert not (bad.token_fault or bad.retryable or bad.switch_token) and bad.client_status == 400
    assert UpstreamError(ErrorKind.IDLE_TIMEOUT).client_status == 504
    body = rl.openai_error()
    assert body["error"]["type"] == "rate_limit_error" and body["error"]["code"] == "rate_limit_exceeded"


@pytest.mark.parametrize("error,kind", [
    ({"code": 7, "message": "Request rejected by anti-bot rules.", "details": []}, ErrorKind.ANTI_BOT),
    ({"code": 8, "message": "Too many requests"}, ErrorKind.RATE_LIMITED),
    ({"message": "You've reached your usage limit. Please try again later."}, ErrorKind.RATE_LIMITED),
    ({"code": 13, "message": "Internal error: stream interrupted"}, ErrorKind.SERVER),
    ({"code": 14, "message": "unavailable"}, ErrorKind.SERVER),
    ({"code": 16, "message": "unauthenticated"}, ErrorKind.AUTH_FAILED),
    ("plain string error", ErrorKind.SERVER),
])
def test_inband_classification(error: object, kind: ErrorKind) -> None:
    assert classify_inband(error).kind is kind


def test_messages_never_contain_secrets() -> None:
    token = "eyJhbGciOiJIUzI1NiJ9.eyJzZXNzaW9uX2lkIjoiYTFiMmMzIn0.sig"
    body = f'{{"error":{{"code":16,"message":"bad cookie sso={token}; sso-rw={token} cf_clearance=abc123"}}}}'
    err = classify_http(401, body.encode(), {}, token)
    assert token not in str(err) and "abc123" not in str(err)
    assert "eyJ" not in scrub(f"header Cookie: sso={token}")
    exc = classify_exception(RuntimeError(f"curl: (56) failed for {token}"), token)
    assert token not in str(exc) and exc.kind is ErrorKind.TRANSPORT


def test_transport_exceptions() -> None:
    assert classify_exception(TimeoutError()).kind is ErrorKind.TRANSPORT
    e = classify_exception(RuntimeError("curl: (92) HTTP/2 stream 1 was not closed cleanly"))
    assert e.kind is ErrorKind.TRANSPORT and "closed unexpectedly" in e.message
