"""The README reference and configs/config.defaults.toml are generated from the schema."""

from __future__ import annotations

import subprocess
import sys

from grok2api.config import docs
from grok2api.config.schema import all_keys


def test_generated_files_have_not_drifted() -> None:
    drift = docs.check()
    assert not drift, f"run `python -m grok2api.config.docs --write`: {drift}"


def test_reference_mentions_every_key() -> None:
    reference = docs.render_reference()
    for dotted in all_keys():
        section, key = dotted.split(".")
        assert f"#### `[{section}]`" in reference
        assert f"| `{key}` |" in reference


def test_docs_module_runs() -> None:
    proc = subprocess.run([sys.executable, "-m", "grok2api.config.docs", "--check"], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
