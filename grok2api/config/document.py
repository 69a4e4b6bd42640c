"""The ``config.toml`` document: parse, migrate, merge defaults, validate, edit.

Edits go through tomlkit, so the user's comments, key order and formatting survive;
nothing is written unless the whole resulting config validates.
"""

from __future__ import annotations

import json
import re
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from difflib import get_close_matches
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal

import tomlkit
from pydantic import ValidationError
from tomlkit.exceptions import ParseError
from tomlkit.items import Comment, Table, Whitespace
from tomlkit.toml_document import TOMLDocument

from grok2api.config.errors import (
    ConfigParseError,
    ConfigValidationError,
    UnknownKeyError,
    ValueParseError,
)
from grok2api.config.migration import MigrationReport, extract_legacy, legacy_home
from grok2api.config.schema import AppConfig, section_models

DEFAULTS_PATH = Path(__file__).resolve().parents[2] / "configs" / "config.defaults.toml"

_HEADER_RE = re.compile(r"^\s*\[\s*([A-Za-z0-9_.\"' -]+?)\s*\]\s*(#.*)?$")
_KEY_RE = re.compile(r"""^\s*(?:"([^"]+)"|'([^']+)'|([A-Za-z0-9_-]+))\s*=""")


@lru_cache(maxsize=1)
def defaults_text() -> str:
    """The commented defaults document: ``configs/config.defaults.toml`` or, when the package
    is installed without the repository, the same text rendered from the schema."""
    if DEFAULTS_PATH.is_file():
        return DEFAULTS_PATH.read_text(encoding="utf-8")
    from grok2api.config.docs import render_defaults_toml

    return render_defaults_toml()


def parse(text: str, location: str) -> TOMLDocument:
    """Parse TOML text; a syntax error becomes :class:`ConfigParseError` with the line number."""
    try:
        return tomlkit.parse(text)
    except ParseError as exc:
        detail = str(exc)
        detail = re.sub(r" at line \d+ col \d+$", "", detail)
        raise ConfigParseError(location, exc.line, exc.col, detail) from None


def key_lines(text: str) -> dict[str, int]:
    """Best-effort ``section.key`` (and ``section``) -> 1-based line number in ``text``."""
    lines: dict[str, int] = {}
    section = ""
    for number, line in enumerate(text.splitlines(), start=1):
        header = _HEADER_RE.match(line)
        if header and not line.lstrip().startswith("[["):
            section = header.group(1).strip().strip("\"'")
            lines.setdefault(section, number)
            continue
        key = _KEY_RE.match(line)
        if key:
            name = next(g for g in key.groups() if g)
            lines.setdefault(f"{section}.{name}" if section else name, number)
    return lines


def _problem_key(loc: tuple[Any, ...]) -> str:
    key = ""
    for part in loc:
        if isinstance(part, int):
            key += f"[{part}]"
        else:
            key += ("." if key else "") + str(part)
    return key


def _problem_message(error: Mapping[str, Any]) -> str:
    kind = error.get("type")
    loc = error.get("loc", ())
    if kind == "extra_forbidden":
        if len(loc) == 1:
            return f"unknown section [{loc[0]}]" + _suggest(str(loc[0]), list(section_models()))
        section = str(loc[0])
        model = section_models().get(section)
        known = list(model.model_fields) if model else []
        home = legacy_home(f"{section}.{loc[1]}")
        if home:
            return f"unknown key (now called {home})"
        return "unknown key" + _suggest(str(loc[1]), known, section)
    message = str(error.get("msg", "invalid value"))
    message = message.removeprefix("Value error, ")
    if "input" in error and kind not in {"missing"}:
        message += f" (got {error['input']!r})"
    return message


def _suggest(name: str, known: list[str], section: str = "") -> str:
    close = get_close_matches(name, known, n=1)
    if not close:
        return ""
    return f"; did you mean {section + '.' if section else ''}{close[0]}?"


def validate(data: Mapping[str, Any], location: str, text: str | None = None) -> AppConfig:
    """Validate plain data as :class:`AppConfig`; errors name every bad key (with its line)."""
    try:
        return AppConfig.model_validate(dict(data))
    except ValidationError as exc:
        lines = key_lines(text) if text else {}
        problems = []
        for error in exc.errors():
            key = _problem_key(tuple(error["loc"]))
            base = key.split("[", 1)[0]
            problems.append((key, lines.get(base) or lines.get(base.split(".", 1)[0]), _problem_message(error)))
        raise ConfigValidationError(location, problems) from None


