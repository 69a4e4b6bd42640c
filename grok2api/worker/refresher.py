"""The TokenPool scheduler's view of ``/rest/rate-limits``: one quota reading per token."""

from __future__ import annotations

from grok2api.actors.token_pool import QuotaReading, Refresher, RefreshFailed
from grok2api.upstream.errors import ErrorKind, UpstreamError
from grok2api.upstream.settings import UpstreamSettings

# The model whose budget the legacy endpoint reports for every pool (chat.md §6.1).
LEGACY_RATE_LIMIT_MODEL = "grok-4-1-thinking-1129"


def make_refresher(settings: UpstreamSettings) -> Refresher:
    """Build the refresher inside the actor process (the upstream client is created lazily there)."""
    from grok2api.upstream.context import UpstreamContext
    from grok2api.upstream.rate_limits import fetch_rate_limits

    ctx: UpstreamContext | None = None

    async def refresh(token: str, pool: str) -> QuotaReading:
        nonlocal ctx
        if ctx is None:
            ctx = UpstreamContext(settings)
        try:
            rl = await fetch_rate_limits(ctx, token, LEGACY_RATE_LIMIT_MODEL, style="legacy")
        except UpstreamError as exc:
            confirmed = exc.kind in (ErrorKind.AUTH_FAILED, ErrorKind.BLOCKED)
            raise RefreshFailed(f"rate_limits_{exc.kind.value}", expire=confirmed) from None
        return QuotaReading(remaining=rl.remaining, window_s=rl.window_seconds)

    return refresh
