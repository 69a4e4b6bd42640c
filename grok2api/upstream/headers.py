"""Request headers and cookies for grok.com (protocol chat.md §1.2, §1.3, §1.6).

:class:`HeaderFactory` builds every constant part once per settings object; per
request only the cookie, ``x-statsig-id`` and ``x-xai-request-id`` change.
"""

from __future__ import annotations

import functools
import re
import uuid
from urllib.parse import urlsplit

from grok2api.upstream.settings import UpstreamSettings

_MEDIA_TYPES = {
    ".jpg": "image/jpeg", ".jpeg": "image/jpeg", ".png": "image/png", ".webp": "image/webp",
    ".gif": "image/gif", ".mp4": "video/mp4", ".webm": "video/webm",
}
_NAV_ACCEPT = (
    "text/html,application/xhtml+xml,application/xml;q=0.9,image/avif,image/webp,image/apng,*/*;q=0.8,"
    "application/signed-exchange;v=b3;q=0.7"
)


def _origin(url: str) -> str:
    p = urlsplit(url)
    return f"{p.scheme}://{p.netloc}"


def _host(url: str) -> str:
    return urlsplit(url).hostname or ""


def _site(host: str) -> str:
    """Registrable-ish domain: the last two labels (``assets.grok.com`` → ``grok.com``)."""
    parts = host.split(".")
    return ".".join(parts[-2:]) if len(parts) >= 2 else host


def fetch_site(origin: str, referer: str) -> str:
    """``same-origin`` when Origin and Referer hosts match, else ``same-site`` (§1.3)."""
    return "same-origin" if _host(origin) == _host(referer) else "same-site"


def client_hints(browser: str, user_agent: str) -> dict[str, str]:
    """Chromium client-hint headers derived from the impersonation target and UA (§1.6).

    Empty for non-Chromium browsers (Firefox, Safari).
    """
    b = (browser or "").lower()
    ua = user_agent or ""
    ual = ua.lower()
    if "firefox" in b or "safari" in b or "tor" in b:
        return {}
    chromium_b = any(x in b for x in ("chrome", "chromium", "edge", "brave"))
    chromium_ua = any(x in ual for x in ("chrome", "chromium", "edg"))
    if not (chromium_b or chromium_ua):
        return {}
    if "firefox" in ual and not chromium_ua:
        return {}
    m = re.search(r"(\d{2,3})", b)
    major = m.group(1) if m else None
    if major is None:
        for pat in (r"Edg/(\d+)", r"Chrome/(\d+)", r"Chromium/(\d+)"):
            m = re.search(pat, ua)
            if m:
                major = m.group(1)
                break
    if major is None:
        return {}
    if "edge" in b or "edg/" in ual:
        brand = "Microsoft Edge"
    elif "chromium" in b:
        brand = "Chromium"
    elif "brave" in b:
        brand = "Brave"
    else:
        brand = "Google Chrome"
    hints = {"Sec-Ch-Ua": f'"{brand}";v="{major}", "Chromium";v="{major}", "Not(A:Brand";v="24"'}
    mobile = any(x in ual for x in ("mobile", "android", "iphone", "ipad"))
    hints["Sec-Ch-Ua-Mobile"] = "?1" if mobile else "?0"
    platform = None
    if "windows" in ual:
        platform = "Windows"
    elif "android" in ual:
        platform = "Android"
    elif "iphone" in ual or "ipad" in ual or " ios" in ual:
        platform = "iOS"
    elif "mac os" in ual or "macintosh" in ual:
        platform = "macOS"
    elif "linux" in ual or "x11" in ual:
        platform = "Linux"
    if platform:
        hints["Sec-Ch-Ua-Platform"] = f'"{platform}"'
    arch = None
    if "aarch64" in ual or "arm" in ual:
        arch = "arm"
    elif any(x in ual for x in ("x86_64", "x64", "win64", "intel", "x86")):
        arch = "x86"
    if arch:
        hints["Sec-Ch-Ua-Arch"] = arch
        hints["Sec-Ch-Ua-Bitness"] = "64"
    hints["Sec-Ch-Ua-Model"] = ""
    return hints


def _sanitize(value: str) -> str:
    """Header-safe: ASCII dashes/quotes, no zero-width or control characters, latin-1 only."""
    table = {"\u2010": "-", "\u2011": "-", "\u2012": "-", "\u2013": "-", "\u2014": "-", "\u2212": "-",
             "\u2018": "'", "\u2019": "'", "\u201c": '"', "\u201d": '"'}
    out = []
    for ch in value:
        ch = table.get(ch, ch)
        o = ord(ch)
        if o < 32 or o == 127 or ch in "\u200b\u200c\u200d\ufeff\u00a0" or o > 255:
            continue
        out.append(ch)
    return "".join(out)


_NOT_VISIBLE_ASCII = re.compile(r"[^\x21-\x7e]")


@functools.lru_cache(maxsize=4096)  # called several times per request with the same few tokens
def bare_token(token: str) -> str:
    """The SSO value without an ``sso=`` prefix, anything after ``;`` and whitespace."""
    t = token.strip()
    if t.lower().startswith("sso="):
        t = t[4:]
    t = t.split(";", 1)[0]
    return _NOT_VISIBLE_ASCII.sub("", t)


