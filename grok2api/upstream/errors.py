"""Classified upstream failures (protocol chat.md §8).

Every failure talking to Grok becomes one :class:`UpstreamError` with an
:class:`ErrorKind`. The kind decides what the gateway does next: penalise the
token, switch to another token, retry on the same token with a fresh
connection, or give up. Messages never contain the token or cookies: they are
built from the *parsed* error text of Grok's body, truncated, and scrubbed of
anything that looks like a cookie value.
"""

from __future__ import annotations

import re
from enum import StrEnum
from typing import Any, Mapping

import orjson


class ErrorKind(StrEnum):
    AUTH_FAILED = "auth_failed"  # 401 / invalid-credentials markers
    BLOCKED = "blocked"  # 403 blocked-user (permanent)
    CLOUDFLARE = "cloudflare"  # 403 HTML challenge / cf-mitigated
    ANTI_BOT = "anti_bot"  # 403 code 7 JSON or in-band code 7
    FORBIDDEN = "forbidden"  # other 403 JSON (entitlement / plan): try another token, no penalty
    RATE_LIMITED = "rate_limited"  # 429 / in-band code 8 / usage limit
    BAD_REQUEST = "bad_request"  # 400
    NOT_FOUND = "not_found"  # 404
    SERVER = "server"  # 5xx / in-band 13/14 / streamErrors
    TRANSPORT = "transport"  # reset / timeout / HTTP2 / proxy / TLS
    IDLE_TIMEOUT = "idle_timeout"  # no bytes for longer than the idle timeout


_TOKEN_FAULT = frozenset({ErrorKind.AUTH_FAILED, ErrorKind.BLOCKED, ErrorKind.RATE_LIMITED})
_SWITCH = frozenset({
    ErrorKind.AUTH_FAILED, ErrorKind.BLOCKED, ErrorKind.RATE_LIMITED, ErrorKind.FORBIDDEN,
    ErrorKind.SERVER, ErrorKind.TRANSPORT, ErrorKind.IDLE_TIMEOUT,
})
_RETRY = frozenset({
    ErrorKind.CLOUDFLARE, ErrorKind.ANTI_BOT, ErrorKind.SERVER, ErrorKind.TRANSPORT, ErrorKind.IDLE_TIMEOUT,
})
_RESET = frozenset({ErrorKind.CLOUDFLARE, ErrorKind.ANTI_BOT})

# HTTP status / OpenAI error type / code the gateway answers with for each kind.
_CLIENT: dict[ErrorKind, tuple[int, str, str]] = {
    ErrorKind.AUTH_FAILED: (502, "upstream_error", "upstream_auth_failed"),
    ErrorKind.BLOCKED: (502, "upstream_error", "upstream_account_blocked"),
    ErrorKind.CLOUDFLARE: (502, "upstream_error", "upstream_challenge"),
    ErrorKind.ANTI_BOT: (502, "upstream_error", "anti_bot_rejected"),
    ErrorKind.FORBIDDEN: (502, "upstream_error", "upstream_forbidden"),
    ErrorKind.RATE_LIMITED: (429, "rate_limit_error", "rate_limit_exceeded"),
    ErrorKind.BAD_REQUEST: (400, "invalid_request_error", "upstream_bad_request"),
    ErrorKind.NOT_FOUND: (404, "invalid_request_error", "upstream_not_found"),
    ErrorKind.SERVER: (502, "upstream_error", "upstream_error"),
    ErrorKind.TRANSPORT: (502, "upstream_error", "upstream_connection_error"),
    ErrorKind.IDLE_TIMEOUT: (504, "upstream_error", "stream_idle_timeout"),
}

INVALID_CREDENTIAL_MARKERS: tuple[str, ...] = (
    "invalid-credentials", "bad-credentials", "failed to look up session id", "email-domain-rejected",
    "session not found", "account suspended", "token revoked", "token expired", "unauthenticated",
    "not logged in",
)
BLOCKED_MARKERS: tuple[str, ...] = ("blocked-user", "user is blocked")
ANTI_BOT_MARKERS: tuple[str, ...] = ("anti-bot",)
RATE_LIMIT_MARKERS: tuple[str, ...] = (
    "too many requests", "rate limit", "usage limit", "usage quota", "resource_exhausted",
)

_MAX_MESSAGE = 300
_SECRET_RE = re.compile(r"(?i)\b(sso(?:-rw)?|cf_clearance|__cf_bm|cookie)\s*[=:]\s*[^\s;,\"']+")
_JWT_RE = re.compile(r"eyJ[A-Za-z0-9_\-]{8,}\.[A-Za-z0-9_\-\.]+")


