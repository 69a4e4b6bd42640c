"""Headers (chat.md §1.2, §1.3, §1.6) and x-statsig-id forms (§1.4)."""

from __future__ import annotations

import base64
import random
import re
import uuid

import pytest

from grok2api.upstream.headers import HeaderFactory, bare_token, build_cookie, client_hints, fetch_site
from grok2api.upstream.settings import DEFAULT_BAGGAGE, DEFAULT_USER_AGENT, UpstreamSettings
from grok2api.upstream.statsig import E_STATIC, EStatsig, ManualStatsig, X1Statsig, make_statsig

TOKEN = "eyJhbGciOiJIUzI1NiJ9.eyJzZXNzaW9uX2lkIjoiYTFiMmMzIn0.sig"


def test_rest_headers_match_v1_block() -> None:
    hf = HeaderFactory(UpstreamSettings(cf_clearance="Zx9"))
    h = hf.rest("sso=" + TOKEN, "c3RhdHNpZw==")
    assert list(h)[:6] == ["Accept-Encoding", "Accept-Language", "Baggage", "Origin", "Priority", "Referer"]
    assert h["Accept-Encoding"] == "gzip, deflate, br, zstd"
    assert h["Accept-Language"] == "zh-CN,zh;q=0.9,en;q=0.8"
    assert h["Baggage"] == DEFAULT_BAGGAGE
    assert h["Origin"] == "https://grok.com" and h["Referer"] == "https://grok.com/"
    assert h["Priority"] == "u=1, i" and h["Sec-Fetch-Mode"] == "cors" and h["Sec-Fetch-Dest"] == "empty"
    assert h["Sec-Fetch-Site"] == "same-origin"
    assert h["User-Agent"] == DEFAULT_USER_AGENT
    assert h["Sec-Ch-Ua"] == '"Google Chrome";v="136", "Chromium";v="136", "Not(A:Brand";v="24"'
    assert h["Sec-Ch-Ua-Mobile"] == "?0" and h["Sec-Ch-Ua-Platform"] == '"macOS"'
    assert h["Sec-Ch-Ua-Arch"] == "x86" and h["Sec-Ch-Ua-Bitness"] == "64" and h["Sec-Ch-Ua-Model"] == ""
    assert h["Cookie"] == f"sso={TOKEN}; sso-rw={TOKEN};cf_clearance=Zx9"
    assert h["Content-Type"] == "application/json" and h["Accept"] == "*/*"
    assert h["x-statsig-id"] == "c3RhdHNpZw=="
    assert uuid.UUID(h["x-xai-request-id"]).version == 4
    assert hf.rest(TOKEN, "x")["x-xai-request-id"] != h["x-xai-request-id"]


def test_origin_follows_configured_base_url_and_files_referer() -> None:
    hf = HeaderFactory(UpstreamSettings(base_url="http://127.0.0.1:8080/", baggage=None))
    h = hf.rest(TOKEN, None, files_referer=True)
    assert h["Origin"] == "http://127.0.0.1:8080" and h["Referer"] == "http://127.0.0.1:8080/files"
    assert "Baggage" not in h and "x-statsig-id" not in h


def test_fetch_site_rule() -> None:
    assert fetch_site("https://grok.com", "https://grok.com/") == "same-origin"
    assert fetch_site("https://assets.grok.com", "https://grok.com/") == "same-site"


def test_asset_headers() -> None:
    hf = HeaderFactory(UpstreamSettings())
    h = hf.asset(TOKEN, "users/u/generated/i/image.jpg")
    assert h["Origin"] == "https://assets.grok.com" and h["Referer"] == "https://grok.com/"
    assert h["Sec-Fetch-Mode"] == "navigate" and h["Sec-Fetch-Dest"] == "document"
    assert h["Sec-Fetch-Site"] == "same-site" and h["Sec-Fetch-User"] == "?1"
    assert h["Content-Type"] == "image/jpeg" and h["Accept"].startswith("text/html")
    assert h["Cache-Control"] == "no-cache" and h["Priority"] == "u=0, i"
    assert "Content-Type" not in hf.asset(TOKEN, "users/u/file/content")