# -- merging defaults ---------------------------------------------------------------------


def _append_items(table: Table, items: list[tuple[str | None, Any]]) -> None:
    """Append items to ``table`` before its trailing blank lines."""
    body = table.value.body
    trailing = []
    while body and body[-1][0] is None and isinstance(body[-1][1], Whitespace):
        trailing.insert(0, body.pop())
    for key, item in items:
        if key is None:
            table.add(item)
        else:
            table.add(key, item)
    body.extend(trailing)


def merge_defaults(doc: TOMLDocument, defaults: TOMLDocument | None = None) -> list[str]:
    """Add every section/key of the defaults that ``doc`` lacks (with its comments); returns them."""
    defaults = defaults if defaults is not None else tomlkit.parse(defaults_text())
    added: list[str] = []
    for section, default_table in defaults.items():
        if not isinstance(default_table, Table):
            continue
        if section not in doc:
            if doc.body and not isinstance(doc.body[-1][1], Whitespace):
                text = doc.as_string()
                if text and not text.endswith("\n\n"):
                    doc.add(tomlkit.nl())
            doc.add(section, default_table)
            added.append(section)
            continue
        table = doc[section]
        if not isinstance(table, Table):
            continue  # validation reports it
        pending_comments: list[tuple[str | None, Any]] = []
        to_add: list[tuple[str | None, Any]] = []
        for key, item in default_table.value.body:
            if key is None:
                if isinstance(item, Comment):
                    pending_comments.append((None, item))
                else:
                    pending_comments = []
                continue
            if key.key not in table:
                to_add.append((None, tomlkit.nl()))
                to_add.extend(pending_comments)
                to_add.append((key.key, item))
                added.append(f"{section}.{key.key}")
            pending_comments = []
        # Comments directly under the section header describe the section, not the first key.
        if to_add:
            _append_items(table, to_add)
    return added


# -- the whole pipeline ---------------------------------------------------------------------


@dataclass
class Prepared:
    """A validated document ready to be served; ``changed`` when it differs from the input."""

    doc: TOMLDocument
    config: AppConfig
    migration: MigrationReport
    added: list[str] = field(default_factory=list)
    changed: bool = False

    @property
    def text(self) -> str:
        return tomlkit.dumps(self.doc)


def _explicit_keys(doc: TOMLDocument) -> set[str]:
    keys: set[str] = set()
    for section, table in doc.items():
        if isinstance(table, Table):
            keys.update(f"{section}.{key}" for key in table.keys())
    return keys


def prepare(text: str, location: str) -> Prepared:
    """Parse, migrate legacy keys, add missing defaults and validate. Raises a ConfigError."""
    doc = parse(text, location)
    explicit = _explicit_keys(doc)
    report = extract_legacy(doc)
    added = merge_defaults(doc)
    for dotted, value in report.pending.items():
        section, key = dotted.split(".", 1)
        if dotted in explicit:
            report.ignored.append(dotted)
            continue
        doc[section][key] = value
    try:
        config = validate(doc.unwrap(), location, text)
    except ConfigValidationError as exc:
        # Point migrated keys back at the legacy name the user actually wrote.
        reverse = {new: old for old, new in report.moved}
        lines = key_lines(text)
        problems = [
            (f"{reverse[k]} (now {k})", lines.get(reverse[k]), m) if k in reverse else (k, line, m)
            for k, line, m in exc.problems
        ]
        raise ConfigValidationError(location, problems) from None
    new_text = tomlkit.dumps(doc)
    return Prepared(doc=doc, config=config, migration=report, added=added, changed=new_text != text)


# -- editing ------------------------------------------------------------------------------


def resolve_key(dotted: str) -> tuple[str, str, str | None]:
    """``section.key`` -> (section, key, legacy note). Legacy names resolve to their home."""
    if dotted.count(".") != 1:
        raise UnknownKeyError(dotted, "use SECTION.KEY, e.g. app.api_key")
    note = None
    home = legacy_home(dotted)
    section, key = dotted.split(".", 1)
    models = section_models()
    if (section not in models or key not in models[section].model_fields) and home:
        note = f"{dotted} is now {home}"
        section, key = home.split(".", 1)
    if section not in models:
        raise UnknownKeyError(dotted, "no section [" + section + "]" + _suggest(section, list(models)))
    if key not in models[section].model_fields:
        raise UnknownKeyError(dotted, "no such key in [" + section + "]" + _suggest(key, list(models[section].model_fields), section))
    return section, key, note


