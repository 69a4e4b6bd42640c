"""ConfigService: first run, cache, cheap hot path, refresh, update, listeners."""

from __future__ import annotations

from pathlib import Path

import pytest

from grok2api.config.document import defaults_text
from grok2api.config.errors import ConfigError, ConfigParseError, ConfigValidationError
from grok2api.config.schema import AppConfig
from grok2api.config.service import ConfigService
from grok2api.storage import Storage

from .conftest import CountingStorage


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


async def test_first_run_creates_the_document_from_defaults(local_storage: Storage) -> None:
    service = ConfigService(local_storage)
    config = await service.load()
    assert config == AppConfig()
    path = Path(local_storage.config_path)  # type: ignore[attr-defined]
    assert path.read_text(encoding="utf-8") == defaults_text()
    assert service.location == str(path)
    assert service.version == await local_storage.config_version()


async def test_get_before_load_raises(local_storage: Storage) -> None:
    with pytest.raises(RuntimeError):
        ConfigService(local_storage).get()


async def test_get_fresh_is_io_free_between_polls(local_storage: Storage) -> None:
    counting = CountingStorage(local_storage)
    clock = FakeClock()
    service = ConfigService(counting, clock=clock)  # type: ignore[arg-type]
    await service.load()
    counting.calls.clear()
    for _ in range(1000):
        await service.get_fresh()
    assert counting.calls == []
    clock.now += 2.5  # past app.config_poll_interval_sec (2 s)
    await service.get_fresh()
    assert counting.calls == ["config_version"]  # unchanged version: no document read


async def test_refresh_sees_another_writer_and_notifies(local_storage: Storage, tmp_path: Path) -> None:
    clock = FakeClock()
    reader = ConfigService(local_storage, clock=clock)
    await reader.load()
    seen: list[tuple[str, str]] = []

    async def on_change(new: AppConfig, old: AppConfig) -> None:
        seen.append((old.app.custom_instruction, new.app.custom_instruction))

    unsubscribe = reader.subscribe(on_change)
    writer = ConfigService(local_storage)
    await writer.load()
    await writer.update({"app.custom_instruction": "hello"})
    assert (await reader.get_fresh()).app.custom_instruction == ""  # not yet: within the interval
    clock.now += 2.1
    assert (await reader.get_fresh()).app.custom_instruction == "hello"
    assert seen == [("", "hello")]
    unsubscribe()
    await writer.update({"app": {"custom_instruction": "again"}})
    assert await reader.refresh_if_changed()
    assert seen == [("", "hello")]


async def test_bad_hand_edit_keeps_last_good_config(local_storage: Storage) -> None:
    service = ConfigService(local_storage)
    await service.load()
    await service.update({"chat.concurrent": 9})
    path = Path(local_storage.config_path)  # type: ignore[attr-defined]
    path.write_text(path.read_text().replace("concurrent = 9", "concurrent = \"lots\""))
    assert not await service.refresh_if_changed()
    assert service.get().chat.concurrent == 9
    assert isinstance(service.last_error, ConfigValidationError)
    assert "chat.concurrent" in str(service.last_error)


async def test_update_rejects_bad_values_and_leaves_storage_alone(local_storage: Storage) -> None:
    service = ConfigService(local_storage)
    await service.load()
    path = Path(local_storage.config_path)  # type: ignore[attr-defined]
    before, version = path.read_bytes(), await local_storage.config_version()
    for changes in ({"app.image_format": "gif"}, {"app.unknown": 1}, {"retry.max_retry": "three"}):
        with pytest.raises(ConfigError) as info:
            await service.update(changes)
        assert next(iter(changes)) in str(info.value)
    assert path.read_bytes() == before
    assert await local_storage.config_version() == version
    assert service.get() == AppConfig()


async def test_update_returns_and_activates(local_storage: Storage) -> None:
    service = ConfigService(local_storage)
    await service.load()
    config = await service.update({"retry.retry_status_codes": [429], "app.stream": False})
    assert config.retry.retry_status_codes == [429] and service.get() is config
    assert (await ConfigService(local_storage).load()) == config


async def test_set_value_from_string(local_storage: Storage) -> None:
    service = ConfigService(local_storage)
    await service.load()
    config, notes = await service.set_value("network.timeout", "45")
    assert config.chat.timeout == 45.0 and notes == ["network.timeout is now chat.timeout"]


async def test_corrupt_document_is_reported_with_line_and_kept(local_storage: Storage) -> None:
    path = Path(local_storage.config_path)  # type: ignore[attr-defined]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("[app]\napi_key = \"x\"\nstream = tru\n")
    before = path.read_bytes()
    with pytest.raises(ConfigParseError) as info:
        await ConfigService(local_storage).load()
    assert info.value.line == 3 and str(path) in str(info.value)
    assert path.read_bytes() == before


async def test_legacy_document_is_migrated_and_saved(local_storage: Storage) -> None:
    path = Path(local_storage.config_path)  # type: ignore[attr-defined]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("# keep me\n[grok]\ntemporary = false\n[security]\ncf_clearance = \"cf\"\n")
    config = await ConfigService(local_storage).load()
    assert config.app.temporary is False and config.proxy.cf_clearance == "cf"
    text = path.read_text()
    assert text.startswith("# keep me\n") and "[grok]" not in text and "[security]" not in text
    assert 'cf_clearance = "cf"' in text


async def test_replace_text_validates_first(local_storage: Storage) -> None:
    service = ConfigService(local_storage)
    await service.load()
    with pytest.raises(ConfigError):
        await service.replace_text("[app]\nstream = 3\n")
    config = await service.replace_text("[app]\nstream = false\n")
    assert config.app.stream is False and config.chat.concurrent == 1024


async def test_secrets_registered_for_log_masking(local_storage: Storage) -> None:
    from grok2api.logging_setup import mask_secrets

    service = ConfigService(local_storage)
    await service.load()
    await service.update({"app.api_key": "sk-very-private"})
    assert mask_secrets("key sk-very-private used") == "key *** used"
