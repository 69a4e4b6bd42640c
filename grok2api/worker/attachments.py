"""Turning a message attachment (URL or data URI) into bytes to upload to Grok — safely.

The gateway fetches URLs on its clients' behalf, so a URL may only lead to a
public address:

* only ``http``/``https``;
* every address the host resolves to must be public (no loopback, private,
  link-local, multicast, reserved or cloud-metadata ranges) unless the host is
  in ``asset.allow_private_hosts``; the connection goes to the address that was
  checked (the resolver below is the only one the client uses), so DNS
  rebinding cannot slip a private address in after the check;
* redirects are followed by hand, each hop checked again (at most 5);
* the size cap (``asset.max_upload_mb``) is enforced while the body streams;
* the content type must be one Grok accepts.

Data URIs are size-capped and their base64 validated.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from dataclasses import dataclass
from typing import Any
from urllib.parse import urljoin, urlsplit

import aiohttp
from aiohttp.abc import AbstractResolver

from grok2api.upstream.messages import Attachment, InvalidMessageError, decode_data_uri, file_name_for

MAX_REDIRECTS = 5
ACCEPTED_TYPES = (
    "image/jpeg", "image/png", "image/webp", "image/gif",
    "application/pdf", "text/", "application/json", "application/xml", "application/rtf", "text/csv",
    "application/msword", "application/vnd.openxmlformats-officedocument.",
    "application/vnd.ms-excel", "application/vnd.ms-powerpoint",
    "audio/", "video/mp4",
)


class AttachmentError(Exception):
    """An attachment the gateway refuses; becomes a 4xx for the client."""

    def __init__(self, message: str, param: str, *, status: int = 400, code: str = "invalid_attachment") -> None:
        super().__init__(message)
        self.message, self.param, self.status, self.code = message, param, status, code


class ForbiddenAddress(Exception):
    """A host resolved to a non-public address (deliberately not an ``OSError``: aiohttp would wrap it)."""


def is_public_address(addr: str) -> bool:
    ip = ipaddress.ip_address(addr.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return ip.is_global and not (ip.is_multicast or ip.is_reserved or ip.is_loopback or ip.is_link_local
                                 or ip.is_private or ip.is_unspecified)


def _host_allowed(host: str, allow: list[str]) -> bool:
    host = host.lower().rstrip(".")
    return any(host == a.lower().rstrip(".") for a in allow)


class PublicOnlyResolver(AbstractResolver):
    """Resolves like the system resolver but refuses hosts with any non-public address."""

    def __init__(self, allow_private_hosts: list[str]) -> None:
        self._allow = allow_private_hosts

    async def resolve(self, host: str, port: int = 0, family: int = socket.AF_INET) -> list[dict[str, Any]]:
        loop = asyncio.get_running_loop()
        try:
            infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM, family=socket.AF_UNSPEC)
        except socket.gaierror as exc:
            raise OSError(f"cannot resolve host {host!r}") from exc
        out = []
        allowed = _host_allowed(host, self._allow)
        for fam, _, proto, _, sockaddr in infos:
            addr = sockaddr[0]
            if not allowed and not is_public_address(addr):
                raise ForbiddenAddress(f"host {host!r} resolves to a non-public address")
            out.append({"hostname": host, "host": addr, "port": port, "family": fam, "proto": proto,
                        "flags": socket.AI_NUMERICHOST})
        return out

    async def close(self) -> None:
        return None


@dataclass(slots=True)
class Fetched:
    name: str
    mime: str
    data: bytes


def _check_url(url: str, param: str, allow: list[str]) -> None:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https"):
        raise AttachmentError("Only http(s) URLs or data URIs can be attached.", param)
    if not parts.hostname:
        raise AttachmentError("The attachment URL has no host.", param)
    if parts.username or parts.password:
        raise AttachmentError("Attachment URLs must not carry credentials.", param)
    host = parts.hostname
    try:
        literal = ipaddress.ip_address(host)
    except ValueError:
        literal = None
    if literal is not None and not _host_allowed(host, allow) and not is_public_address(host):
        raise AttachmentError("The attachment URL points at a non-public address.", param, code="forbidden_url")


async def fetch_public_url(url: str, *, param: str, max_bytes: int, timeout: float,
                           allow_private_hosts: list[str] | None = None) -> Fetched:
    """GET ``url`` under the rules in the module docstring."""
    allow = list(allow_private_hosts or [])
    connector = aiohttp.TCPConnector(resolver=PublicOnlyResolver(allow), use_dns_cache=False, limit=4)
    client_timeout = aiohttp.ClientTimeout(total=timeout, sock_connect=min(timeout, 10))
    try:
        async with aiohttp.ClientSession(connector=connector, timeout=client_timeout) as session:
            current = url
            for _ in range(MAX_REDIRECTS + 1):
                _check_url(current, param, allow)
                async with session.get(current, allow_redirects=False,
                                       headers={"Accept": "*/*", "User-Agent": "grok2api-fetch/1"}) as resp:
                    if resp.status in (301, 302, 303, 307, 308):
                        location = resp.headers.get("Location")
                        if not location:
                            raise AttachmentError("The attachment URL redirected nowhere.", param)
                        current = urljoin(current, location)
                        continue
                    if resp.status >= 400:
                        raise AttachmentError(f"Fetching the attachment failed with HTTP {resp.status}.", param)
                    declared = resp.headers.get("Content-Length")
                    if declared and declared.isdigit() and int(declared) > max_bytes:
                        raise AttachmentError("The attachment is larger than the allowed size.", param,
                                              status=413, code="attachment_too_large")
                    mime = (resp.headers.get("Content-Type") or "application/octet-stream").split(";")[0].strip()
                    if not mime.lower().startswith(ACCEPTED_TYPES):
                        raise AttachmentError(f"Attachments of type {mime!r} are not accepted.", param,
                                              status=415, code="unsupported_media_type")
                    buf = bytearray()
                    async for chunk in resp.content.iter_chunked(64 * 1024):
                        buf += chunk
                        if len(buf) > max_bytes:
                            raise AttachmentError("The attachment is larger than the allowed size.", param,
                                                  status=413, code="attachment_too_large")
                    name = urlsplit(current).path.rsplit("/", 1)[-1] or "download"
                    return Fetched(name[:128], mime.lower(), bytes(buf))
            raise AttachmentError("The attachment URL redirected too many times.", param)
    except AttachmentError:
        raise
    except ForbiddenAddress:
        raise AttachmentError("The attachment URL points at a non-public address.", param,
                              code="forbidden_url") from None
    except (aiohttp.ClientError, OSError, asyncio.TimeoutError) as exc:
        raise AttachmentError(f"Fetching the attachment failed: {type(exc).__name__}.", param,
                              code="attachment_fetch_failed") from None


async def load_attachment(att: Attachment, *, max_bytes: int, allow_private_hosts: list[str],
                          timeout: float) -> tuple[str, str, bytes]:
    """``(file name, mime type, bytes)`` for an attachment given as a data URI or a public URL."""
    if att.is_data_uri:
        try:
            mime, data = decode_data_uri(att.source, max_bytes=max_bytes, param=att.param)
        except InvalidMessageError as exc:
            status = 413 if "large" in exc.message.lower() else 400
            raise AttachmentError(exc.message, exc.param, status=status, code=exc.code) from None
        return file_name_for(mime, att.filename), mime, data
    fetched = await fetch_public_url(att.source, param=att.param, max_bytes=max_bytes, timeout=timeout,
                                     allow_private_hosts=allow_private_hosts)
    return att.filename or fetched.name, fetched.mime, fetched.data
