"""Per-token simulator state: accounts, quota windows, uploads, generated assets, posts.

Everything reads time through :class:`Clock`, so tests can move time forward
(``/_sim/clock``) to refill quota windows without sleeping.
"""

from __future__ import annotations

import collections
import hashlib
import random
import time
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Literal

from grok2api.catalog import DEFAULT_MODELS

Plan = Literal["basic", "super", "heavy"]
TokenState = Literal["valid", "expired", "blocked"]

#: Local quota budget per plan: (units, window seconds). Low effort costs 1 unit, high 4.
PLAN_QUOTA: dict[str, tuple[int, int]] = {
    "basic": (80, 20 * 3600),
    "super": (140, 2 * 3600),
    "heavy": (400, 2 * 3600),
}
LOW_COST = 1
HIGH_COST = 4

#: Modes whose requests are "high effort" (cost 4).
HIGH_EFFORT_MODES = frozenset(
    {"expert", "heavy", "MODEL_MODE_EXPERT", "MODEL_MODE_HEAVY", "MODEL_MODE_GROK_4_1_THINKING"}
)
#: ``modeId`` values and the flat (per-mode) rate-limit names.
MODE_IDS = frozenset({"fast", "auto", "expert", "heavy", "grok-420-computer-use-sa"})
KNOWN_MODEL_NAMES = frozenset(
    {m.model_name for m in DEFAULT_MODELS if m.model_name}
    | {"grok-3", "grok-4", "grok-4-mini", "grok-4-1-thinking-1129", "grok-420", "imagine-image-edit"}
)
KNOWN_MODEL_MODES = frozenset(
    {m.model_mode for m in DEFAULT_MODELS if m.model_mode}
    | {
        "MODEL_MODE_FAST", "MODEL_MODE_EXPERT", "MODEL_MODE_HEAVY", "MODEL_MODE_AUTO",
        "MODEL_MODE_GROK_3", "MODEL_MODE_GROK_3_MINI_THINKING", "MODEL_MODE_GROK_3_THINKING",
        "MODEL_MODE_GROK_4", "MODEL_MODE_GROK_4_MINI_THINKING", "MODEL_MODE_GROK_4_THINKING",
        "MODEL_MODE_GROK_4_1_MINI_THINKING", "MODEL_MODE_GROK_4_1_THINKING", "MODEL_MODE_GROK_420",
    }
)


def effort_cost(mode: str | None) -> int:
    return HIGH_COST if mode in HIGH_EFFORT_MODES else LOW_COST


