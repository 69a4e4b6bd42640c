"""``ConfigService``: the config document in storage, validated, cached and hot-reloaded.

Every process (CLI, each Ray replica) holds one service bound to its own
:class:`~grok2api.storage.base.Storage`. Saving bumps the storage's config version; other
processes notice on their next :meth:`ConfigService.get_fresh` after the poll interval
(``app.config_poll_interval_sec``, default 2 s) and swap in the new config. Between polls
``get_fresh`` is a clock comparison and an attribute read, no I/O.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from pathlib import Path
from typing import Any

from grok2api.config import document
from grok2api.config.errors import ConfigError, ConfigParseError
from grok2api.config.schema import AppConfig
from grok2api.storage.base import CorruptDataError, Storage

log = logging.getLogger("grok2api.config")

Listener = Callable[[AppConfig, AppConfig], Awaitable[None] | None]
"""Called as ``listener(new, old)`` after the active config changed (sync or async)."""

_LOCK_NAME = "config.update"


class ConfigService:
    """Load, cache, validate, update and hot-reload the configuration.

    ``location`` names the document in error messages (a file path for the local backend).
    ``seed_path``: on first run with an empty *remote* backend, an existing local
    ``config.toml`` there is imported instead of the defaults.
    ``poll_interval`` overrides ``app.config_poll_interval_sec`` (tests).
    """

    def __init__(
        self,
        storage: Storage,
        *,
        location: str | None = None,
        seed_path: Path | None = None,
        poll_interval: float | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.storage = storage
        self.location = location or str(getattr(storage, "config_path", "") or f"{storage.kind} storage config")
        self.seed_path = seed_path
        self._poll_override = poll_interval
        self._clock = clock
        self._config: AppConfig | None = None
        self._version: int | None = None
        self._next_poll = 0.0
        self._refreshing = False
        self._listeners: list[Listener] = []
        self.last_error: ConfigError | None = None

    # -- reading ------------------------------------------------------------------------

    @property
    def version(self) -> int | None:
        """The storage config version of the active config (``None`` before :meth:`load`)."""
        return self._version

    @property
    def poll_interval(self) -> float:
        if self._poll_override is not None:
            return self._poll_override
        return self._config.app.config_poll_interval_sec if self._config else 2.0

    async def _read(self) -> str | None:
        try:
            return await self.storage.load_config()
        except CorruptDataError as exc:
            detail = exc.detail.removeprefix("invalid TOML: ")
            raise ConfigParseError(exc.path or self.location, exc.line, None, detail) from None

    async def load(self) -> AppConfig:
        """Read (creating on first run), migrate and validate the config; make it active.

        A corrupt or invalid document raises :class:`ConfigError` and is never overwritten.
        A migrated document (legacy keys moved, new keys added) is saved back.
        """
        version = await self.storage.config_version()
        text = await self._read()
        if text is None:
            config, version = await self._create()
        else:
            prepared = document.prepare(text, self.location)
            config = prepared.config
            if prepared.changed:
                version = await self._save_migrated(text, prepared)
        self._activate(config, version)
        self._next_poll = self._clock() + self.poll_interval
        return config

    async def _create(self) -> tuple[AppConfig, int]:
        async with self.storage.lock(_LOCK_NAME) as acquired:
            if not acquired:
                raise ConfigError(f"{self.location}: could not lock the config to create it; try again")
            existing = await self._read()
            if existing is not None:  # another process created it meanwhile
                prepared = document.prepare(existing, self.location)
                return prepared.config, await self.storage.config_version()
            seed, origin = document.defaults_text(), "defaults"
            if self.seed_path is not None and self.seed_path.is_file():
                seed, origin = self.seed_path.read_text(encoding="utf-8"), str(self.seed_path)
            prepared = document.prepare(seed, origin if origin != "defaults" else "config.defaults.toml")
            version = await self.storage.save_config(prepared.text)
            log.info("created the config at %s from %s", self.location, origin)
            return prepared.config, version

    async def _save_migrated(self, original: str, prepared: document.Prepared) -> int:
        async with self.storage.lock(_LOCK_NAME) as acquired:
            current = await self._read() if acquired else None
            if not acquired or current != original:
                # Someone else is writing; use the migrated view without saving it.
                return await self.storage.config_version()
            version = await self.storage.save_config(prepared.text)
        for message in prepared.migration.messages():
            log.warning("config %s: %s", self.location, message)
        if prepared.added:
            log.info("config %s: added defaults for %s", self.location, ", ".join(prepared.added))
        return version

    def get(self) -> AppConfig:
        """The active config (no I/O). Raises if :meth:`load` has not run."""
        if self._config is None:
            raise RuntimeError("ConfigService.load() has not been called")
        return self._config

    async def get_fresh(self) -> AppConfig:
        """The active config, re-checked against storage at most once per poll interval.

        The hot path: when the interval has not elapsed this is a clock read and a compare.
        Storage errors during a re-check are logged and the cached config is kept.
        """
        config = self.get()
        now = self._clock()
        if now < self._next_poll or self._refreshing:
            return config
        self._next_poll = now + self.poll_interval
        self._refreshing = True
        try:
            await self.refresh_if_changed()
        except Exception as exc:  # noqa: BLE001 - keep serving the last good config
            log.warning("config refresh failed, keeping the current config: %s", exc)
        finally:
            self._refreshing = False
        return self.get()

    async def refresh_if_changed(self, *, force: bool = False) -> bool:
        """Reload when the storage version moved; returns True when the active config changed.

        An invalid new document is logged (once per version) and ignored: the last good config
        stays active and :attr:`last_error` holds the problem.
        """
        version = await self.storage.config_version()
        if version == self._version and not force:
            return False
        text = await self._read()
        try:
            if text is None:
                raise ConfigError(f"{self.location}: the config document disappeared")
            prepared = document.prepare(text, self.location)
        except ConfigError as exc:
            if version != self._version or force:
                log.error("config change rejected, keeping the previous config: %s", exc)
            self.last_error = exc
            self._version = version
            return False
        self.last_error = None
        return await self._activate_async(prepared.config, version)

    # -- writing ------------------------------------------------------------------------

    async def update(self, changes: Mapping[str, Any]) -> AppConfig:
        """Apply typed changes (``{"app.api_key": "k"}`` or ``{"app": {"api_key": "k"}}``).

        The whole config is validated before anything is written; a bad key or value raises
        :class:`ConfigError` naming it and leaves storage untouched.
        """
        config, _ = await self._edit(lambda text: document.edit(text, changes, self.location))
        return config

    async def set_value(self, dotted: str, raw: str) -> tuple[AppConfig, list[str]]:
        """``config set``: parse ``raw`` as the key's type, validate, save. Returns notes
        (e.g. that a legacy key name was mapped to its new home)."""
        return await self._edit(lambda text: document.set_value(text, dotted, raw, self.location))

    async def replace_text(self, text: str) -> AppConfig:
        """Replace the whole document (admin raw editor); validated and migrated first."""
        prepared = document.prepare(text, "submitted config")
        async with self.storage.lock(_LOCK_NAME) as acquired:
            if not acquired:
                raise ConfigError("the config is being updated by another process; try again")
            version = await self.storage.save_config(prepared.text)
        await self._activate_async(prepared.config, version)
        return prepared.config

    async def text(self) -> str:
        """The stored document (unmasked; mask before showing it)."""
        stored = await self._read()
        return stored if stored is not None else document.defaults_text()

    async def _edit(
        self, editor: Callable[[str], tuple[str, AppConfig, list[str]]]
    ) -> tuple[AppConfig, list[str]]:
        async with self.storage.lock(_LOCK_NAME) as acquired:
            if not acquired:
                raise ConfigError("the config is being updated by another process; try again")
            current = await self._read()
            new_text, config, notes = editor(current if current is not None else document.defaults_text())
            version = await self.storage.save_config(new_text)
        await self._activate_async(config, version)
        return config, notes

    # -- listeners ----------------------------------------------------------------------

    def subscribe(self, listener: Listener) -> Callable[[], None]:
        """Call ``listener(new, old)`` after every change of the active config; returns an
        unsubscribe function."""
        self._listeners.append(listener)

        def unsubscribe() -> None:
            if listener in self._listeners:
                self._listeners.remove(listener)

        return unsubscribe

    def _activate(self, config: AppConfig, version: int) -> AppConfig | None:
        old = self._config
        self._config, self._version = config, version
        _register_secrets(config)
        return old

    async def _activate_async(self, config: AppConfig, version: int) -> bool:
        old = self._activate(config, version)
        if old is None or old == config:
            return False
        for listener in list(self._listeners):
            try:
                result = listener(config, old)
                if inspect.isawaitable(result):
                    await result
            except Exception:  # noqa: BLE001 - one bad listener must not block the others
                log.exception("config listener %r failed", listener)
        return True


def _register_secrets(config: AppConfig) -> None:
    from grok2api.logging_setup import set_secrets

    set_secrets("config", config.secrets())


async def wait_for(predicate: Callable[[AppConfig], bool], service: ConfigService, timeout: float) -> AppConfig:
    """Poll ``service.get_fresh()`` until ``predicate`` holds (tests and tools)."""
    deadline = time.monotonic() + timeout
    while True:
        config = await service.get_fresh()
        if predicate(config):
            return config
        if time.monotonic() > deadline:
            raise TimeoutError("config condition not met in time")
        await asyncio.sleep(0.05)
