"""The worker-side lease client driving the real pool core over real local storage."""

from __future__ import annotations

import asyncio
import functools
from pathlib import Path

import pytest

from grok2api.actors.token_pool import PoolSettings, TokenPoolCore
from grok2api.pool.client import LeaseClient, NoTokenAvailable
from grok2api.pool.leases import OutcomeKind
from grok2api.storage import create_storage
from grok2api.storage.base import TokenStatus


@pytest.fixture
async def core(tmp_path: Path):
    settings = PoolSettings(lease_credits=8, reload_interval_sec=3600, scheduler_period_sec=3600)
    c = TokenPoolCore(functools.partial(create_storage, "local", "", tmp_path), settings)
    await c.ready()
    yield c
    await c.shutdown()


def client_for(core: TokenPoolCore, **kw: object) -> LeaseClient:
    lc = LeaseClient(core.grant, core.settle, settle_interval=0.05, **kw)  # type: ignore[arg-type]
    lc.start()
    return lc


async def reopen(core: TokenPoolCore, tmp_path: Path) -> TokenPoolCore:
    """A second core over the same files: what a restarted actor would load."""
    fresh = TokenPoolCore(functools.partial(create_storage, "local", "", tmp_path), core.settings)
    await fresh.ready()
    return fresh


async def test_requests_are_served_from_local_leases_and_usage_is_persisted(core: TokenPoolCore,
                                                                           tmp_path: Path) -> None:
    await core.add_tokens(["tok-aaaaaaaaaaaaaaaa", "tok-bbbbbbbbbbbbbbbb"], "basic")
    calls = {"grant": 0}
    real_grant = core.grant

    async def counting_grant(*args: object) -> object:
        calls["grant"] += 1
        return await real_grant(*args)  # type: ignore[arg-type]

    lc = LeaseClient(counting_grant, core.settle, settle_interval=0.05)  # type: ignore[arg-type]
    lc.start()
    used: list[str] = []
    for _ in range(10):
        t = await lc.acquire(("basic", "super"), cost=1)
        used.append(t.token)
        lc.finish(t, OutcomeKind.SUCCESS)
    await lc.flush()
    # 10 requests, 2 leases of 8 credits: far fewer grant calls than requests.
    assert calls["grant"] <= 3
    records = {r.token: r for r in await core.storage.load_tokens()}  # type: ignore[union-attr]
    assert sum(r.use_count for r in records.values()) == 10
    assert sum(80 - r.quota for r in records.values()) == 10
    await lc.close()
    again = await reopen(core, tmp_path)
    assert sum(r.use_count for r in again.ledger.records.values()) == 10
    await again.shutdown()


async def test_successes_on_a_token_settle_as_one_outcome_with_exact_counts(core: TokenPoolCore) -> None:
    await core.add_tokens(["tok-merge-aaaaaaaaaaaaaaaa"], "basic")
    sent: list[list[tuple[OutcomeKind, int, int]]] = []

    async def recording_settle(batch):  # type: ignore[no-untyped-def]
        sent.append([(o.kind, o.count, o.cost) for o in batch.outcomes])
        return await core.settle(batch)

    lc = LeaseClient(core.grant, recording_settle, settle_interval=3600)  # type: ignore[arg-type]
    tickets = [await lc.acquire(("basic",), cost=1) for _ in range(6)]
    for t in tickets[:3]:
        lc.finish(t, OutcomeKind.SUCCESS)
    lc.finish(tickets[3], OutcomeKind.UPSTREAM)  # later successes are not merged across it
    for t in tickets[4:]:
        lc.finish(t, OutcomeKind.SUCCESS)
    assert lc.pending == 6
    await lc.flush()
    assert sent == [[(OutcomeKind.SUCCESS, 3, 3), (OutcomeKind.UPSTREAM, 1, 0), (OutcomeKind.SUCCESS, 2, 2)]]
    assert lc.pending == 0
    (record,) = await core.storage.load_tokens()  # type: ignore[union-attr]
    assert (record.use_count, record.quota) == (5, 75)
    await lc.close()


async def test_concurrent_requests_spread_over_tokens(core: TokenPoolCore) -> None:
    await core.add_tokens([f"tok-{i:02d}-xxxxxxxxxxxxxxxx" for i in range(6)], "basic")
    lc = client_for(core, spread=2)
    tickets = []
    for _ in range(8):  # requests arriving a few milliseconds apart, none finished yet
        tickets.append(await lc.acquire(("basic",), cost=1))
        await asyncio.sleep(0.005)
    assert len({t.token for t in tickets}) >= 3
    for t in tickets:
        lc.finish(t, OutcomeKind.SUCCESS)
    await lc.close()


