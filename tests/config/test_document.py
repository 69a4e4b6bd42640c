"""Document handling: comments and order survive, edits are validated first, errors name keys."""

from __future__ import annotations

import pytest
import tomlkit

from grok2api.config import document
from grok2api.config.errors import ConfigParseError, ConfigValidationError, UnknownKeyError, ValueParseError


def test_defaults_prepare_unchanged() -> None:
    prepared = document.prepare(document.defaults_text(), "d.toml")
    assert not prepared.changed and not prepared.added


def test_missing_keys_added_with_comments_user_content_kept() -> None:
    text = "# my notes\n[chat]\n# faster please\ntimeout = 30.0  # short\n\n[app]\napi_key = \"k\"\n"
    prepared = document.prepare(text, "c.toml")
    out = prepared.text
    assert out.startswith("# my notes\n[chat]\n# faster please\ntimeout = 30.0  # short\n")
    assert out.index("[chat]") < out.index("[app]")  # user's order kept
    assert "chat.concurrent" in prepared.added and "proxy" in prepared.added
    assert "# Most concurrent upstream chat streams per gateway replica (more wait for a free slot).\nconcurrent = 1024" in out
    assert prepared.config.chat.timeout == 30.0
    # idempotent
    assert not document.prepare(out, "c.toml").changed


def test_parse_error_has_line_and_column() -> None:
    with pytest.raises(ConfigParseError) as info:
        document.prepare("[app]\napi_key = \"x\"\nstream = = true\n", "/d/config.toml")
    assert info.value.line == 3
    assert str(info.value).startswith("/d/config.toml:3")


def test_validation_error_names_key_and_line() -> None:
    text = "[app]\napi_key = \"x\"\nimage_format = \"png\"\n[chat]\nbogus = 1\n"
    with pytest.raises(ConfigValidationError) as info:
        document.prepare(text, "/d/config.toml")
    message = str(info.value)
    assert "/d/config.toml:3: app.image_format" in message
    assert "/d/config.toml:5: chat.bogus: unknown key" in message
    assert set(info.value.keys) == {"app.image_format", "chat.bogus"}


def test_unknown_section() -> None:
    with pytest.raises(ConfigValidationError, match=r"unknown section \[aap\]; did you mean app"):
        document.prepare("[aap]\nx = 1\n", "c.toml")


def test_set_value_keeps_comments_and_order() -> None:
    base = document.prepare(document.defaults_text(), "d").text
    text = base.replace("[app]\n", "[app]\n# my own note\n", 1)
    new_text, config, notes = document.set_value(text, "app.api_key", "sk-1", "c.toml")
    assert config.app.api_key == "sk-1" and not notes
    assert "[app]\n# my own note\n" in new_text
    assert new_text.replace('api_key = "sk-1"', 'api_key = ""') == text


@pytest.mark.parametrize(
    ("key", "raw", "expected"),
    [
        ("app.stream", "false", False),
        ("app.stream", "YES", True),
        ("chat.concurrent", "12", 12),
        ("chat.timeout", "7.5", 7.5),
        ("retry.retry_status_codes", "[401, 503]", [401, 503]),
        ("retry.retry_status_codes", "401, 503", [401, 503]),
        ("app.filter_tags", '["a", "b"]', ["a", "b"]),
        ("app.filter_tags", "a,b", ["a", "b"]),
        ("asset.allow_private_hosts", "[]", []),
        ("app.api_key", "123", "123"),
        ("app.image_format", "base64", "base64"),
    ],
)
def test_coerce(key: str, raw: str, expected: object) -> None:
    _, config, _ = document.set_value(document.defaults_text(), key, raw, "c")
    section, name = key.split(".")
    assert getattr(getattr(config, section), name) == expected


@pytest.mark.parametrize(
    ("key", "raw", "error"),
    [
        ("app.stream", "perhaps", ValueParseError),
        ("chat.concurrent", "many", ValueParseError),
        ("chat.concurrent", "0", ConfigValidationError),
        ("retry.retry_status_codes", "[401,", ValueParseError),
        ("app.image_format", "png", ConfigValidationError),
        ("app.nope", "1", UnknownKeyError),
        ("nope.key", "1", UnknownKeyError),
        ("apikey", "1", UnknownKeyError),
    ],
)
def test_set_value_errors_name_the_key(key: str, raw: str, error: type) -> None:
    with pytest.raises(error) as info:
        document.set_value(document.defaults_text(), key, raw, "c")
    assert key in str(info.value)


def test_set_legacy_name_goes_to_its_home() -> None:
    _, config, notes = document.set_value(document.defaults_text(), "security.cf_clearance", "cf", "c")
    assert config.proxy.cf_clearance == "cf"
    assert notes == ["security.cf_clearance is now proxy.cf_clearance"]


def test_edit_accepts_nested_changes() -> None:
    text, config, _ = document.edit(document.defaults_text(), {"app": {"stream": False}, "chat.concurrent": 3}, "c")
    assert config.app.stream is False and config.chat.concurrent == 3
    assert tomlkit.parse(text)["chat"]["concurrent"] == 3


def test_key_lines() -> None:
    lines = document.key_lines("[a]\nx = 1\n\n[b]\n# c\ny=2\n")
    assert lines == {"a": 1, "a.x": 2, "b": 4, "b.y": 6}