def iso_ms(ts: float) -> str:
    return datetime.fromtimestamp(ts, timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.") + f"{int(ts * 1000) % 1000:03d}Z"


def iso_us(ts: float) -> str:
    return datetime.fromtimestamp(ts, timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class Clock:
    """Wall clock plus an adjustable offset (seconds)."""

    def __init__(self) -> None:
        self.offset = 0.0

    def now(self) -> float:
        return time.time() + self.offset


@dataclass
class Asset:
    asset_id: str
    key: str  # path on the assets host, without leading slash
    mime: str
    name: str
    create_time: float
    source: str = "SELF_UPLOAD_FILE_SOURCE"
    generated: bool = False
    data: bytes | None = None  # uploaded bytes; generated media are rendered on demand
    kind: str = "file"  # file | image | image_part | video | thumbnail | imagine
    size: tuple[int, int] = (256, 256)

    def list_item(self) -> dict[str, Any]:
        return {
            "assetId": self.asset_id,
            "mimeType": self.mime,
            "name": self.name,
            "sizeBytes": str(len(self.data) if self.data is not None else 0),
            "createTime": iso_ms(self.create_time),
            "lastUseTime": iso_ms(self.create_time),
            "summary": "",
            "key": self.key,
            "isDeleted": False,
            "fileSource": self.source,
            "isModelGenerated": self.generated,
            "isLatest": True,
        }


@dataclass
class Account:
    token: str
    plan: str = "basic"
    state: str = "valid"
    nsfw: bool = False
    user_id: str = ""
    quota_total: int = 80
    window_seconds: int = 72000
    used: int = 0
    window_start: float | None = None
    tos_version: int | None = None
    birth_date: str | None = None
    chats: int = 0
    assets: dict[str, Asset] = field(default_factory=dict)  # asset id -> asset (uploads + generated)
    uploads: set[str] = field(default_factory=set)  # fileMetadataIds usable as attachments
    posts: dict[str, dict[str, Any]] = field(default_factory=dict)
    videos: set[str] = field(default_factory=set)

    # -- quota -----------------------------------------------------------------
    def _roll(self, now: float) -> None:
        if self.window_start is not None and now >= self.window_start + self.window_seconds:
            self.used = 0
            self.window_start = None

    def remaining(self, now: float) -> int:
        self._roll(now)
        return max(0, self.quota_total - self.used)

    def wait_seconds(self, now: float) -> int:
        self._roll(now)
        if self.window_start is None:
            return 0
        return max(0, int(self.window_start + self.window_seconds - now + 0.999))

    def try_consume(self, cost: int, now: float) -> bool:
        if self.remaining(now) < cost:
            return False
        if self.window_start is None:
            self.window_start = now
        self.used += cost
        return True

    def refill(self) -> None:
        self.used = 0
        self.window_start = None

    def summary(self, now: float) -> dict[str, Any]:
        return {
            "plan": self.plan,
            "state": self.state,
            "nsfw": self.nsfw,
            "user_id": self.user_id,
            "quota_total": self.quota_total,
            "quota_remaining": self.remaining(now),
            "window_seconds": self.window_seconds,
            "wait_seconds": self.wait_seconds(now),
            "tos_version": self.tos_version,
            "birth_date": self.birth_date,
            "chats": self.chats,
            "assets": len(self.assets),
            "uploads": len(self.uploads),
            "posts": len(self.posts),
        }


@dataclass
class Options:
    """Runtime switches (CLI flags, changeable over ``/_sim/config``)."""

    seed: int | None = None
    strict_tokens: bool = False
    default_tokens: int = 20
    token_delay_ms: float = 0.0
    ttft_ms: float = 0.0
    video_ms: float = 0.0  # total time of the video progress frames
    record: bool = True
    record_limit: int = 5000
    statsig: str = "off"  # off | base64 | reject-e | x1
    cf_clearance: str | None = None  # when set, requests without this cf_clearance cookie get 403 HTML
    require_birth_date: bool = True  # NSFW enablement needs an adult birth date first
    retry_after: int | None = None  # Retry-After seconds on quota 429s
    imagine_images: int = 2
    assets_prefix: str = ""  # optional path prefix for the assets host routes (e.g. "/assets")


class SimState:
    """All mutable simulator state; one instance per server."""

    def __init__(self, options: Options | None = None, clock: Clock | None = None) -> None:
        from grok2api.simulator.faults import FaultBook

        self.options = options or Options()
        self.clock = clock or Clock()
        self.accounts: dict[str, Account] = {}
        self.assets_by_key: dict[str, tuple[Account, Asset]] = {}
        self.faults = FaultBook()
        self.requests: collections.deque[dict[str, Any]] = collections.deque(maxlen=self.options.record_limit)
        self.stats: collections.Counter[str] = collections.Counter()
        self.public_images: collections.OrderedDict[str, bytes] = collections.OrderedDict()  # imagine outputs
        self.started = time.time()

    def put_public_image(self, name: str, data: bytes) -> None:
        self.public_images[name] = data
        self.public_images.move_to_end(name)
        while len(self.public_images) > 512:
            self.public_images.popitem(last=False)

    # -- ids and randomness ------------------------------------------------------
    def rng(self, *parts: object) -> random.Random:
        """A deterministic RNG when a seed is set (keyed by ``parts``), else a fresh random one."""
        if self.options.seed is None:
            return random.Random()
        key = "|".join(str(p) for p in (self.options.seed, *parts))
        return random.Random(hashlib.sha256(key.encode()).digest())

    @staticmethod
    def uuid_from(rng: random.Random) -> str:
        return str(uuid.UUID(int=rng.getrandbits(128), version=4))

    # -- accounts ----------------------------------------------------------------
    def user_id_for(self, token: str) -> str:
        return str(uuid.UUID(bytes=hashlib.sha256(b"sim-user:" + token.encode()).digest()[:16], version=4))

    def upsert(self, token: str, plan: str | None = None, state: str | None = None, nsfw: bool | None = None,
               user_id: str | None = None, quota_total: int | None = None,
               window_seconds: int | None = None) -> Account:
        acc = self.accounts.get(token)
        if acc is None:
            acc = Account(token=token, user_id=user_id or self.user_id_for(token))
            plan = plan or "basic"
            self.accounts[token] = acc
        if plan is not None:
            acc.plan = plan
            acc.quota_total, acc.window_seconds = PLAN_QUOTA[plan]
        if state is not None:
            acc.state = state
        if nsfw is not None:
            acc.nsfw = nsfw
        if user_id:
            acc.user_id = user_id
        if quota_total is not None:
            acc.quota_total = quota_total
        if window_seconds is not None:
            acc.window_seconds = window_seconds
        return acc

    def lookup(self, token: str) -> Account | None:
        acc = self.accounts.get(token)
        if acc is None and not self.options.strict_tokens:
            acc = self.upsert(token)
        return acc

    def remove(self, token: str) -> bool:
        acc = self.accounts.pop(token, None)
        if acc is None:
            return False
        for asset in acc.assets.values():
            self.assets_by_key.pop(asset.key, None)
        return True

    def reset(self) -> None:
        self.accounts.clear()
        self.assets_by_key.clear()
        self.faults.clear()
        self.requests.clear()
        self.stats.clear()
        self.public_images.clear()
        self.clock.offset = 0.0

    # -- assets ------------------------------------------------------------------
    def add_asset(self, acc: Account, asset: Asset, listed: bool = True) -> Asset:
        if listed:
            acc.assets[asset.asset_id] = asset
        self.assets_by_key[asset.key] = (acc, asset)
        return asset

    def delete_asset(self, acc: Account, asset_id: str) -> bool:
        asset = acc.assets.pop(asset_id, None)
        if asset is None:
            return False
        acc.uploads.discard(asset_id)
        # Remove every stored path of this asset (e.g. a generated image and its preview part).
        for key in [k for k, (a, s) in self.assets_by_key.items() if a is acc and s.asset_id == asset_id]:
            del self.assets_by_key[key]
        return True

    def record(self, entry: dict[str, Any]) -> None:
        if self.options.record:
            self.requests.append(entry)
