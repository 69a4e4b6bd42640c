"""Request metrics without Serve's per-request log parsing: HAProxy's own Prometheus exporter.

The gateway turns off Serve's HAProxy log-line metrics (a Python actor parsing one line per
request); operators read request counts from HAProxy's exporter instead. This checks that the
exporter is there and counts the chat requests that went through the gateway's backend.
"""

from __future__ import annotations

import os
import re
import urllib.request


def _backend_requests(metrics: str) -> float:
    total = 0.0
    for line in metrics.splitlines():
        m = re.match(r'haproxy_backend_http_requests_total\{[^}]*proxy="http-grok2api"[^}]*\}\s+([0-9.e+]+)', line)
        if m:
            total += float(m.group(1))
    return total


def _scrape() -> str:
    port = os.environ["RAY_SERVE_HAPROXY_METRICS_PORT"]
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as resp:
        return resp.read().decode()


def test_haproxy_exporter_counts_chat_requests(pool) -> None:
    pool.add_tokens(["metrics-token-aaaaaaaaaaaaaaaa"])
    before = _backend_requests(_scrape())
    client = pool.client()
    for _ in range(3):
        list(client.chat.completions.create(model="grok-4", stream=True,
                                            messages=[{"role": "user", "content": "count me"}]))
    after = _backend_requests(_scrape())
    assert after - before >= 3
