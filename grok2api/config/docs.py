"""Generate the configuration reference and the defaults file from the schema.

    python -m grok2api.config.docs              # print the README reference (Markdown)
    python -m grok2api.config.docs --defaults   # print configs/config.defaults.toml
    python -m grok2api.config.docs --write      # rewrite both files in the repository
    python -m grok2api.config.docs --check      # exit 1 if either file drifted from the schema

The README block lives between ``<!-- config-reference:start -->`` and
``<!-- config-reference:end -->``.
"""

from __future__ import annotations

import argparse
import sys
import textwrap
import typing
from pathlib import Path
from typing import Any, Literal

import tomlkit
from pydantic.fields import FieldInfo

from grok2api.config.schema import AppConfig, field_extra, section_models

REPO_ROOT = Path(__file__).resolve().parents[2]
README_PATH = REPO_ROOT / "README.md"
DEFAULTS_FILE = REPO_ROOT / "configs" / "config.defaults.toml"
START_MARK = "<!-- config-reference:start -->"
END_MARK = "<!-- config-reference:end -->"
MIGRATION_START = "<!-- config-migrations:start -->"
MIGRATION_END = "<!-- config-migrations:end -->"

_HEADER = """\
# grok2api configuration (DATA_DIR/config.toml, default ./data/config.toml).
#
# Created from configs/config.defaults.toml on first run. Edit it by hand, with
# `grok2api config set SECTION.KEY VALUE`, or in the admin panel: your comments and key
# order are kept, and every change is validated before it is saved. Running servers pick
# up saved changes within app.config_poll_interval_sec seconds; keys marked "applied at
# start" need a restart. Older layouts ([grok], [network], [security], ...) are migrated
# automatically.
#
# configs/config.defaults.toml is generated from grok2api/config/schema.py:
#   python -m grok2api.config.docs --write
"""


def _default(field: FieldInfo) -> Any:
    return field.get_default(call_default_factory=True)


def _toml_value(value: Any) -> str:
    return tomlkit.item(value).as_string()


def _type_name(annotation: Any) -> str:
    origin = typing.get_origin(annotation)
    if origin is Literal:
        return "one of " + ", ".join(f"`{a}`" for a in typing.get_args(annotation))
    if origin is list:
        (inner,) = typing.get_args(annotation)
        return f"list of {_type_name(inner)}s"
    return {str: "string", bool: "bool", int: "integer", float: "number"}.get(annotation, str(annotation))


def _comment_text(section: str, key: str, field: FieldInfo) -> str:
    text = field.description or ""
    if field_extra(section, key).get("restart"):
        text += " Applied at start."
    return text


def render_defaults_toml() -> str:
    """The commented defaults document, exactly as ``configs/config.defaults.toml``."""
    out = [_HEADER.rstrip("\n")]
    for section, model in section_models().items():
        out.append(f"\n[{section}]")
        for line in textwrap.wrap((model.__doc__ or "").strip(), 96):
            out.append(f"# {line}")
        for key, field in model.model_fields.items():
            out.append("")
            for line in textwrap.wrap(_comment_text(section, key, field), 96):
                out.append(f"# {line}")
            out.append(f"{key} = {_toml_value(_default(field))}")
    return "\n".join(out) + "\n"


def render_reference() -> str:
    """The README configuration reference (Markdown)."""
    out: list[str] = []
    for section, model in section_models().items():
        out.append(f"#### `[{section}]`")
        out.append("")
        out.append((model.__doc__ or "").strip())
        out.append("")
        out.append("| Key | Type | Default | Description |")
        out.append("| :--- | :--- | :--- | :--- |")
        for key, field in model.model_fields.items():
            description = _comment_text(section, key, field).replace("|", "\\|")
            description = description.replace("<", "&lt;").replace(">", "&gt;")
            secret = field_extra(section, key).get("secret")
            if secret == "url":
                description += " *Passwords in these URLs are masked in output and logs.*"
            elif secret:
                description += " *Secret: masked in output and logs.*"
            default = _toml_value(_default(field)).replace("|", "\\|")
            out.append(f"| `{key}` | {_type_name(field.annotation)} | `{default}` | {description} |")
        out.append("")
    return "\n".join(out).rstrip() + "\n"


def render_migrations() -> str:
    """The README table of legacy key names and their current home."""
    from grok2api.config.migration import LEGACY_SECTIONS, RENAMES

    out = ["| Older name | Current key |", "| :--- | :--- |"]
    out += [f"| `{r.old}` | `{r.new}` |" for r in RENAMES]
    out.append("")
    out.append(
        "Sections "
        + ", ".join(f"`[{s}]`" for s in sorted(LEGACY_SECTIONS))
        + " are removed after their keys move; keys in them that have no current home are dropped "
        "(and logged). `app.image_format = \"markdown\"` becomes `\"url\"`."
    )
    return "\n".join(out) + "\n"


def _replace_block(text: str, start_mark: str, end_mark: str, body: str) -> str:
    start, end = text.find(start_mark), text.find(end_mark)
    if start < 0 or end < start:
        raise ValueError(f"README has no {start_mark} ... {end_mark} block")
    return text[: start + len(start_mark)] + "\n" + body + text[end:]


def readme_with_reference(readme: str) -> str:
    """``readme`` with its generated blocks (reference, migrations) replaced."""
    readme = _replace_block(readme, START_MARK, END_MARK, render_reference())
    return _replace_block(readme, MIGRATION_START, MIGRATION_END, render_migrations())


def check() -> list[str]:
    """Names of the generated files that drifted from the schema."""
    drift = []
    if not DEFAULTS_FILE.is_file() or DEFAULTS_FILE.read_text(encoding="utf-8") != render_defaults_toml():
        drift.append(str(DEFAULTS_FILE))
    readme = README_PATH.read_text(encoding="utf-8") if README_PATH.is_file() else ""
    try:
        if readme_with_reference(readme) != readme:
            drift.append(str(README_PATH))
    except ValueError:
        drift.append(str(README_PATH))
    return drift


def write() -> None:
    DEFAULTS_FILE.parent.mkdir(parents=True, exist_ok=True)
    DEFAULTS_FILE.write_text(render_defaults_toml(), encoding="utf-8")
    README_PATH.write_text(readme_with_reference(README_PATH.read_text(encoding="utf-8")), encoding="utf-8")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m grok2api.config.docs", description=__doc__.split("\n\n")[0])
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--defaults", action="store_true", help="print the defaults TOML")
    group.add_argument("--write", action="store_true", help="rewrite README.md and configs/config.defaults.toml")
    group.add_argument("--check", action="store_true", help="exit 1 if the generated files drifted")
    args = parser.parse_args(argv)
    if args.defaults:
        sys.stdout.write(render_defaults_toml())
    elif args.write:
        write()
        print(f"wrote {DEFAULTS_FILE} and {README_PATH}")
    elif args.check:
        drift = check()
        if drift:
            print("out of date (run `python -m grok2api.config.docs --write`): " + ", ".join(drift), file=sys.stderr)
            return 1
        print("config reference and defaults are up to date")
    else:
        sys.stdout.write(render_reference())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())


__all__ = ["AppConfig", "check", "main", "render_defaults_toml", "render_reference", "write"]
