"""Edge security helpers: key comparison, client addresses, the admin login limiter, body limits.

Login rate limiting
-------------------
Failed admin logins (a wrong ``app.app_key`` presented to ``/v1/admin/login`` or to any other
admin route) are counted per client address in a sliding window: after
``max_failures`` failures within ``window_s`` seconds that address gets ``429`` with
``Retry-After`` on every admin route — even with the right key, so a lock-out cannot be used as
an oracle — until the oldest failure leaves the window. Requests that present no key at all are
refused with 401 and not counted (they guess nothing).

The client address is what the ASGI server reports. Behind Ray Serve's HAProxy ingress every
connection comes from HAProxy on loopback and uvicorn (in each replica) then takes the address
from ``X-Forwarded-For``, which HAProxy passes through from the client unchanged — so a client
can pick its own address. A per-replica ceiling on *all* failures (``global_max_failures`` per
window) therefore backs the per-address limit: rotating addresses buys no more than that many
guesses a window. The state lives in the replica's memory: each replica counts on its own and a
restart forgets (documented in ``docs/reliability.md``).
"""

from __future__ import annotations

import hashlib
import hmac
import math
import time
from collections import OrderedDict, deque
from typing import Callable

from starlette.requests import Request

from grok2api.api.asgi import bearer_of

MIB = 1024 * 1024
# What a request body may carry besides one attachment of the largest allowed size.
BODY_OVERHEAD_BYTES = 1 * MIB


def keys_match(given: str, expected: str) -> bool:
    """Constant-time comparison of a presented key with the configured one.

    Both sides are hashed first, so neither the content nor the length of the configured key
    shows in the comparison's timing. An empty configured key never matches.
    """
    if not expected:
        return False
    a = hashlib.sha256(given.encode("utf-8", "surrogatepass")).digest()
    b = hashlib.sha256(expected.encode("utf-8", "surrogatepass")).digest()
    return hmac.compare_digest(a, b)


def bearer_credential(request: Request) -> str:
    """The credential of an ``Authorization: Bearer <key>`` header ('' when absent or another scheme)."""
    return bearer_of(request.headers.get("authorization"))


def client_address(request: Request) -> str:
    """The client address as the ASGI server reports it (see the module docstring)."""
    client = request.client
    return client.host if client is not None and client.host else "unknown"


def body_limit_bytes(max_upload_mb: int) -> int:
    """Largest request body: one attachment of ``asset.max_upload_mb`` MiB, base64-encoded, plus 1 MiB."""
    return math.ceil(max_upload_mb * MIB * 4 / 3) + BODY_OVERHEAD_BYTES


class LoginLimiter:
    """Sliding-window counter of failed logins per client address, with a global ceiling."""

    def __init__(self, max_failures: int = 5, window_s: float = 60.0, *, global_max_failures: int = 50,
                 max_tracked: int = 10_000, clock: Callable[[], float] = time.monotonic) -> None:
        if max_failures < 1 or global_max_failures < 1 or window_s <= 0:
            raise ValueError("limits must be positive")
        self.max_failures = max_failures
        self.window_s = window_s
        self.global_max_failures = global_max_failures
        self.max_tracked = max_tracked
        self._clock = clock
        self._per_key: OrderedDict[str, deque[float]] = OrderedDict()
        self._all: deque[float] = deque()

    def _prune(self, now: float) -> None:
        cutoff = now - self.window_s
        while self._all and self._all[0] <= cutoff:
            self._all.popleft()
        for key in list(self._per_key):
            times = self._per_key[key]
            while times and times[0] <= cutoff:
                times.popleft()
            if not times:
                del self._per_key[key]

    def retry_after(self, key: str) -> int | None:
        """Whole seconds until ``key`` may try again, or ``None`` if it may try now."""
        now = self._clock()
        self._prune(now)
        waits: list[float] = []
        times = self._per_key.get(key)
        if times is not None and len(times) >= self.max_failures:
            waits.append(times[len(times) - self.max_failures] + self.window_s - now)
        if len(self._all) >= self.global_max_failures:
            waits.append(self._all[len(self._all) - self.global_max_failures] + self.window_s - now)
        if not waits:
            return None
        return max(1, math.ceil(max(waits)))

    def failure(self, key: str) -> None:
        now = self._clock()
        self._prune(now)
        times = self._per_key.pop(key, None) or deque()
        times.append(now)
        self._per_key[key] = times  # most recently failing key last
        self._all.append(now)
        while len(self._per_key) > self.max_tracked:
            self._per_key.popitem(last=False)

    def success(self, key: str) -> None:
        """A correct login clears that address's failures (not the global count)."""
        self._per_key.pop(key, None)

    def reset(self) -> None:
        self._per_key.clear()
        self._all.clear()


__all__ = ["LoginLimiter", "bearer_credential", "body_limit_bytes", "client_address", "keys_match"]
