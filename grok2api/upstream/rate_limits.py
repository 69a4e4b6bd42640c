"""``POST /rest/rate-limits`` (chat.md §6): the token's quota window for one model/mode.

Two request styles: legacy ``{"requestKind": "DEFAULT", "modelName": "grok-4-1-thinking-1129"}``
(V1/V2) and per-mode ``{"modelName": "fast"}`` (V3/V4). ``remaining`` is normalised:
``remainingTokens`` when present, else ``remainingQueries``.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from grok2api.upstream.context import UpstreamContext
from grok2api.upstream.errors import ErrorKind, UpstreamError

RATE_LIMITS_PATH = "/rest/rate-limits"
_MODES = frozenset({"fast", "auto", "expert", "heavy", "grok-420-computer-use-sa"})


class EffortLimits(BaseModel):
    model_config = ConfigDict(extra="ignore", populate_by_name=True)

    cost: int | None = None
    remaining_queries: int | None = Field(default=None, alias="remainingQueries")
    wait_time_seconds: int | None = Field(default=None, alias="waitTimeSeconds")


class RateLimits(BaseModel):
    """One rate-limit answer, with ``remaining``/``total`` normalised."""

    model_config = ConfigDict(extra="ignore", populate_by_name=True)

    window_seconds: int | None = Field(default=None, alias="windowSizeSeconds")
    remaining_queries: int | None = Field(default=None, alias="remainingQueries")
    total_queries: int | None = Field(default=None, alias="totalQueries")
    remaining_tokens: int | None = Field(default=None, alias="remainingTokens")
    total_tokens: int | None = Field(default=None, alias="totalTokens")
    wait_time_seconds: int | None = Field(default=None, alias="waitTimeSeconds")
    low_effort: EffortLimits | None = Field(default=None, alias="lowEffortRateLimits")
    high_effort: EffortLimits | None = Field(default=None, alias="highEffortRateLimits")
    model: str = ""

    @property
    def remaining(self) -> int:
        if self.remaining_tokens is not None:
            return max(0, self.remaining_tokens)
        return max(0, self.remaining_queries or 0)

    @property
    def total(self) -> int | None:
        if self.remaining_tokens is not None and self.total_tokens is not None:
            return self.total_tokens
        return self.total_queries


def rate_limits_body(model_name: str, style: Literal["auto", "legacy", "mode"] = "auto") -> dict[str, Any]:
    """Request body; ``auto`` = mode style for mode ids (``fast``, ``auto`` ...), legacy otherwise."""
    if style == "mode" or (style == "auto" and model_name in _MODES):
        return {"modelName": model_name}
    return {"requestKind": "DEFAULT", "modelName": model_name}


async def fetch_rate_limits(ctx: UpstreamContext, token: str, model_name: str,
                            style: Literal["auto", "legacy", "mode"] = "auto") -> RateLimits:
    """Ask Grok for ``token``'s window for ``model_name`` (``ModelSpec.rate_limit_model``)."""
    resp = await ctx.post_json(token, RATE_LIMITS_PATH, rate_limits_body(model_name, style),
                               timeout=ctx.settings.rate_limits_timeout)
    try:
        data = resp.json()
    except ValueError:
        raise UpstreamError(ErrorKind.SERVER, resp.status, "rate-limits answer is not JSON") from None
    if not isinstance(data, dict):
        raise UpstreamError(ErrorKind.SERVER, resp.status, "rate-limits answer is not an object")
    rl = RateLimits.model_validate(data)
    rl.model = model_name
    return rl