def scrub(text: str, *secrets: str) -> str:
    """Remove cookie-like values, JWTs and the given secrets from ``text`` and truncate it."""
    for s in secrets:
        if s:
            text = text.replace(s, "***")
    text = _SECRET_RE.sub(lambda m: f"{m.group(1)}=***", text)
    text = _JWT_RE.sub("***", text)
    text = " ".join(text.split())
    return text[:_MAX_MESSAGE]


class UpstreamError(Exception):
    """One classified failure of an upstream call.

    ``status`` is the HTTP status Grok answered with (``0`` for transport
    failures and in-band errors without one), ``retry_after`` seconds when Grok
    said so, ``grpc_code`` the in-band gRPC status code when there was one.
    """

    __slots__ = ("kind", "status", "message", "retry_after", "grpc_code")

    def __init__(self, kind: ErrorKind, status: int = 0, message: str = "", retry_after: float | None = None,
                 grpc_code: int | None = None) -> None:
        self.kind = ErrorKind(kind)
        self.status = status
        self.message = message or kind.value
        self.retry_after = retry_after
        self.grpc_code = grpc_code
        super().__init__(self.message)

    def __str__(self) -> str:
        s = f" {self.status}" if self.status else ""
        return f"upstream {self.kind.value}{s}: {self.message}"

    def __repr__(self) -> str:
        return f"UpstreamError(kind={self.kind.value!r}, status={self.status}, message={self.message!r})"

    # -- what to do about it -------------------------------------------------
    @property
    def token_fault(self) -> bool:
        """The token itself is the problem (expired, blocked, out of quota)."""
        return self.kind in _TOKEN_FAULT

    @property
    def switch_token(self) -> bool:
        """Trying the same request with another token may succeed."""
        return self.kind in _SWITCH

    @property
    def retryable(self) -> bool:
        """Retrying on the same token (after a backoff / fresh connection) may succeed."""
        return self.kind in _RETRY

    @property
    def reset_session(self) -> bool:
        """The connection/fingerprint was rejected: open a new session, refresh statsig, rotate proxy."""
        return self.kind in _RESET

    @property
    def disables_token(self) -> bool:
        """Permanent account failure: disable the token."""
        return self.kind is ErrorKind.BLOCKED

    # -- what the OpenAI client sees ----------------------------------------
    @property
    def client_status(self) -> int:
        return _CLIENT[self.kind][0]

    @property
    def client_type(self) -> str:
        return _CLIENT[self.kind][1]

    @property
    def client_code(self) -> str:
        return _CLIENT[self.kind][2]

    def openai_error(self) -> dict[str, Any]:
        """The OpenAI ``{"error": {...}}`` body for this failure."""
        return {"error": {"message": str(self), "type": self.client_type, "param": None,
                          "code": self.client_code}}


def _lower_has(text: str, markers: tuple[str, ...]) -> bool:
    return any(m in text for m in markers)


def _error_text(body: bytes | str) -> tuple[str, int | None, bool]:
    """(message, grpc code, is_json) from an error body."""
    raw = body if isinstance(body, bytes) else body.encode("utf-8", "replace")
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return raw[:2000].decode("utf-8", "replace"), None, False
    if isinstance(data, dict):
        err = data.get("error", data)
        if isinstance(err, str):
            return err, None, True
        if isinstance(err, dict):
            code = err.get("code")
            msg = err.get("message") or err.get("msg") or ""
            return str(msg), code if isinstance(code, int) else None, True
    return raw[:500].decode("utf-8", "replace"), None, True


def _retry_after(headers: Mapping[str, str] | None) -> float | None:
    if not headers:
        return None
    value = headers.get("retry-after") or headers.get("Retry-After")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        return None


