"""``grok2api serve`` as a user runs it: a real process, stopped with SIGTERM mid-stream."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx

from fixtures.services import free_port

TOKEN = "tok-serve-process-xxxxxxxxxxxxxxxx"


def cli(env: dict[str, str], *args: str) -> str:
    done = subprocess.run([sys.executable, "-m", "grok2api", *args], env=env, capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_sigterm_drains_streams_in_flight_and_saves_state(simulator, tmp_path: Path) -> None:
    port = free_port()
    env = {**os.environ, "DATA_DIR": str(tmp_path / "data"), "LOG_DIR": str(tmp_path / "logs"),
           "RAY_SERVE_HAPROXY_STATS_PORT": str(free_port()), "RAY_SERVE_HAPROXY_METRICS_PORT": str(free_port())}
    env.pop("RAY_ADDRESS", None)
    for var in [v for v in env if v.startswith(("RAY_SERVE_DIRECT_INGRESS_", "RAY_SERVE_FALLBACK_PROXY"))]:
        env.pop(var)  # this session's gateway holds these ports; the new one must claim its own
    cli(env, "config", "set", "upstream.base_url", simulator.base_url)
    cli(env, "config", "set", "upstream.assets_url", simulator.assets_url)
    (tmp_path / "tokens.txt").write_text(f"sso={TOKEN}\n")
    assert "added 1" in cli(env, "tokens", "import", str(tmp_path / "tokens.txt"))
    simulator.add_token(TOKEN, plan="basic")

    proc = subprocess.Popen([sys.executable, "-m", "grok2api", "serve", "--port", str(port), "--num-cpus", "1"],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(proc.stdout), daemon=True)  # type: ignore[arg-type]
    reader.start()
    try:
        deadline = time.monotonic() + 120
        while not any("is ready at" in line for line in lines):
            assert proc.poll() is None, "".join(lines[-30:])
            assert time.monotonic() < deadline, "serve did not become ready"
            time.sleep(0.2)

        body = {"model": "grok-4", "stream": True,
                "messages": [{"role": "user", "content": "drain me [[sim:tokens=20;delay_ms=100]]"}]}
        received: list[str] = []
        with httpx.stream("POST", f"http://127.0.0.1:{port}/v1/chat/completions", json=body, timeout=60) as r:
            assert r.status_code == 200
            for line in r.iter_lines():
                received.append(line)
                if len(received) == 3:
                    proc.send_signal(signal.SIGTERM)  # mid-stream: ~2 s of answer still to come
        events = [x[6:] for x in received if x.startswith("data: ")]
        assert events[-1] == "[DONE]", received[-5:]
        assert not any('"error"' in e for e in events)
        assert proc.wait(timeout=90) == 0
        reader.join(timeout=5)
        assert any("stopped" in line for line in lines), "".join(lines[-20:])
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    listing = cli(env, "tokens", "list")
    row = next(line for line in listing.splitlines() if line.startswith("tok-"))
    assert row.split()[4] == "1", listing  # the drained request was charged and saved
    assert TOKEN not in listing
