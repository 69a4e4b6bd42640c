"""Process-level settings from environment variables (and CLI flags, which win).

These are the knobs that must be known before the config document can be read (where the
storage is, where to bind, how to log), so they live outside ``config.toml``.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from grok2api.config.errors import ConfigError

LOOPBACK_HOSTS = frozenset({"127.0.0.1", "::1", "localhost"})

# env var -> ServerSettings field
ENV_VARS: dict[str, str] = {
    "SERVER_HOST": "host",
    "SERVER_PORT": "port",
    "SERVER_WORKERS": "workers",
    "SERVER_STORAGE_TYPE": "storage_type",
    "SERVER_STORAGE_URL": "storage_url",
    "DATA_DIR": "data_dir",
    "LOG_LEVEL": "log_level",
    "LOG_FILE_ENABLED": "log_file_enabled",
    "LOG_DIR": "log_dir",
}
_FIELD_TO_ENV = {v: k for k, v in ENV_VARS.items()}

LogLevel = Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"]


class ServerSettings(BaseModel):
    """Where to bind, where state lives, how to log. Immutable once built."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    host: str = Field("127.0.0.1", min_length=1, description="Bind address (SERVER_HOST).")
    port: int = Field(8000, ge=1, le=65535, description="HTTP port (SERVER_PORT).")
    workers: int = Field(1, ge=1, le=256, description="Gateway (GrokWorker) replicas (SERVER_WORKERS).")
    storage_type: Literal["local", "redis", "mysql", "pgsql"] = Field(
        "local", description="Storage backend (SERVER_STORAGE_TYPE)."
    )
    storage_url: str = Field("", repr=False, description="Storage URL (SERVER_STORAGE_URL); empty for local.")
    data_dir: Path = Field(Path("./data"), validate_default=True, description="Data directory (DATA_DIR).")
    log_level: LogLevel = Field("INFO", description="Log level (LOG_LEVEL).")
    log_file_enabled: bool = Field(True, description="Also log to LOG_DIR/grok2api.log (LOG_FILE_ENABLED).")
    log_dir: Path = Field(Path("./logs"), validate_default=True, description="Log directory (LOG_DIR).")

    @field_validator("storage_type", mode="before")
    @classmethod
    def _kind(cls, v: Any) -> Any:
        if isinstance(v, str):
            from grok2api.storage.urls import normalize_kind

            try:
                return normalize_kind(v)
            except ValueError as exc:
                raise ValueError(str(exc)) from None
        return v

    @field_validator("data_dir", "log_dir")
    @classmethod
    def _absolute(cls, v: Path) -> Path:
        # Absolute, so Ray replicas (other processes, maybe another cwd) see the same place.
        return Path(os.path.abspath(v.expanduser()))

    @field_validator("log_level", mode="before")
    @classmethod
    def _level(cls, v: Any) -> Any:
        if isinstance(v, str):
            v = v.strip().upper()
            return {"WARN": "WARNING", "FATAL": "CRITICAL"}.get(v, v)
        return v

    @field_validator("log_file_enabled", mode="before")
    @classmethod
    def _flag(cls, v: Any) -> Any:
        if isinstance(v, str):
            low = v.strip().lower()
            if low in {"1", "true", "yes", "on"}:
                return True
            if low in {"0", "false", "no", "off", ""}:
                return False
        return v

    @model_validator(mode="after")
    def _normalise_url(self) -> ServerSettings:
        from grok2api.storage.urls import normalize_storage_url

        try:
            url = normalize_storage_url(self.storage_type, self.storage_url)
        except ValueError as exc:
            raise ValueError(str(exc)) from None
        object.__setattr__(self, "storage_url", url)
        return self

    @property
    def is_loopback(self) -> bool:
        """True when the bind address only accepts local connections."""
        return self.host in LOOPBACK_HOSTS or self.host.startswith("127.")

    @property
    def config_path(self) -> Path:
        """Where the local backend keeps the config document."""
        return self.data_dir / "config.toml"

    @property
    def redacted_storage_url(self) -> str:
        from grok2api.storage.urls import redact_url

        return redact_url(self.storage_url) if self.storage_url else ""

    @classmethod
    def from_env(
        cls, env: Mapping[str, str] | None = None, overrides: Mapping[str, Any] | None = None
    ) -> ServerSettings:
        """Build from ``env`` (default ``os.environ``); non-``None`` ``overrides`` (CLI flags) win.

        Raises :class:`ConfigError` naming the environment variable (or flag) that is wrong.
        """
        env = os.environ if env is None else env
        data: dict[str, Any] = {}
        source: dict[str, str] = {}
        for var, name in ENV_VARS.items():
            raw = env.get(var)
            if raw is not None and raw.strip() != "":
                data[name] = raw.strip()
                source[name] = var
        for name, value in (overrides or {}).items():
            if value is not None:
                data[name] = value
                source[name] = "--" + name.replace("_", "-")
        try:
            return cls.model_validate(data)
        except ValidationError as exc:
            parts = []
            for error in exc.errors():
                name = str(error["loc"][0]) if error["loc"] else ""
                label = source.get(name) or _FIELD_TO_ENV.get(name, "SERVER_STORAGE_URL")
                message = str(error["msg"]).removeprefix("Value error, ")
                if name and "input" in error and "URL" not in label and label not in message:
                    message += f" (got {error['input']!r})"
                parts.append(message if (not name or message.startswith(label)) else f"{label}: {message}")
            raise ConfigError("; ".join(parts)) from None
