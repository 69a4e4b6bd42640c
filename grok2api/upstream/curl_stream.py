"""Streamed requests on curl_cffi's low-level API: pooled easy handles on one multi handle.

``AsyncSession(stream=True)`` spends most of its per-request time in Python (generic header
objects, ~40 ``setopt`` calls, a task, a queue and an event per request). The gateway's streamed
calls are all alike, so this module keeps a pool of easy handles that are configured once —
Chrome impersonation (the same TLS/HTTP2 fingerprint as the session API), timeouts, TLS and proxy
options, and two body/header callbacks bound to the handle — and per request sets only the URL
(when it changed), the header list and the body. The handles run on a :class:`CurlMulti`, whose
connection cache keeps connections alive between requests, exactly as a session does.

Idle timeouts need no timer per read: a reader that waits for data registers its deadline with
the pool, and one asyncio timer per pool, moved lazily, expires the waits that ran out.

Measured in ``bench/README.md`` (Upstream client and Gateway sections).
"""

from __future__ import annotations

import asyncio
from collections import deque
from typing import Any, AsyncIterator

from curl_cffi import Curl, CurlError, CurlOpt
from curl_cffi._wrapper import ffi, lib

from grok2api.upstream.curl_multi import EARLY_S, CurlMulti, LazyTimer
from grok2api.upstream.errors import ErrorKind, UpstreamError, classify_exception

_WRITE_CB = "size_t(char *, size_t, size_t, void *)"
_ONE = ffi.new("long *", 1)


class _Expired(Exception):
    """A wait ran past its deadline (raised into the waiting reader)."""


class _Handle:
    """One pre-configured easy handle and the state of the transfer it currently runs.

    libcurl calls :meth:`_on_header` for each response header line and :meth:`_on_body` for each
    piece of the body; the multi driver calls :meth:`finished` with the result code.
    """

    __slots__ = ("curl", "easy", "status", "headers", "chunks", "code", "waiter", "deadline", "_head",
                 "_head_done", "_slist", "_url", "_custom", "_body", "_body_cb", "_header_cb", "error")

    def __init__(self, curl: Curl) -> None:
        self.curl = curl
        self.easy: Any = curl._curl
        self.status = 0
        self.headers: dict[str, str] = {}
        self.chunks: deque[bytes] = deque()
        self.code: int | None = None  # libcurl's result once the transfer finished
        self.waiter: asyncio.Future[None] | None = None
        self.deadline = 0.0
        self.error: BaseException | None = None  # raised inside one of the callbacks
        self._head: list[bytes] = []
        self._head_done = False
        self._slist: Any = ffi.NULL
        self._url = b""
        self._custom = False
        self._body: bytes | None = None
        self._body_cb = ffi.callback(_WRITE_CB, self._on_body, error=0, onerror=self._callback_failed)
        self._header_cb = ffi.callback(_WRITE_CB, self._on_header, error=0, onerror=self._callback_failed)
        lib._curl_easy_setopt(self.easy, CurlOpt.WRITEFUNCTION, self._body_cb)
        lib._curl_easy_setopt(self.easy, CurlOpt.HEADERFUNCTION, self._header_cb)

    # -- per request ----------------------------------------------------------------------
    def prepare(self, method: str, url: bytes, header_lines: list[bytes], body: bytes | None) -> None:
        easy = self.easy
        if url != self._url:
            lib._curl_easy_setopt(easy, CurlOpt.URL, url)
            self._url = url
        slist = ffi.NULL
        for line in header_lines:
            slist = lib.curl_slist_append(slist, line)
        lib._curl_easy_setopt(easy, CurlOpt.HTTPHEADER, slist)
        if self._slist != ffi.NULL:
            lib.curl_slist_free_all(self._slist)
        self._slist = slist
        if self._custom:
            lib._curl_easy_setopt(easy, CurlOpt.CUSTOMREQUEST, ffi.NULL)
            self._custom = False
        if method == "POST" or body is not None:
            self._body = body or b""  # libcurl reads the body from this buffer: keep it alive
            lib._curl_easy_setopt(easy, CurlOpt.POSTFIELDSIZE, ffi.new("long *", len(self._body)))
            lib._curl_easy_setopt(easy, CurlOpt.POSTFIELDS, self._body)
        else:
            self._body = None
            lib._curl_easy_setopt(easy, CurlOpt.HTTPGET, _ONE)
        if method not in ("GET", "POST"):
            lib._curl_easy_setopt(easy, CurlOpt.CUSTOMREQUEST, method.encode())
            self._custom = True
        self.status = 0
        self.headers = {}
        self.chunks.clear()
        self.code = None
        self.waiter = None
        self.error = None
        self._head = []
        self._head_done = False

    # -- libcurl callbacks ----------------------------------------------------------------
    def _on_header(self, ptr: Any, size: int, nmemb: int, userdata: Any) -> int:
        line = ffi.buffer(ptr, nmemb)[:]
        self._head.append(line)
        if nmemb <= 2 and line.strip() == b"":  # the blank line that ends a head
            self._end_head()
            if self.status < 200:  # 1xx: the final response's head follows
                self._head_done = False
                self._head = []
            else:
                w = self.waiter
                if w is not None and not w.done():
                    w.set_result(None)
        return nmemb

    def _on_body(self, ptr: Any, size: int, nmemb: int, userdata: Any) -> int:
        if not self._head_done:
            self._end_head()
        self.chunks.append(ffi.buffer(ptr, nmemb)[:])
        w = self.waiter
        if w is not None and not w.done():
            w.set_result(None)
        return nmemb

    def _callback_failed(self, exc_type: type[BaseException], exc: BaseException, tb: Any) -> None:
        self.error = exc  # libcurl aborts the transfer (the callback returned 0)

    def finished(self, code: int) -> None:
        self.code = code
        if not self._head_done:
            self._end_head()
        w = self.waiter
        if w is not None and not w.done():
            w.set_result(None)

    def _end_head(self) -> None:
        """Status and headers of the final response (a 1xx or redirect head before it starts over)."""
        self._head_done = True
        head = self._head
        start = -1
        for i in range(len(head) - 1, -1, -1):
            if head[i].startswith(b"HTTP/"):
                start = i
                break
        if start < 0:
            return
        parts = head[start].split(b" ", 2)
        self.status = int(parts[1]) if len(parts) > 1 and parts[1].isdigit() else 0
        out: dict[str, str] = {}
        for raw in head[start + 1:]:
            name, sep, value = raw.decode("latin-1").partition(":")
            if sep:
                out[name.strip().lower()] = value.strip()
        self.headers = out

    @property
    def head_done(self) -> bool:
        return self._head_done

    def failure(self) -> BaseException:
        if self.error is not None:
            return self.error
        return self.curl._get_error(self.code or 0, "perform") or CurlError("transfer failed")

    def close(self) -> None:
        self.curl.close()
        if self._slist != ffi.NULL:
            lib.curl_slist_free_all(self._slist)
            self._slist = ffi.NULL
        self._body = None


