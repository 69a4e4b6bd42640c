"""Account settings (README "gRPC-web"; media/NSFW flows): gRPC-web framing and three small calls.

- :func:`grpc_web_frame` / :func:`parse_grpc_web`: one data frame (flag ``0x00`` + 4-byte big-endian
  length + protobuf bytes) and trailer frames (flag ``0x80``, ``grpc-status``/``grpc-message`` lines).
- :func:`enable_nsfw`: ``UpdateUserFeatureControls`` on grok.com.
- :func:`accept_tos`: ``SetTosAcceptedVersion`` on accounts.x.ai.
- :func:`set_birth_date`: REST ``POST /rest/auth/set-birth-date``.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from urllib.parse import unquote

from grok2api.upstream.context import UpstreamContext
from grok2api.upstream.errors import ErrorKind, UpstreamError, classify_http

NSFW_PATH = "/auth_mgmt.AuthManagement/UpdateUserFeatureControls"
TOS_PATH = "/auth_mgmt.AuthManagement/SetTosAcceptedVersion"
BIRTH_DATE_PATH = "/rest/auth/set-birth-date"
NSFW_FEATURE = "always_show_nsfw_content"

_DATA = 0x00
_TRAILER = 0x80


def grpc_web_frame(message: bytes, flag: int = _DATA) -> bytes:
    """Frame ``message`` as one gRPC-web frame."""
    return struct.pack(">BI", flag, len(message)) + message


@dataclass(slots=True)
class GrpcWebResponse:
    messages: list[bytes] = field(default_factory=list)
    trailers: dict[str, str] = field(default_factory=dict)

    @property
    def status(self) -> int | None:
        v = self.trailers.get("grpc-status")
        return int(v) if v is not None and v.strip().lstrip("-").isdigit() else None

    @property
    def message(self) -> str:
        return unquote(self.trailers.get("grpc-message", ""))


def parse_grpc_web(body: bytes, headers: dict[str, str] | None = None) -> GrpcWebResponse:
    """Split a gRPC-web body into data messages and trailers (header trailers merged in).

    Raises ``ValueError`` on a truncated frame.
    """
    out = GrpcWebResponse()
    i = 0
    n = len(body)
    while i < n:
        if n - i < 5:
            raise ValueError("truncated gRPC-web frame header")
        flag, length = struct.unpack_from(">BI", body, i)
        i += 5
        if n - i < length:
            raise ValueError("truncated gRPC-web frame")
        payload = body[i:i + length]
        i += length
        if flag & _TRAILER:
            for line in payload.decode("utf-8", "replace").split("\r\n"):
                if ":" in line:
                    k, v = line.split(":", 1)
                    out.trailers[k.strip().lower()] = v.strip()
        else:
            out.messages.append(payload)
    for k in ("grpc-status", "grpc-message"):
        if headers and k in headers and k not in out.trailers:
            out.trailers[k] = headers[k]
    return out


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def _len_field(field_no: int, data: bytes) -> bytes:
    return _varint((field_no << 3) | 2) + _varint(len(data)) + data


def nsfw_message(feature: str = NSFW_FEATURE) -> bytes:
    """``0a 02 10 01`` + ``12 <len>`` (``0a <len> feature``)."""
    inner = _len_field(1, feature.encode())
    return bytes([0x0A, 0x02, 0x10, 0x01]) + _len_field(2, inner)


TOS_MESSAGE = bytes([0x10, 0x01])


async def _grpc_call(ctx: UpstreamContext, token: str, host_url: str, path: str, message: bytes
                     ) -> GrpcWebResponse:
    secrets = ctx.secrets(token)
    resp = await ctx.transport.request("POST", host_url + path, headers=ctx.headers.grpc(token, host_url),
                                       data=grpc_web_frame(message), secrets=secrets)
    if resp.status != 200:
        raise classify_http(resp.status, resp.content, resp.headers, *secrets)
    try:
        parsed = parse_grpc_web(resp.content, resp.headers)
    except ValueError as exc:
        raise UpstreamError(ErrorKind.SERVER, resp.status, str(exc)) from None
    status = parsed.status
    if status not in (None, 0):
        kind = {16: ErrorKind.AUTH_FAILED, 7: ErrorKind.FORBIDDEN, 8: ErrorKind.RATE_LIMITED,
                3: ErrorKind.BAD_REQUEST, 9: ErrorKind.BAD_REQUEST, 5: ErrorKind.NOT_FOUND,
                }.get(status, ErrorKind.SERVER)
        if "blocked-user" in parsed.message:
            kind = ErrorKind.BLOCKED
        raise UpstreamError(kind, resp.status, f"grpc-status {status}: {parsed.message[:200]}", None, status)
    return parsed


async def enable_nsfw(ctx: UpstreamContext, token: str) -> None:
    await _grpc_call(ctx, token, ctx.settings.base_url, NSFW_PATH, nsfw_message())


async def accept_tos(ctx: UpstreamContext, token: str) -> None:
    await _grpc_call(ctx, token, ctx.settings.accounts_url, TOS_PATH, TOS_MESSAGE)


async def set_birth_date(ctx: UpstreamContext, token: str, birth_date: str = "1990-01-01") -> None:
    """``birth_date`` as ``YYYY-MM-DD`` (an adult date is needed before NSFW)."""
    await ctx.post_json(token, BIRTH_DATE_PATH, {"birthDate": birth_date})
