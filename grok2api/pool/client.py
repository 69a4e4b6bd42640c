"""The worker side of the token pool: a local lease cache with batched settlement.

Each GrokWorker replica owns one :class:`LeaseClient`. ``acquire`` picks a token
from the leases the replica already holds (no actor call on the hot path),
spreading requests over tokens by in-flight count; only a miss asks the
TokenPool actor for new leases, and concurrent misses share one call.
``finish`` records the outcome locally (successes on one token merge into one
outcome until the next settlement); a background loop settles outcomes and
spent leases with the actor every ``settle_interval`` seconds, at once for
outcomes that change a token's state (429, 401, blocked). Settlement is
at-least-once: a batch stays queued until the actor acknowledges it, so an
actor restart loses nothing.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from dataclasses import dataclass
from typing import Awaitable, Callable, Iterable

from grok2api.pool.leases import GrantResult, Lease, Outcome, OutcomeKind, SettleAck, SettleBatch
from grok2api.storage.base import mask_token, now_ms

log = logging.getLogger(__name__)

# Outcomes that change a token's state: settle them at once so no other request picks the token.
# A lease this close to its expiry takes no new requests (the pool reclaims it at expiry).
_EXPIRY_MARGIN_MS = 2_000
_URGENT = frozenset({OutcomeKind.RATE_LIMITED, OutcomeKind.AUTH_FAILED, OutcomeKind.BLOCKED})


class NoTokenAvailable(Exception):
    """No token of the model's pools can serve a request now."""

    def __init__(self, retry_after_s: float | None) -> None:
        self.retry_after_s = retry_after_s
        super().__init__("No available tokens. Please try again later.")


class PoolUnavailable(Exception):
    """The TokenPool actor could not be reached in time."""


@dataclass(slots=True)
class _Held:
    lease: Lease
    credits: int
    inflight: int = 0
    retired: bool = False  # no new requests; released once idle


@dataclass(slots=True)
class Ticket:
    """One request's claim on a token."""

    token: str
    pool: str
    cost: int
    lease_id: int

    @property
    def masked(self) -> str:
        return mask_token(self.token)


# The actor surface the client needs; the real one is a Ray actor handle wrapped by ``RayPoolPort``.
GrantFn = Callable[[str, tuple[str, ...], int, list[str], int | None], Awaitable[GrantResult]]
SettleFn = Callable[[SettleBatch], Awaitable[SettleAck]]


