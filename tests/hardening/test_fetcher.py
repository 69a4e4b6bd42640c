"""The attachment fetcher (``grok2api.worker.attachments``) against real local HTTP servers.

Private addresses are refused unless their host is in ``allow_private_hosts``; these tests allow
exactly the host they mean to reach, so every refusal below is the guard's doing (each case has a
control that shows the target itself was reachable).
"""

from __future__ import annotations

import asyncio
import base64
import time
from typing import AsyncIterator, Awaitable, Callable

import pytest
from aiohttp import web

from grok2api.upstream.messages import Attachment
from grok2api.worker.attachments import (
    AttachmentError,
    fetch_public_url,
    is_public_address,
    load_attachment,
)

PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 200
MB = 1024 * 1024

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class Server:
    """An aiohttp server on one loopback address, counting the requests it got."""

    def __init__(self, host: str = "127.0.0.1") -> None:
        self.host = host
        self.hits: list[str] = []
        self.app = web.Application()
        self.runner: web.AppRunner | None = None
        self.port = 0

    def route(self, path: str, handler: Handler) -> None:
        async def counted(request: web.Request) -> web.StreamResponse:
            self.hits.append(request.path)
            return await handler(request)

        self.app.router.add_get(path, counted)

    async def start(self) -> "Server":
        self.runner = web.AppRunner(self.app, handle_signals=False, shutdown_timeout=0.2)
        await self.runner.setup()
        site = web.TCPSite(self.runner, self.host, 0)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]  # noqa: SLF001
        return self

    def url(self, path: str, host: str | None = None) -> str:
        return f"http://{host or self.host}:{self.port}{path}"

    async def stop(self) -> None:
        if self.runner is not None:
            await self.runner.cleanup()


@pytest.fixture
async def server() -> AsyncIterator[Server]:
    srv = Server("127.0.0.1")
    yield srv
    await srv.stop()


async def _png(_: web.Request) -> web.Response:
    return web.Response(body=PNG, content_type="image/png")


async def fetch(url: str, *, allow: list[str], max_bytes: int = 1 * MB, timeout: float = 5.0):
    return await fetch_public_url(url, param="messages[0].content[1].image_url", max_bytes=max_bytes,
                                  timeout=timeout, allow_private_hosts=allow)


# -- address classification -----------------------------------------------------------------


@pytest.mark.parametrize("addr", [
    "127.0.0.1", "127.8.9.10", "::1", "10.1.2.3", "172.16.0.1", "192.168.1.1", "169.254.169.254",
    "fe80::1", "fc00::1", "fd00:ec2::254", "224.0.0.1", "ff02::1", "0.0.0.0", "::", "100.64.0.1",
    "::ffff:127.0.0.1", "::ffff:169.254.169.254", "240.0.0.1", "255.255.255.255", "198.18.0.1",
])
def test_non_public_addresses(addr: str) -> None:
    assert not is_public_address(addr)


@pytest.mark.parametrize("addr", ["8.8.8.8", "1.1.1.1", "2606:4700:4700::1111", "::ffff:8.8.8.8"])
def test_public_addresses(addr: str) -> None:
    assert is_public_address(addr)


# -- URL shape ------------------------------------------------------------------------------------


@pytest.mark.parametrize("url", [
    "file:///etc/passwd", "ftp://example.com/a.png", "gopher://127.0.0.1:70/_x", "javascript:alert(1)",
    "dict://127.0.0.1:11211/stat", "//example.com/a.png", "http:///a.png",
])
async def test_only_http_and_https_urls(url: str) -> None:
    with pytest.raises(AttachmentError) as info:
        await fetch(url, allow=[])
    assert info.value.status == 400


async def test_credentials_in_url_are_refused(server: Server) -> None:
    server.route("/a.png", _png)
    await server.start()
    with pytest.raises(AttachmentError):
        await fetch(server.url("/a.png", host="user:pw@127.0.0.1"), allow=["127.0.0.1"])
    assert server.hits == []


