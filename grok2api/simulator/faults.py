"""The fault model: what can go wrong, how a fault is written, and where it applies.

A fault is written ``name[:arg[:arg]]``; several are separated by commas (header
``x-sim-fault: reset_after:3, slow_first_byte:200``). The same text can be put
in a chat ``message`` as a marker ``[[sim:fault=reset_after:3]]`` or registered
through the control API (per token, per path, for the next N requests).

Names (``N`` = number of stream lines sent before the fault acts):

=====================  ===============================================================
``401`` / ``expired``  401 JSON invalid session (code 16)
``403`` / ``cloudflare``  403 Cloudflare HTML challenge ("Just a moment...")
``antibot``            403 JSON anti-bot (code 7)
``blocked``            403 JSON blocked user
``400``                400 JSON (code 3)
``404``                404 JSON (code 5)
``429[:S]``            429 JSON (code 8), ``Retry-After: S`` when S is given
``500|502|503|504[:html|json]``  5xx; 502 defaults to Cloudflare HTML, others JSON
``slow_first_byte:MS`` delay the response headers by MS milliseconds
``stall:N[:MS]``       after N lines send nothing for MS ms (default 600000), then go on
``reset_after:N``      after N lines abort the TCP connection (RST, no chunk terminator)
``close_after:N``      after N lines end the body cleanly (no soft stop / modelResponse)
``malformed:N[:KIND]`` after N lines insert a bad line: ``garbage`` (default),
                       ``truncated`` (half a JSON object, then close), ``nonobject``,
                       ``unknown_key``, ``two_per_line``
``error_after:N[:CODE]``  after N lines a top-level ``{"error":...}`` line, then close
``antibot_inband``     first line is the anti-bot error object (HTTP 200)
``response_error``     a response-level ``error`` frame (usage limit) after the answer
``stream_errors``      ``modelResponse.streamErrors`` is non-empty
``moderated``          generated images/videos come back ``moderated: true`` (WS: blocked)
``video_stuck:P[:MS]`` video progress stops at P; after MS ms (default 600000) the
                       stream ends without a video
``ws_close:N``         the imagine WebSocket closes (1011) after N frames
``truncate[:BYTES]``   asset download: send BYTES (default half) then abort
=====================  ===============================================================
"""

from __future__ import annotations

import itertools
import re
from dataclasses import dataclass, field
from typing import Iterable

STATUS_FAULTS = frozenset(
    {"401", "403", "cloudflare", "antibot", "blocked", "400", "404", "429", "500", "502", "503", "504"}
)
STREAM_FAULTS = frozenset(
    {"stall", "reset_after", "close_after", "malformed", "error_after", "response_error", "stream_errors"}
)
_ALIASES = {
    "expired": "401",
    "unauthorized": "401",
    "unauthenticated": "401",
    "rate_limit": "429",
    "ratelimit": "429",
    "challenge": "cloudflare",
    "anti_bot": "antibot",
    "blocked_user": "blocked",
    "reset": "reset_after",
    "close": "close_after",
    "ws_close_early": "ws_close",
    "slow": "slow_first_byte",
    "stall_after": "stall",
}
KNOWN = STATUS_FAULTS | STREAM_FAULTS | {
    "slow_first_byte", "antibot_inband", "moderated", "video_stuck", "ws_close", "truncate",
}

#: Categories a control-API fault rule can be scoped to (or a literal path prefix).
CATEGORIES = (
    "chat", "upload", "rate_limits", "assets", "download", "media", "ws", "grpc", "auth", "livekit", "any",
)


class FaultError(ValueError):
    """A fault spec that cannot be parsed."""


@dataclass(frozen=True)
class Fault:
    name: str
    args: tuple[str, ...] = ()

    def int_arg(self, index: int, default: int) -> int:
        try:
            return int(self.args[index])
        except (IndexError, ValueError):
            return default

    def str_arg(self, index: int, default: str) -> str:
        return self.args[index] if len(self.args) > index and self.args[index] else default

    def __str__(self) -> str:
        return ":".join((self.name, *self.args))


