"""Hot reload across processes: a change saved by one process is seen by another via polling."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

TESTS_DIR = Path(__file__).resolve().parents[1]
REPO_ROOT = TESTS_DIR.parent


def _env() -> dict[str, str]:
    path = os.pathsep.join([str(TESTS_DIR), str(REPO_ROOT), os.environ.get("PYTHONPATH", "")])
    return {**os.environ, "PYTHONPATH": path, "LOG_FILE_ENABLED": "false"}


def _worker(mode: str, kind: str, url: str, data_dir: Path, namespace: str, value: str) -> list[str]:
    return [sys.executable, "-m", "config._reload_worker", mode, kind, url, str(data_dir), namespace, value]


def _watch_then_write(kind: str, url: str, data_dir: Path, writer: list[str] | None = None) -> float:
    namespace = f"g2a_test_{uuid.uuid4().hex[:8]}"
    value = f"changed-{uuid.uuid4().hex[:6]}"
    # Create the config first so both processes start from the same document.
    subprocess.run(_worker("write", kind, url, data_dir, namespace, "initial"), env=_env(), check=True,
                   capture_output=True, timeout=60)
    watcher = subprocess.Popen(_worker("watch", kind, url, data_dir, namespace, value), env=_env(),
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert watcher.stdout is not None
        assert watcher.stdout.readline().strip() == "ready"
        time.sleep(0.3)
        written_at = time.monotonic()
        command = writer or _worker("write", kind, url, data_dir, namespace, value)
        if writer:
            command = [*writer, value]
        done = subprocess.run(command, env=_env(), capture_output=True, text=True, timeout=60)
        assert done.returncode == 0, done.stderr
        out, err = watcher.communicate(timeout=30)
        assert watcher.returncode == 0, (out, err)
        assert out.startswith("seen")
        return time.monotonic() - written_at
    finally:
        if watcher.poll() is None:
            watcher.kill()


def test_local_backend_two_processes(tmp_path: Path) -> None:
    elapsed = _watch_then_write("local", "", tmp_path / "data")
    assert elapsed < 8  # poll interval is 2 s; allow for interpreter start-up


def test_cli_config_set_reaches_a_running_process(tmp_path: Path) -> None:
    """Process A is the real CLI (`grok2api config set`), process B a ConfigService reader."""
    data_dir = tmp_path / "data"
    writer = [sys.executable, "-m", "grok2api", "config", "set", "--data-dir", str(data_dir),
              "app.custom_instruction"]
    elapsed = _watch_then_write("local", "", data_dir, writer=writer)
    assert elapsed < 8


def test_redis_backend_two_processes(tmp_path: Path, redis_url: str) -> None:
    pytest.importorskip("redis")
    elapsed = _watch_then_write("redis", redis_url, tmp_path / "data")
    assert elapsed < 8
