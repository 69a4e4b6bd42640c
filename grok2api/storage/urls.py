"""Validation and normalisation of ``SERVER_STORAGE_TYPE`` / ``SERVER_STORAGE_URL``.

Error messages name the environment variable and the offending scheme, never the URL
itself (it usually carries a password); :func:`redact_url` gives a loggable form.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import SplitResult, unquote, urlsplit

from grok2api.storage.base import StorageConfigError

KINDS = ("local", "redis", "mysql", "pgsql")
_KIND_ALIASES = {"postgres": "pgsql", "postgresql": "pgsql", "pg": "pgsql", "mariadb": "mysql"}

# kind -> (accepted schemes, canonical scheme)
_SCHEMES: dict[str, tuple[frozenset[str], str | None]] = {
    "redis": (frozenset({"redis", "rediss", "unix"}), None),
    "mysql": (frozenset({"mysql", "mysql+aiomysql", "mariadb"}), "mysql+aiomysql"),
    "pgsql": (
        frozenset({"postgres", "postgresql", "postgresql+asyncpg", "pgsql", "postgres+asyncpg"}),
        "postgresql+asyncpg",
    ),
}


def normalize_kind(kind: str | None) -> str:
    """The canonical backend name for ``SERVER_STORAGE_TYPE`` (empty means ``local``)."""
    value = (kind or "local").strip().lower()
    value = _KIND_ALIASES.get(value, value)
    if value not in KINDS:
        raise StorageConfigError(
            f"SERVER_STORAGE_TYPE={value!r} is not supported; use one of: {', '.join(KINDS)}"
        )
    return value


def normalize_storage_url(kind: str, url: str | None) -> str:
    """``url`` with its scheme checked against ``kind`` and canonicalised.

    ``mysql://`` becomes ``mysql+aiomysql://``; ``postgres://``, ``postgresql://`` and
    ``pgsql://`` become ``postgresql+asyncpg://``; Redis URLs are kept. ``local`` needs no
    URL and yields ``""``.
    """
    kind = normalize_kind(kind)
    if kind == "local":
        return ""
    url = (url or "").strip()
    if not url:
        raise StorageConfigError(f"SERVER_STORAGE_URL is required when SERVER_STORAGE_TYPE={kind}")
    scheme, sep, rest = url.partition("://")
    if not sep:
        raise StorageConfigError(
            f"SERVER_STORAGE_URL for SERVER_STORAGE_TYPE={kind} must look like {_example(kind)}"
        )
    accepted, canonical = _SCHEMES[kind]
    scheme = scheme.lower()
    if scheme not in accepted:
        raise StorageConfigError(
            f"SERVER_STORAGE_URL scheme {scheme!r} does not match SERVER_STORAGE_TYPE={kind}; "
            f"expected {' or '.join(sorted(s + '://' for s in accepted))}"
        )
    return f"{canonical or scheme}://{rest}"


def _example(kind: str) -> str:
    return {
        "redis": "redis://[:password@]host:6379/0",
        "mysql": "mysql+aiomysql://user:password@host:3306/db",
        "pgsql": "postgresql+asyncpg://user:password@host:5432/db",
    }[kind]


def redact_url(url: str) -> str:
    """``url`` without its password, e.g. ``mysql+aiomysql://root:***@db:3306/app``."""
    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
        if ":" in host:
            host = f"[{host}]"
        netloc = host + (f":{parts.port}" if parts.port else "")
    except ValueError:
        return "<unparsable url>"
    if parts.username or parts.password:
        user = parts.username or ""
        netloc = f"{user}{':***' if parts.password else ''}@{netloc}"
    return SplitResult(parts.scheme, netloc, parts.path, "", "").geturl()


@dataclass(frozen=True)
class ServerAddress:
    """The pieces of a database URL that drivers take as separate arguments."""

    host: str
    port: int | None
    user: str | None
    password: str | None
    database: str | None
    query: str


def parse_server_url(url: str) -> ServerAddress:
    """Split ``url`` into host/port/user/password/database (percent-decoded)."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        raise StorageConfigError("SERVER_STORAGE_URL has an invalid host or port") from None
    database = unquote(parts.path.lstrip("/")) or None
    return ServerAddress(
        host=parts.hostname or "127.0.0.1",
        port=port,
        user=unquote(parts.username) if parts.username else None,
        password=unquote(parts.password) if parts.password else None,
        database=database,
        query=parts.query,
    )


def scrub(message: str, url: str) -> str:
    """``message`` with the URL's password (raw or percent-encoded) replaced by ``***``."""
    try:
        parts = urlsplit(url)
        secrets = {s for s in (parts.password, unquote(parts.password or "")) if s}
    except ValueError:
        secrets = set()
    for secret in secrets:
        message = message.replace(secret, "***")
    return message
