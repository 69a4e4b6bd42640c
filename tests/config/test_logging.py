"""Secrets never reach the logs: tokens, JWTs, cookies, bearer keys, proxy passwords, config keys."""

from __future__ import annotations

import io
import logging
from pathlib import Path

import pytest

from grok2api.config.env import ServerSettings
from grok2api.logging_setup import (
    LOG_FILE_NAME,
    MaskingFormatter,
    SecretMaskingFilter,
    mask_secrets,
    set_secrets,
    setup_logging,
)

JWT = "eyJhbGciOiJIUzI1NiJ9.eyJzZXNzaW9uX2lkIjoiYTFiMmMzZDRlNWY2In0.c2lnbmF0dXJlLXZhbHVl"


@pytest.fixture(autouse=True)
def _clean_secrets():
    yield
    set_secrets("test", [])


@pytest.mark.parametrize(
    ("text", "secret"),
    [
        (f"token {JWT} failed", JWT),
        ("Cookie: sso=plain-sso-value; sso-rw=plain-sso-value", "plain-sso-value"),
        ("cookie ;cf_clearance=cf-abc-123", "cf-abc-123"),
        ("Authorization: Bearer sk-abc-123456", "sk-abc-123456"),
        ("via http://user:pr0xy-pass@10.0.0.1:8080", "pr0xy-pass"),
    ],
)
def test_patterns(text: str, secret: str) -> None:
    assert secret not in mask_secrets(text)


def test_registered_secrets_masked() -> None:
    set_secrets("test", ["admin-password-1", "ab"])  # too-short values are ignored
    assert mask_secrets("login with admin-password-1 ok ab") == "login with *** ok ab"
    set_secrets("test", [])
    assert mask_secrets("admin-password-1") == "admin-password-1"


def test_filter_and_formatter_mask_args_and_tracebacks() -> None:
    set_secrets("test", ["very-secret-key"])
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(MaskingFormatter("%(message)s"))
    handler.addFilter(SecretMaskingFilter())
    logger = logging.getLogger("grok2api.test.masking")
    logger.addHandler(handler)
    logger.propagate = False
    try:
        logger.warning("token %s key %s", JWT, "very-secret-key")
        try:
            raise RuntimeError(f"boom sso={JWT}")
        except RuntimeError:
            logger.exception("failed")
    finally:
        logger.removeHandler(handler)
    output = stream.getvalue()
    assert JWT not in output and "very-secret-key" not in output
    assert "token eyJ*** key ***" in output and "RuntimeError" in output


def test_setup_logging_writes_masked_file(tmp_path: Path) -> None:
    settings = ServerSettings.from_env(
        {"LOG_DIR": str(tmp_path / "logs"), "LOG_FILE_ENABLED": "true", "LOG_LEVEL": "DEBUG"}
    )
    root = logging.getLogger()
    old_level = root.level
    setup_logging(settings, stream=False)
    try:
        logging.getLogger("grok2api.test").debug("using sso=%s", JWT)
        for handler in root.handlers:
            handler.flush()
        content = (tmp_path / "logs" / LOG_FILE_NAME).read_text()
        assert "using sso=***" in content and JWT not in content
        assert root.level == logging.DEBUG
    finally:
        for handler in list(root.handlers):
            if getattr(handler, "_grok2api", False):
                root.removeHandler(handler)
                handler.close()
        root.setLevel(old_level)


def test_setup_logging_without_file(tmp_path: Path) -> None:
    settings = ServerSettings.from_env({"LOG_DIR": str(tmp_path / "nolog"), "LOG_FILE_ENABLED": "false"})
    setup_logging(settings)
    root = logging.getLogger()
    try:
        assert not (tmp_path / "nolog").exists()
        assert sum(1 for h in root.handlers if getattr(h, "_grok2api", False)) == 1
        setup_logging(settings)  # idempotent: not stacked
        assert sum(1 for h in root.handlers if getattr(h, "_grok2api", False)) == 1
    finally:
        for handler in list(root.handlers):
            if getattr(handler, "_grok2api", False):
                root.removeHandler(handler)
