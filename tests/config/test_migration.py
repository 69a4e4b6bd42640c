"""Every legacy -> current mapping in the migration table, one test each."""

from __future__ import annotations

from typing import Any

import pytest
import tomlkit

from grok2api.config import document
from grok2api.config.migration import LEGACY_SECTIONS, RENAMES, legacy_home
from grok2api.config.schema import AppConfig

# A valid, non-default value for every migration destination.
SAMPLES: dict[str, Any] = {
    "app.app_url": "https://gw.example.com",
    "app.api_key": "sk-legacy-key",
    "app.temporary": False,
    "app.disable_memory": False,
    "app.stream": False,
    "app.thinking": False,
    "app.dynamic_statsig": False,
    "app.filter_tags": ["xaiartifact"],
    "app.custom_instruction": "be terse",
    "chat.timeout": 77.0,
    "proxy.base_proxy_url": "socks5://10.0.0.1:1080",
    "proxy.asset_proxy_url": "http://10.0.0.2:3128",
    "proxy.cf_clearance": "cf-legacy",
    "proxy.browser": "chrome131",
    "proxy.user_agent": "Mozilla/5.0 legacy",
    "proxy.reset_session_status_codes": [403, 502],
    "retry.max_retry": 5,
    "retry.retry_status_codes": [429, 503],
    "retry.retry_backoff_base": 1.5,
    "retry.retry_backoff_factor": 3.0,
    "retry.retry_backoff_max": 12.0,
    "retry.retry_budget": 45.0,
    "timeout.stream_idle_timeout": 33.0,
    "timeout.video_idle_timeout": 44.0,
    "image.image_ws": False,
    "image.nsfw": False,
    "image.image_ws_blocked_seconds": 9,
    "image.final_min_bytes": 123456,
    "image.medium_min_bytes": 23456,
    "video.concurrent": 7,
    "asset.delete_concurrent": 4,
    "performance.nsfw_max_concurrent": 3,
    "performance.nsfw_batch_size": 21,
    "performance.usage_max_concurrent": 6,
    "performance.usage_batch_size": 22,
}


def _get(config: AppConfig, dotted: str) -> Any:
    section, key = dotted.split(".")
    return getattr(getattr(config, section), key)


def test_every_mapping_has_a_sample() -> None:
    assert {r.new for r in RENAMES} <= set(SAMPLES)


@pytest.mark.parametrize("rename", RENAMES, ids=lambda r: f"{r.old}->{r.new}")
def test_mapping(rename: Any) -> None:
    section, key = rename.old.split(".")
    value = SAMPLES[rename.new]
    text = f"# mine\n[{section}]\n# about {key}\n{key} = {tomlkit.item(value).as_string()}\n"
    prepared = document.prepare(text, "legacy.toml")
    assert _get(prepared.config, rename.new) == value
    assert (rename.old, rename.new) in prepared.migration.moved
    assert prepared.changed
    migrated = tomlkit.parse(prepared.text)
    new_section, new_key = rename.new.split(".")
    assert migrated[new_section][new_key] == value
    assert key not in migrated.get(section, {}) or rename.old == rename.new
    assert f"# about {key}\n" not in prepared.text  # the legacy key's comment went with it
    assert prepared.text.startswith("# mine\n")
    assert legacy_home(rename.old) == rename.new


def test_legacy_sections_are_removed_and_unknown_keys_reported() -> None:
    text = "[grok]\ntemporary = false\nobsolete_switch = true\n[network]\ntimeout = 50\n[security]\n"
    prepared = document.prepare(text, "legacy.toml")
    doc = tomlkit.parse(prepared.text)
    assert not (set(doc.keys()) & LEGACY_SECTIONS)
    assert "grok.obsolete_switch" in prepared.migration.dropped
    assert prepared.config.app.temporary is False
    assert prepared.config.chat.timeout == 50


