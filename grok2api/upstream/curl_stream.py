"""Streamed requests on curl_cffi's low-level API: pooled easy handles on one multi handle.

``AsyncSession(stream=True)`` spends most of its per-request time in Python
(generic header objects, ~40 ``setopt`` calls, a task, a queue and an event per
request). The gateway's streamed calls are all alike, so this module drives
``curl_cffi.Curl`` handles on a shared ``AsyncCurl`` multi directly: per request
one ``reset`` + ``impersonate`` (same Chrome TLS/HTTP2 fingerprint as the
session API), a handful of options, header lines pre-encoded by the caller, and
two persistent callbacks. Connections are reused through the multi handle's
connection cache, exactly as with a session.

Measured in ``bench/README.md`` (Upstream client section).
"""

from __future__ import annotations

import asyncio
from collections import deque
from typing import AsyncIterator

from curl_cffi import Curl, CurlError, CurlOpt
from curl_cffi.aio import AsyncCurl

from grok2api.upstream.errors import ErrorKind, UpstreamError, classify_exception


class _Transfer:
    """One request in flight: response head and body chunks delivered by curl's callbacks."""

    __slots__ = ("status", "_head", "headers_done", "chunks", "waiter", "done", "head_lines", "_size")

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.status = 0
        self._head: list[bytes] = []
        self.head_lines: list[bytes] = []
        self.headers_done: asyncio.Future[None] = loop.create_future()
        self.chunks: deque[bytes] = deque()
        self.waiter: asyncio.Future[None] | None = None
        self.done: asyncio.Future[None] | None = None
        self._size = 0

    def on_header(self, line: bytes) -> int:
        if line.startswith(b"HTTP/"):
            self._head = [line]  # a new response (after 1xx / redirect) starts over
        elif line in (b"\r\n", b"\n"):
            parts = self._head[0].split(b" ", 2) if self._head else []
            code = int(parts[1]) if len(parts) > 1 and parts[1].isdigit() else 0
            if code >= 200 and not self.headers_done.done():
                self.status = code
                self.head_lines = self._head[1:]
                self.headers_done.set_result(None)
        else:
            self._head.append(line)
        return len(line)

    def on_data(self, chunk: bytes) -> int:
        self.chunks.append(chunk)
        self.wake()
        return len(chunk)

    def wake(self, _fut: object = None) -> None:
        """Wake the reader (new data, or the transfer ended)."""
        w = self.waiter
        if w is not None and not w.done():
            w.set_result(None)

    def headers(self) -> dict[str, str]:
        out: dict[str, str] = {}
        for raw in self.head_lines:
            name, sep, value = raw.decode("latin-1").partition(":")
            if sep:
                out[name.strip().lower()] = value.strip()
        return out


