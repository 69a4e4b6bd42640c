"""Plain settings for the upstream client, filled by the worker from the gateway config.

Kept separate from ``grok2api.config`` on purpose: the engine takes typed values,
not the whole config tree, so it can be built in tests with a single line.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

DEFAULT_USER_AGENT = (
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/136.0.0.0 Safari/537.36"
)
DEFAULT_BAGGAGE = (
    "sentry-environment=production,sentry-release=d6add6fb0460641fd482d767a335ef72b9b6abb8,"
    "sentry-public_key=b311e0f2690c81f25e2c4cf6d4f7ce1c"
)


class UpstreamSettings(BaseModel):
    """Everything the Grok client needs to know about hosts, identity, transport and timeouts."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    # Hosts (chat.md §1.1)
    base_url: str = "https://grok.com"
    assets_url: str = "https://assets.grok.com"
    accounts_url: str = "https://accounts.x.ai"

    # Browser identity (§1.3, §1.6)
    user_agent: str = DEFAULT_USER_AGENT
    browser: str = "chrome136"  # curl_cffi impersonation target; also drives the client hints
    accept_language: str = "zh-CN,zh;q=0.9,en;q=0.8"
    baggage: str | None = DEFAULT_BAGGAGE  # None = do not send (V4 style)
    client_hints: bool = True
    cf_clearance: str = ""  # appended as ``;cf_clearance=<value>``
    cf_cookies: str = ""  # a full Cloudflare cookie string (``cf_clearance=..; __cf_bm=..``)

    # x-statsig-id (§1.4)
    statsig_mode: Literal["x1", "e", "e_static", "manual"] = "x1"
    statsig_value: str = ""  # used by ``manual``

    # Proxies (§1.8)
    proxy_url: str = ""  # REST calls (chat, rate limits)
    asset_proxy_url: str = ""  # upload, assets, downloads; falls back to proxy_url
    skip_proxy_ssl_verify: bool = False

    # Transport
    sessions: int = Field(default=2, ge=1, le=64)  # curl_cffi AsyncSessions per scope
    max_clients: int = Field(default=64, ge=1, le=4096)  # concurrent streams per scope (and per session)
    reset_session_status_codes: tuple[int, ...] = (403,)
    verify_tls: bool = True

    # Timeouts, seconds (§1.9)
    connect_timeout: float = Field(default=15.0, gt=0)
    first_byte_timeout: float = Field(default=60.0, gt=0)  # request sent → response headers
    idle_timeout: float = Field(default=60.0, gt=0)  # max gap between stream reads
    soft_stop_grace: float = Field(default=5.0, gt=0)  # after isSoftStop: wait at most this for the tail
    request_timeout: float = Field(default=60.0, gt=0)  # whole non-streamed calls
    rate_limits_timeout: float = Field(default=20.0, gt=0)
    upload_timeout: float = Field(default=60.0, gt=0)
    download_timeout: float = Field(default=120.0, gt=0)

    # Stream reader
    max_line_bytes: int = Field(default=8 * 1024 * 1024, ge=1024)

    @field_validator("base_url", "assets_url", "accounts_url")
    @classmethod
    def _strip_slash(cls, v: str) -> str:
        return v.rstrip("/")

    @property
    def asset_proxy(self) -> str:
        return self.asset_proxy_url or self.proxy_url