class CurlStreamPool:
    """Pre-configured easy handles for streamed calls through one proxy (or none)."""

    def __init__(self, impersonate: str, *, proxy: str = "", skip_proxy_ssl_verify: bool = False,
                 verify_tls: bool = True, connect_timeout: float = 15.0, max_handles: int = 512) -> None:
        self._impersonate = impersonate
        self._proxy = proxy
        self._skip_proxy_verify = skip_proxy_ssl_verify
        self._verify = verify_tls
        self._connect_ms = int(connect_timeout * 1000)
        self._free: list[_Handle] = []
        self._max = max_handles
        self._multi_now: CurlMulti | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._sem: asyncio.Semaphore | None = None
        self._users: dict[CurlMulti, int] = {}
        self._retired: set[CurlMulti] = set()
        # Readers waiting for data, each with its deadline; one timer expires the late ones.
        self._waiting: set[_Handle] = set()
        self._timer: LazyTimer | None = None

    def _multi(self) -> CurlMulti:
        loop = asyncio.get_running_loop()
        if self._loop is not loop:  # a new event loop (tests, a restarted runtime): start afresh
            self._loop = loop
            self._sem = asyncio.Semaphore(self._max)
            for h in self._free:
                h.close()
            self._free.clear()
            self._multi_now = None
            self._waiting.clear()
            self._timer = LazyTimer(loop, self._expire_late)
        if self._multi_now is None:
            self._multi_now = CurlMulti(loop)
            self._users[self._multi_now] = 0
        return self._multi_now

    def reset(self) -> None:
        """Open new connections from now on (after a 403 challenge): retire the multi handle and its
        connection cache; it is closed once the transfers still using it are done."""
        old, self._multi_now = self._multi_now, None
        if old is not None:
            self._retired.add(old)
            self._maybe_close(old)

    def _maybe_close(self, multi: CurlMulti) -> None:
        if multi in self._retired and self._users.get(multi, 0) <= 0:
            self._retired.discard(multi)
            self._users.pop(multi, None)
            multi.close()

    def _new_handle(self) -> _Handle:
        curl = Curl()
        curl.impersonate(self._impersonate, default_headers=False)
        curl.setopt(CurlOpt.ACCEPT_ENCODING, b"")  # decode whatever encoding the server picked
        curl.setopt(CurlOpt.CONNECTTIMEOUT_MS, self._connect_ms)
        curl.setopt(CurlOpt.NOSIGNAL, 1)
        # libcurl's smallest send buffer (default 64 KiB): a request body is a chat payload, and every
        # stream in flight holds this buffer (half of the curl leg's memory at 1,000 streams).
        curl.setopt(CurlOpt.UPLOAD_BUFFERSIZE, 16 * 1024)
        if not self._verify:
            curl.setopt(CurlOpt.SSL_VERIFYPEER, 0)
            curl.setopt(CurlOpt.SSL_VERIFYHOST, 0)
        if self._proxy:
            curl.setopt(CurlOpt.PROXY, self._proxy.encode())
            if self._skip_proxy_verify:
                curl.setopt(CurlOpt.PROXY_SSL_VERIFYPEER, 0)
                curl.setopt(CurlOpt.PROXY_SSL_VERIFYHOST, 0)
        curl._ensure_cacert()
        return _Handle(curl)

    # -- waiting with a deadline ------------------------------------------------------------
    async def wait(self, h: _Handle, timeout: float) -> None:
        """Wait until ``h`` has news (data, head, end); raise :class:`_Expired` after ``timeout``.

        Called only for a transfer started by :meth:`open`, so on the pool's current loop."""
        loop = asyncio.get_running_loop()
        assert self._timer is not None
        h.waiter = waiter = loop.create_future()
        h.deadline = loop.time() + timeout
        self._waiting.add(h)
        self._timer.arm(h.deadline)
        try:
            await waiter
        finally:
            h.waiter = None
            self._waiting.discard(h)

    def _expire_late(self) -> None:
        assert self._loop is not None and self._timer is not None
        now = self._loop.time() + EARLY_S
        nearest: float | None = None
        for h in list(self._waiting):
            if h.deadline <= now:
                w = h.waiter
                if w is not None and not w.done():
                    w.set_exception(_Expired())
                self._waiting.discard(h)
            elif nearest is None or h.deadline < nearest:
                nearest = h.deadline
        if nearest is not None:
            self._timer.arm(nearest)

    # -- requests ---------------------------------------------------------------------------
    async def open(self, method: str, url: str, header_lines: list[bytes], body: bytes | None, *,
                   head_timeout: float, idle_timeout: float, secrets: tuple[str, ...] = ()) -> "CurlStream":
        """Send the request; return once the final response head arrived (any status)."""
        multi = self._multi()
        assert self._sem is not None
        await self._sem.acquire()
        try:
            h = self._free.pop() if self._free else self._new_handle()
        except BaseException:
            self._sem.release()
            raise
        try:
            h.prepare(method, url.encode(), header_lines, body)
            multi.add(h.easy, h)
        except BaseException:
            self._sem.release()
            h.close()
            raise
        self._users[multi] += 1
        stream = CurlStream(self, multi, h, idle_timeout, secrets)
        try:
            if not h.head_done:
                await self.wait(h, head_timeout)
        except _Expired:
            await stream.aclose()
            raise UpstreamError(ErrorKind.TRANSPORT, 0, f"no response headers within {head_timeout:g}s") from None
        except BaseException:
            await stream.aclose()
            raise
        if h.status == 0:  # the transfer ended without a response head
            exc = h.failure() if h.code else CurlError("connection closed before the response")
            await stream.aclose()
            raise classify_exception(exc, *secrets)
        stream.status = h.status
        stream.headers = h.headers
        return stream

    def _give_back(self, multi: CurlMulti, h: _Handle, *, reusable: bool) -> None:
        if reusable and len(self._free) < self._max:
            self._free.append(h)
        else:
            h.close()
        if self._sem is not None:
            self._sem.release()
        self._users[multi] = self._users.get(multi, 1) - 1
        self._maybe_close(multi)

    async def aclose(self) -> None:
        for h in self._free:
            h.close()
        self._free.clear()
        multis = [m for m in (self._multi_now, *self._retired) if m is not None]
        self._multi_now = None
        self._retired.clear()
        for m in multis:
            m.close()
        if self._timer is not None:
            self._timer.cancel()


