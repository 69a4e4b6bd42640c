"""Configuration: the typed ``config.toml`` (schema), its document handling (comments kept),
legacy-layout migration, environment settings and the hot-reloading ``ConfigService``."""

from grok2api.config.env import ServerSettings
from grok2api.config.errors import (
    ConfigError,
    ConfigParseError,
    ConfigValidationError,
    UnknownKeyError,
    ValueParseError,
)
from grok2api.config.schema import AppConfig
from grok2api.config.service import ConfigService

__all__ = [
    "AppConfig",
    "ConfigError",
    "ConfigParseError",
    "ConfigService",
    "ConfigValidationError",
    "ServerSettings",
    "UnknownKeyError",
    "ValueParseError",
]
