"""Auth at the edge: every API and admin route behind its key, the login limiter, masked listings.

Behind Serve's HAProxy ingress each replica's uvicorn takes the client address from
``X-Forwarded-For`` (HAProxy connects from loopback and passes the header through), so each
test below speaks from its own documentation address (RFC 5737) and cannot lock another out.
"""

from __future__ import annotations

import itertools
import uuid
from pathlib import Path

import httpx
import pytest

from fixtures.secrets_scan import record_secret
from grok2api.api.security import LoginLimiter, body_limit_bytes, keys_match
from grok2api.config.env import ServerSettings
from grok2api.config.schema import AppConfig

_addresses = (f"198.51.100.{i}" for i in itertools.count(10))

PUBLIC = {"/health", "/ready", "/openapi.json", "/docs", "/redoc", "/v1/admin/login"}


def _addr() -> str:
    return next(_addresses)


def _routes(gateway) -> list[tuple[str, str]]:
    doc = httpx.get(gateway.base_url + "/openapi.json", timeout=15).json()
    out = []
    for path, ops in doc["paths"].items():
        for method in ops:
            if path in PUBLIC or path.startswith("/v1/files/"):
                continue
            out.append((method.upper(), path.replace("{kind}", "image").replace("{name}", "x.jpg")))
    return out


def _call(gateway, method: str, path: str, key: str | None, addr: str) -> httpx.Response:
    headers = {"X-Forwarded-For": addr}
    if key is not None:
        headers["Authorization"] = f"Bearer {key}" if key else "Bearer"
    body = {"tokens": ["tok-never-added-0000000000"]} if method in ("POST", "DELETE") else None
    if path == "/v1/chat/completions":
        body = {"model": "grok-4", "messages": [{"role": "user", "content": "hi"}]}
    return httpx.request(method, gateway.base_url + path, json=body, headers=headers, timeout=30)


def test_every_route_is_behind_its_key(gateway) -> None:
    routes = _routes(gateway)
    admin = [r for r in routes if r[1].startswith("/v1/admin/")]
    api = [r for r in routes if not r[1].startswith("/v1/admin/")]
    assert len(admin) >= 4 and ("POST", "/v1/chat/completions") in api and ("GET", "/v1/models") in api
    addr = _addr()
    for method, path in routes:
        right = gateway.admin_key if path.startswith("/v1/admin/") else gateway.api_key
        other = gateway.api_key if path.startswith("/v1/admin/") else gateway.admin_key
        keys: tuple[str | None, ...] = (None, "", "wrong-" + uuid.uuid4().hex, other)
        if not path.startswith("/v1/admin/"):  # near misses (admin ones would all count as failed logins)
            keys += (right + "x", right[:-1], right.upper(), "x" + right)
        for key in keys:
            r = _call(gateway, method, path, key, addr)
            assert r.status_code == 401, (method, path, key, r.status_code, r.text)
            assert r.json()["error"]["type"] == "authentication_error"
            assert r.headers.get("www-authenticate", "").lower().startswith("bearer")
            if key and key.strip():
                assert key not in r.text
        addr = _addr()  # fresh address per route: the wrong admin keys above count as failed logins


def test_openapi_declares_the_bearer_schemes(gateway) -> None:
    doc = httpx.get(gateway.base_url + "/openapi.json", timeout=15).json()
    schemes = doc["components"]["securitySchemes"]
    assert schemes["ApiKey"]["scheme"] == "bearer" and schemes["AdminKey"]["scheme"] == "bearer"
    for path, ops in doc["paths"].items():
        for op in ops.values():
            names = {name for req in op.get("security", []) for name in req}
            if path.startswith("/v1/admin/"):
                assert names == {"AdminKey"}, path
            elif path.startswith("/v1/") and not path.startswith("/v1/files/"):
                assert names == {"ApiKey"}, path


def _login(gateway, addr: str, password: str | None = None, bearer: str | None = None) -> httpx.Response:
    headers = {"X-Forwarded-For": addr}
    if bearer is not None:
        headers["Authorization"] = f"Bearer {bearer}"
    body = {"password": password} if password is not None else None
    return httpx.post(gateway.base_url + "/v1/admin/login", json=body, headers=headers, timeout=15)


def test_login_accepts_the_password_in_body_or_bearer(gateway) -> None:
    addr = _addr()
    assert _login(gateway, addr, password=gateway.admin_key).json() == {"ok": True}
    assert _login(gateway, addr, bearer=gateway.admin_key).status_code == 200
    r = _login(gateway, addr, password="not-the-password")
    assert r.status_code == 401 and r.json()["error"]["code"] == "invalid_app_key"
    assert "not-the-password" not in r.text
    assert _login(gateway, addr).status_code == 401  # nothing presented
    assert _login(gateway, addr, bearer=gateway.api_key).status_code == 401


def test_failed_logins_lock_the_address_out(gateway) -> None:
    addr, bystander = _addr(), _addr()
    for i in range(5):
        assert _login(gateway, addr, password=f"guess-{i}").status_code == 401
    locked = _login(gateway, addr, password=gateway.admin_key)  # even the right password now
    assert locked.status_code == 429
    assert locked.json()["error"]["code"] == "too_many_login_attempts"
    assert 1 <= int(locked.headers["Retry-After"]) <= 60
    # Every admin route shares the guard and the lock-out.
    r = httpx.get(gateway.base_url + "/v1/admin/tokens", timeout=15,
                  headers={"X-Forwarded-For": addr, "Authorization": f"Bearer {gateway.admin_key}"})
    assert r.status_code == 429
    # Another address is not affected.
    assert _login(gateway, bystander, password=gateway.admin_key).status_code == 200


