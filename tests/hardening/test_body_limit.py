"""Oversized request bodies get 413 before the gateway reads them whole.

The limit follows ``asset.max_upload_mb`` (one attachment of that size, base64-encoded, plus
1 MiB) and is re-read from the hot-reloaded config. Both ways a body can arrive are covered:
a declared ``Content-Length`` (refused before a byte of the body is read) and a chunked body
without a length (cut off once the running count passes the limit).
"""

from __future__ import annotations

import select
import socket
import time
from typing import Iterator
from urllib.parse import urlsplit

import httpx
import pytest

from grok2api.api.security import body_limit_bytes
from support import update_gateway_config, wait_for

MIB = 1024 * 1024


def _head(gateway, path: str, extra: str) -> bytes:
    host = urlsplit(gateway.base_url).netloc
    return (f"POST {path} HTTP/1.1\r\nHost: {host}\r\nAuthorization: Bearer {gateway.api_key}\r\n"
            f"Content-Type: application/json\r\n{extra}\r\n").encode()


def _read_response(sock: socket.socket, timeout: float) -> tuple[int, bytes]:
    sock.setblocking(True)
    sock.settimeout(timeout)
    data = b""
    try:
        while b"\r\n\r\n" not in data:
            part = sock.recv(65536)
            if not part:
                break
            data += part
        head, _, body = data.partition(b"\r\n\r\n")
        length = next((int(line.split(b":", 1)[1]) for line in head.split(b"\r\n")
                       if line.lower().startswith(b"content-length:")), None)
        while length is not None and len(body) < length:
            part = sock.recv(65536)
            if not part:
                break
            body += part
    except (ConnectionResetError, socket.timeout):
        head, _, body = data.partition(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1]) if head.startswith(b"HTTP/") else 0
    return status, body


def _connect(gateway) -> socket.socket:
    parts = urlsplit(gateway.base_url)
    return socket.create_connection((parts.hostname, parts.port), timeout=10)


def test_declared_length_over_the_limit_is_refused_without_reading(gateway) -> None:
    """10 GiB announced, 10 bytes sent: the answer comes at once, so nothing waited for the body."""
    sock = _connect(gateway)
    try:
        t0 = time.monotonic()
        sock.sendall(_head(gateway, "/v1/chat/completions", f"Content-Length: {10 * 1024 * MIB}\r\n") + b'{"model":')
        status, body = _read_response(sock, timeout=10)
    finally:
        sock.close()
    assert status == 413, body
    assert b'"request_too_large"' in body
    assert time.monotonic() - t0 < 5


def _send_chunked(gateway, path: str, total: int, chunk: int = 64 * 1024) -> tuple[int, bytes, int]:
    """Stream up to ``total`` bytes chunked, stopping as soon as the server answers."""
    sock = _connect(gateway)
    try:
        sock.sendall(_head(gateway, path, "Transfer-Encoding: chunked\r\n"))
        sock.setblocking(False)
        piece = f"{chunk:x}\r\n".encode() + b"[" * chunk + b"\r\n"
        pending, sent = b"", 0
        deadline = time.monotonic() + 60
        while sent < total and time.monotonic() < deadline:
            readable, writable, _ = select.select([sock], [sock], [], 5)
            if readable:
                break
            if writable:
                if not pending:
                    pending = piece
                try:
                    n = sock.send(pending)
                except (BlockingIOError, InterruptedError):
                    continue
                except (BrokenPipeError, ConnectionResetError):
                    break
                sent += n
                pending = pending[n:]
        status, body = _read_response(sock, timeout=15)
        return status, body, sent
    finally:
        sock.close()


@pytest.fixture
def small_limit(gateway) -> Iterator[int]:
    """``asset.max_upload_mb = 1`` for the test (restored after), once every replica applies it."""
    limit = body_limit_bytes(1)
    headers = {"Authorization": f"Bearer {gateway.api_key}", "Content-Type": "application/json"}
    probe = b"[" * (limit + 1)

    def status_of_probe() -> int:
        return httpx.post(gateway.api_url + "/chat/completions", content=probe, headers=headers, timeout=30).status_code

    update_gateway_config(gateway, {"asset": {"max_upload_mb": 1}})
    try:
        assert wait_for(lambda: status_of_probe() == 413, timeout=20, interval=0.3), "limit not applied"
        yield limit
    finally:
        update_gateway_config(gateway, {"asset": {"max_upload_mb": 50}})
        assert wait_for(lambda: status_of_probe() == 400, timeout=20, interval=0.3), "limit not restored"


def test_limit_follows_max_upload_mb(gateway, small_limit: int) -> None:
    headers = {"Authorization": f"Bearer {gateway.api_key}", "Content-Type": "application/json"}
    url = gateway.api_url + "/chat/completions"
    under = httpx.post(url, content=b"[" * (small_limit - 16), headers=headers, timeout=30)
    assert under.status_code == 400 and under.json()["error"]["code"] != "request_too_large"  # read, then invalid
    over = httpx.post(url, content=b"[" * (small_limit + 16), headers=headers, timeout=30)
    assert over.status_code == 413 and over.json()["error"]["code"] == "request_too_large"
    # Admin routes are under the same limit.
    admin = httpx.post(gateway.api_url + "/admin/tokens", content=b"[" * (small_limit + 16), timeout=30,
                       headers={"Authorization": f"Bearer {gateway.admin_key}", "Content-Type": "application/json"})
    assert admin.status_code == 413


def test_chunked_body_is_cut_off_while_streaming(gateway, small_limit: int) -> None:
    """A chunked body with no length: the 413 arrives while the client is still sending."""
    total = 64 * MIB
    status, body, sent = _send_chunked(gateway, "/v1/chat/completions", total)
    assert status == 413, (status, body[:200], sent)
    assert b"request_too_large" in body
    assert sent < total // 2, f"the client had sent {sent} bytes before the refusal"
    # The replica is fine afterwards.
    assert httpx.get(gateway.base_url + "/health", timeout=15).status_code == 200
