"""The token state machine and selection rules (grok2api.pool.ledger)."""

from __future__ import annotations

from collections import Counter

from grok2api.pool.leases import Outcome, OutcomeKind
from grok2api.pool.ledger import PoolLedger, PoolPolicy, merge_updates
from grok2api.storage.base import TokenRecord, TokenStatus, TokenUpdate

NOW = 1_800_000_000_000
HOUR = 3_600_000


def rec(token: str, pool: str = "basic", quota: int = 80, **kw: object) -> TokenRecord:
    return TokenRecord(token=token, pool=pool, quota=quota, **kw)  # type: ignore[arg-type]


def ledger(*records: TokenRecord, **policy: object) -> PoolLedger:
    return PoolLedger(records, PoolPolicy(**policy))  # type: ignore[arg-type]


def test_grant_prefers_most_remaining_quota_and_spreads_over_tokens() -> None:
    lg = ledger(rec("tok-a", quota=10), rec("tok-b", quota=50), rec("tok-c", quota=30), lease_credits=8)
    result = lg.grant("w1", ("basic",), want=2, now=NOW)
    assert [lease.token for lease in result.leases] == ["tok-b", "tok-c"]
    assert all(lease.credits == 8 for lease in result.leases)
    # Reservations count against availability: another worker gets the next-best tokens.
    second = lg.grant("w2", ("basic",), want=3, now=NOW)
    assert {lease.token for lease in second.leases} == {"tok-a", "tok-b", "tok-c"}
    assert lg.reserved("tok-b") == 16


def test_grant_never_hands_out_cooling_expired_or_disabled_tokens() -> None:
    lg = ledger(
        rec("cool", status=TokenStatus.COOLING, quota=0, cooldown_until=NOW + HOUR),
        rec("dead", status=TokenStatus.EXPIRED),
        rec("off", status=TokenStatus.DISABLED),
        rec("zero", quota=0),
    )
    result = lg.grant("w", ("basic",), want=4, now=NOW)
    assert result.leases == []
    assert result.retry_after_s is not None and 3599 <= result.retry_after_s <= 3600


def test_pools_are_tried_in_model_order_and_super_only_models_never_get_basic() -> None:
    lg = ledger(rec("b1"), rec("s1", pool="super", quota=140))
    assert [lease.token for lease in lg.grant("w", ("basic", "super"), now=NOW).leases] == ["b1"]
    assert [lease.token for lease in lg.grant("w", ("super",), want=4, now=NOW).leases] == ["s1"]
    only_basic = ledger(rec("b1"))
    assert only_basic.grant("w", ("super", "heavy"), now=NOW).leases == []


def test_exclude_skips_tokens_already_tried() -> None:
    lg = ledger(rec("a"), rec("b"))
    assert [lease.token for lease in lg.grant("w", ("basic",), want=2, exclude=["a"], now=NOW).leases] == ["b"]


def test_success_charges_the_effort_cost_and_resets_failures() -> None:
    lg = ledger(rec("t", quota=10, fail_count=3))
    upd = lg.apply(Outcome("t", OutcomeKind.SUCCESS, cost=4, at_ms=NOW))
    assert upd is not None
    r = lg.records["t"]
    assert (r.quota, r.use_count, r.fail_count, r.last_used_at) == (6, 1, 0, NOW)
    assert r.status is TokenStatus.ACTIVE


def test_spending_the_last_units_starts_cooling_for_the_pool_window() -> None:
    lg = ledger(rec("t", quota=3), rec("s", pool="super", quota=1))
    lg.apply(Outcome("t", OutcomeKind.SUCCESS, cost=4, at_ms=NOW))
    assert lg.records["t"].quota == 0 and lg.records["t"].status is TokenStatus.COOLING
    assert lg.records["t"].cooldown_until == NOW + 20 * HOUR
    lg.apply(Outcome("s", OutcomeKind.SUCCESS, cost=1, at_ms=NOW))
    assert lg.records["s"].cooldown_until == NOW + 2 * HOUR


def test_429_cools_until_retry_after_or_window() -> None:
    lg = ledger(rec("a"), rec("b", pool="super"))
    lg.apply(Outcome("a", OutcomeKind.RATE_LIMITED, retry_after_s=120, at_ms=NOW))
    lg.apply(Outcome("b", OutcomeKind.RATE_LIMITED, at_ms=NOW))
    assert lg.records["a"].status is TokenStatus.COOLING and lg.records["a"].quota == 0
    assert lg.records["a"].cooldown_until == NOW + 120_000
    assert lg.records["b"].cooldown_until == NOW + 2 * HOUR


def test_401_counts_towards_threshold_then_expires() -> None:
    lg = ledger(rec("t"), fail_threshold=3)
    for expected in (TokenStatus.ACTIVE, TokenStatus.ACTIVE, TokenStatus.EXPIRED):
        lg.apply(Outcome("t", OutcomeKind.AUTH_FAILED, reason="app_chat_auth_failed", at_ms=NOW))
        assert lg.records["t"].status is expected
    assert lg.records["t"].fail_count == 3
    assert lg.records["t"].last_fail_reason == "app_chat_auth_failed"


