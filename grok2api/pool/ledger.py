"""The token pool's bookkeeping: records, leases, the state machine and selection.

Pure logic with no Ray and no I/O, so every rule is unit-testable. The TokenPool
actor wraps one :class:`PoolLedger`, persists the :class:`TokenUpdate` deltas it
returns, and runs the refresh scheduler.

State machine (protocol chat.md §8.4, with the 403 rule its §11.6 recommends):

=================  ===========================================================
outcome            effect on the token
=================  ===========================================================
success            quota -= min(cost, quota); use_count += 1; fail_count = 0;
                   quota 0 → cooling until the window ends; cooling with quota → active
429                quota = 0, cooling until ``retry_after`` or the pool's window
401                fail_count += 1; at ``fail_threshold`` → expired
403 blocked-user   disabled
403 challenge /    nothing (the egress or fingerprint is at fault, not the token)
anti-bot, 5xx,
transport, cancel
=================  ===========================================================

Selection: only ``active`` tokens with unreserved quota; pools in the model's
order (the first pool with a candidate wins); most unreserved quota first, ties
broken at random, several tokens per grant so load spreads.
"""

from __future__ import annotations

import itertools
import random
from dataclasses import dataclass
from typing import Iterable, Mapping

from grok2api.pool.leases import GrantResult, Lease, Outcome, OutcomeKind
from grok2api.storage.base import TokenRecord, TokenStatus, TokenUpdate, now_ms


@dataclass(frozen=True, slots=True)
class PoolPolicy:
    """The numbers the state machine runs on (from config ``[token]``)."""

    fail_threshold: int = 5
    lease_ttl_ms: int = 15_000
    lease_credits: int = 16
    default_quota: Mapping[str, int] = None  # type: ignore[assignment]
    window_ms: Mapping[str, int] = None  # type: ignore[assignment]

    def __post_init__(self) -> None:
        if self.default_quota is None:
            object.__setattr__(self, "default_quota", {"basic": 80, "super": 140, "heavy": 140})
        if self.window_ms is None:
            hour = 3_600_000
            object.__setattr__(self, "window_ms", {"basic": 20 * hour, "super": 2 * hour, "heavy": 2 * hour})

    def quota_for(self, pool: str) -> int:
        return self.default_quota.get(pool, self.default_quota.get("basic", 80))

    def window_for(self, pool: str) -> int:
        return self.window_ms.get(pool, self.window_ms.get("basic", 20 * 3_600_000))


@dataclass(slots=True)
class _LeaseState:
    token: str
    holder: str
    credits: int
    expires_at_ms: int


