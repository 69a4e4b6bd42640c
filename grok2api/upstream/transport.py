"""HTTP transport: pooled curl_cffi sessions with Chrome impersonation (protocol chat.md §1.7–§1.9).

- Two scopes, ``api`` (grok.com REST) and ``asset`` (uploads, asset list/download),
  each with its own proxy and a small round-robin pool of ``AsyncSession`` objects.
- A response whose status is in ``reset_session_status_codes`` (default 403)
  replaces the session it came from: the next request opens a fresh connection
  (new TLS handshake; new exit IP with a rotating proxy). The old session is
  closed once its in-flight requests finish.
- Streams use a connect timeout, a first-byte (response headers) timeout and an
  *idle* timeout between reads — never curl's whole-transfer timeout.
- Everything raised is an :class:`UpstreamError`; messages never carry the token.
"""

from __future__ import annotations

import asyncio
import re
from contextlib import suppress
from typing import Any, Mapping

from curl_cffi import CurlOpt
from curl_cffi.requests import AsyncSession, BrowserType

from grok2api.upstream.curl_stream import CurlStream, CurlStreamPool
from grok2api.upstream.errors import UpstreamError, classify_exception, classify_http
from grok2api.upstream.settings import UpstreamSettings

_SUPPORTED = {b.value for b in BrowserType}


def resolve_impersonate(browser: str) -> str:
    """The requested curl_cffi target if supported, else the nearest supported one of its family.

    ``chrome137`` → the highest supported ``chromeNNN`` ≤ 137; unknown families → ``chrome``.
    """
    b = (browser or "").strip().lower()
    if b in _SUPPORTED:
        return b
    m = re.match(r"([a-z]+?)(\d+)", b)
    family, want = (m.group(1), int(m.group(2))) if m else (b or "chrome", 10**6)
    candidates: list[tuple[int, str]] = []
    for t in _SUPPORTED:
        tm = re.fullmatch(rf"{family}(\d+)", t)
        if tm:
            candidates.append((int(tm.group(1)), t))
    if not candidates:
        return "chrome136" if "chrome136" in _SUPPORTED or family == "chrome" else resolve_impersonate("chrome136")
    below = [c for c in candidates if c[0] <= want]
    return max(below)[1] if below else min(candidates)[1]


def normalize_proxy(url: str) -> str:
    """``socks5://`` → ``socks5h://`` and ``socks4://`` → ``socks4a://`` (DNS through the proxy)."""
    url = (url or "").strip()
    if url.startswith("socks5://"):
        return "socks5h://" + url[len("socks5://"):]
    if url.startswith("socks4://"):
        return "socks4a://" + url[len("socks4://"):]
    return url


class _Slot:
    __slots__ = ("session", "inflight", "retired")

    def __init__(self, session: AsyncSession) -> None:
        self.session = session
        self.inflight = 0
        self.retired = False


class SessionPool:
    """Round-robin pool of AsyncSessions sharing one proxy."""

    def __init__(self, settings: UpstreamSettings, proxy: str) -> None:
        self._settings = settings
        self._proxy = normalize_proxy(proxy)
        self._impersonate = resolve_impersonate(settings.browser)
        self._slots: list[_Slot | None] = [None] * settings.sessions
        self._next = 0
        self._closing: set[asyncio.Task[None]] = set()

    @property
    def impersonate(self) -> str:
        return self._impersonate

    def _new_session(self) -> AsyncSession:
        kw: dict[str, Any] = {
            "impersonate": self._impersonate,
            "max_clients": self._settings.max_clients,
            "verify": self._settings.verify_tls,
            "trust_env": False,
            "allow_redirects": True,
        }
        if self._proxy:
            kw["proxy"] = self._proxy
            if self._settings.skip_proxy_ssl_verify:
                kw["curl_options"] = {CurlOpt.PROXY_SSL_VERIFYPEER: 0, CurlOpt.PROXY_SSL_VERIFYHOST: 0}
        return AsyncSession(**kw)

    def acquire(self) -> _Slot:
        i = self._next
        self._next = (i + 1) % len(self._slots)
        slot = self._slots[i]
        if slot is None or slot.retired:
            slot = _Slot(self._new_session())
            self._slots[i] = slot
        slot.inflight += 1
        return slot

    def release(self, slot: _Slot) -> None:
        slot.inflight -= 1
        if slot.retired and slot.inflight <= 0:
            self._close_later(slot)

    def reset(self, slot: _Slot) -> None:
        """Retire ``slot``: later requests get a new session; the old one closes when idle."""
        if slot.retired:
            return
        slot.retired = True
        if slot.inflight <= 0:
            self._close_later(slot)

    def _close_later(self, slot: _Slot) -> None:
        async def close() -> None:
            with suppress(Exception):
                await slot.session.close()
        try:
            task = asyncio.get_running_loop().create_task(close())
        except RuntimeError:
            return
        self._closing.add(task)
        task.add_done_callback(self._closing.discard)

    async def aclose(self) -> None:
        for i, slot in enumerate(self._slots):
            if slot is not None:
                with suppress(Exception):
                    await slot.session.close()
                self._slots[i] = None
        if self._closing:
            await asyncio.gather(*self._closing, return_exceptions=True)


