"""Fixtures for the config tests: a real local storage in a temp DATA_DIR."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from grok2api.storage import Storage, create_storage


@pytest.fixture
async def local_storage(tmp_path: Path) -> AsyncIterator[Storage]:
    storage = create_storage("local", "", tmp_path / "data")
    await storage.open()
    try:
        yield storage
    finally:
        await storage.close()


class CountingStorage:
    """Wraps a storage and counts calls, to prove the hot path does no I/O."""

    def __init__(self, inner: Storage) -> None:
        self.inner = inner
        self.calls: list[str] = []
        self.kind = inner.kind
        self.config_path = getattr(inner, "config_path", None)

    def __getattr__(self, name: str):  # noqa: ANN204
        attr = getattr(self.inner, name)
        if callable(attr):
            def wrapper(*args, **kwargs):  # noqa: ANN002, ANN003, ANN202
                self.calls.append(name)
                return attr(*args, **kwargs)

            return wrapper
        return attr