@pytest.mark.parametrize("host", [
    "127.0.0.1", "localhost", "[::1]", "[::ffff:127.0.0.1]", "2130706433", "0x7f000001", "127.1", "0",
])
async def test_loopback_in_any_spelling_is_refused(server: Server, host: str) -> None:
    """Literal IPs are refused up front; names and odd numeric forms after DNS resolution."""
    server.route("/a.png", _png)
    await server.start()
    with pytest.raises(AttachmentError) as info:
        await fetch(f"http://{host}:{server.port}/a.png", allow=[])
    assert info.value.code in ("forbidden_url", "attachment_fetch_failed")
    assert server.hits == []


async def test_allow_list_lets_a_private_host_through(server: Server) -> None:
    server.route("/a.png", _png)
    await server.start()
    got = await fetch(server.url("/a.png"), allow=["127.0.0.1"])
    assert (got.mime, got.data, got.name) == ("image/png", PNG, "a.png")


# -- redirects: every hop is checked ----------------------------------------------------------------


async def test_redirect_to_a_private_host_is_refused_on_the_hop() -> None:
    """The first host is allowed ("localhost"); its redirect to 127.0.0.2 is not, although it answers."""
    target = Server("127.0.0.2")
    target.route("/secret.png", _png)
    await target.start()
    first = Server("127.0.0.1")

    async def redirect(_: web.Request) -> web.Response:
        raise web.HTTPFound(target.url("/secret.png"))

    first.route("/r", redirect)
    await first.start()
    try:
        with pytest.raises(AttachmentError) as info:
            await fetch(first.url("/r", host="localhost"), allow=["localhost"])
        assert info.value.code == "forbidden_url"
        assert first.hits == ["/r"] and target.hits == []
        # Control: allowing the second host too, the same chain succeeds — so the refusal was the guard.
        got = await fetch(first.url("/r", host="localhost"), allow=["localhost", "127.0.0.2"])
        assert got.data == PNG and target.hits == ["/secret.png"]
    finally:
        await first.stop()
        await target.stop()


async def test_redirect_by_name_is_resolved_and_checked(server: Server) -> None:
    """A redirect to a *name* that resolves to loopback is refused after DNS resolution."""
    async def redirect(_: web.Request) -> web.Response:
        raise web.HTTPFound(f"http://localhost:{server.port}/a.png")

    server.route("/r", redirect)
    server.route("/a.png", _png)
    await server.start()
    with pytest.raises(AttachmentError) as info:
        await fetch(server.url("/r"), allow=["127.0.0.1"])
    assert info.value.code == "forbidden_url"
    assert server.hits == ["/r"]


async def test_redirect_loops_end(server: Server) -> None:
    async def loop(_: web.Request) -> web.Response:
        raise web.HTTPFound("/loop")

    server.route("/loop", loop)
    await server.start()
    with pytest.raises(AttachmentError) as info:
        await fetch(server.url("/loop"), allow=["127.0.0.1"])
    assert "redirect" in info.value.message
    assert len(server.hits) == 6  # the first request and 5 redirects, then it stops


async def test_redirect_to_another_scheme_is_refused(server: Server) -> None:
    async def redirect(_: web.Request) -> web.Response:
        raise web.HTTPFound("file:///etc/passwd")

    server.route("/r", redirect)
    await server.start()
    with pytest.raises(AttachmentError) as info:
        await fetch(server.url("/r"), allow=["127.0.0.1"])
    assert info.value.status == 400


# -- size cap, while streaming -------------------------------------------------------------------


async def test_declared_length_over_the_cap_is_refused_before_the_body(server: Server) -> None:
    async def big(_: web.Request) -> web.Response:
        return web.Response(body=b"\x00" * (2 * MB), content_type="image/png")

    server.route("/big.png", big)
    await server.start()
    with pytest.raises(AttachmentError) as info:
        await fetch(server.url("/big.png"), allow=["127.0.0.1"], max_bytes=1 * MB)
    assert (info.value.status, info.value.code) == (413, "attachment_too_large")


