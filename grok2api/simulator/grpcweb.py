"""gRPC-web framing and a tiny hand-written protobuf reader/writer.

A gRPC-web body is a sequence of frames: one flag byte (``0x00`` data,
``0x80`` trailers), a 4-byte big-endian length, then the payload. The trailer
payload is HTTP/1-style header lines (``grpc-status:0\\r\\ngrpc-message:\\r\\n``).
"""

from __future__ import annotations

import struct
from typing import Iterator
from urllib.parse import quote

DATA = 0x00
TRAILER = 0x80
CONTENT_TYPE = "application/grpc-web+proto"


class FramingError(ValueError):
    pass


def frame(payload: bytes, flag: int = DATA) -> bytes:
    return struct.pack(">BI", flag, len(payload)) + payload


def trailer(status: int, message: str = "") -> bytes:
    text = f"grpc-status:{status}\r\ngrpc-message:{quote(message, safe=' ')}\r\n"
    return frame(text.encode(), TRAILER)


def parse_frames(body: bytes) -> list[tuple[int, bytes]]:
    """All frames of ``body``; raises :class:`FramingError` on a short or malformed body."""
    frames: list[tuple[int, bytes]] = []
    pos = 0
    while pos < len(body):
        if len(body) - pos < 5:
            raise FramingError("truncated frame header")
        flag, length = struct.unpack_from(">BI", body, pos)
        pos += 5
        if flag not in (DATA, TRAILER):
            raise FramingError(f"unknown frame flag 0x{flag:02x}")
        if len(body) - pos < length:
            raise FramingError("truncated frame payload")
        frames.append((flag, body[pos:pos + length]))
        pos += length
    return frames


# --------------------------------------------------------------------------- protobuf


def _varint(value: int) -> bytes:
    out = bytearray()
    while True:
        b = value & 0x7F
        value >>= 7
        if value:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def pb_varint(field: int, value: int) -> bytes:
    return _varint(field << 3) + _varint(value)


def pb_bytes(field: int, value: bytes | str) -> bytes:
    data = value.encode() if isinstance(value, str) else value
    return _varint((field << 3) | 2) + _varint(len(data)) + data


def _read_varint(buf: bytes, pos: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        if pos >= len(buf):
            raise FramingError("truncated varint")
        b = buf[pos]
        pos += 1
        result |= (b & 0x7F) << shift
        if not b & 0x80:
            return result, pos
        shift += 7
        if shift > 63:
            raise FramingError("varint too long")


def pb_fields(buf: bytes) -> Iterator[tuple[int, int, int | bytes]]:
    """``(field number, wire type, value)`` for each field; varints as int, length-delimited as bytes."""
    pos = 0
    while pos < len(buf):
        key, pos = _read_varint(buf, pos)
        field, wire = key >> 3, key & 7
        if wire == 0:
            value, pos = _read_varint(buf, pos)
            yield field, wire, value
        elif wire == 2:
            length, pos = _read_varint(buf, pos)
            if pos + length > len(buf):
                raise FramingError("truncated length-delimited field")
            yield field, wire, buf[pos:pos + length]
            pos += length
        elif wire == 1:
            yield field, wire, buf[pos:pos + 8]
            pos += 8
        elif wire == 5:
            yield field, wire, buf[pos:pos + 4]
            pos += 4
        else:
            raise FramingError(f"unsupported wire type {wire}")


def nsfw_request(enabled: bool = True) -> bytes:
    """The UpdateUserFeatureControls message the web app sends for ``always_show_nsfw_content``."""
    return pb_bytes(1, pb_varint(2, 1 if enabled else 0)) + pb_bytes(2, pb_bytes(1, "always_show_nsfw_content"))


def parse_feature_controls(msg: bytes) -> tuple[bool, list[str]]:
    """(enabled, feature names) from an UpdateUserFeatureControls message."""
    enabled = False
    names: list[str] = []
    for field, wire, value in pb_fields(msg):
        if field == 1 and wire == 2 and isinstance(value, bytes):
            for f2, w2, v2 in pb_fields(value):
                if f2 == 2 and w2 == 0:
                    enabled = bool(v2)
        elif field == 2 and wire == 2 and isinstance(value, bytes):
            for f2, w2, v2 in pb_fields(value):
                if f2 == 1 and w2 == 2 and isinstance(v2, bytes):
                    names.append(v2.decode("utf-8", "replace"))
    return enabled, names


def parse_tos(msg: bytes) -> int | None:
    """The accepted ToS version (field 2 varint) of a SetTosAcceptedVersion message."""
    for field, wire, value in pb_fields(msg):
        if field == 2 and wire == 0 and isinstance(value, int):
            return value
    return None
