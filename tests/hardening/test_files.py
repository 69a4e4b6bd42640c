"""``/v1/files/{kind}/{name}`` maps a name to a path: no name may lead outside the cache folder."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from grok2api.actors.media_cache import MediaCacheCore, safe_name
from grok2api.upstream.settings import UpstreamSettings
from support import raw_get

SECRET_TEXT = b"TOP-SECRET-CONTENT-outside-the-cache"
JPEG = b"\xff\xd8\xff\xe0" + b"hardening-jpeg" * 50 + b"\xff\xd9"


# -- over HTTP, against the live gateway --------------------------------------------------------


@pytest.fixture
def planted(gateway) -> dict[str, Path]:
    """A real cached image, a secret file next to the cache, and symlinks inside the cache pointing out."""
    data_dir = Path(gateway.settings.data_dir)
    cache = data_dir / "cache"
    ok = cache / "image" / "hardening-ok.jpg"
    ok.write_bytes(JPEG)
    secret = data_dir / "outside-secret.txt"
    secret.write_bytes(SECRET_TEXT)
    links = {
        "evil.jpg": secret,  # file outside the cache
        "evil-config.jpg": data_dir / "config.toml",  # the config (holds the keys)
        "evil-dir.jpg": data_dir,  # a directory
        "evil-abs.jpg": Path("/etc/passwd"),
    }
    for name, target in links.items():
        link = cache / "image" / name
        link.unlink(missing_ok=True)
        link.symlink_to(target)
    try:
        yield {"ok": ok, "secret": secret, "data_dir": data_dir}
    finally:
        for name in links:
            (cache / "image" / name).unlink(missing_ok=True)
        ok.unlink(missing_ok=True)
        secret.unlink(missing_ok=True)


def test_a_cached_file_is_served(gateway, planted) -> None:
    """The control: the route does serve what is in the cache, so the 404s below are refusals."""
    status, body = raw_get(gateway.base_url, "/v1/files/image/hardening-ok.jpg")
    assert status == 200 and body == JPEG


@pytest.mark.parametrize("path", [
    "/v1/files/image/../../outside-secret.txt",
    "/v1/files/image/..%2F..%2Foutside-secret.txt",
    "/v1/files/image/%2e%2e%2f%2e%2e%2foutside-secret.txt",
    "/v1/files/image/%2E%2E/%2E%2E/outside-secret.txt",
    "/v1/files/image/..%5c..%5coutside-secret.txt",
    "/v1/files/image/..\\..\\outside-secret.txt",
    "/v1/files/image/%252e%252e%252f%252e%252e%252foutside-secret.txt",
    "/v1/files/image/..",
    "/v1/files/image/.",
    "/v1/files/image/%2e%2e",
    "/v1/files/image/..%00.jpg",
    "/v1/files/image/hardening-ok.jpg%00.png",
    "/v1/files/image/%2Fetc%2Fpasswd",
    "/v1/files/image//etc/passwd",
    "/v1/files/image/%2F..%2F..%2Fconfig.toml",
    "/v1/files/..%2Fconfig.toml/x",
    "/v1/files/../../config.toml",
    "/v1/files/image/../../config.toml",
    "/v1/files/image/..%2Fconfig.toml",
    "/v1/files/image/evil.jpg",
    "/v1/files/image/evil-config.jpg",
    "/v1/files/image/evil-dir.jpg",
    "/v1/files/image/evil-abs.jpg",
    "/v1/files/video/hardening-ok.jpg",
    "/v1/files/zips/hardening-ok.jpg",
    "/v1/files/image/.hardening-ok.jpg",
    "/v1/files/image/~/.ssh/id_rsa",
])
def test_traversal_attempts_are_refused(gateway, planted, path: str) -> None:
    status, body = raw_get(gateway.base_url, path)
    assert status in (400, 404), (status, body[:200])
    assert SECRET_TEXT not in body
    assert b"app_key" not in body and b"root:x:0:0" not in body and gateway.admin_key.encode() not in body


def test_served_files_are_not_sniffed(gateway, planted) -> None:
    import httpx

    r = httpx.get(gateway.base_url + "/v1/files/image/hardening-ok.jpg", timeout=15)
    assert r.status_code == 200
    assert r.headers["content-type"] == "image/jpeg"
    assert r.headers.get("x-content-type-options") == "nosniff"


# -- MediaCacheCore.path_of directly, with symlinks in the cache ---------------------------------------


@pytest.fixture
def core(tmp_path: Path) -> MediaCacheCore:
    return MediaCacheCore(tmp_path / "cache", 10, False, UpstreamSettings())


def test_path_of_serves_plain_files(core: MediaCacheCore) -> None:
    (core.root / "image" / "a.jpg").write_bytes(JPEG)
    assert core.path_of("image", "a.jpg") == core.root / "image" / "a.jpg"


def test_path_of_refuses_symlinks_leading_out(core: MediaCacheCore, tmp_path: Path) -> None:
    outside = tmp_path / "outside.txt"
    outside.write_bytes(SECRET_TEXT)
    (core.root / "video" / "v.mp4").write_bytes(b"video")
    image = core.root / "image"
    (image / "out.jpg").symlink_to(outside)
    (image / "rel.jpg").symlink_to("../../outside.txt")
    (image / "other-kind.jpg").symlink_to(core.root / "video" / "v.mp4")
    (image / "dir.jpg").symlink_to(tmp_path)
    (image / "root.jpg").symlink_to(core.root)
    (image / "loop1.jpg").symlink_to(image / "loop2.jpg")
    (image / "loop2.jpg").symlink_to(image / "loop1.jpg")
    (image / "dangling.jpg").symlink_to(tmp_path / "does-not-exist")
    (image / "chain.jpg").symlink_to(image / "out.jpg")
    for name in ("out.jpg", "rel.jpg", "other-kind.jpg", "dir.jpg", "root.jpg", "loop1.jpg", "dangling.jpg",
                 "chain.jpg"):
        assert core.path_of("image", name) is None, name
    # A directory of the cache replaced by a symlink to elsewhere serves nothing either.
    os.rename(core.root / "video", tmp_path / "video-real")
    (core.root / "video").symlink_to(tmp_path / "video-real")
    assert core.path_of("video", "v.mp4") is None


@pytest.mark.parametrize("name", [
    "", ".", "..", "../x.jpg", "..%2Fx.jpg", "a/b.jpg", "/etc/passwd", "a\\b.jpg", "a\x00.jpg", ".hidden.jpg",
    "-rf.jpg", "x" * 300, "ok..jpg", "a b.jpg", "ｘ.jpg", "\na.jpg", "a.jpg\n",
])
def test_unsafe_names(core: MediaCacheCore, name: str) -> None:
    assert not safe_name(name)
    assert core.path_of("image", name) is None


@pytest.mark.parametrize("kind", ["", ".", "..", "zips", "image/..", "../image", "IMAGE"])
def test_unknown_kinds(core: MediaCacheCore, kind: str) -> None:
    (core.root / "image" / "a.jpg").write_bytes(JPEG)
    assert core.path_of(kind, "a.jpg") is None
