"""The storage contract: one async interface for config, tokens and their usage state.

Backends (``local``, ``redis``, ``mysql``, ``pgsql``) implement :class:`Storage`.
Writes to tokens are *deltas* (:class:`TokenUpdate`): a field set or a counter
increment applied atomically to one record, so frequent usage updates stay cheap
with 10,000 tokens and two processes never lose each other's increments.
"""

from __future__ import annotations

import re
import time
from abc import ABC, abstractmethod
from contextlib import AbstractAsyncContextManager
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError, field_validator


def now_ms() -> int:
    return int(time.time() * 1000)


class TokenStatus(StrEnum):
    ACTIVE = "active"
    COOLING = "cooling"
    EXPIRED = "expired"
    DISABLED = "disabled"


_NOT_VISIBLE_ASCII = re.compile(r"[^\x21-\x7e]")  # anything but printable, non-space ASCII


def normalize_token(raw: str) -> str:
    """Strip an ``sso=`` prefix, whitespace, zero-width characters and anything non-ASCII."""
    value = raw.strip()
    if value.lower().startswith("sso="):
        value = value[4:]
    value = value.split(";", 1)[0]
    return _NOT_VISIBLE_ASCII.sub("", value)


def mask_token(token: str) -> str:
    """A display form of a secret that never reveals it: ``eyJh…k9Q (len 213)``."""
    if len(token) <= 12:
        return "…" if token else ""
    return f"{token[:4]}…{token[-4:]}"


class TokenRecord(BaseModel):
    """Everything tracked about one Grok account. Times are epoch milliseconds."""

    model_config = ConfigDict(extra="ignore", validate_assignment=True)

    token: str
    pool: str = "basic"
    status: TokenStatus = TokenStatus.ACTIVE
    quota: int = 80  # remaining local quota units
    created_at: int = Field(default_factory=now_ms)
    last_used_at: int | None = None
    last_sync_at: int | None = None
    use_count: int = 0
    fail_count: int = 0
    last_fail_at: int | None = None
    last_fail_reason: str | None = None
    tags: list[str] = Field(default_factory=list)
    note: str = ""
    nsfw: bool = False
    last_asset_clear_at: int | None = None
    cooldown_until: int | None = None

    @field_validator("token")
    @classmethod
    def _bare_token(cls, v: str) -> str:
        v = normalize_token(v)
        if not v:
            raise ValueError("token is empty")
        return v

    @property
    def masked(self) -> str:
        return mask_token(self.token)


# Fields a TokenUpdate may increment.
COUNTER_FIELDS = frozenset({"quota", "use_count", "fail_count"})
# Fields a TokenUpdate may set (everything but the key).
SETTABLE_FIELDS = frozenset(TokenRecord.model_fields) - {"token"}
# Per-field validators, so a delta's ``set`` values are typed exactly like the record's fields.
_FIELD_ADAPTERS: dict[str, TypeAdapter[Any]] = {
    name: TypeAdapter(info.annotation) for name, info in TokenRecord.model_fields.items()
}


class TokenUpdate(BaseModel):
    """A delta on one token: ``set`` replaces fields, ``incr`` adds to counters (applied after ``set``)."""

    token: str
    set: dict[str, Any] = Field(default_factory=dict)
    incr: dict[str, int] = Field(default_factory=dict)

    @field_validator("token")
    @classmethod
    def _bare_token(cls, v: str) -> str:
        return normalize_token(v)

    @field_validator("set")
    @classmethod
    def _known_fields(cls, v: dict[str, Any]) -> dict[str, Any]:
        unknown = set(v) - SETTABLE_FIELDS
        if unknown:
            raise ValueError(f"unknown token fields: {sorted(unknown)}")
        typed: dict[str, Any] = {}
        for key, value in v.items():
            try:
                typed[key] = _FIELD_ADAPTERS[key].validate_python(value)
            except ValidationError as exc:
                raise ValueError(f"invalid value for {key}: {exc.errors()[0]['msg']}") from None
        return typed

    @field_validator("incr")
    @classmethod
    def _counters_only(cls, v: dict[str, int]) -> dict[str, int]:
        bad = set(v) - COUNTER_FIELDS
        if bad:
            raise ValueError(f"not counter fields: {sorted(bad)}")
        return v

    def apply_to(self, record: TokenRecord) -> TokenRecord:
        """The record after this delta (used by backends that patch in memory)."""
        data = record.model_dump()
        data.update(self.set)
        for key, delta in self.incr.items():
            data[key] = int(data.get(key) or 0) + delta
        return TokenRecord.model_validate(data)


class StorageError(Exception):
    """A backend failed (unreachable, refused, or its data is unusable)."""


class StorageConfigError(StorageError, ValueError):
    """``SERVER_STORAGE_TYPE`` / ``SERVER_STORAGE_URL`` are wrong (unknown kind, bad scheme, missing URL)."""


class CorruptDataError(StorageError):
    """A stored document cannot be parsed. Never silently replaced: the operator must fix it."""

    def __init__(self, path: str, line: int | None, detail: str) -> None:
        self.path, self.line, self.detail = path, line, detail
        where = f"{path}:{line}" if line else path
        super().__init__(f"corrupt data in {where}: {detail}")


class Storage(ABC):
    """Async storage for the config document and the token records."""

    kind: str = "abstract"

    async def open(self) -> None:
        """Connect / create schema. Idempotent."""

    async def close(self) -> None:
        """Release connections. Idempotent."""

    async def __aenter__(self) -> "Storage":
        await self.open()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    @abstractmethod
    async def ping(self) -> None:
        """Raise :class:`StorageError` unless the backend answers."""

    # -- config document (TOML text, comments kept) ------------------------------------
    @abstractmethod
    async def load_config(self) -> str | None:
        """The stored TOML document, or ``None`` when none was stored yet."""

    @abstractmethod
    async def save_config(self, text: str) -> int:
        """Store the whole document; returns the new config version."""

    @abstractmethod
    async def config_version(self) -> int:
        """A number that changes whenever the config document changes (cheap to poll)."""

    # -- tokens -----------------------------------------------------------------------
    @abstractmethod
    async def load_tokens(self) -> list[TokenRecord]:
        """Every token record."""

    @abstractmethod
    async def get_token(self, token: str) -> TokenRecord | None: ...

    @abstractmethod
    async def add_tokens(self, records: list[TokenRecord]) -> list[str]:
        """Insert records whose token is new; returns the tokens actually added (existing are skipped)."""

    @abstractmethod
    async def upsert_tokens(self, records: list[TokenRecord]) -> None:
        """Insert or replace whole records."""

    @abstractmethod
    async def update_tokens(self, updates: list[TokenUpdate]) -> None:
        """Apply deltas, each atomically on its record. Updates for unknown tokens are ignored."""

    @abstractmethod
    async def delete_tokens(self, tokens: list[str]) -> int:
        """Remove records; returns how many existed."""

    @abstractmethod
    async def tokens_version(self) -> int:
        """A number that changes whenever any token record changes (cheap to poll)."""

    # -- coordination -----------------------------------------------------------------
    @abstractmethod
    def lock(self, name: str, timeout: float = 10.0) -> AbstractAsyncContextManager[bool]:
        """A cross-process named lock. Yields ``True`` when acquired, ``False`` on timeout."""
