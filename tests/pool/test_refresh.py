"""The TokenPool's quota refresh against the simulator's real ``/rest/rate-limits`` endpoint."""

from __future__ import annotations

import asyncio
import functools
from pathlib import Path

import pytest

from grok2api.actors.token_pool import PoolSettings, TokenPoolCore
from grok2api.pool.client import LeaseClient
from grok2api.pool.leases import OutcomeKind
from grok2api.storage import create_storage
from grok2api.storage.base import TokenStatus
from grok2api.upstream.settings import UpstreamSettings
from grok2api.worker.refresher import make_refresher

TOKEN = "tok-refresh-xxxxxxxxxxxxxxxxxxxx"


async def make_core(tmp_path: Path, sim, **settings: object) -> TokenPoolCore:
    upstream = UpstreamSettings(base_url=sim.base_url, assets_url=sim.assets_url, accounts_url=sim.accounts_url)
    core = TokenPoolCore(functools.partial(create_storage, "local", "", tmp_path),
                         PoolSettings(reload_interval_sec=3600, **settings),  # type: ignore[arg-type]
                         functools.partial(make_refresher, upstream))
    await core.ready()
    return core


async def cool_down(core: TokenPoolCore, token: str) -> None:
    lc = LeaseClient(core.grant, core.settle, settle_interval=0.05)
    lc.start()
    ticket = await lc.acquire(("basic", "super"), cost=1)
    lc.finish(ticket, OutcomeKind.RATE_LIMITED, retry_after_s=3600)
    await lc.close()
    assert core.ledger.records[token].status is TokenStatus.COOLING


async def test_a_cooling_token_is_revived_with_the_upstream_quota(tmp_path: Path, sim) -> None:
    sim.add_token(TOKEN, plan="super")
    core = await make_core(tmp_path, sim, scheduler_period_sec=3600)
    await core.add_tokens([TOKEN], "super")
    await cool_down(core, TOKEN)
    assert await core.refresh_due() == 1
    rec = core.ledger.records[TOKEN]
    assert rec.status is TokenStatus.ACTIVE
    assert rec.quota == sim.account(TOKEN)["quota_remaining"] > 0
    assert rec.last_sync_at is not None and rec.cooldown_until is None
    rate_calls = sim.requests(path="rate_limits", token=TOKEN)
    assert len(rate_calls) == 1 and rate_calls[0]["json"]["modelName"] == "grok-4-1-thinking-1129"
    # Persisted: a restarted pool sees the refreshed state.
    await core.shutdown()
    again = await make_core(tmp_path, sim, scheduler_period_sec=3600)
    assert again.ledger.records[TOKEN].status is TokenStatus.ACTIVE
    await again.shutdown()


async def test_the_scheduler_refreshes_due_tokens_by_itself(tmp_path: Path, sim) -> None:
    sim.add_token(TOKEN, plan="basic")
    core = await make_core(tmp_path, sim, scheduler_period_sec=0.2)
    await core.add_tokens([TOKEN], "basic")
    await cool_down(core, TOKEN)
    for _ in range(50):
        if core.ledger.records[TOKEN].status is TokenStatus.ACTIVE:
            break
        await asyncio.sleep(0.1)
    assert core.ledger.records[TOKEN].status is TokenStatus.ACTIVE
    await core.shutdown()


async def test_a_rejected_session_on_refresh_expires_the_token(tmp_path: Path, sim) -> None:
    sim.add_token(TOKEN, plan="basic")
    core = await make_core(tmp_path, sim, scheduler_period_sec=3600)
    await core.add_tokens([TOKEN], "basic")
    await cool_down(core, TOKEN)
    sim.set_fault("401", token=TOKEN, path="rate_limits")
    results = await core.refresh([TOKEN], clear_failures=False)
    assert list(results.values())[0] == {"ok": False, "error": "rate_limits_auth_failed"}
    assert TOKEN not in str(results)  # results are keyed by the masked token
    rec = core.ledger.records[TOKEN]
    assert rec.status is TokenStatus.EXPIRED and rec.last_fail_reason == "rate_limits_auth_failed"
    await core.shutdown()


async def test_refresh_is_bounded_by_the_configured_concurrency(tmp_path: Path, sim) -> None:
    tokens = [f"tok-many-{i:02d}-xxxxxxxxxxxxxxxx" for i in range(6)]
    for t in tokens:
        sim.add_token(t, plan="basic")
    sim.configure(token_delay_ms=0)
    core = await make_core(tmp_path, sim, scheduler_period_sec=3600, refresh_concurrency=2)
    await core.add_tokens(tokens, "basic")
    sim.set_fault("slow_first_byte:200", path="rate_limits")
    loop = asyncio.get_running_loop()
    t0 = loop.time()
    results = await core.refresh(tokens)
    elapsed = loop.time() - t0
    assert all(r["ok"] for r in results.values())
    # 6 calls of >= 200 ms each, at most 2 at a time: at least 3 rounds.
    assert elapsed >= 0.6
    await core.shutdown()


@pytest.fixture(autouse=True)
def _no_leftover_faults(sim):
    yield
    sim.clear_faults()