class CurlStreamPool:
    """Pre-configured easy handles for streamed calls through one proxy (or none)."""

    def __init__(self, impersonate: str, *, proxy: str = "", skip_proxy_ssl_verify: bool = False,
                 verify_tls: bool = True, connect_timeout: float = 15.0, max_handles: int = 512) -> None:
        self._impersonate = impersonate
        self._proxy = proxy
        self._skip_proxy_verify = skip_proxy_ssl_verify
        self._verify = verify_tls
        self._connect_ms = int(connect_timeout * 1000)
        self._free: list[Curl] = []
        self._max = max_handles
        self._acurl: AsyncCurl | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._sem: asyncio.Semaphore | None = None
        self._users: dict[AsyncCurl, int] = {}
        self._retired: set[AsyncCurl] = set()
        self._closing: set[asyncio.Task[None]] = set()

    def _multi(self) -> AsyncCurl:
        loop = asyncio.get_running_loop()
        if self._loop is not loop:
            self._loop = loop
            self._sem = asyncio.Semaphore(self._max)
            self._free.clear()
            self._acurl = None
        if self._acurl is None:
            self._acurl = AsyncCurl(loop=loop)
            self._users[self._acurl] = 0
        return self._acurl

    def reset(self) -> None:
        """Open new connections from now on (after a 403 challenge): retire the multi handle and its
        connection cache; it is closed once the transfers still using it are done."""
        old, self._acurl = self._acurl, None
        if old is not None:
            self._retired.add(old)
            self._maybe_close(old)

    def _maybe_close(self, acurl: AsyncCurl) -> None:
        if acurl in self._retired and self._users.get(acurl, 0) <= 0:
            self._retired.discard(acurl)
            self._users.pop(acurl, None)
            task = asyncio.get_running_loop().create_task(acurl.close())
            self._closing.add(task)
            task.add_done_callback(self._closing.discard)

    def _configure(self, curl: Curl, tr: _Transfer, method: str, url: str, header_lines: list[bytes],
                   body: bytes | None, backstop_s: float) -> None:
        curl.clean_handles_and_buffers()  # frees the previous request's header list and callbacks
        curl.reset()
        curl.impersonate(self._impersonate, default_headers=False)
        curl.setopt(CurlOpt.URL, url.encode())
        curl.setopt(CurlOpt.HTTPHEADER, header_lines)
        if method == "POST":
            curl.setopt(CurlOpt.POSTFIELDS, body or b"")
            curl.setopt(CurlOpt.POSTFIELDSIZE, len(body or b""))
        elif method != "GET":
            curl.setopt(CurlOpt.CUSTOMREQUEST, method.encode())
        curl.setopt(CurlOpt.ACCEPT_ENCODING, b"")  # decode whatever encoding the server picked
        curl.setopt(CurlOpt.CONNECTTIMEOUT_MS, self._connect_ms)
        curl.setopt(CurlOpt.LOW_SPEED_LIMIT, 1)  # curl's own backstop below the idle timeout
        curl.setopt(CurlOpt.LOW_SPEED_TIME, max(1, int(backstop_s)))
        curl.setopt(CurlOpt.NOSIGNAL, 1)
        if not self._verify:
            curl.setopt(CurlOpt.SSL_VERIFYPEER, 0)
            curl.setopt(CurlOpt.SSL_VERIFYHOST, 0)
        if self._proxy:
            curl.setopt(CurlOpt.PROXY, self._proxy.encode())
            if self._skip_proxy_verify:
                curl.setopt(CurlOpt.PROXY_SSL_VERIFYPEER, 0)
                curl.setopt(CurlOpt.PROXY_SSL_VERIFYHOST, 0)
        curl.setopt(CurlOpt.HEADERFUNCTION, tr.on_header)
        curl.setopt(CurlOpt.WRITEFUNCTION, tr.on_data)

    async def open(self, method: str, url: str, header_lines: list[bytes], body: bytes | None, *,
                   head_timeout: float, idle_timeout: float, secrets: tuple[str, ...] = ()) -> "CurlStream":
        """Send the request; return once the final response head arrived (any status)."""
        acurl = self._multi()
        assert self._sem is not None
        await self._sem.acquire()
        curl = self._free.pop() if self._free else Curl()
        tr = _Transfer(asyncio.get_running_loop())
        try:
            self._configure(curl, tr, method, url, header_lines, body, idle_timeout + 5.0)
            tr.done = acurl.add_handle(curl)
        except BaseException:
            self._sem.release()
            curl.close()
            raise
        self._users[acurl] += 1
        stream = CurlStream(self, acurl, curl, tr, idle_timeout, secrets)
        try:
            async with asyncio.timeout(head_timeout):
                await asyncio.wait({tr.headers_done, tr.done}, return_when=asyncio.FIRST_COMPLETED)
        except TimeoutError:
            await stream.aclose()
            raise UpstreamError(ErrorKind.TRANSPORT, 0, f"no response headers within {head_timeout:g}s") from None
        except BaseException:
            await stream.aclose()
            raise
        if not tr.headers_done.done():  # the transfer ended without a response head
            exc = tr.done.exception() if not tr.done.cancelled() else None
            await stream.aclose()
            raise classify_exception(exc or CurlError("connection closed before the response"), *secrets)
        stream.status = tr.status
        stream.headers = tr.headers()
        return stream

    def _give_back(self, acurl: AsyncCurl, curl: Curl, *, reusable: bool) -> None:
        if reusable and len(self._free) < self._max:
            self._free.append(curl)
        else:
            curl.close()
        if self._sem is not None:
            self._sem.release()
        self._users[acurl] = self._users.get(acurl, 1) - 1
        self._maybe_close(acurl)

    async def aclose(self) -> None:
        for curl in self._free:
            curl.close()
        self._free.clear()
        multis = [m for m in (self._acurl, *self._retired) if m is not None]
        self._acurl = None
        self._retired.clear()
        for m in multis:
            await m.close()
        if self._closing:
            await asyncio.gather(*self._closing, return_exceptions=True)


