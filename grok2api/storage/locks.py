"""Cross-process lock helpers shared by the backends.

Every backend's ``lock(name, timeout)`` is a polling loop around a non-blocking
"try to take it" call; :func:`acquire_within` is that loop, :func:`file_lock` the
``fcntl.flock`` flavour used by the local backend.
"""

from __future__ import annotations

import asyncio
import fcntl
import os
import re
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path

_LOCK_NAME = re.compile(r"^[A-Za-z0-9_.:-]{1,100}$")


def check_lock_name(name: str) -> str:
    """``name`` if it is a safe lock name (letters, digits, ``_.:-``), else ``ValueError``."""
    if not _LOCK_NAME.match(name):
        raise ValueError(f"invalid lock name {name!r}: use 1-100 of [A-Za-z0-9_.:-]")
    return name


async def acquire_within(
    try_once: Callable[[], Awaitable[bool]], timeout: float, poll: float = 0.025
) -> bool:
    """Call ``try_once`` until it returns ``True`` or ``timeout`` seconds have passed."""
    deadline = time.monotonic() + max(timeout, 0.0)
    delay = poll / 2
    while True:
        if await try_once():
            return True
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return False
        delay = min(delay * 2, 0.25)
        await asyncio.sleep(min(delay, remaining))


@asynccontextmanager
async def file_lock(path: Path, timeout: float) -> AsyncIterator[bool]:
    """An exclusive ``flock`` on ``path`` (created if missing); yields whether it was acquired.

    ``flock`` locks belong to the open file, so two acquisitions conflict even inside one
    process, and the kernel releases them when a holder dies.
    """
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    acquired = False

    async def try_once() -> bool:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return False
        return True

    try:
        acquired = await acquire_within(try_once, timeout)
        yield acquired
    finally:
        if acquired:
            fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)
