"""Messages exchanged between GrokWorker replicas and the TokenPool actor.

A worker never asks the pool for a token per request. It holds a few *leases*:
a lease reserves some quota units ("credits") of one token for a short time.
The worker spends credits locally, then *settles* in batches: outcomes of the
requests it made (success with its cost, 429, 401, ...) and the leases it is
done with. Plain dataclasses: they cross process boundaries on every batch,
so they must pickle small and fast.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum


class OutcomeKind(StrEnum):
    """What happened to one upstream call, as far as the token is concerned."""

    SUCCESS = "success"
    RATE_LIMITED = "rate_limited"  # 429 / usage limit: the token's window is spent
    AUTH_FAILED = "auth_failed"  # 401: counts towards token.fail_threshold
    BLOCKED = "blocked"  # 403 blocked-user: the account is suspended
    CLOUDFLARE = "cloudflare"  # 403 challenge: the egress, not the token
    ANTI_BOT = "anti_bot"  # 403 statsig/fingerprint: not the token
    UPSTREAM = "upstream"  # 5xx, transport, idle timeout: not the token
    CANCELLED = "cancelled"  # client went away before the answer finished


@dataclass(slots=True)
class Lease:
    lease_id: int
    token: str
    pool: str
    credits: int
    expires_at_ms: int


@dataclass(slots=True)
class Outcome:
    token: str
    kind: OutcomeKind
    cost: int = 0  # quota units to charge (success only)
    reason: str = ""
    retry_after_s: float | None = None
    at_ms: int = 0
    count: int = 1  # requests this outcome stands for (a worker merges its successes per token)


@dataclass(slots=True)
class GrantResult:
    leases: list[Lease]
    # When nothing could be granted: seconds until the earliest cooling token in
    # the requested pools becomes usable again (None if no token could ever serve).
    retry_after_s: float | None = None


@dataclass(slots=True)
class SettleBatch:
    holder: str
    seq: int
    outcomes: list[Outcome] = field(default_factory=list)
    released: list[int] = field(default_factory=list)  # lease ids the holder is done with


@dataclass(slots=True)
class SettleAck:
    seq: int
    revoked: list[str] = field(default_factory=list)  # tokens whose leases the holder must drop
    # First lease id of the pool's current incarnation: leases with smaller ids were granted by an
    # earlier one (before an actor restart), which the pool no longer knows and cannot revoke.
    epoch: int = 0