def parse_fault(spec: str) -> Fault:
    parts = [p.strip() for p in spec.strip().split(":")]
    name = parts[0].lower()
    name = _ALIASES.get(name, name)
    if name not in KNOWN:
        raise FaultError(f"unknown fault {parts[0]!r}")
    return Fault(name, tuple(parts[1:]))


def parse_faults(text: str | None) -> list[Fault]:
    if not text:
        return []
    return [parse_fault(p) for p in text.split(",") if p.strip()]


_MARKER = re.compile(r"\[\[sim:([^\]]*)\]\]")


def parse_markers(message: str) -> tuple[dict[str, str], str]:
    """``[[sim:key=value;key=value]]`` markers in ``message`` → (options, message without markers)."""
    options: dict[str, str] = {}
    for match in _MARKER.finditer(message):
        for item in match.group(1).split(";"):
            if "=" in item:
                key, value = item.split("=", 1)
                key = key.strip().lower()
                value = value.strip()
                if key == "fault" and key in options:
                    options[key] += "," + value
                else:
                    options[key] = value
    return options, _MARKER.sub("", message)


def category_of(path: str) -> str:
    if path.startswith("/rest/app-chat/conversations"):
        return "chat"
    if path.startswith("/rest/app-chat/upload-file") or path.startswith("/http/upload-file"):
        return "upload"
    if path.startswith("/rest/rate-limits"):
        return "rate_limits"
    if path.startswith("/rest/assets"):
        return "assets"
    if path.startswith("/rest/media"):
        return "media"
    if path.startswith("/ws/"):
        return "ws"
    if path.startswith("/auth_mgmt."):
        return "grpc"
    if path.startswith("/rest/auth") or path.startswith("/api/auth"):
        return "auth"
    if path.startswith("/rest/livekit"):
        return "livekit"
    return "download"


@dataclass
class FaultRule:
    id: int
    fault: Fault
    token: str | None = None
    path: str | None = None  # a category from CATEGORIES or a path prefix
    remaining: int | None = None  # None = until cleared

    def matches(self, token: str | None, path: str, category: str) -> bool:
        if self.token is not None and self.token != token:
            return False
        if self.path in (None, "any"):
            return True
        return self.path == category or path.startswith(self.path)

    def describe(self) -> dict[str, object]:
        from grok2api.storage.base import mask_token

        return {
            "id": self.id,
            "fault": str(self.fault),
            "token": mask_token(self.token) if self.token else None,
            "path": self.path,
            "remaining": self.remaining,
        }


@dataclass
class FaultBook:
    """Fault rules registered through the control API."""

    rules: list[FaultRule] = field(default_factory=list)
    _ids: itertools.count = field(default_factory=lambda: itertools.count(1))

    def add(self, fault: Fault, token: str | None = None, path: str | None = None,
            count: int | None = None) -> FaultRule:
        rule = FaultRule(next(self._ids), fault, token, path, count)
        self.rules.append(rule)
        return rule

    def clear(self, token: str | None = None) -> int:
        before = len(self.rules)
        self.rules = [r for r in self.rules if token is not None and r.token != token]
        return before - len(self.rules)

    def take(self, token: str | None, path: str, category: str | None = None) -> list[Fault]:
        """Faults that apply to this request; counted rules are consumed."""
        if not self.rules:
            return []
        category = category or category_of(path)
        found: list[Fault] = []
        for rule in list(self.rules):
            if rule.matches(token, path, category):
                found.append(rule.fault)
                if rule.remaining is not None:
                    rule.remaining -= 1
                    if rule.remaining <= 0:
                        self.rules.remove(rule)
        return found


def first(faults: Iterable[Fault], names: Iterable[str]) -> Fault | None:
    wanted = set(names)
    for f in faults:
        if f.name in wanted:
            return f
    return None