async def test_429_cools_the_token_and_the_next_request_gets_another(core: TokenPoolCore) -> None:
    await core.add_tokens(["tok-one-xxxxxxxxxxxxxxxx", "tok-two-xxxxxxxxxxxxxxxx"], "basic")
    lc = client_for(core)
    first = await lc.acquire(("basic",), cost=1)
    lc.finish(first, OutcomeKind.RATE_LIMITED, reason="rate_limited", retry_after_s=600)
    await lc.flush()
    assert core.ledger.records[first.token].status is TokenStatus.COOLING
    for _ in range(5):
        t = await lc.acquire(("basic",), cost=1)
        assert t.token != first.token
        lc.finish(t, OutcomeKind.SUCCESS)
    await lc.close()


async def test_no_token_available_reports_when_one_comes_back(core: TokenPoolCore) -> None:
    await core.add_tokens(["tok-only-xxxxxxxxxxxxxxxx"], "basic")
    lc = client_for(core)
    t = await lc.acquire(("basic",), cost=1)
    lc.finish(t, OutcomeKind.RATE_LIMITED, retry_after_s=120)
    await lc.flush()
    with pytest.raises(NoTokenAvailable) as info:
        await lc.acquire(("basic",), cost=1)
    assert info.value.retry_after_s is not None and 100 < info.value.retry_after_s <= 120
    with pytest.raises(NoTokenAvailable):
        await lc.acquire(("super",), cost=4)
    await lc.close()


async def test_removed_token_is_revoked_from_other_holders(core: TokenPoolCore) -> None:
    await core.add_tokens(["tok-gone-xxxxxxxxxxxxxxxx", "tok-stay-xxxxxxxxxxxxxxxx"], "basic")
    lc = client_for(core, heartbeat_interval=0.05)
    tickets = [await lc.acquire(("basic",), cost=1) for _ in range(2)]
    for t in tickets:
        lc.finish(t, OutcomeKind.SUCCESS)
    await core.remove_tokens(["tok-gone-xxxxxxxxxxxxxxxx"])
    await asyncio.sleep(0.3)  # a heartbeat settle brings the revocation
    for _ in range(6):
        t = await lc.acquire(("basic",), cost=1)
        assert t.token == "tok-stay-xxxxxxxxxxxxxxxx"
        lc.finish(t, OutcomeKind.SUCCESS)
    await lc.close()


async def test_outcomes_survive_a_pool_restart_between_report_and_settle(core: TokenPoolCore,
                                                                        tmp_path: Path) -> None:
    await core.add_tokens(["tok-keep-xxxxxxxxxxxxxxxx"], "basic")
    down = {"on": False}

    async def flaky_settle(batch):  # the actor is being restarted: calls fail until it is back
        if down["on"]:
            raise ConnectionError("actor restarting")
        return await core.settle(batch)

    lc = LeaseClient(core.grant, flaky_settle, settle_interval=0.05)
    lc.start()
    t = await lc.acquire(("basic",), cost=4)
    down["on"] = True
    lc.finish(t, OutcomeKind.SUCCESS)
    await asyncio.sleep(0.3)
    assert lc.pending == 1  # kept, not dropped
    down["on"] = False
    await lc.flush()
    assert lc.pending == 0
    again = await reopen(core, tmp_path)
    assert again.ledger.records["tok-keep-xxxxxxxxxxxxxxxx"].quota == 76
    await again.shutdown()
    await lc.close()


async def test_exhausted_leases_are_topped_up_while_requests_are_in_flight(core: TokenPoolCore) -> None:
    """Long streams keep their credits spent; new requests must get fresh leases, never a 429."""
    await core.add_tokens(["tok-long-1-xxxxxxxxxxxxxxxx", "tok-long-2-xxxxxxxxxxxxxxxx"], "basic")
    lc = client_for(core)
    tickets = []
    for _ in range(40):  # 2 tokens x 8 credits per lease = 16 < 40 requests in flight at once
        tickets.append(await lc.acquire(("basic",), cost=1))
        await asyncio.sleep(0.002)
    assert {t.token for t in tickets} == {"tok-long-1-xxxxxxxxxxxxxxxx", "tok-long-2-xxxxxxxxxxxxxxxx"}
    for t in tickets:
        lc.finish(t, OutcomeKind.SUCCESS)
    await lc.flush()
    records = await core.storage.load_tokens()  # type: ignore[union-attr]
    assert sum(r.use_count for r in records) == 40
    assert sum(80 - r.quota for r in records) == 40
    await lc.close()
    assert core.ledger.lease_count() == 0  # every lease was given back