def classify_http(status: int, body: bytes | str = b"", headers: Mapping[str, str] | None = None,
                  *secrets: str) -> UpstreamError:
    """Classify a non-200 HTTP answer (status, body, response headers)."""
    text, code, is_json = _error_text(body)
    low = text.lower()
    hdr = {k.lower(): v for k, v in (headers or {}).items()}
    ctype = hdr.get("content-type", "").lower()
    is_html = "html" in ctype or low.lstrip().startswith("<!doctype html") or low.lstrip().startswith("<html")
    retry_after = _retry_after(hdr)
    if is_html:
        if "just a moment" in low or "challenge-platform" in low or hdr.get("cf-mitigated"):
            msg = "Cloudflare challenge"
        else:
            m = re.search(r"error code:?\s*(\d+)", low)
            msg = f"HTML error page{f' (error code {m.group(1)})' if m else ''}"
    else:
        msg = scrub(text, *secrets) or f"HTTP {status}"

    def err(kind: ErrorKind) -> UpstreamError:
        return UpstreamError(kind, status, msg, retry_after, code)

    if status == 429:
        return err(ErrorKind.RATE_LIMITED)
    if status == 401:
        if _lower_has(low, BLOCKED_MARKERS):
            return err(ErrorKind.BLOCKED)
        return err(ErrorKind.AUTH_FAILED)
    if status == 403:
        if hdr.get("cf-mitigated") or (is_html and ("challenge" in low or "just a moment" in low
                                                     or "cloudflare" in hdr.get("server", "").lower())):
            return err(ErrorKind.CLOUDFLARE)
        if is_html:
            return err(ErrorKind.CLOUDFLARE)
        if _lower_has(low, BLOCKED_MARKERS):
            return err(ErrorKind.BLOCKED)
        if code == 7 or _lower_has(low, ANTI_BOT_MARKERS):
            return err(ErrorKind.ANTI_BOT)
        if _lower_has(low, INVALID_CREDENTIAL_MARKERS):
            return err(ErrorKind.AUTH_FAILED)
        return err(ErrorKind.FORBIDDEN)
    if status == 400:
        if _lower_has(low, BLOCKED_MARKERS):
            return err(ErrorKind.BLOCKED)
        if _lower_has(low, INVALID_CREDENTIAL_MARKERS):
            return err(ErrorKind.AUTH_FAILED)
        return err(ErrorKind.BAD_REQUEST)
    if status == 404:
        return err(ErrorKind.NOT_FOUND)
    if status == 408:
        return err(ErrorKind.TRANSPORT)
    if status >= 500:
        return err(ErrorKind.SERVER)
    return err(ErrorKind.SERVER if status >= 300 else ErrorKind.BAD_REQUEST)


def classify_inband(error: Any) -> UpstreamError:
    """Classify an error object found inside a 200 stream (top-level or response-level ``error``)."""
    if isinstance(error, dict):
        code = error.get("code")
        code = code if isinstance(code, int) else None
        text = str(error.get("message") or error.get("msg") or "")
    else:
        code, text = None, str(error)
    low = text.lower()
    msg = scrub(text) or "in-band error"
    if code == 7 or _lower_has(low, ANTI_BOT_MARKERS):
        kind = ErrorKind.ANTI_BOT
    elif code == 8 or _lower_has(low, RATE_LIMIT_MARKERS):
        kind = ErrorKind.RATE_LIMITED
    elif _lower_has(low, BLOCKED_MARKERS):
        kind = ErrorKind.BLOCKED
    elif code == 16 or _lower_has(low, INVALID_CREDENTIAL_MARKERS):
        kind = ErrorKind.AUTH_FAILED
    elif code == 3:
        kind = ErrorKind.BAD_REQUEST
    elif code == 5:
        kind = ErrorKind.NOT_FOUND
    else:
        kind = ErrorKind.SERVER
    return UpstreamError(kind, 0, msg, None, code)


def classify_stream_errors(errors: list[Any]) -> UpstreamError:
    """Classify a non-empty ``modelResponse.streamErrors`` list."""
    first = errors[0]
    if isinstance(first, dict):
        err = classify_inband(first)
    else:
        err = classify_inband({"message": str(first)})
    return err


_TRANSPORT_TIMEOUT = ("timed out", "timeout", "operation too slow")


def classify_exception(exc: BaseException, *secrets: str) -> UpstreamError:
    """Wrap a transport exception (curl error, OSError, asyncio timeout) as an :class:`UpstreamError`."""
    if isinstance(exc, UpstreamError):
        return exc
    text = scrub(f"{type(exc).__name__}: {exc}", *secrets)
    low = text.lower()
    if "http/2" in low or "curl: (92)" in low or "stream" in low and "reset" in low:
        return UpstreamError(ErrorKind.TRANSPORT, 0, f"upstream connection closed unexpectedly ({text})")
    if any(m in low for m in _TRANSPORT_TIMEOUT) or isinstance(exc, TimeoutError):
        return UpstreamError(ErrorKind.TRANSPORT, 0, f"upstream timeout ({text})")
    return UpstreamError(ErrorKind.TRANSPORT, 0, text or "transport failure")