class CurlStream:
    """An open streamed answer: ``status``, ``headers``, :meth:`chunks`, :meth:`read`, :meth:`aclose`."""

    def __init__(self, pool: CurlStreamPool, multi: CurlMulti, handle: _Handle, idle_timeout: float,
                 secrets: tuple[str, ...]) -> None:
        self._pool = pool
        self._multi = multi
        self._h = handle
        self.status = 0
        self.headers: dict[str, str] = {}
        self.idle_timeout = idle_timeout
        self._secrets = secrets
        self._closed = False

    async def chunks(self) -> AsyncIterator[bytes]:
        """Body chunks as curl delivers them (every chunk already received is joined into one)."""
        h = self._h
        chunks = h.chunks
        pool = self._pool
        while True:
            if chunks:
                if len(chunks) == 1:
                    yield chunks.popleft()
                else:
                    data = b"".join(chunks)
                    chunks.clear()
                    yield data
                continue
            if h.code is not None:
                if h.code:
                    raise classify_exception(h.failure(), *self._secrets)
                return
            try:
                await pool.wait(h, self.idle_timeout)
            except _Expired:
                raise UpstreamError(ErrorKind.IDLE_TIMEOUT, 0,
                                    f"no data from upstream for {self.idle_timeout:g}s") from None

    def ready(self) -> bool:
        """Whether body data or the end of the transfer is already here (reading would not wait)."""
        return bool(self._h.chunks) or self._h.code is not None or self._closed

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
        h = self._h
        finished = h.code == 0
        if h.code is None:
            self._multi.remove(h.easy)
        # A handle whose transfer was cut short is not reused (its state is unknown).
        self._pool._give_back(self._multi, h, reusable=finished)
