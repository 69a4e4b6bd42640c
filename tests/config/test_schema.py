"""The schema: defaults, constraints, computed values, secrets."""

from __future__ import annotations

import pytest
import tomlkit
from pydantic import ValidationError

from grok2api.config.docs import DEFAULTS_FILE
from grok2api.config.schema import AppConfig, UpstreamSection, all_keys, section_models

SEED_KEYS = [
    # seed 1 + seed 2 + the brief: every one must exist in the current layout
    "app.app_url", "app.app_key", "app.api_key", "app.public_enabled", "app.public_key", "app.image_format",
    "app.video_format", "app.temporary", "app.disable_memory", "app.stream", "app.thinking",
    "app.dynamic_statsig", "app.filter_tags", "app.custom_instruction",
    "proxy.base_proxy_url", "proxy.asset_proxy_url", "proxy.cf_clearance", "proxy.browser", "proxy.user_agent",
    "proxy.skip_proxy_ssl_verify", "proxy.reset_session_status_codes",
    "retry.max_retry", "retry.retry_status_codes", "retry.retry_backoff_base", "retry.retry_backoff_factor",
    "retry.retry_backoff_max", "retry.retry_budget",
    "timeout.stream_idle_timeout", "timeout.video_idle_timeout",
    "token.auto_refresh", "token.refresh_interval_hours", "token.super_refresh_interval_hours",
    "token.fail_threshold", "token.save_delay_ms", "token.reload_interval_sec", "token.usage_flush_interval_sec",
    "token.basic_default_quota", "token.super_default_quota", "token.basic_window_hours",
    "token.super_window_hours",
    "cache.enable_auto_clean", "cache.limit_mb",
    "chat.concurrent", "chat.timeout",
    "image.timeout", "image.nsfw", "image.image_ws", "image.image_ws_blocked_seconds", "image.final_min_bytes",
    "image.medium_min_bytes",
    "video.concurrent", "video.timeout", "video.upscale_timeout",
    "voice.timeout",
    "asset.upload_concurrent", "asset.upload_timeout", "asset.download_concurrent", "asset.download_timeout",
    "asset.list_concurrent", "asset.list_timeout", "asset.delete_concurrent", "asset.delete_timeout",
    "asset.max_upload_mb", "asset.allow_private_hosts",
    "nsfw.timeout", "usage.timeout",
    "performance.assets_max_concurrent", "performance.assets_batch_size", "performance.assets_max_tokens",
    "performance.usage_max_concurrent", "performance.usage_batch_size", "performance.usage_max_tokens",
    "performance.nsfw_max_concurrent", "performance.nsfw_batch_size", "performance.nsfw_max_tokens",
    "upstream.base_url", "upstream.assets_url", "upstream.accounts_url", "upstream.livekit_url",
    "upstream.statsig_mode", "upstream.statsig_value",
    "serve.chat_replicas", "serve.max_ongoing_requests", "serve.admin_replicas",
]


def test_every_required_key_exists() -> None:
    missing = sorted(set(SEED_KEYS) - set(all_keys()))
    assert not missing


def test_seed_defaults() -> None:
    c = AppConfig()
    assert c.app.app_key == "grok2api"
    assert c.app.filter_tags == ["xaiartifact", "xai:tool_usage_card", "grok:render"]
    assert (c.retry.max_retry, c.retry.retry_status_codes) == (3, [401, 429, 403])
    assert (c.retry.retry_backoff_base, c.retry.retry_backoff_factor) == (0.5, 2.0)
    assert (c.retry.retry_backoff_max, c.retry.retry_budget) == (30.0, 90.0)
    assert (c.timeout.stream_idle_timeout, c.timeout.video_idle_timeout) == (120.0, 90.0)
    assert (c.token.basic_default_quota, c.token.super_default_quota) == (80, 140)
    assert (c.token.basic_window_hours, c.token.super_window_hours) == (20, 2)
    assert c.token.usage_flush_interval_sec == 5
    assert c.cache.limit_mb == 1024
    assert (c.image.image_ws_blocked_seconds, c.image.final_min_bytes, c.image.medium_min_bytes) == (
        15, 100000, 30000)
    assert (c.asset.max_upload_mb, c.asset.allow_private_hosts) == (50, [])
    assert c.proxy.browser == "chrome136"
    assert c.proxy.reset_session_status_codes == [403]
    assert c.upstream.base_url == "https://grok.com"
    assert c.upstream.assets_url == "https://assets.grok.com"
    assert c.upstream.accounts_url == "https://accounts.x.ai"
    assert c.upstream.livekit_url == "wss://livekit.grok.com"
    assert c.upstream.statsig_mode == "x1"
    assert c.serve.max_ongoing_requests == 1024 and c.serve.admin_replicas == 1
    assert c.app.config_poll_interval_sec == 2.0