async def test_endless_body_is_cut_at_the_cap_while_streaming(server: Server) -> None:
    """No Content-Length and a body that never ends: only a cap enforced while streaming can stop it."""
    sent = {"bytes": 0}

    async def endless(request: web.Request) -> web.StreamResponse:
        resp = web.StreamResponse(headers={"Content-Type": "image/png"})
        resp.enable_chunked_encoding()
        await resp.prepare(request)
        chunk = b"\x00" * 65536
        try:
            for _ in range(100_000):  # ~6.5 GB: far more than any test would wait for
                await resp.write(chunk)
                sent["bytes"] += len(chunk)
        except (ConnectionResetError, RuntimeError, OSError):
            pass
        return resp

    server.route("/endless.png", endless)
    await server.start()
    t0 = time.monotonic()
    with pytest.raises(AttachmentError) as info:
        await fetch(server.url("/endless.png"), allow=["127.0.0.1"], max_bytes=1 * MB, timeout=30)
    assert (info.value.status, info.value.code) == (413, "attachment_too_large")
    assert time.monotonic() - t0 < 10
    await asyncio.sleep(0.2)
    assert sent["bytes"] < 64 * MB  # the server was cut off, it did not stream on


# -- timeout and content type --------------------------------------------------------------------


async def test_slow_server_hits_the_timeout(server: Server) -> None:
    async def slow(_: web.Request) -> web.Response:
        await asyncio.sleep(30)
        return web.Response(body=PNG, content_type="image/png")

    server.route("/slow.png", slow)
    await server.start()
    t0 = time.monotonic()
    with pytest.raises(AttachmentError) as info:
        await fetch(server.url("/slow.png"), allow=["127.0.0.1"], timeout=1.0)
    assert info.value.code == "attachment_fetch_failed"
    assert time.monotonic() - t0 < 5


@pytest.mark.parametrize("ctype", ["application/octet-stream", "application/x-msdownload",
                                   "application/x-sh", "image/svg+xml"])
async def test_content_types_grok_does_not_take_are_refused(server: Server, ctype: str) -> None:
    async def typed(_: web.Request) -> web.Response:
        return web.Response(body=b"x" * 200, headers={"Content-Type": ctype})

    server.route("/f", typed)
    await server.start()
    with pytest.raises(AttachmentError) as info:
        await fetch(server.url("/f"), allow=["127.0.0.1"])
    assert (info.value.status, info.value.code) == (415, "unsupported_media_type")


async def test_upstream_error_status_is_a_client_error(server: Server) -> None:
    async def missing(_: web.Request) -> web.Response:
        raise web.HTTPNotFound()

    server.route("/gone.png", missing)
    await server.start()
    with pytest.raises(AttachmentError) as info:
        await fetch(server.url("/gone.png"), allow=["127.0.0.1"])
    assert info.value.status == 400 and "404" in info.value.message


# -- data URIs -------------------------------------------------------------------------------------


def _data_att(uri: str) -> Attachment:
    return Attachment(kind="image", source=uri, param="messages[0].content[1].image_url")


async def test_data_uri_round_trip() -> None:
    uri = "data:image/png;base64," + base64.b64encode(PNG).decode()
    name, mime, data = await load_attachment(_data_att(uri), max_bytes=MB, allow_private_hosts=[], timeout=5)
    assert (mime, data) == ("image/png", PNG) and name


@pytest.mark.parametrize("uri", [
    "data:image/png;base64,!!!not base64!!!",
    "data:image/png;base64,iVBORw0KGgo=====",
    "data:image/png;base64,",
    "data:image/png,rawbytes-not-base64",
])
async def test_bad_data_uris_are_400(uri: str) -> None:
    with pytest.raises(AttachmentError) as info:
        await load_attachment(_data_att(uri), max_bytes=MB, allow_private_hosts=[], timeout=5)
    assert info.value.status == 400


async def test_oversized_data_uri_is_413() -> None:
    uri = "data:image/png;base64," + base64.b64encode(PNG + b"\x00" * (2 * MB)).decode()
    with pytest.raises(AttachmentError) as info:
        await load_attachment(_data_att(uri), max_bytes=MB, allow_private_hosts=[], timeout=5)
    assert info.value.status == 413
