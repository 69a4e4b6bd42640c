"""Config errors: each renders as one clear line naming the file/line and the key."""

from __future__ import annotations


class ConfigError(Exception):
    """A user-facing configuration problem (bad file, bad key, bad value)."""


class ConfigParseError(ConfigError):
    """The TOML text itself is malformed."""

    def __init__(self, location: str, line: int | None, col: int | None, detail: str) -> None:
        self.location, self.line, self.col, self.detail = location, line, col, detail
        where = location if line is None else f"{location}:{line}" + (f":{col}" if col else "")
        super().__init__(f"{where}: invalid TOML: {detail} (the file was left unchanged; fix it by hand)")


class ConfigValidationError(ConfigError):
    """The document parses but a key is unknown or a value has the wrong type/range."""

    def __init__(self, location: str, problems: list[tuple[str, int | None, str]]) -> None:
        self.location = location
        self.problems = problems  # (dotted key, line or None, message)
        self.keys = [key for key, _, _ in problems]
        parts = []
        for key, line, message in problems:
            where = f"{location}:{line}" if line else location
            parts.append(f"{where}: {key}: {message}" if where else f"{key}: {message}")
        super().__init__("; ".join(parts))


class UnknownKeyError(ConfigError):
    """``config set`` / ``update`` named a key the schema does not have."""

    def __init__(self, key: str, hint: str = "") -> None:
        self.key = key
        super().__init__(f"unknown config key '{key}'" + (f" ({hint})" if hint else ""))


class ValueParseError(ConfigError):
    """A ``config set`` value string cannot be read as the key's type."""

    def __init__(self, key: str, expected: str, raw: str) -> None:
        self.key = key
        super().__init__(f"{key}: expected {expected}, got {raw!r}")