@pytest.mark.parametrize("browser,ua,expect", [
    ("chrome136", DEFAULT_USER_AGENT, {"Sec-Ch-Ua-Platform": '"macOS"', "Sec-Ch-Ua-Arch": "x86"}),
    ("edge101", "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
                "Chrome/101.0 Safari/537.36 Edg/101.0", {"Sec-Ch-Ua": '"Microsoft Edge";v="101", "Chromium";'
                                                                     'v="101", "Not(A:Brand";v="24"',
                                                         "Sec-Ch-Ua-Platform": '"Windows"'}),
    ("chrome131_android", "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 Chrome/131.0 Mobile "
                          "Safari/537.36", {"Sec-Ch-Ua-Mobile": "?1", "Sec-Ch-Ua-Platform": '"Android"'}),
    ("", "Mozilla/5.0 (X11; Linux aarch64) Chrome/140.0.0.0 Safari/537.36",
     {"Sec-Ch-Ua": '"Google Chrome";v="140", "Chromium";v="140", "Not(A:Brand";v="24"', "Sec-Ch-Ua-Arch": "arm"}),
])
def test_client_hints(browser: str, ua: str, expect: dict) -> None:
    hints = client_hints(browser, ua)
    for k, v in expect.items():
        assert hints[k] == v


def test_no_client_hints_for_firefox_and_safari() -> None:
    assert client_hints("firefox135", "Mozilla/5.0 (X11; Linux x86_64; rv:135.0) Gecko/20100101 Firefox/135.0") == {}
    assert client_hints("safari184", "Mozilla/5.0 (Macintosh) AppleWebKit/605.1.15 Version/18.4 Safari/605.1.15") == {}


def test_cookie_builder() -> None:
    assert bare_token(" sso=abc;x=y ") == "abc"
    assert build_cookie("abc") == "sso=abc; sso-rw=abc"
    assert build_cookie("abc", "cf") == "sso=abc; sso-rw=abc;cf_clearance=cf"
    assert build_cookie("abc", "", "cf_clearance=1; __cf_bm=2") == "sso=abc; sso-rw=abc; cf_clearance=1; __cf_bm=2"
    assert build_cookie("abc", "new", "cf_clearance=old; __cf_bm=2") == \
        "sso=abc; sso-rw=abc; cf_clearance=new; __cf_bm=2"


def _decode(v: str) -> str:
    return base64.b64decode(v, validate=True).decode()


def test_statsig_x1_forms() -> None:
    gen = X1Statsig(random.Random(1))
    seen = set()
    for _ in range(50):
        text = _decode(gen.generate())
        assert text.startswith("x1:TypeError: Cannot read properties of ")
        if "null" in text:
            assert re.fullmatch(r"x1:TypeError: Cannot read properties of null \(reading 'children\[\\'[a-z0-9]{5}"
                                r"\\'\]'\)", text), text
            seen.add("null")
        else:
            assert re.fullmatch(r"x1:TypeError: Cannot read properties of undefined \(reading '[a-z]{10}'\)", text)
            seen.add("undefined")
    assert seen == {"null", "undefined"}


def test_statsig_e_forms() -> None:
    gen = EStatsig(random.Random(2))
    for _ in range(20):
        text = _decode(gen.generate())
        assert re.fullmatch(r"e:TypeError: Cannot read properties of (null \(reading 'children\['[a-z0-9]{5}'\]'\)"
                            r"|undefined \(reading '[a-z]{10}'\))", text), text
    assert _decode(E_STATIC) == "e:TypeError: Cannot read properties of undefined (reading 'childNodes')"


async def test_statsig_providers() -> None:
    assert await make_statsig("manual", "fixed").statsig_id("POST", "/x") == "fixed"
    assert await make_statsig("e_static").statsig_id("POST", "/x") == E_STATIC
    assert _decode(await make_statsig("x1").statsig_id("POST", "/x")).startswith("x1:")
    with pytest.raises(ValueError):
        ManualStatsig("")
    with pytest.raises(ValueError):
        make_statsig("nope")
