"""Run the real ``grok2api`` CLI as a subprocess with a temporary DATA_DIR."""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]


@dataclass
class Result:
    code: int
    out: str
    err: str


class Cli:
    def __init__(self, cwd: Path) -> None:
        self.cwd = cwd
        self.data_dir = cwd / "data"
        self.config_path = self.data_dir / "config.toml"
        self.env = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith(("SERVER_", "LOG_")) and k != "DATA_DIR"
        }
        self.env.update(
            {
                "DATA_DIR": str(self.data_dir),
                "LOG_FILE_ENABLED": "false",
                "PYTHONPATH": str(REPO_ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""),
            }
        )

    def __call__(self, *args: str, env: dict[str, str] | None = None, stdin: str | None = None,
                 timeout: float = 60) -> Result:
        proc = subprocess.run(
            [sys.executable, "-m", "grok2api", *args],
            cwd=self.cwd,
            env={**self.env, **(env or {})},
            input=stdin,
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        return Result(proc.returncode, proc.stdout, proc.stderr)


@pytest.fixture
def cli(tmp_path: Path) -> Cli:
    return Cli(tmp_path)
