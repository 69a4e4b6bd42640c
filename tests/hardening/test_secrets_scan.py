"""The session-end secrets scan (``tests/fixtures/secrets_scan.py``) finds what it must, where it must."""

from __future__ import annotations

import logging
import uuid
from pathlib import Path

import httpx

from fixtures import secrets_scan
from fixtures.secrets_scan import find_secrets, record_secret, recorded_secrets, scan_tree


def test_the_scanner_finds_a_planted_secret(tmp_path: Path) -> None:
    secret = "tok-planted-" + uuid.uuid4().hex
    record_secret(secret)
    log = tmp_path / "logs" / "worker-1.err"
    log.parent.mkdir()
    log.write_text(f"2026 INFO something\nCookie: sso={secret}; other\n")
    (tmp_path / "logs" / "clean.log").write_text("nothing to see\n")
    try:
        assert scan_tree(tmp_path) == {log: {secret}}
        assert find_secrets("short") == set()
    finally:
        log.unlink()  # the planted file must not trip the real session-end scan


def test_gateway_secrets_are_recorded_and_ray_logs_covered(pool) -> None:
    token = "tok-scan-" + uuid.uuid4().hex
    pool.add_tokens([token])
    assert {token, pool.api_key, pool.admin_key} <= recorded_secrets()
    resp = pool.client().chat.completions.create(model="grok-4", stream=False,
                                                 messages=[{"role": "user", "content": "scan me"}])
    assert resp.choices[0].message.content
    secrets_scan._note_ray_session()  # noqa: SLF001
    dirs = sorted(secrets_scan._ray_log_dirs)  # noqa: SLF001
    assert dirs and all(d.is_dir() for d in dirs)
    replica_logs = [p for d in dirs for p in d.rglob("replica_*GrokWorker*")]
    assert replica_logs, "the scan would not see the replica logs"


def test_replica_log_handlers_mask_secrets(gateway) -> None:
    """A wrong Bearer key sent to the API is never written to the replica logs (masked if it ever were)."""
    from grok2api.logging_setup import SecretMaskingFilter, mask_secrets

    probe = "Bearer sk-" + uuid.uuid4().hex
    r = httpx.get(gateway.api_url + "/models", headers={"Authorization": probe}, timeout=15)
    assert r.status_code == 401 and probe not in r.text
    assert "sk-" not in mask_secrets(f"Authorization: {probe}")
    # build_app attaches the masking filter to the process's log handlers (here: the test process).
    from grok2api.api.app import build_app

    handler = logging.StreamHandler()
    logging.getLogger().addHandler(handler)
    try:
        build_app(max_body_bytes=1)
        assert any(isinstance(f, SecretMaskingFilter) for f in handler.filters)
    finally:
        logging.getLogger().removeHandler(handler)