def build_cookie(token: str, cf_clearance: str = "", cf_cookies: str = "") -> str:
    """``sso=T; sso-rw=T`` plus Cloudflare cookies (§1.2)."""
    t = bare_token(token)
    cookie = f"sso={t}; sso-rw={t}"
    extra = _sanitize(cf_cookies).strip().strip(";").strip()
    if cf_clearance:
        clearance = _sanitize(cf_clearance).strip()
        if extra:
            if re.search(r"(^|;\s*)cf_clearance=", extra):
                extra = re.sub(r"(^|;\s*)cf_clearance=[^;]*", lambda m: f"{m.group(1)}cf_clearance={clearance}",
                               extra)
            else:
                extra = f"{extra}; cf_clearance={clearance}"
        else:
            return f"{cookie};cf_clearance={clearance}"
    if extra:
        cookie = f"{cookie}; {extra}"
    return cookie


def request_id() -> str:
    return str(uuid.uuid4())


class HeaderFactory:
    """Per-settings header templates. Call :meth:`rest`, :meth:`asset`, :meth:`grpc` per request."""

    def __init__(self, settings: UpstreamSettings) -> None:
        self.settings = settings
        s = settings
        origin = _origin(s.base_url)
        self.origin = origin
        ua = _sanitize(s.user_agent)
        hints = client_hints(s.browser, ua) if s.client_hints else {}
        self._cf_clearance = s.cf_clearance
        self._cf_cookies = s.cf_cookies

        def rest_template(referer: str) -> dict[str, str]:
            h: dict[str, str] = {
                "Accept-Encoding": "gzip, deflate, br, zstd",
                "Accept-Language": s.accept_language,
            }
            if s.baggage:
                h["Baggage"] = s.baggage
            h["Origin"] = origin
            h["Priority"] = "u=1, i"
            h["Referer"] = referer
            h["Sec-Fetch-Mode"] = "cors"
            h["User-Agent"] = ua
            h.update(hints)
            h["Cookie"] = ""
            h["Content-Type"] = "application/json"
            h["Accept"] = "*/*"
            h["Sec-Fetch-Dest"] = "empty"
            h["Sec-Fetch-Site"] = fetch_site(origin, referer)
            return h

        self._rest = rest_template(origin + "/")
        self._rest_files = rest_template(origin + "/files")

        assets_origin = _origin(s.assets_url)
        asset: dict[str, str] = {
            "Accept-Encoding": "gzip, deflate, br, zstd",
            "Accept-Language": s.accept_language,
            "Cache-Control": "no-cache",
            "Origin": assets_origin,
            "Pragma": "no-cache",
            "Priority": "u=0, i",
            "Referer": origin + "/",
            "Sec-Fetch-Mode": "navigate",
            "Sec-Fetch-User": "?1",
            "Upgrade-Insecure-Requests": "1",
            "User-Agent": ua,
        }
        asset.update(hints)
        asset["Cookie"] = ""
        asset["Accept"] = _NAV_ACCEPT
        asset["Sec-Fetch-Dest"] = "document"
        asset["Sec-Fetch-Site"] = "same-site" if _site(_host(assets_origin)) == _site(_host(origin)) \
            else "cross-site"
        self._asset = asset

        self._grpc: dict[str, dict[str, str]] = {}
        self._hints = hints
        self._ua = ua

    # ------------------------------------------------------------------
    def cookie(self, token: str) -> str:
        return build_cookie(token, self._cf_clearance, self._cf_cookies)

    def rest(self, token: str, statsig: str | None, *, files_referer: bool = False,
             with_request_id: bool = True) -> dict[str, str]:
        """Headers for a JSON REST call on the base host."""
        h = dict(self._rest_files if files_referer else self._rest)
        h["Cookie"] = self.cookie(token)
        if statsig:
            h["x-statsig-id"] = statsig
        if with_request_id:
            h["x-xai-request-id"] = str(uuid.uuid4())
        return h

    def asset(self, token: str, path: str = "") -> dict[str, str]:
        """Navigation-style headers for a download from the assets host (§1.3, §7.3)."""
        h = dict(self._asset)
        h["Cookie"] = self.cookie(token)
        low = path.lower().split("?", 1)[0]
        for ext, mime in _MEDIA_TYPES.items():
            if low.endswith(ext):
                h["Content-Type"] = mime  # V1 quirk: a GET with a Content-Type
                break
        return h

    def grpc(self, token: str, host_url: str) -> dict[str, str]:
        """Headers for a gRPC-web call on ``host_url`` (grok.com or accounts.x.ai)."""
        origin = _origin(host_url)
        tmpl = self._grpc.get(origin)
        if tmpl is None:
            tmpl = {
                "Accept": "*/*",
                "Accept-Encoding": "gzip, deflate, br, zstd",
                "Accept-Language": self.settings.accept_language,
                "Content-Type": "application/grpc-web+proto",
                "Origin": origin,
                "Referer": origin + "/",
                "Sec-Fetch-Dest": "empty",
                "Sec-Fetch-Mode": "cors",
                "Sec-Fetch-Site": "same-origin",
                "User-Agent": self._ua,
                "x-grpc-web": "1",
                "x-user-agent": "connect-es/2.1.1",
                **self._hints,
            }
            self._grpc[origin] = tmpl
        h = dict(tmpl)
        h["Cookie"] = self.cookie(token)
        return h