async def test_a_burst_of_waiters_larger_than_one_grant_all_get_tokens(core: TokenPoolCore) -> None:
    """200 simultaneous misses share grant calls; each grant covers 2 x 8 credits, so most waiters
    need a later round. None may fail while the pool still has quota."""
    await core.add_tokens(["tok-burst-1-xxxxxxxxxxxxxxxx", "tok-burst-2-xxxxxxxxxxxxxxxx"], "basic")
    lc = client_for(core)
    tickets = await asyncio.gather(*(lc.acquire(("basic",), cost=1) for _ in range(150)))
    assert len(tickets) == 150
    for t in tickets:
        lc.finish(t, OutcomeKind.SUCCESS)
    await lc.flush()
    assert sum(r.use_count for r in await core.storage.load_tokens()) == 150  # type: ignore[union-attr]
    await lc.close()


async def test_high_effort_requests_are_charged_in_full_on_a_nearly_spent_lease(core: TokenPoolCore) -> None:
    await core.add_tokens(["tok-cost-xxxxxxxxxxxxxxxx"], "basic")
    lc = client_for(core)
    tickets = [await lc.acquire(("basic",), cost=4) for _ in range(3)]  # 12 units on an 8-credit lease
    assert [t.cost for t in tickets] == [4, 4, 4]
    for t in tickets:
        lc.finish(t, OutcomeKind.SUCCESS)
    await lc.flush()
    assert core.ledger.records["tok-cost-xxxxxxxxxxxxxxxx"].quota == 80 - 12
    await lc.close()


async def test_leases_of_a_previous_pool_incarnation_are_dropped(core: TokenPoolCore, tmp_path: Path) -> None:
    """After an actor restart the new pool cannot revoke leases it never granted: the settle
    acknowledgement's epoch tells the worker to stop using them."""
    await core.add_tokens(["tok-epoch-xxxxxxxxxxxxxxxx"], "basic")
    current = {"core": core}

    async def grant(*a):  # type: ignore[no-untyped-def]
        return await current["core"].grant(*a)

    async def settle(batch):  # type: ignore[no-untyped-def]
        return await current["core"].settle(batch)

    lc = LeaseClient(grant, settle, settle_interval=0.05, heartbeat_interval=0.05)
    lc.start()
    t = await lc.acquire(("basic",), cost=1)
    lc.finish(t, OutcomeKind.SUCCESS)
    await lc.flush()
    old_ids = set(lc._held)
    assert old_ids
    await asyncio.sleep(0.002)
    current["core"] = await reopen(core, tmp_path)  # the restarted actor
    await asyncio.sleep(0.3)  # a heartbeat settle brings the new epoch
    assert not (set(lc._held) & old_ids)
    t2 = await lc.acquire(("basic",), cost=1)
    assert t2.lease_id >= current["core"].ledger.epoch
    assert current["core"].ledger.reserved("tok-epoch-xxxxxxxxxxxxxxxx") > 0  # a lease the new pool knows
    lc.finish(t2, OutcomeKind.SUCCESS)
    await lc.close()
    await current["core"].shutdown()


async def test_reload_keeps_outcomes_that_arrive_while_it_loads(core: TokenPoolCore, tmp_path: Path) -> None:
    """Another process adds a token; a worker's settle lands while the pool is reloading."""
    from grok2api.pool.leases import Outcome, SettleBatch
    from grok2api.storage.base import TokenRecord

    await core.add_tokens(["tok-reload-a-xxxxxxxxxxxxxxxx"], "basic")
    other = create_storage("local", "", tmp_path)  # e.g. `grok2api tokens import` in another process
    await other.open()
    await other.add_tokens([TokenRecord(token="tok-reload-b-xxxxxxxxxxxxxxxx")])
    await other.close()
    reload = asyncio.create_task(core.reload_if_changed())
    for _ in range(3):
        await asyncio.sleep(0)  # let the reload reach its storage read
    batch = SettleBatch("w-reload", 1, [Outcome("tok-reload-a-xxxxxxxxxxxxxxxx", OutcomeKind.SUCCESS, cost=4, at_ms=1)])
    await asyncio.gather(reload, core.settle(batch))
    assert "tok-reload-b-xxxxxxxxxxxxxxxx" in core.ledger.records  # the external change adopted
    assert core.ledger.records["tok-reload-a-xxxxxxxxxxxxxxxx"].quota == 76  # the outcome not lost in memory
    stored = {r.token: r for r in await core.storage.load_tokens()}  # type: ignore[union-attr]
    assert stored["tok-reload-a-xxxxxxxxxxxxxxxx"].quota == 76
