"""Small helpers shared by the tests (no fixtures here: those live in ``tests/fixtures``)."""

from __future__ import annotations

import http.client
import time
from typing import Any, Callable, TypeVar
from urllib.parse import urlsplit

T = TypeVar("T")


def wait_for(predicate: Callable[[], T], timeout: float = 10.0, interval: float = 0.1) -> T:
    """Poll ``predicate`` until it returns something truthy or ``timeout`` passes (returns the last value)."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(interval)


def chat_requests(sim: Any, token: str | None = None) -> list[dict[str, Any]]:
    return [r for r in sim.requests(token=token) if r["path"].endswith("/conversations/new")]


def raw_get(base_url: str, raw_path: str, headers: dict[str, str] | None = None,
            timeout: float = 15.0) -> tuple[int, bytes]:
    """GET ``raw_path`` exactly as written (no client-side normalisation of ``..`` or escapes)."""
    parts = urlsplit(base_url)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=timeout)
    try:
        conn.putrequest("GET", raw_path, skip_accept_encoding=True)
        for k, v in (headers or {}).items():
            conn.putheader(k, v)
        conn.endheaders()
        resp = conn.getresponse()
        return resp.status, resp.read()
    finally:
        conn.close()


def safe_tokens(gw: Any) -> dict[str, dict[str, Any]] | None:
    """``gw.tokens()``, or None while the TokenPool actor is restarting."""
    try:
        return gw.tokens()
    except Exception:  # noqa: BLE001
        return None


def update_gateway_config(gw: Any, patch: dict[str, Any]) -> Any:
    """Change the running gateway's config the way the admin panel or CLI would (replicas poll it)."""
    import asyncio
    from pathlib import Path

    from grok2api.config.service import ConfigService
    from grok2api.storage import create_storage

    async def run() -> Any:
        storage = create_storage("local", "", Path(gw.settings.data_dir))
        await storage.open()
        try:
            service = ConfigService(storage)
            await service.load()
            return await service.update(patch)
        finally:
            await storage.close()

    return asyncio.run(run())
