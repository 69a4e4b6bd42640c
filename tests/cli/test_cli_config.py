"""`grok2api config show|set` and config loading, through the real CLI."""

from __future__ import annotations

import tomlkit

from grok2api.config.docs import DEFAULTS_FILE

from .conftest import Cli


def test_first_run_creates_config_from_defaults_with_comments(cli: Cli) -> None:
    assert not cli.config_path.exists()
    result = cli("config", "show")
    assert result.code == 0, result.err
    text = cli.config_path.read_text(encoding="utf-8")
    assert text == DEFAULTS_FILE.read_text(encoding="utf-8")
    assert "# Admin panel password." in text
    assert result.out == text  # nothing secret set yet: shown as stored


def test_set_keeps_user_comments_and_order(cli: Cli) -> None:
    cli.data_dir.mkdir()
    cli.config_path.write_text(
        "# my deployment\n[chat]\n# slow upstream\ntimeout = 300.0 # seconds\n\n[app]\napi_key = \"\"\n"
    )
    result = cli("config", "set", "app.api_key", "sk-test-1234567890")
    assert result.code == 0, result.err
    text = cli.config_path.read_text()
    assert text.startswith("# my deployment\n[chat]\n# slow upstream\ntimeout = 300.0 # seconds\n")
    assert text.index("[chat]") < text.index("[app]")
    assert 'api_key = "sk-test-1234567890"' in text
    assert "sk-test-1234567890" not in result.out  # echoed masked
    assert result.out.startswith("app.api_key = ")


def test_set_typed_values(cli: Cli) -> None:
    assert cli("config", "set", "retry.retry_status_codes", "[429, 503]").code == 0
    assert cli("config", "set", "app.stream", "false").code == 0
    assert cli("config", "set", "chat.timeout", "45").code == 0
    doc = tomlkit.parse(cli.config_path.read_text())
    assert doc["retry"]["retry_status_codes"] == [429, 503]
    assert doc["app"]["stream"] is False and doc["chat"]["timeout"] == 45.0
    shown = cli("config", "show", "retry.retry_status_codes")
    assert shown.out.strip() == "[429, 503]"


def _assert_rejected(cli: Cli, args: list[str], key: str) -> None:
    before = cli.config_path.read_bytes()
    result = cli("config", "set", *args)
    assert result.code == 1
    assert key in result.err and result.err.startswith("error: ")
    assert "Traceback" not in result.err and len(result.err.strip().splitlines()) == 1
    assert cli.config_path.read_bytes() == before


def test_wrong_type_and_unknown_key_leave_the_file_unchanged(cli: Cli) -> None:
    assert cli("config", "show").code == 0
    _assert_rejected(cli, ["app.image_format", "png"], "app.image_format")
    _assert_rejected(cli, ["chat.concurrent", "many"], "chat.concurrent")
    _assert_rejected(cli, ["chat.concurrent", "-1"], "chat.concurrent")
    _assert_rejected(cli, ["app.stream", "perhaps"], "app.stream")
    _assert_rejected(cli, ["app.no_such_key", "1"], "app.no_such_key")
    _assert_rejected(cli, ["nosection.key", "1"], "nosection.key")
    _assert_rejected(cli, ["upstream.base_url", "grok.com"], "upstream.base_url")


def test_wrong_type_in_the_file_is_reported_and_file_unchanged(cli: Cli) -> None:
    cli.data_dir.mkdir()
    cli.config_path.write_text("[app]\n\nstream = \"sometimes\"\n[chat]\nmystery = 1\n")
    before = cli.config_path.read_bytes()
    result = cli("config", "show")
    assert result.code == 1
    assert f"{cli.config_path}:3: app.stream" in result.err
    assert f"{cli.config_path}:5: chat.mystery: unknown key" in result.err
    assert cli.config_path.read_bytes() == before
    # set refuses too, and still does not touch the file
    assert cli("config", "set", "app.api_key", "x").code == 1
    assert cli.config_path.read_bytes() == before