def test_cloudflare_and_upstream_failures_do_not_penalise_the_token() -> None:
    lg = ledger(rec("t"))
    for kind in (OutcomeKind.CLOUDFLARE, OutcomeKind.ANTI_BOT, OutcomeKind.UPSTREAM, OutcomeKind.CANCELLED):
        assert lg.apply(Outcome("t", kind, at_ms=NOW)) is None
    assert lg.records["t"] == rec("t", created_at=lg.records["t"].created_at)


def test_blocked_user_disables_and_drops_leases() -> None:
    lg = ledger(rec("t"))
    lg.grant("w", ("basic",), now=NOW)
    assert lg.lease_count() == 1
    lg.apply(Outcome("t", OutcomeKind.BLOCKED, at_ms=NOW))
    assert lg.records["t"].status is TokenStatus.DISABLED
    assert lg.lease_count() == 0 and lg.reserved("t") == 0


def test_leases_expire_and_release_their_reservation() -> None:
    lg = ledger(rec("t", quota=20), lease_ttl_ms=1000, lease_credits=20)
    first = lg.grant("w", ("basic",), now=NOW)
    assert len(first.leases) == 1
    assert lg.grant("w", ("basic",), now=NOW + 10).leases == []  # all 20 units are reserved
    assert len(lg.grant("w", ("basic",), now=NOW + 1001).leases) == 1  # the first lease expired


def test_release_holder_frees_everything_a_dead_worker_held() -> None:
    lg = ledger(rec("a"), rec("b"))
    lg.grant("w", ("basic",), want=2, now=NOW)
    assert lg.release_holder("w") == 2
    assert lg.reserved("a") == lg.reserved("b") == 0


def test_sync_revives_cooling_tokens_and_admin_refresh_clears_failures() -> None:
    lg = ledger(rec("t", status=TokenStatus.COOLING, quota=0, fail_count=2, cooldown_until=NOW + HOUR))
    lg.apply_sync("t", 77, now=NOW, clear_failures=True)
    r = lg.records["t"]
    assert (r.status, r.quota, r.fail_count, r.cooldown_until, r.last_sync_at) == (
        TokenStatus.ACTIVE, 77, 0, None, NOW)
    lg.apply_sync("t", 0, now=NOW, window_s=7200)
    assert lg.records["t"].status is TokenStatus.COOLING and lg.records["t"].cooldown_until == NOW + 7_200_000


def test_due_for_refresh_uses_pool_intervals() -> None:
    lg = ledger(
        rec("b-old", status=TokenStatus.COOLING, quota=0, last_sync_at=NOW - 9 * HOUR, cooldown_until=NOW + HOUR),
        rec("b-new", status=TokenStatus.COOLING, quota=0, last_sync_at=NOW - HOUR, cooldown_until=NOW + HOUR),
        rec("s-old", pool="super", status=TokenStatus.COOLING, quota=0, last_sync_at=NOW - 3 * HOUR,
            cooldown_until=NOW + HOUR),
        rec("active"),
    )
    due = lg.due_for_refresh(NOW, {"basic": 8 * HOUR, "super": 2 * HOUR})
    assert [r.token for r in due] == ["b-old", "s-old"]


def test_load_spreads_across_tokens_over_many_grants() -> None:
    tokens = [rec(f"tok-{i}", quota=1000) for i in range(10)]
    lg = ledger(*tokens, lease_credits=4)
    seen: Counter[str] = Counter()
    for i in range(50):
        for lease in lg.grant(f"w{i}", ("basic",), want=2, now=NOW).leases:
            seen[lease.token] += 1
    assert len(seen) == 10
    assert max(seen.values()) - min(seen.values()) <= 2


def test_merge_updates_keeps_set_then_incr_semantics() -> None:
    base = rec("t", quota=10)
    updates = [
        TokenUpdate(token="t", incr={"quota": -1, "use_count": 1}),
        TokenUpdate(token="t", set={"quota": 50}),
        TokenUpdate(token="t", incr={"quota": -4, "use_count": 1}),
    ]
    sequential = base
    for u in updates:
        sequential = u.apply_to(sequential)
    (merged,) = merge_updates(updates)
    assert merged.apply_to(base) == sequential
    assert sequential.quota == 46 and sequential.use_count == 2


def test_a_burst_may_ask_for_bigger_leases_but_never_smaller() -> None:
    lg = ledger(rec("t", quota=1000), lease_credits=16)
    assert lg.grant("w", ("basic",), credits=100, now=NOW).leases[0].credits == 100
    assert lg.grant("w2", ("basic",), credits=1, now=NOW).leases[0].credits == 16
    assert lg.grant("w3", ("basic",), credits=5000, now=NOW).leases[0].credits == 1000 - 116


def test_lease_ids_never_repeat_across_pool_incarnations() -> None:
    import time

    first = ledger(rec("t", quota=1000))
    ids_before = {lease.lease_id for _ in range(50) for lease in first.grant("w", ("basic",), now=NOW).leases}
    time.sleep(0.002)
    restarted = ledger(rec("t", quota=1000))  # what a restarted actor builds from storage
    ids_after = {lease.lease_id for _ in range(50) for lease in restarted.grant("w", ("basic",), now=NOW).leases}
    assert ids_before.isdisjoint(ids_after)
    # A release of an old incarnation's id must not touch the new incarnation's leases.
    for old_id in ids_before:
        restarted.release(old_id)
    assert restarted.lease_count() == len(ids_after)
