"""Migration of older ``config.toml`` layouts to the current one.

The two products this one replaces used different layouts over time:

* the original ``[grok]`` section holding most settings;
* the "v2.0" layout with ``[network]``, ``[security]``, chat defaults under ``[chat]``,
  idle timeouts and batch knobs in per-feature sections;
* the "fork" layout with ``[proxy]``, ``[chat] stream_timeout``, ``[nsfw]``/``[usage]``
  concurrency, ``image_ws_*`` thresholds.

Every key that moved is one :class:`Rename` in :data:`RENAMES` (each has a test). Where
several old names map to one home, the later entry in the table wins, and a value already
set under the current name always wins over any legacy one. Sections in
:data:`LEGACY_SECTIONS` are removed once their known keys are moved; unknown keys in them
are dropped and reported (they have no home).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

from tomlkit.items import Comment, Null, Table
from tomlkit.toml_document import TOMLDocument

LEGACY_SECTIONS: frozenset[str] = frozenset({"grok", "network", "security"})


def _image_format(value: Any) -> Any:
    # "markdown" behaved like "url" in the older products.
    return "url" if value == "markdown" else value


@dataclass(frozen=True)
class Rename:
    """``old`` (``section.key``) now lives at ``new``; ``transform`` maps the value if needed."""

    old: str
    new: str
    transform: Callable[[Any], Any] | None = None

    def convert(self, value: Any) -> Any:
        return self.transform(value) if self.transform else value


def _grok(key: str, new: str) -> Rename:
    return Rename(f"grok.{key}", new)


RENAMES: tuple[Rename, ...] = (
    # --- the original [grok] section ---------------------------------------------------
    _grok("app_url", "app.app_url"),
    _grok("api_key", "app.api_key"),
    _grok("temporary", "app.temporary"),
    _grok("disable_memory", "app.disable_memory"),
    _grok("stream", "app.stream"),
    _grok("thinking", "app.thinking"),
    _grok("dynamic_statsig", "app.dynamic_statsig"),
    _grok("filter_tags", "app.filter_tags"),
    _grok("custom_instruction", "app.custom_instruction"),
    _grok("timeout", "chat.timeout"),
    _grok("base_proxy_url", "proxy.base_proxy_url"),
    _grok("asset_proxy_url", "proxy.asset_proxy_url"),
    _grok("cf_clearance", "proxy.cf_clearance"),
    _grok("browser", "proxy.browser"),
    _grok("user_agent", "proxy.user_agent"),
    _grok("max_retry", "retry.max_retry"),
    _grok("retry_status_codes", "retry.retry_status_codes"),
    _grok("retry_backoff_base", "retry.retry_backoff_base"),
    _grok("retry_backoff_factor", "retry.retry_backoff_factor"),
    _grok("retry_backoff_max", "retry.retry_backoff_max"),
    _grok("retry_budget", "retry.retry_budget"),
    _grok("stream_idle_timeout", "timeout.stream_idle_timeout"),
    _grok("video_idle_timeout", "timeout.video_idle_timeout"),
    _grok("image_ws", "image.image_ws"),
    _grok("image_ws_nsfw", "image.nsfw"),
    _grok("image_ws_blocked_seconds", "image.image_ws_blocked_seconds"),
    _grok("image_ws_final_min_bytes", "image.final_min_bytes"),
    _grok("image_ws_medium_min_bytes", "image.medium_min_bytes"),
    # --- v2.0 layout: [network], [security], chat defaults in [chat] ---------------------
    Rename("network.timeout", "chat.timeout"),
    Rename("network.base_proxy_url", "proxy.base_proxy_url"),
    Rename("network.asset_proxy_url", "proxy.asset_proxy_url"),
    Rename("security.cf_clearance", "proxy.cf_clearance"),
    Rename("security.browser", "proxy.browser"),
    Rename("security.user_agent", "proxy.user_agent"),
    Rename("chat.temporary", "app.temporary"),
    Rename("chat.disable_memory", "app.disable_memory"),
    Rename("chat.stream", "app.stream"),
    Rename("chat.thinking", "app.thinking"),
    Rename("chat.dynamic_statsig", "app.dynamic_statsig"),
    Rename("chat.filter_tags", "app.filter_tags"),
    Rename("chat.custom_instruction", "app.custom_instruction"),
    Rename("image.image_ws_nsfw", "image.nsfw"),
    Rename("image.image_ws_final_min_bytes", "image.final_min_bytes"),
    Rename("image.image_ws_medium_min_bytes", "image.medium_min_bytes"),
    Rename("performance.media_max_concurrent", "video.concurrent"),
    Rename("performance.assets_delete_batch_size", "asset.delete_concurrent"),
    # --- fork layout: per-feature names whose home is elsewhere now ------------------------
    Rename("chat.stream_timeout", "timeout.stream_idle_timeout"),
    Rename("video.stream_timeout", "timeout.video_idle_timeout"),
    Rename("retry.reset_session_status_codes", "proxy.reset_session_status_codes"),
    Rename("nsfw.concurrent", "performance.nsfw_max_concurrent"),
    Rename("nsfw.batch_size", "performance.nsfw_batch_size"),
    Rename("usage.concurrent", "performance.usage_max_concurrent"),
    Rename("usage.batch_size", "performance.usage_batch_size"),
)

# Value fixes for keys that kept their name but lost a spelling.
VALUE_FIXES: dict[str, Callable[[Any], Any]] = {"app.image_format": _image_format}

_BY_OLD: dict[str, Rename] = {r.old: r for r in RENAMES}


def legacy_home(dotted: str) -> str | None:
    """The current name of a legacy ``section.key``, or ``None`` if it is not a legacy name."""
    rename = _BY_OLD.get(dotted)
    return rename.new if rename else None


@dataclass
class MigrationReport:
    """What :func:`extract_legacy` found; ``pending`` maps current keys to their migrated values."""

    pending: dict[str, Any] = field(default_factory=dict)
    moved: list[tuple[str, str]] = field(default_factory=list)
    dropped: list[str] = field(default_factory=list)
    removed_sections: list[str] = field(default_factory=list)
    fixed: list[str] = field(default_factory=list)
    ignored: list[str] = field(default_factory=list)  # legacy values shadowed by a current key

    @property
    def changed(self) -> bool:
        return bool(self.moved or self.dropped or self.removed_sections or self.fixed)

    def messages(self) -> list[str]:
        out = [f"migrated {old} -> {new}" for old, new in self.moved]
        out += [f"dropped {key} (no longer used)" for key in self.dropped]
        out += [f"ignored legacy {key}: the current key is already set" for key in self.ignored]
        out += [f"normalised value of {key}" for key in self.fixed]
        return out


def remove_key(table: Table, key: str) -> None:
    """Delete ``key`` from a tomlkit table together with the comment lines right above it."""
    body = table.value.body
    for index, (k, _) in enumerate(body):
        if k is not None and k.key == key:
            j = index - 1
            while j >= 0 and body[j][0] is None and isinstance(body[j][1], Comment):
                body[j] = (None, Null())
                j -= 1
            break
    del table[key]


def extract_legacy(doc: TOMLDocument) -> MigrationReport:
    """Remove every legacy key from ``doc`` and collect its value under its current name."""
    report = MigrationReport()
    for rename in RENAMES:
        section, key = rename.old.split(".", 1)
        table = doc.get(section)
        if not isinstance(table, Table) or key not in table:
            continue
        value = table[key]
        plain = value.unwrap() if hasattr(value, "unwrap") else value
        remove_key(table, key)
        if rename.new in report.pending:
            report.ignored.append(next(old for old, new in report.moved if new == rename.new))
        report.pending[rename.new] = rename.convert(plain)
        report.moved.append((rename.old, rename.new))
    for section in sorted(LEGACY_SECTIONS):
        table = doc.get(section)
        if table is None:
            continue
        if isinstance(table, Table):
            report.dropped.extend(f"{section}.{key}" for key in list(table.keys()))
        del doc[section]
        report.removed_sections.append(section)
    for dotted, fix in VALUE_FIXES.items():
        section, key = dotted.split(".", 1)
        table = doc.get(section)
        if isinstance(table, Table) and key in table:
            old = table[key].unwrap() if hasattr(table[key], "unwrap") else table[key]
            new = fix(old)
            if new != old:
                table[key] = new
                report.fixed.append(dotted)
        if dotted in report.pending:
            report.pending[dotted] = fix(report.pending[dotted])
    return report