def test_corrupt_config_reported_with_path_and_line_never_replaced(cli: Cli) -> None:
    cli.data_dir.mkdir()
    cli.config_path.write_text("[app]\napi_key = \"x\"\n\nthis is not toml\n")
    before = cli.config_path.read_bytes()
    for args in (["config", "show"], ["config", "set", "app.stream", "false"], ["tokens", "list"]):
        result = cli(*args)
        if args == ["tokens", "list"]:
            continue  # token commands do not need the config
        assert result.code == 1, args
        assert f"{cli.config_path}:4" in result.err, result.err
        assert "Traceback" not in result.err
    result = cli("serve")
    assert result.code == 1 and f"{cli.config_path}:4" in result.err
    assert cli.config_path.read_bytes() == before
    assert sorted(p.name for p in cli.data_dir.iterdir() if p.name.startswith("config.toml")) == ["config.toml"]


def test_show_masks_secrets(cli: Cli) -> None:
    assert cli("config", "set", "app.app_key", "correct-horse-battery").code == 0
    assert cli("config", "set", "proxy.base_proxy_url", "http://bob:proxy-pass@10.1.1.1:3128").code == 0
    assert cli("config", "set", "proxy.cf_clearance", "short").code == 0
    shown = cli("config", "show")
    assert shown.code == 0
    for secret in ("correct-horse-battery", "proxy-pass", '"short"'):
        assert secret not in shown.out
    assert "http://bob:***@10.1.1.1:3128" in shown.out
    assert "# Admin panel password." in shown.out  # comments kept
    one = cli("config", "show", "app.app_key")
    assert "correct-horse-battery" not in one.out and one.code == 0


def test_legacy_file_migrated_on_load(cli: Cli) -> None:
    cli.data_dir.mkdir()
    cli.config_path.write_text(
        "# legacy\n[app]\napp_key = \"k-legacy\"\n\n[grok]\ntemporary = false\nimage_ws_nsfw = false\n\n"
        "[network]\ntimeout = 99\n\n[security]\nbrowser = \"chrome131\"\n"
    )
    result = cli("config", "show", "chat.timeout")
    assert result.code == 0 and result.out.strip() == "99.0"
    doc = tomlkit.parse(cli.config_path.read_text())
    assert "grok" not in doc and "network" not in doc and "security" not in doc
    assert doc["app"]["temporary"] is False and doc["image"]["nsfw"] is False
    assert doc["proxy"]["browser"] == "chrome131"
    assert cli.config_path.read_text().startswith("# legacy\n")


def test_set_with_legacy_name(cli: Cli) -> None:
    result = cli("config", "set", "security.cf_clearance", "cf-value-123")
    assert result.code == 0
    assert "security.cf_clearance is now proxy.cf_clearance" in result.err
    assert tomlkit.parse(cli.config_path.read_text())["proxy"]["cf_clearance"] == "cf-value-123"


def test_data_dir_flag_and_env(cli: Cli, tmp_path) -> None:  # noqa: ANN001
    other = tmp_path / "elsewhere"
    assert cli("config", "set", "--data-dir", str(other), "chat.concurrent", "3").code == 0
    assert (other / "config.toml").exists() and not cli.config_path.exists()
    env_dir = tmp_path / "from-env"
    assert cli("config", "show", env={"DATA_DIR": str(env_dir)}).code == 0
    assert (env_dir / "config.toml").exists()


def test_bad_env_is_one_clear_line(cli: Cli) -> None:
    result = cli("config", "show", env={"SERVER_STORAGE_TYPE": "mongo"})
    assert result.code == 1 and "SERVER_STORAGE_TYPE" in result.err and "Traceback" not in result.err
    result = cli("config", "show", env={"SERVER_STORAGE_TYPE": "mysql"})
    assert result.code == 1 and "SERVER_STORAGE_URL" in result.err


def test_env_mysql_url_normalised_in_a_subprocess(cli: Cli) -> None:
    import subprocess
    import sys

    code = "from grok2api.config.env import ServerSettings; print(ServerSettings.from_env().storage_url)"
    out = subprocess.run(
        [sys.executable, "-c", code],
        env={**cli.env, "SERVER_STORAGE_TYPE": "mysql", "SERVER_STORAGE_URL": "mysql://u:p@db:3306/g"},
        capture_output=True, text=True, check=True,
    ).stdout.strip()
    assert out == "mysql+aiomysql://u:p@db:3306/g"
