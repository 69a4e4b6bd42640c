"""The hardening suite: bad input, hostile input, upstream and process faults (see docs/reliability.md)."""

from __future__ import annotations

import pytest


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "fuzz: schemathesis fuzzing of every route (runs in the normal suite)")
