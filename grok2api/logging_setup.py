"""Logging from ``LOG_LEVEL`` / ``LOG_FILE_ENABLED`` / ``LOG_DIR``, with secrets masked.

Every record that passes through the handlers installed by :func:`setup_logging` is
scrubbed: SSO tokens and other JWTs, ``sso=``/``sso-rw=``/``cf_clearance=`` cookie values,
``Bearer`` credentials, passwords in URLs, and every value registered with
:func:`set_secrets` (the config's keys, done by ``ConfigService``) become ``***``-style
masks. The masking runs on the final formatted text, so arguments and tracebacks are
covered too.
"""

from __future__ import annotations

import logging
import logging.handlers
import re
import sys
import threading
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from grok2api.config.env import ServerSettings

LOG_FILE_NAME = "grok2api.log"
FORMAT = "%(asctime)s %(levelname)-7s %(name)s: %(message)s"

_PATTERNS: list[tuple[re.Pattern[str], str]] = [
    # JWTs (SSO tokens are JWTs): header.payload.signature, base64url.
    (re.compile(r"eyJ[A-Za-z0-9_-]{6,}\.[A-Za-z0-9_-]{6,}\.[A-Za-z0-9_-]*"), "eyJ***"),
    # Cookie-style secrets.
    (re.compile(r"(?i)\b(sso(?:-rw)?|cf_clearance|__cf_bm)=([^;,\s\"']+)"), r"\1=***"),
    # Authorization headers.
    (re.compile(r"(?i)\b(bearer)\s+([A-Za-z0-9._~+/=-]{4,})"), r"\1 ***"),
    # user:password@ in URLs.
    (re.compile(r"(?i)\b([a-z][a-z0-9+.-]*://[^:/@\s]*):([^@/\s]+)@"), r"\1:***@"),
]

_lock = threading.Lock()
_secret_groups: dict[str, frozenset[str]] = {}
_secret_re: re.Pattern[str] | None = None
_MIN_SECRET_LEN = 4


def set_secrets(group: str, values: Iterable[str]) -> None:
    """Register literal secrets under ``group`` (replacing that group's previous values)."""
    global _secret_re
    cleaned = frozenset(v for v in (s.strip() for s in values) if len(v) >= _MIN_SECRET_LEN)
    with _lock:
        if _secret_groups.get(group) == cleaned:
            return
        _secret_groups[group] = cleaned
        every = sorted({v for vals in _secret_groups.values() for v in vals}, key=len, reverse=True)
        _secret_re = re.compile("|".join(re.escape(v) for v in every)) if every else None


def mask_secrets(text: str) -> str:
    """``text`` with every recognisable or registered secret replaced."""
    pattern = _secret_re
    if pattern is not None:
        text = pattern.sub("***", text)
    for regex, replacement in _PATTERNS:
        text = regex.sub(replacement, text)
    return text


class SecretMaskingFilter(logging.Filter):
    """Rewrites ``record.msg`` to its masked, fully formatted form (args merged in)."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # noqa: BLE001 - a broken format string is still logged
            message = str(record.msg)
        record.msg, record.args = mask_secrets(message), None
        return True


class MaskingFormatter(logging.Formatter):
    """Masks the final text, including exception and stack information."""

    def format(self, record: logging.LogRecord) -> str:
        return mask_secrets(super().format(record))


def _level(name: str) -> int:
    value = logging.getLevelName(name.upper())
    return value if isinstance(value, int) else logging.INFO


def setup_logging(settings: ServerSettings | None = None, *, stream: bool = True) -> None:
    """Configure the root logger from ``settings`` (default: from the environment).

    Console (stderr) always; plus a rotating ``LOG_DIR/grok2api.log`` (10 MB x 5) when
    ``LOG_FILE_ENABLED``. Safe to call again (handlers are replaced, not stacked).
    """
    if settings is None:
        from grok2api.config.env import ServerSettings

        settings = ServerSettings.from_env()
    root = logging.getLogger()
    for handler in list(root.handlers):
        if getattr(handler, "_grok2api", False):
            root.removeHandler(handler)
            handler.close()
    formatter = MaskingFormatter(FORMAT)
    handlers: list[logging.Handler] = []
    if stream:
        handlers.append(logging.StreamHandler(sys.stderr))
    if settings.log_file_enabled:
        log_dir = Path(settings.log_dir)
        log_dir.mkdir(parents=True, exist_ok=True)
        handlers.append(
            logging.handlers.RotatingFileHandler(
                log_dir / LOG_FILE_NAME, maxBytes=10 << 20, backupCount=5, encoding="utf-8"
            )
        )
    for handler in handlers:
        handler.setFormatter(formatter)
        handler.addFilter(SecretMaskingFilter())
        handler._grok2api = True  # type: ignore[attr-defined]
        root.addHandler(handler)
    root.setLevel(_level(settings.log_level))