class Response:
    """A fully read (non-streamed) HTTP answer."""

    __slots__ = ("status", "headers", "content")

    def __init__(self, status: int, headers: dict[str, str], content: bytes) -> None:
        self.status = status
        self.headers = headers
        self.content = content

    def json(self) -> Any:
        import orjson
        return orjson.loads(self.content)


def _lower_headers(h: Any) -> dict[str, str]:
    try:
        return {str(k).lower(): str(v) for k, v in h.items() if v is not None}
    except Exception:  # pragma: no cover - defensive
        return {}


class Transport:
    """The HTTP layer of one worker process. Create once; :meth:`aclose` on shutdown."""

    def __init__(self, settings: UpstreamSettings) -> None:
        self.settings = settings
        self._pools = {
            "api": SessionPool(settings, settings.proxy_url),
            "asset": SessionPool(settings, settings.asset_proxy),
        }
        self._reset_codes = frozenset(settings.reset_session_status_codes)
        impersonate = resolve_impersonate(settings.browser)
        self._streams = {
            scope: CurlStreamPool(impersonate, proxy=normalize_proxy(proxy),
                                  skip_proxy_ssl_verify=settings.skip_proxy_ssl_verify,
                                  verify_tls=settings.verify_tls, connect_timeout=settings.connect_timeout,
                                  max_handles=settings.max_clients)
            for scope, proxy in (("api", settings.proxy_url), ("asset", settings.asset_proxy))
        }

    @property
    def impersonate(self) -> str:
        return self._pools["api"].impersonate

    def _after_status(self, pool: SessionPool, slot: _Slot, status: int) -> None:
        if status in self._reset_codes:
            pool.reset(slot)

    def reset_sessions(self, scope: str = "api") -> None:
        """Retire every session of a scope (e.g. after an in-band anti-bot error)."""
        pool = self._pools[scope]
        for slot in list(pool._slots):
            if slot is not None:
                pool.reset(slot)
        self._streams[scope].reset()

    async def request(self, method: str, url: str, *, headers: Mapping[str, str], data: bytes | None = None,
                      params: Mapping[str, Any] | None = None, scope: str = "api",
                      timeout: float | None = None, secrets: tuple[str, ...] = ()) -> Response:
        """One fully-read request. Returns any status (callers classify); raises on transport failure."""
        pool = self._pools[scope]
        slot = pool.acquire()
        s = self.settings
        total = timeout if timeout is not None else s.request_timeout
        try:
            try:
                rsp = await asyncio.wait_for(
                    slot.session.request(method, url, headers=dict(headers), data=data, params=params,
                                         timeout=(s.connect_timeout, total)),
                    timeout=s.connect_timeout + total + 1.0,
                )
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                raise classify_exception(exc, *secrets) from None
            self._after_status(pool, slot, rsp.status_code)
            return Response(rsp.status_code, _lower_headers(rsp.headers), rsp.content)
        finally:
            pool.release(slot)

    async def stream(self, method: str, url: str, *, headers: Mapping[str, str], data: bytes | None = None,
                     scope: str = "api", idle_timeout: float | None = None,
                     first_byte_timeout: float | None = None,
                     secrets: tuple[str, ...] = ()) -> CurlStream:
        """Send a request and return once the response headers arrived (any status).

        Streams go through :class:`CurlStreamPool` (pre-configured curl handles, the same
        impersonation as the sessions) — the hot path of every chat request.
        """
        s = self.settings
        idle = idle_timeout if idle_timeout is not None else s.idle_timeout
        fbt = first_byte_timeout if first_byte_timeout is not None else s.first_byte_timeout
        lines = [f"{k}: {v}".encode("latin-1", "replace") for k, v in headers.items()]
        pool = self._streams[scope]
        try:
            resp = await pool.open(method, url, lines, data, head_timeout=s.connect_timeout + fbt,
                                   idle_timeout=idle, secrets=secrets)
        except (UpstreamError, asyncio.CancelledError):
            raise
        except Exception as exc:
            raise classify_exception(exc, *secrets) from None
        if resp.status in self._reset_codes:
            pool.reset()
        return resp

    async def aclose(self) -> None:
        for pool in self._pools.values():
            await pool.aclose()
        for streams in self._streams.values():
            await streams.aclose()


async def raise_for_status(resp: CurlStream | Response, *secrets: str) -> None:
    """Raise the classified :class:`UpstreamError` when ``resp`` is not a 2xx."""
    if 200 <= resp.status < 300:
        return
    if not isinstance(resp, Response):
        try:
            body = await resp.read(64 * 1024)
        except UpstreamError:
            body = b""
    else:
        body = resp.content
    raise classify_http(resp.status, body, resp.headers, *secrets)