class CurlStream:
    """An open streamed answer: ``status``, ``headers``, :meth:`chunks`, :meth:`read`, :meth:`aclose`."""

    def __init__(self, pool: CurlStreamPool, acurl: AsyncCurl, curl: Curl, tr: _Transfer, idle_timeout: float,
                 secrets: tuple[str, ...]) -> None:
        self._pool = pool
        self._acurl = acurl
        self._curl = curl
        self._tr = tr
        self.status = 0
        self.headers: dict[str, str] = {}
        self.idle_timeout = idle_timeout
        self._secrets = secrets
        self._closed = False

    async def chunks(self) -> AsyncIterator[bytes]:
        """Body chunks as curl delivers them (every chunk already received is joined into one).

        Per wait: one future, woken by the data callback or the end of the transfer, and one
        ``call_later`` timer for the idle timeout — this runs for every streamed token.
        """
        tr = self._tr
        loop = asyncio.get_running_loop()
        done = tr.done
        assert done is not None
        done.add_done_callback(tr.wake)
        while True:
            if tr.chunks:
                data = tr.chunks.popleft() if len(tr.chunks) == 1 else b"".join(_drain(tr.chunks))
                yield data
                continue
            if done.done():
                exc = None if done.cancelled() else done.exception()
                if exc is not None:
                    raise classify_exception(exc, *self._secrets)
                return
            tr.waiter = waiter = loop.create_future()
            timer = loop.call_later(self.idle_timeout, _expire, waiter)
            try:
                await waiter
            except _IdleTimeout:
                raise UpstreamError(ErrorKind.IDLE_TIMEOUT, 0,
                                    f"no data from upstream for {self.idle_timeout:g}s") from None
            finally:
                timer.cancel()
                tr.waiter = None

    def ready(self) -> bool:
        """Whether body data or the end of the transfer is already here (reading would not wait)."""
        done = self._tr.done
        return bool(self._tr.chunks) or done is None or done.done()

    async def read(self, limit: int | None = None) -> bytes:
        parts: list[bytes] = []
        size = 0
        try:
            async for c in self.chunks():
                if limit is None or size < limit:
                    parts.append(c)
                size += len(c)
                if limit is not None and size >= limit:
                    break
        finally:
            await self.aclose()
        body = b"".join(parts)
        return body if limit is None else body[:limit]

    async def aclose(self) -> None:
        """Abort the transfer if it still runs and return the handle to the pool. Idempotent."""
        if self._closed:
            return
        self._closed = True
        done = self._tr.done
        finished = done is not None and done.done() and not done.cancelled() and done.exception() is None
        if done is not None and not done.done():
            self._acurl.remove_handle(self._curl)
        # A handle whose transfer was cut short is not reused (its state is unknown).
        self._pool._give_back(self._acurl, self._curl, reusable=finished)


class _IdleTimeout(Exception):
    pass


def _expire(waiter: asyncio.Future[None]) -> None:
    if not waiter.done():
        waiter.set_exception(_IdleTimeout())


def _drain(chunks: deque[bytes]) -> list[bytes]:
    out = list(chunks)
    chunks.clear()
    return out
