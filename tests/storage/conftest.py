"""Storage test fixtures: every contract test runs once per backend against the live services.

Each test gets a fresh namespace (Redis key prefix / SQL table prefix) and a fresh
``DATA_DIR``, and its data is purged afterwards, so runs never collide.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from grok2api.storage import Storage, create_storage

BACKENDS = ["local", "redis", "mysql", "pgsql"]


@dataclass
class BackendSpec:
    """How to build one backend for a test: kind, URL, DATA_DIR, namespace, options."""

    kind: str
    url: str | None
    data_dir: Path
    namespace: str
    options: dict[str, Any] = field(default_factory=dict)

    def create(self, **options: Any) -> Storage:
        return create_storage(
            self.kind, self.url, self.data_dir, namespace=self.namespace, **{**self.options, **options}
        )


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> BackendSpec:
    kind = request.param
    url = None if kind == "local" else request.getfixturevalue(f"{kind}_url")
    return BackendSpec(kind, url, tmp_path / "data", f"t{uuid.uuid4().hex[:12]}")


@pytest.fixture
async def storage(backend: BackendSpec):
    store = backend.create()
    await store.open()
    try:
        yield store
    finally:
        await store.purge()  # type: ignore[attr-defined]
        await store.close()


@pytest.fixture
async def other(backend: BackendSpec, storage: Storage):
    """A second, independent instance on the same data (what another process would see)."""
    store = backend.create()
    await store.open()
    try:
        yield store
    finally:
        await store.close()
