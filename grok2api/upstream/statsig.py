"""``x-statsig-id`` generators (protocol chat.md §1.4).

The header is version-sensitive, so generation is pluggable: anything with an
async ``statsig_id(method, path)`` and ``invalidate(path)`` satisfies
:class:`StatsigProvider` (e.g. a future external signer).

- ``x1`` (default, V3 since June 2026): base64 of ``x1:TypeError: ...`` with random parts.
- ``e`` (legacy V1/V2 dynamic form) — now draws 403 anti-bot upstream.
- ``e_static``: the fixed legacy value.
- ``manual``: a configured fixed value.
"""

from __future__ import annotations

import base64
import random
import string
from typing import Protocol, runtime_checkable

# Random bytes → letters through a 256-entry table: one C call per string instead of a Python
# loop (``random.choices``) on every request. The slight bias of ``i % len`` does not matter here.
_LOWER = bytes(ord(string.ascii_lowercase[i % 26]) for i in range(256))
_LOWER_DIGITS = bytes(ord((string.ascii_lowercase + string.digits)[i % 36]) for i in range(256))

E_STATIC = "ZTpUeXBlRXJyb3I6IENhbm5vdCByZWFkIHByb3BlcnRpZXMgb2YgdW5kZWZpbmVkIChyZWFkaW5nICdjaGlsZE5vZGVzJyk="


@runtime_checkable
class StatsigProvider(Protocol):
    """Source of ``x-statsig-id`` values."""

    async def statsig_id(self, method: str, path: str) -> str: ...

    def invalidate(self, path: str | None = None) -> None: ...


def _b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def _random_text(rng: random.Random, table: bytes, k: int) -> str:
    return rng.randbytes(k).translate(table).decode("ascii")


def _fake_error(prefix: str, escape_quotes: bool, rng: random.Random) -> str:
    if rng.random() < 0.5:
        rand = _random_text(rng, _LOWER_DIGITS, 5)
        q = "\\'" if escape_quotes else "'"
        body = f"TypeError: Cannot read properties of null (reading 'children[{q}{rand}{q}]')"
    else:
        rand = _random_text(rng, _LOWER, 10)
        body = f"TypeError: Cannot read properties of undefined (reading '{rand}')"
    return _b64(f"{prefix}:{body}")


class X1Statsig:
    """V3 form: ``x1:``-prefixed fake error, backslash-escaped quotes in the null variant."""

    def __init__(self, rng: random.Random | None = None) -> None:
        self._rng = rng or random.Random()

    def generate(self) -> str:
        return _fake_error("x1", True, self._rng)

    async def statsig_id(self, method: str, path: str) -> str:
        return self.generate()

    def invalidate(self, path: str | None = None) -> None:
        return None


class EStatsig:
    """Legacy V1/V2 ``e:`` form (dynamic)."""

    def __init__(self, rng: random.Random | None = None) -> None:
        self._rng = rng or random.Random()

    def generate(self) -> str:
        return _fake_error("e", False, self._rng)

    async def statsig_id(self, method: str, path: str) -> str:
        return self.generate()

    def invalidate(self, path: str | None = None) -> None:
        return None


class ManualStatsig:
    """A fixed configured value (or the legacy static ``e:`` value)."""

    def __init__(self, value: str) -> None:
        if not value:
            raise ValueError("manual statsig mode needs a value")
        self.value = value

    async def statsig_id(self, method: str, path: str) -> str:
        return self.value

    def invalidate(self, path: str | None = None) -> None:
        return None


def make_statsig(mode: str, value: str = "") -> StatsigProvider:
    """Provider for a config ``statsig_mode`` (``x1`` | ``e`` | ``e_static`` | ``manual``)."""
    if mode == "x1":
        return X1Statsig()
    if mode == "e":
        return EStatsig()
    if mode == "e_static":
        return ManualStatsig(E_STATIC)
    if mode == "manual":
        return ManualStatsig(value)
    raise ValueError(f"unknown statsig mode {mode!r}")