def test_wrong_keys_on_admin_routes_count_as_failed_logins(gateway) -> None:
    addr = _addr()
    for i in range(5):
        r = httpx.get(gateway.base_url + "/v1/admin/tokens", timeout=15,
                      headers={"X-Forwarded-For": addr, "Authorization": f"Bearer guess-{i}"})
        assert r.status_code == 401
    assert _login(gateway, addr, password=gateway.admin_key).status_code == 429


def test_a_good_login_clears_the_address_failures(gateway) -> None:
    addr = _addr()
    for round_ in range(2):
        for i in range(4):
            assert _login(gateway, addr, password=f"typo-{round_}-{i}").status_code == 401
        assert _login(gateway, addr, password=gateway.admin_key).status_code == 200


def test_admin_listing_masks_tokens(pool) -> None:
    token = "tok-admin-listing-" + uuid.uuid4().hex
    record_secret(token)
    headers = {"Authorization": f"Bearer {pool.admin_key}", "X-Forwarded-For": _addr()}
    r = httpx.post(pool.api_url + "/admin/tokens", json={"tokens": [token]}, headers=headers, timeout=30)
    assert r.status_code == 200 and r.json()["added"] == 1
    r = httpx.get(pool.api_url + "/admin/tokens", headers=headers, timeout=30)
    assert r.status_code == 200
    assert token not in r.text and token[8:-4] not in r.text
    listed = r.json()["tokens"]
    assert len(listed) == 1 and listed[0]["token"].startswith(token[:4]) and "…" in listed[0]["token"]
    assert token in pool.tokens()  # it really is in the pool, just never shown


def test_no_response_carries_a_key(gateway) -> None:
    for path in ("/health", "/ready", "/openapi.json"):
        r = httpx.get(gateway.base_url + path, timeout=15)
        assert gateway.api_key not in r.text and gateway.admin_key not in r.text, path


# -- pieces without the gateway ---------------------------------------------------------------


def test_keys_match() -> None:
    assert keys_match("s3cret-key", "s3cret-key")
    assert keys_match("ключ-ü", "ключ-ü")
    for given in ("", "s3cret-ke", "s3cret-keyy", "S3CRET-KEY", " s3cret-key", "\udcff"):
        assert not keys_match(given, "s3cret-key"), given
    assert not keys_match("", "")  # an empty configured key never opens anything


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_limiter_window_slides() -> None:
    clock = Clock()
    lim = LoginLimiter(3, 60, clock=clock)
    for _ in range(3):
        assert lim.retry_after("a") is None
        lim.failure("a")
        clock.now += 10
    assert lim.retry_after("a") == 30  # the first failure (t=1000) leaves the window at t=1060
    clock.now += 30
    assert lim.retry_after("a") is None
    lim.failure("a")
    assert lim.retry_after("a") == 10


def test_limiter_global_ceiling_stops_address_rotation() -> None:
    clock = Clock()
    lim = LoginLimiter(5, 60, global_max_failures=20, clock=clock)
    for i in range(20):
        key = f"203.0.113.{i}"
        assert lim.retry_after(key) is None
        lim.failure(key)
    assert lim.retry_after("203.0.113.250") == 60  # a never-seen address is refused too
    clock.now += 61
    assert lim.retry_after("203.0.113.250") is None


def test_limiter_memory_is_bounded() -> None:
    lim = LoginLimiter(5, 60, global_max_failures=10**9, max_tracked=100)
    for i in range(10_000):
        lim.failure(f"k{i}")
    assert len(lim._per_key) == 100  # noqa: SLF001


def test_body_limit_follows_max_upload() -> None:
    assert body_limit_bytes(1) == 1024 * 1024 * 4 // 3 + 1 + 1024 * 1024
    assert body_limit_bytes(50) > 50 * 1024 * 1024 * 4 // 3


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "192.168.1.10", "10.0.0.5", "example.com"])
def test_public_bind_with_default_admin_password_is_refused(host: str, tmp_path: Path) -> None:
    from grok2api.cli import CliError, check_exposure

    settings = ServerSettings(host=host, port=8000, data_dir=tmp_path, log_file_enabled=False)
    with pytest.raises(CliError) as info:
        check_exposure(settings, AppConfig())
    assert "default admin password" in str(info.value)
    strong = AppConfig.model_validate({"app": {"app_key": "a-long-random-admin-password"}})
    check_exposure(settings, strong)  # a real password: allowed


@pytest.mark.parametrize("host", ["127.0.0.1", "::1", "localhost", "127.0.0.53"])
def test_loopback_bind_with_default_password_is_allowed(host: str, tmp_path: Path) -> None:
    from grok2api.cli import check_exposure

    settings = ServerSettings(host=host, port=8000, data_dir=tmp_path, log_file_enabled=False)
    assert check_exposure(settings, AppConfig()) == []


def test_unauthenticated_requests_are_refused_before_their_body_is_read(pool) -> None:
    """A caller without the key declares a 10 MB body and sends one byte: the 401 must not wait for the rest."""
    import socket
    from urllib.parse import urlsplit

    url = urlsplit(pool.base_url)
    with socket.create_connection((url.hostname, url.port), timeout=10) as sock:
        sock.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nHost: gateway\r\n"
                     b"Authorization: Bearer not-the-key\r\nContent-Type: application/json\r\n"
                     b"Content-Length: 10000000\r\n\r\n{")
        sock.settimeout(10)
        head = sock.recv(4096)
    assert head.startswith(b"HTTP/1.1 401"), head[:200]
