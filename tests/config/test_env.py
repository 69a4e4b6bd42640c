"""Environment settings: defaults, parsing, overrides, URL normalisation, clear errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from grok2api.config.env import ServerSettings
from grok2api.config.errors import ConfigError


def test_defaults() -> None:
    s = ServerSettings.from_env({})
    assert (s.host, s.port, s.workers) == ("127.0.0.1", 8000, 1)
    assert (s.storage_type, s.storage_url) == ("local", "")
    assert s.data_dir == Path.cwd() / "data" and s.log_dir == Path.cwd() / "logs"
    assert s.data_dir.is_absolute()
    assert s.log_level == "INFO" and s.log_file_enabled is True
    assert s.is_loopback


def test_all_variables() -> None:
    s = ServerSettings.from_env(
        {
            "SERVER_HOST": "0.0.0.0",
            "SERVER_PORT": "9001",
            "SERVER_WORKERS": "4",
            "SERVER_STORAGE_TYPE": "pgsql",
            "SERVER_STORAGE_URL": "postgres://u:p@db:5432/g",
            "DATA_DIR": "/tmp/d",
            "LOG_LEVEL": "debug",
            "LOG_FILE_ENABLED": "false",
            "LOG_DIR": "/tmp/l",
        }
    )
    assert (s.host, s.port, s.workers, s.storage_type) == ("0.0.0.0", 9001, 4, "pgsql")
    assert s.storage_url == "postgresql+asyncpg://u:p@db:5432/g"
    assert (s.data_dir, s.log_dir, s.log_level, s.log_file_enabled) == (Path("/tmp/d"), Path("/tmp/l"), "DEBUG", False)
    assert not s.is_loopback


def test_mysql_url_normalised_to_async_driver() -> None:
    s = ServerSettings.from_env({"SERVER_STORAGE_TYPE": "mysql", "SERVER_STORAGE_URL": "mysql://u:p@h:3306/db"})
    assert s.storage_url == "mysql+aiomysql://u:p@h:3306/db"
    assert "p@" not in repr(s) and s.redacted_storage_url == "mysql+aiomysql://u:***@h:3306/db"


def test_flags_override_env() -> None:
    s = ServerSettings.from_env({"SERVER_PORT": "9001", "DATA_DIR": "/a"}, {"port": 9002, "data_dir": None})
    assert s.port == 9002 and s.data_dir == Path("/a")


@pytest.mark.parametrize(
    ("env", "needle"),
    [
        ({"SERVER_PORT": "eighty"}, "SERVER_PORT"),
        ({"SERVER_PORT": "70000"}, "SERVER_PORT"),
        ({"SERVER_WORKERS": "0"}, "SERVER_WORKERS"),
        ({"SERVER_STORAGE_TYPE": "mongo"}, "SERVER_STORAGE_TYPE"),
        ({"SERVER_STORAGE_TYPE": "redis"}, "SERVER_STORAGE_URL"),
        ({"SERVER_STORAGE_TYPE": "redis", "SERVER_STORAGE_URL": "mysql://u:hunter2@h/db"}, "SERVER_STORAGE_URL"),
        ({"LOG_LEVEL": "loud"}, "LOG_LEVEL"),
        ({"LOG_FILE_ENABLED": "sometimes"}, "LOG_FILE_ENABLED"),
    ],
)
def test_errors_name_the_variable(env: dict[str, str], needle: str) -> None:
    with pytest.raises(ConfigError) as info:
        ServerSettings.from_env(env)
    assert needle in str(info.value)
    assert "hunter2" not in str(info.value)


def test_flag_errors_name_the_flag() -> None:
    with pytest.raises(ConfigError, match="--port"):
        ServerSettings.from_env({}, {"port": 0})


def test_round_trip_through_ray_serialisation() -> None:
    s = ServerSettings.from_env({"SERVER_STORAGE_TYPE": "mysql", "SERVER_STORAGE_URL": "mysql://u:p@h/db"})
    assert ServerSettings.model_validate(s.model_dump(mode="json")) == s