class LeaseClient:
    def __init__(
        self,
        grant: GrantFn,
        settle: SettleFn,
        *,
        holder: str | None = None,
        settle_interval: float = 0.2,
        heartbeat_interval: float = 1.0,
        spread: int = 4,
        max_leases_per_grant: int = 8,
        grant_timeout: float = 10.0,
    ) -> None:
        self.holder = holder or f"worker-{uuid.uuid4().hex[:12]}"
        self._grant = grant
        self._settle = settle
        self._settle_interval = settle_interval
        self._heartbeat = heartbeat_interval
        self._last_settle = 0.0
        self._spread = spread
        self._max_want = max_leases_per_grant
        self._grant_timeout = grant_timeout
        self._held: dict[int, _Held] = {}  # lease id -> lease held (a token may have several)
        self._outcomes: list[Outcome] = []
        self._merging: dict[str, Outcome] = {}  # token -> its queued success outcome, still open for merging
        self._released: list[int] = []
        self._unacked: list[SettleBatch] = []
        self._seq = 0
        self._waiting: dict[tuple[str, ...], int] = {}  # requests blocked on a grant, per pool set
        self._pending_grants: dict[tuple[tuple[str, ...], frozenset[str]], asyncio.Future[GrantResult]] = {}
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._closed = False

    # -- lifecycle ------------------------------------------------------------------------
    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run(), name="lease-settle")

    async def close(self) -> None:
        """Release every lease and flush all outcomes (best effort within a few seconds)."""
        self._closed = True
        self._released.extend(self._held)
        self._held.clear()
        if self._task:
            self._task.cancel()
            try:
                await self._task
            except (asyncio.CancelledError, Exception):
                pass
        try:
            await asyncio.wait_for(self.flush(), timeout=5)
        except Exception as exc:  # noqa: BLE001
            log.warning("lease client could not flush on close: %s", exc)

    # -- hot path -------------------------------------------------------------------------
    async def acquire(self, pools: tuple[str, ...], cost: int, exclude: Iterable[str] = ()) -> Ticket:
        """A ticket on a token from ``pools`` (in preference order), never one in ``exclude``."""
        skip = frozenset(exclude)
        held = self._pick(pools, skip)
        if held is not None and held.inflight >= self._spread:
            # Load would pile on one token: widen the lease set in the background.
            await self._request_leases(pools, skip, wait=False)
        rounds = 0
        deadline = time.monotonic() + self._grant_timeout
        if held is None:
            self._waiting[pools] = self._waiting.get(pools, 0) + 1
        try:
            while held is None:
                # Concurrent misses share one grant sized for all of them; when its credits went to
                # other waiters, ask again for as long as the pool still has quota to lease.
                fresh = await self._request_leases(pools, skip, wait=True)
                held = self._pick(pools, skip)
                rounds += 1
                if held is None and (fresh is None or not fresh.leases or time.monotonic() > deadline):
                    raise NoTokenAvailable(fresh.retry_after_s if fresh else None)
        finally:
            if rounds or held is None:
                self._waiting[pools] -= 1
        # The ticket always carries the model's full cost (what the pool will charge); a lease with
        # fewer credits left simply goes below zero and is topped up by the next grant.
        held.credits -= cost
        held.inflight += 1
        return Ticket(held.lease.token, held.lease.pool, cost, held.lease.lease_id)

    def finish(self, ticket: Ticket, kind: OutcomeKind, *, reason: str = "",
               retry_after_s: float | None = None) -> None:
        """Record how a ticket's request ended. Never blocks."""
        held = self._held.get(ticket.lease_id)
        if held is not None:
            held.inflight -= 1
            if kind is not OutcomeKind.SUCCESS:
                held.credits += ticket.cost  # only successes spend quota
            if (held.retired or held.credits <= 0) and held.inflight <= 0:
                self._retire(ticket.lease_id)
        if kind in _URGENT:  # stop using every lease on this token at once
            for lease_id, other in list(self._held.items()):
                if other.lease.token == ticket.token:
                    self._stop_using(lease_id, other)
        if kind is OutcomeKind.CANCELLED and not reason:
            return
        if kind is OutcomeKind.SUCCESS:
            merged = self._merging.get(ticket.token)
            if merged is not None:
                merged.cost += ticket.cost
                merged.count += 1
                merged.at_ms = now_ms()
                return
            outcome = Outcome(ticket.token, kind, ticket.cost, reason, retry_after_s, now_ms())
            self._merging[ticket.token] = outcome
        else:
            # Later successes on this token must be applied after this outcome, not merged before it.
            self._merging.pop(ticket.token, None)
            outcome = Outcome(ticket.token, kind, 0, reason, retry_after_s, now_ms())
        self._outcomes.append(outcome)
        if kind in _URGENT:
            self._wake.set()

    # -- internals ----------------------------------------------------------------------
    def _pick(self, pools: tuple[str, ...], skip: frozenset[str]) -> _Held | None:
        now = now_ms()
        best: _Held | None = None
        best_key: tuple[int, int, int] | None = None
        for lease_id, held in list(self._held.items()):
            lease = held.lease
            if held.retired or lease.token in skip or held.credits <= 0 or lease.pool not in pools:
                continue
            if lease.expires_at_ms - now < _EXPIRY_MARGIN_MS:
                self._stop_using(lease_id, held)
                continue
            key = (pools.index(lease.pool), held.inflight, -held.credits)
            if best_key is None or key < best_key:
                best, best_key = held, key
        return best

    def _stop_using(self, lease_id: int, held: _Held) -> None:
        """No new requests on this lease; it is given back once its requests in flight are done."""
        held.retired = True
        if held.inflight <= 0:
            self._retire(lease_id)

    def _retire(self, lease_id: int) -> None:
        if self._held.pop(lease_id, None) is not None:
            self._released.append(lease_id)

    async def _request_leases(self, pools: tuple[str, ...], skip: frozenset[str], *, wait: bool) -> GrantResult | None:
        key = (pools, skip)
        fut = self._pending_grants.get(key)
        if fut is None:
            fut = asyncio.get_running_loop().create_future()
            self._pending_grants[key] = fut
            asyncio.get_running_loop().create_task(self._do_grant(key, fut))
        if not wait:
            return None
        return await asyncio.shield(fut)

    async def _do_grant(self, key: tuple[tuple[str, ...], frozenset[str]], fut: asyncio.Future[GrantResult]) -> None:
        pools, skip = key
        inflight = sum(h.inflight for h in self._held.values() if h.lease.pool in pools)
        want = max(2, min(self._max_want, inflight // max(self._spread, 1) + 1))
        waiting = self._waiting.get(pools, 0)
        credits = -(-waiting // want) if waiting else None  # enough for everyone waiting, spread over `want`
        # Only the request's tried tokens are excluded: a token may carry several leases, and the pool
        # already prefers the tokens with the least reserved quota, which spreads the load.
        exclude = sorted(skip)
        deadline = time.monotonic() + self._grant_timeout
        delay = 0.05
        try:
            while True:
                try:
                    result = await self._grant(self.holder, pools, want, exclude, credits)
                    break
                except Exception as exc:  # noqa: BLE001 - actor restarting or unreachable
                    if time.monotonic() + delay > deadline:
                        raise PoolUnavailable(f"token pool unreachable: {type(exc).__name__}") from exc
                    await asyncio.sleep(delay)
                    delay = min(delay * 2, 1.0)
            for lease in result.leases:
                self._held[lease.lease_id] = _Held(lease, lease.credits)
            fut.set_result(result)
        except BaseException as exc:  # noqa: BLE001
            if not fut.done():
                fut.set_exception(exc if isinstance(exc, Exception) else PoolUnavailable(str(exc)))
        finally:
            self._pending_grants.pop(key, None)
            if not fut.done():
                fut.set_exception(PoolUnavailable("grant cancelled"))
            # Nobody may be awaiting a background widening call; keep its exception retrieved.
            if fut.done() and not fut.cancelled():
                fut.exception()

    async def flush(self, *, heartbeat: bool = False) -> None:
        """Send everything queued and wait for the acknowledgement.

        With ``heartbeat`` an empty batch is sent too, so the pool can tell this holder which
        leases it revoked (token removed, cooled or disabled because of another worker's report).
        """
        if self._outcomes or self._released or (heartbeat and not self._unacked):
            self._seq += 1
            self._unacked.append(SettleBatch(self.holder, self._seq, self._outcomes, self._released))
            self._outcomes, self._released = [], []
            self._merging.clear()
        while self._unacked:
            batch = self._unacked[0]
            ack = await self._settle(batch)
            self._unacked.pop(0)
            self._last_settle = time.monotonic()
            revoked = set(ack.revoked)
            for lease_id, held in list(self._held.items()):
                if held.lease.token in revoked or lease_id < ack.epoch:
                    held.retired = True
                    # The pool already took the reservation back: forget the lease without releasing it.
                    if held.inflight <= 0:
                        self._held.pop(lease_id, None)

    async def _run(self) -> None:
        while not self._closed:
            try:
                await asyncio.wait_for(self._wake.wait(), timeout=self._settle_interval)
            except asyncio.TimeoutError:
                pass
            self._wake.clear()
            now = now_ms()
            for lease_id, held in list(self._held.items()):
                if held.lease.expires_at_ms - now < _EXPIRY_MARGIN_MS:
                    self._stop_using(lease_id, held)
            try:
                due = bool(self._held) and time.monotonic() - self._last_settle >= self._heartbeat
                await self.flush(heartbeat=due)
            except Exception as exc:  # noqa: BLE001 - keep the batch; retry next tick
                log.warning("settling with the token pool failed (will retry): %s", type(exc).__name__)
                await asyncio.sleep(min(1.0, self._settle_interval * 5))

    # -- introspection (tests, metrics) ----------------------------------------------------
    def held_tokens(self) -> dict[str, tuple[int, int]]:
        out: dict[str, tuple[int, int]] = {}
        for h in self._held.values():
            credits, inflight = out.get(mask_token(h.lease.token), (0, 0))
            out[mask_token(h.lease.token)] = (credits + h.credits, inflight + h.inflight)
        return out

    @property
    def pending(self) -> int:
        """Requests whose outcome the pool has not acknowledged yet."""
        return sum(o.count for o in self._outcomes) + sum(o.count for b in self._unacked for o in b.outcomes)
