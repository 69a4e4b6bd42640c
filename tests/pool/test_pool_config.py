"""The TokenPool follows the stored config: ``[token]`` edits apply without a restart."""

from __future__ import annotations

import asyncio
import functools
import time
from pathlib import Path

from grok2api.actors.token_pool import PoolSettings, TokenPoolCore
from grok2api.config.service import ConfigService
from grok2api.pool.leases import Outcome, OutcomeKind, SettleBatch
from grok2api.storage import create_storage
from grok2api.storage.base import TokenStatus
from grok2api.worker.pool_config import PoolConfigWatch

TOKEN = "tok-config-aaaaaaaaaaaaaaaa"


async def test_a_fail_threshold_edited_in_the_config_applies_to_the_running_pool(tmp_path: Path) -> None:
    factory = functools.partial(create_storage, "local", "", tmp_path)
    editor_storage = factory()
    await editor_storage.open()
    editor = ConfigService(editor_storage)
    await editor.load()
    await editor.update({"app": {"config_poll_interval_sec": 0.2}, "token": {"fail_threshold": 4}})
    core = TokenPoolCore(factory, PoolSettings(reload_interval_sec=0.2, scheduler_period_sec=3600),
                         config_watch=PoolConfigWatch())
    try:
        await core.ready()
        await core.add_tokens([TOKEN], "basic")
        assert core.settings.fail_threshold == 4  # the stored config, not the settings it was built with

        await editor.update({"token": {"fail_threshold": 1}})  # what `grok2api config set` does
        deadline = time.monotonic() + 10
        while core.settings.fail_threshold != 1:
            assert time.monotonic() < deadline, "the pool did not pick up token.fail_threshold"
            await asyncio.sleep(0.1)

        # One 401 now expires the token, as the edited threshold says.
        await core.settle(SettleBatch("worker-1", 1, [Outcome(TOKEN, OutcomeKind.AUTH_FAILED, reason="401")]))
        (record,) = await core.storage.load_tokens()  # type: ignore[union-attr]
        assert record.status is TokenStatus.EXPIRED
    finally:
        await core.shutdown()
        await editor_storage.close()