class PoolLedger:
    """In-memory truth about every token, plus outstanding leases."""

    def __init__(self, records: Iterable[TokenRecord], policy: PoolPolicy | None = None) -> None:
        self.policy = policy or PoolPolicy()
        self.records: dict[str, TokenRecord] = {r.token: r for r in records}
        self._leases: dict[int, _LeaseState] = {}
        self._reserved: dict[str, int] = {}
        self._revoked: dict[str, set[str]] = {}  # holder -> tokens whose leases were taken back
        # Lease ids must never repeat across actor restarts: workers still hold (and release)
        # ids of the previous incarnation. Start from this incarnation's clock, 2**20 ids per ms.
        self.epoch = (now_ms() << 20) + 1  # first lease id of this incarnation
        self._ids = itertools.count(self.epoch)
        self._rng = random.Random()

    # -- queries ------------------------------------------------------------------------
    def reserved(self, token: str) -> int:
        return self._reserved.get(token, 0)

    def available(self, record: TokenRecord, now: int) -> int:
        """Unreserved quota of a token that may be used right now (0 when it may not)."""
        if record.status is not TokenStatus.ACTIVE:
            return 0
        if record.cooldown_until and record.cooldown_until > now:
            return 0
        return max(0, record.quota - self._reserved.get(record.token, 0))

    def lease_count(self) -> int:
        return len(self._leases)

    # -- leases -------------------------------------------------------------------------
    def grant(
        self,
        holder: str,
        pools: tuple[str, ...],
        *,
        want: int = 2,
        exclude: Iterable[str] = (),
        now: int | None = None,
        credits: int | None = None,
    ) -> GrantResult:
        """Lease up to ``want`` distinct tokens from the first of ``pools`` that has any.

        Each lease reserves ``credits`` units (default ``policy.lease_credits``; a worker facing a
        burst asks for more), never more than the token has unreserved."""
        per_lease = max(self.policy.lease_credits, credits or 0)
        now = now_ms() if now is None else now
        self.expire_leases(now)
        skip = set(exclude)
        for pool in pools:
            candidates = [
                (avail, self._rng.random(), rec)
                for rec in self.records.values()
                if rec.pool == pool and rec.token not in skip and (avail := self.available(rec, now)) > 0
            ]
            if not candidates:
                continue
            candidates.sort(key=lambda c: (-c[0], c[1]))
            leases = []
            for avail, _, rec in candidates[:want]:
                granted = min(per_lease, avail)
                lease_id = next(self._ids)
                expires = now + self.policy.lease_ttl_ms
                self._leases[lease_id] = _LeaseState(rec.token, holder, granted, expires)
                self._reserved[rec.token] = self._reserved.get(rec.token, 0) + granted
                leases.append(Lease(lease_id, rec.token, rec.pool, granted, expires))
            return GrantResult(leases)
        return GrantResult([], self.retry_after(pools, now))

    def retry_after(self, pools: tuple[str, ...], now: int) -> float | None:
        """Seconds until some token of ``pools`` leaves its cooldown (None: none ever will by itself)."""
        ends = [
            rec.cooldown_until
            for rec in self.records.values()
            if rec.pool in pools and rec.status is TokenStatus.COOLING and rec.cooldown_until
        ]
        if not ends:
            return None
        return max(1.0, (min(ends) - now) / 1000)

    def release(self, lease_id: int) -> None:
        state = self._leases.pop(lease_id, None)
        if state is None:
            return
        left = self._reserved.get(state.token, 0) - state.credits
        if left > 0:
            self._reserved[state.token] = left
        else:
            self._reserved.pop(state.token, None)

    def release_holder(self, holder: str) -> int:
        ids = [lid for lid, st in self._leases.items() if st.holder == holder]
        for lid in ids:
            self.release(lid)
        return len(ids)

    def expire_leases(self, now: int) -> int:
        expired = [lid for lid, st in self._leases.items() if st.expires_at_ms <= now]
        for lid in expired:
            self.release(lid)
        return len(expired)

    # -- outcomes -----------------------------------------------------------------------
    def apply(self, outcome: Outcome, now: int | None = None) -> TokenUpdate | None:
        """Apply one outcome to its token; returns the delta to persist (None: nothing changed)."""
        rec = self.records.get(outcome.token)
        if rec is None:
            return None
        now = outcome.at_ms or (now_ms() if now is None else now)
        kind = outcome.kind
        sets: dict[str, object] = {}
        incr: dict[str, int] = {}
        if kind is OutcomeKind.SUCCESS:
            used = min(max(outcome.cost, 0), rec.quota)
            incr = {"quota": -used, "use_count": max(outcome.count, 1)}
            sets["last_used_at"] = now
            if rec.fail_count:
                sets["fail_count"] = 0
            if rec.quota - used <= 0:
                sets["status"] = TokenStatus.COOLING
                sets["cooldown_until"] = now + self.policy.window_for(rec.pool)
            elif rec.status is TokenStatus.COOLING:
                sets["status"] = TokenStatus.ACTIVE
                sets["cooldown_until"] = None
        elif kind is OutcomeKind.RATE_LIMITED:
            wait_ms = int(outcome.retry_after_s * 1000) if outcome.retry_after_s else self.policy.window_for(rec.pool)
            sets.update(
                quota=0,
                status=TokenStatus.COOLING if rec.status is TokenStatus.ACTIVE else rec.status,
                cooldown_until=now + wait_ms,
                last_fail_at=now,
                last_fail_reason=outcome.reason or "rate_limited",
            )
        elif kind is OutcomeKind.AUTH_FAILED:
            incr = {"fail_count": 1}
            sets.update(last_fail_at=now, last_fail_reason=outcome.reason or "auth_failed")
            if rec.fail_count + 1 >= self.policy.fail_threshold and rec.status is not TokenStatus.DISABLED:
                sets["status"] = TokenStatus.EXPIRED
        elif kind is OutcomeKind.BLOCKED:
            sets.update(
                status=TokenStatus.DISABLED, last_fail_at=now, last_fail_reason=outcome.reason or "blocked-user"
            )
        else:
            return None
        update = TokenUpdate(token=rec.token, set=sets, incr=incr)
        self.records[rec.token] = update.apply_to(rec)
        if self.records[rec.token].status is not TokenStatus.ACTIVE:
            self._drop_leases_of(rec.token)
        return update

    def _drop_leases_of(self, token: str) -> None:
        for lid in [lid for lid, st in self._leases.items() if st.token == token]:
            self._revoked.setdefault(self._leases[lid].holder, set()).add(token)
            self.release(lid)

    def take_revoked(self, holder: str) -> list[str]:
        """Tokens whose leases ``holder`` must stop using (removed, cooled, expired or disabled)."""
        return sorted(self._revoked.pop(holder, ()))

    # -- sync from upstream rate-limits ------------------------------------------------
    def apply_sync(self, token: str, remaining: int, *, now: int | None = None, clear_failures: bool = False,
                   window_s: int | None = None) -> TokenUpdate | None:
        """A fresh quota reading from ``/rest/rate-limits``."""
        rec = self.records.get(token)
        if rec is None:
            return None
        now = now_ms() if now is None else now
        sets: dict[str, object] = {"quota": max(0, remaining), "last_sync_at": now}
        if remaining > 0:
            if rec.status in (TokenStatus.COOLING, TokenStatus.EXPIRED):
                sets["status"] = TokenStatus.ACTIVE
            sets["cooldown_until"] = None
        else:
            if rec.status is TokenStatus.ACTIVE:
                sets["status"] = TokenStatus.COOLING
            window = window_s * 1000 if window_s else self.policy.window_for(rec.pool)
            sets["cooldown_until"] = now + window
        if clear_failures:
            sets.update(fail_count=0, last_fail_at=None, last_fail_reason=None)
        update = TokenUpdate(token=token, set=sets)
        self.records[token] = update.apply_to(rec)
        return update

    def apply_sync_failure(self, token: str, reason: str, *, expire: bool, now: int | None = None) -> TokenUpdate | None:
        rec = self.records.get(token)
        if rec is None:
            return None
        now = now_ms() if now is None else now
        sets: dict[str, object] = {"last_sync_at": now, "last_fail_at": now, "last_fail_reason": reason}
        if expire:
            sets["status"] = TokenStatus.EXPIRED
        update = TokenUpdate(token=token, set=sets)
        self.records[token] = update.apply_to(rec)
        return update

    def due_for_refresh(self, now: int, interval_ms: Mapping[str, int]) -> list[TokenRecord]:
        """Cooling tokens whose last sync is older than their pool's refresh interval, oldest first."""
        due = [
            rec
            for rec in self.records.values()
            if rec.status is TokenStatus.COOLING
            and (
                rec.last_sync_at is None
                or now - rec.last_sync_at >= interval_ms.get(rec.pool, interval_ms.get("basic", 8 * 3_600_000))
                or (rec.cooldown_until is not None and rec.cooldown_until <= now)
            )
        ]
        due.sort(key=lambda r: r.last_sync_at or 0)
        return due

    # -- admin ----------------------------------------------------------------------------
    def upsert(self, record: TokenRecord) -> None:
        """Add or replace a record; an inactive record loses its outstanding leases."""
        self.records[record.token] = record
        if record.status is not TokenStatus.ACTIVE:
            self._drop_leases_of(record.token)

    def remove(self, token: str) -> bool:
        self._drop_leases_of(token)
        return self.records.pop(token, None) is not None

    def replace_all(self, records: Iterable[TokenRecord]) -> None:
        """Adopt a fresh copy from storage (leases on vanished tokens are dropped)."""
        self.records = {r.token: r for r in records}
        for lid in [lid for lid, st in self._leases.items() if st.token not in self.records]:
            self._revoked.setdefault(self._leases[lid].holder, set()).add(self._leases[lid].token)
            self.release(lid)


def merge_updates(updates: Iterable[TokenUpdate]) -> list[TokenUpdate]:
    """Coalesce consecutive deltas per token into one, preserving set-then-incr semantics."""
    merged: dict[str, TokenUpdate] = {}
    for upd in updates:
        cur = merged.get(upd.token)
        if cur is None:
            merged[upd.token] = TokenUpdate(token=upd.token, set=dict(upd.set), incr=dict(upd.incr))
            continue
        for key, value in upd.set.items():
            cur.set[key] = value
            cur.incr.pop(key, None)  # a later set overrides earlier increments of the field
        for key, delta in upd.incr.items():
            cur.incr[key] = cur.incr.get(key, 0) + delta
    return list(merged.values())