def _annotation(section: str, key: str) -> Any:
    return section_models()[section].model_fields[key].annotation


_TRUE = {"true", "yes", "on", "1"}
_FALSE = {"false", "no", "off", "0"}


def _literal_list(raw: str) -> Any:
    for loader in (lambda s: tomlkit.parse(f"v = {s}")["v"].unwrap(), json.loads):
        try:
            return loader(raw)
        except Exception:  # noqa: BLE001 - try the next reader
            continue
    return None


def coerce(section: str, key: str, raw: str) -> Any:
    """Read a command-line string as the value type of ``section.key``."""
    dotted = f"{section}.{key}"
    annotation = _annotation(section, key)
    origin = typing.get_origin(annotation)
    text = raw.strip()
    if annotation is bool:
        if text.lower() in _TRUE:
            return True
        if text.lower() in _FALSE:
            return False
        raise ValueParseError(dotted, "a boolean (true/false)", raw)
    if annotation is int:
        try:
            return int(text)
        except ValueError:
            raise ValueParseError(dotted, "an integer", raw) from None
    if annotation is float:
        try:
            return float(text)
        except ValueError:
            raise ValueParseError(dotted, "a number", raw) from None
    if origin is list:
        (item_type,) = typing.get_args(annotation)
        value = _literal_list(text) if text.startswith("[") else None
        if value is None:
            if text.startswith("["):
                raise ValueParseError(dotted, "a list such as [401, 429]", raw)
            value = [part.strip() for part in text.split(",") if part.strip()]
        if not isinstance(value, list):
            raise ValueParseError(dotted, "a list", raw)
        if item_type is int:
            try:
                return [int(v) for v in value]
            except (TypeError, ValueError):
                raise ValueParseError(dotted, "a list of integers", raw) from None
        return [str(v) for v in value]
    if origin is Literal or annotation is str or isinstance(annotation, types.UnionType):
        return raw
    return raw


def apply_changes(doc: TOMLDocument, changes: Mapping[str, Any]) -> list[str]:
    """Set typed values on ``doc`` in place (no validation); returns notes about legacy names."""
    notes: list[str] = []
    for dotted, value in changes.items():
        section, key, note = resolve_key(dotted)
        if note:
            notes.append(note)
        table = doc.get(section)
        if not isinstance(table, Table):
            table = tomlkit.table()
            doc.add(section, table)
        if key in table:
            table[key] = value
        else:
            _append_items(table, [(key, tomlkit.item(value))])
    return notes


def flatten_changes(changes: Mapping[str, Any]) -> dict[str, Any]:
    """Accept ``{"app.api_key": v}`` and ``{"app": {"api_key": v}}`` alike."""
    flat: dict[str, Any] = {}
    for name, value in changes.items():
        if "." not in name and isinstance(value, Mapping):
            for key, inner in value.items():
                flat[f"{name}.{key}"] = inner
        else:
            flat[name] = value
    return flat


def edit(text: str, changes: Mapping[str, Any], location: str) -> tuple[str, AppConfig, list[str]]:
    """Apply typed ``changes`` to the document ``text``; validate everything before returning.

    Returns ``(new_text, config, notes)``. Raises :class:`ConfigError` (naming the key) and
    never returns a text that would not load.
    """
    prepared = prepare(text, location)
    flat = flatten_changes(changes)
    notes = apply_changes(prepared.doc, flat)
    new_text = tomlkit.dumps(prepared.doc)
    try:
        config = validate(prepared.doc.unwrap(), location, new_text)
    except ConfigValidationError as exc:
        # Errors must name the key the caller used.
        problems = [(k, None, m) for k, _, m in exc.problems]
        raise ConfigValidationError("", problems) from None
    return new_text, config, notes


def set_value(text: str, dotted: str, raw: str, location: str) -> tuple[str, AppConfig, list[str]]:
    """``config set SECTION.KEY VALUE``: parse ``raw`` to the key's type, validate, return the new text."""
    section, key, _ = resolve_key(dotted)
    return edit(text, {dotted: coerce(section, key, raw)}, location)
