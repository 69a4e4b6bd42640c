"""``SERVER_STORAGE_TYPE`` / ``SERVER_STORAGE_URL`` validation and normalisation."""

from __future__ import annotations

from pathlib import Path

import pytest

from grok2api.storage import (
    StorageConfigError,
    StorageError,
    create_storage,
    normalize_storage_url,
    redact_url,
)
from grok2api.storage.local import LocalStorage


@pytest.mark.parametrize(
    ("kind", "url", "expected"),
    [
        ("mysql", "mysql://u:p@h:3306/db", "mysql+aiomysql://u:p@h:3306/db"),
        ("mysql", "mysql+aiomysql://u:p@h/db", "mysql+aiomysql://u:p@h/db"),
        ("MySQL", "MYSQL://u@h/db", "mysql+aiomysql://u@h/db"),
        ("pgsql", "postgres://u:p@h:5432/db", "postgresql+asyncpg://u:p@h:5432/db"),
        ("pgsql", "postgresql://u@h/db", "postgresql+asyncpg://u@h/db"),
        ("pgsql", "postgresql+asyncpg://u@h/db", "postgresql+asyncpg://u@h/db"),
        ("pgsql", "pgsql://u@h/db?sslmode=require", "postgresql+asyncpg://u@h/db?sslmode=require"),
        ("postgres", "pgsql://u@h/db", "postgresql+asyncpg://u@h/db"),
        ("redis", "redis://:p@h:6379/0", "redis://:p@h:6379/0"),
        ("redis", "rediss://h:6380", "rediss://h:6380"),
        ("local", "whatever", ""),
        ("", None, ""),
    ],
)
def test_normalize(kind: str, url: str | None, expected: str) -> None:
    assert normalize_storage_url(kind, url) == expected


@pytest.mark.parametrize(
    ("kind", "url", "needle"),
    [
        ("mysql", "postgresql://admin:hunter2secret@h/db", "SERVER_STORAGE_URL"),
        ("pgsql", "mysql://admin:hunter2secret@h/db", "SERVER_STORAGE_TYPE=pgsql"),
        ("redis", "http://admin:hunter2secret@h", "redis://"),
        ("redis", "admin:hunter2secret@h:6379", "SERVER_STORAGE_URL"),
        ("mysql", "", "SERVER_STORAGE_URL is required"),
        ("mongodb", "mongodb://admin:hunter2secret@h", "SERVER_STORAGE_TYPE"),
    ],
)
def test_bad_settings_are_clear_and_never_leak_the_password(kind: str, url: str, needle: str) -> None:
    with pytest.raises(StorageConfigError) as info:
        normalize_storage_url(kind, url)
    assert needle in str(info.value)
    assert "hunter2secret" not in str(info.value)
    assert isinstance(info.value, StorageError) and isinstance(info.value, ValueError)


def test_redact_url() -> None:
    assert redact_url("mysql+aiomysql://root:pa%40ss@db:3306/app") == "mysql+aiomysql://root:***@db:3306/app"
    assert redact_url("redis://:pw@127.0.0.1:6379/15") == "redis://:***@127.0.0.1:6379/15"
    assert redact_url("postgresql://u@h/db") == "postgresql://u@h/db"


def test_create_storage(tmp_path: Path) -> None:
    store = create_storage("local", None, tmp_path, compact_every=5)
    assert isinstance(store, LocalStorage) and store.compact_every == 5
    assert create_storage("redis", "redis://h", tmp_path).kind == "redis"
    assert create_storage("mysql", "mysql://u@h/db", tmp_path).kind == "mysql"
    assert create_storage("postgresql", "postgres://u@h/db", tmp_path).kind == "pgsql"
    with pytest.raises(ValueError):
        create_storage("redis", "redis://h", tmp_path, namespace="bad name*")