def test_current_key_wins_over_legacy_name() -> None:
    text = "[chat]\ntimeout = 30\n[network]\ntimeout = 50\n"
    prepared = document.prepare(text, "x.toml")
    assert prepared.config.chat.timeout == 30
    assert "chat.timeout" in prepared.migration.ignored


def test_later_layout_wins_between_legacy_names() -> None:
    text = "[grok]\ntimeout = 10\n[network]\ntimeout = 20\n"
    assert document.prepare(text, "x.toml").config.chat.timeout == 20


def test_image_format_markdown_becomes_url() -> None:
    prepared = document.prepare('[app]\nimage_format = "markdown"\n', "x.toml")
    assert prepared.config.app.image_format == "url"
    assert "app.image_format" in prepared.migration.fixed


def test_seed1_full_layout_migrates() -> None:
    """A complete config in the seed-1 v2.0 layout loads with every value kept."""
    text = """
[app]
app_url = "http://127.0.0.1:8000"
app_key = "admin-pass"
api_key = ""
image_format = "url"
video_format = "html"

[network]
timeout = 120
base_proxy_url = ""
asset_proxy_url = ""

[security]
cf_clearance = ""
browser = "chrome136"
user_agent = "UA"

[chat]
temporary = true
disable_memory = true
stream = false
thinking = true
dynamic_statsig = true
filter_tags = ["xaiartifact"]

[retry]
max_retry = 3
retry_status_codes = [401, 429, 403]

[timeout]
stream_idle_timeout = 100.0
video_idle_timeout = 80.0

[image]
image_ws = true
image_ws_nsfw = false
image_ws_blocked_seconds = 15
image_ws_final_min_bytes = 100000
image_ws_medium_min_bytes = 30000

[performance]
media_max_concurrent = 40
assets_max_concurrent = 25
assets_delete_batch_size = 8
usage_max_concurrent = 25
nsfw_max_tokens = 500
"""
    c = document.prepare(text, "seed1.toml").config
    assert c.app.app_key == "admin-pass" and c.app.stream is False and c.app.filter_tags == ["xaiartifact"]
    assert c.proxy.user_agent == "UA" and c.chat.timeout == 120
    assert c.image.nsfw is False and c.video.concurrent == 40 and c.asset.delete_concurrent == 8
    assert c.performance.nsfw_max_tokens == 500 and c.timeout.stream_idle_timeout == 100.0


def test_seed2_fork_layout_migrates() -> None:
    text = """
[app]
app_key = "k"
public_enabled = true
public_key = "pk"

[proxy]
cf_clearance = "c"

[retry]
reset_session_status_codes = [403, 429]

[chat]
concurrent = 10
timeout = 60
stream_timeout = 60

[video]
concurrent = 5
timeout = 200
stream_timeout = 70

[nsfw]
concurrent = 4
batch_size = 20
timeout = 30

[usage]
concurrent = 9
batch_size = 40
timeout = 25
"""
    c = document.prepare(text, "seed2.toml").config
    assert c.app.public_enabled and c.app.public_key == "pk"
    assert c.proxy.reset_session_status_codes == [403, 429]
    assert c.timeout.stream_idle_timeout == 60 and c.timeout.video_idle_timeout == 70
    assert c.performance.nsfw_max_concurrent == 4 and c.performance.nsfw_batch_size == 20
    assert c.performance.usage_max_concurrent == 9 and c.performance.usage_batch_size == 40
    assert c.nsfw.timeout == 30 and c.usage.timeout == 25 and c.video.concurrent == 5


def test_bad_legacy_value_is_reported_under_the_name_the_user_wrote() -> None:
    from grok2api.config.errors import ConfigValidationError

    with pytest.raises(ConfigValidationError) as info:
        document.prepare("[network]\n\ntimeout = \"soon\"\n", "/data/config.toml")
    message = str(info.value)
    assert "network.timeout" in message and "chat.timeout" in message and "/data/config.toml:3" in message