def test_defaults_file_equals_schema_defaults() -> None:
    data = tomlkit.parse(DEFAULTS_FILE.read_text(encoding="utf-8")).unwrap()
    assert AppConfig.model_validate(data) == AppConfig()
    assert sorted(f"{s}.{k}" for s, t in data.items() for k in t) == sorted(all_keys())


def test_every_key_has_a_comment_in_the_defaults_file() -> None:
    lines = DEFAULTS_FILE.read_text(encoding="utf-8").splitlines()
    for index, line in enumerate(lines):
        if "=" in line and not line.startswith("#"):
            assert lines[index - 1].startswith("# "), f"no comment above {line!r}"


@pytest.mark.parametrize(
    ("base", "ws"),
    [
        ("https://grok.com", "wss://grok.com"),
        ("http://127.0.0.1:9000", "ws://127.0.0.1:9000"),
        ("https://sim.example:8443/prefix", "wss://sim.example:8443/prefix"),
    ],
)
def test_ws_base_url_follows_base_url(base: str, ws: str) -> None:
    assert UpstreamSection(base_url=base).ws_base_url == ws


@pytest.mark.parametrize(
    ("section", "data", "key"),
    [
        ("app", {"image_format": "png"}, "image_format"),
        ("app", {"stream": "maybe"}, "stream"),
        ("app", {"nope": 1}, "nope"),
        ("retry", {"retry_status_codes": [401, 999]}, "retry_status_codes"),
        ("retry", {"max_retry": 0}, "max_retry"),
        ("proxy", {"base_proxy_url": "ftp://x"}, "base_proxy_url"),
        ("upstream", {"base_url": "grok.com"}, "base_url"),
        ("upstream", {"livekit_url": "https://livekit.grok.com"}, "livekit_url"),
        ("upstream", {"statsig_mode": "magic"}, "statsig_mode"),
        ("app", {"config_poll_interval_sec": 0}, "config_poll_interval_sec"),
    ],
)
def test_invalid_values_are_rejected(section: str, data: dict, key: str) -> None:
    with pytest.raises(ValidationError) as info:
        AppConfig.model_validate({section: data})
    assert info.value.errors()[0]["loc"][:2] == (section, key)


def test_proxy_pool_and_socks_accepted() -> None:
    c = AppConfig.model_validate({"proxy": {"base_proxy_url": "socks5://a:1080, http://u:p@b:8080"}})
    assert c.proxy.base_proxy_url == "socks5://a:1080,http://u:p@b:8080"


def test_secrets_lists_set_values_but_not_the_public_default() -> None:
    c = AppConfig.model_validate(
        {
            "app": {"api_key": "sk-abcdef", "public_key": ""},
            "proxy": {"cf_clearance": "clear-123", "base_proxy_url": "http://user:pw-secret@proxy:8080"},
        }
    )
    secrets = c.secrets()
    assert {"sk-abcdef", "clear-123", "pw-secret"} <= set(secrets)
    assert "grok2api" not in secrets and "" not in secrets


def test_resolve_chat_replicas() -> None:
    c = AppConfig()
    assert c.serve.resolve_chat_replicas(3) == 3
    assert AppConfig.model_validate({"serve": {"chat_replicas": 2}}).serve.resolve_chat_replicas(5) == 2


def test_sections_are_in_file_order() -> None:
    assert list(section_models())[:4] == ["app", "proxy", "retry", "timeout"]
