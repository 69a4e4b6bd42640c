"""The error responses grok.com sends (protocol chat.md §8.1), as ready aiohttp responses."""

from __future__ import annotations

import orjson
from aiohttp import web

from grok2api.simulator.faults import Fault

INVALID_SESSION = "Failed to look up session ID. [WKE=unauthenticated:invalid-credentials]"
ANTI_BOT = "Request rejected by anti-bot rules."
BLOCKED = "User is blocked [WKE=unauthorized:blocked-user]"

CLOUDFLARE_HTML = (
    '<!DOCTYPE html><html lang="en-US"><head><title>Just a moment...</title>'
    '<meta http-equiv="Content-Type" content="text/html; charset=UTF-8">'
    '<meta name="robots" content="noindex,nofollow"></head><body><div class="main-wrapper" role="main">'
    '<div class="main-content"><h1 class="zone-name-title h1">grok.com</h1>'
    '<h2 class="h2" id="challenge-running">Checking if the site connection is secure</h2>'
    '<noscript>Enable JavaScript and cookies to continue</noscript></div></div>'
    '<script src="/cdn-cgi/challenge-platform/h/b/orchestrate/chl_page/v1?ray=8f1e2d3c4b5a6978"></script>'
    "</body></html>"
)
_CF_502 = (
    "<html>\r\n<head><title>502 Bad Gateway</title></head>\r\n<body>\r\n<center><h1>502 Bad Gateway</h1></center>"
    "\r\n<hr><center>cloudflare</center>\r\n</body>\r\n</html>\r\nerror code: 502"
)


def grpc_json(status: int, code: int, message: str, headers: dict[str, str] | None = None) -> web.Response:
    body = orjson.dumps({"error": {"code": code, "message": message, "details": []}})
    return web.Response(status=status, body=body, content_type="application/json", headers=headers)


def unauthorized() -> web.Response:
    return grpc_json(401, 16, INVALID_SESSION)


def anti_bot() -> web.Response:
    return grpc_json(403, 7, ANTI_BOT)


def blocked() -> web.Response:
    return grpc_json(403, 7, BLOCKED)


def bad_request(message: str) -> web.Response:
    return grpc_json(400, 3, message)


def not_found(message: str = "Not found") -> web.Response:
    return grpc_json(404, 5, message)


def too_many(retry_after: int | None = None) -> web.Response:
    headers = {"Retry-After": str(retry_after)} if retry_after is not None else None
    return grpc_json(429, 8, "Too many requests", headers)


def cloudflare_challenge() -> web.Response:
    return web.Response(
        status=403, text=CLOUDFLARE_HTML, content_type="text/html", charset="UTF-8",
        headers={"Server": "cloudflare", "cf-mitigated": "challenge", "cf-ray": "8f1e2d3c4b5a6978-FRA",
                 "Cache-Control": "private, max-age=0, no-store, no-cache, must-revalidate"},
    )


def server_error(status: int, style: str | None = None) -> web.Response:
    if style == "html" or (style is None and status == 502):
        text = _CF_502.replace("502", str(status)).replace("Bad Gateway", "Error")
        if status == 502:
            text = _CF_502
        return web.Response(status=status, text=text, content_type="text/html", charset="UTF-8",
                            headers={"Server": "cloudflare", "cf-ray": "8f1e2d3c4b5a6979-FRA"})
    code = {500: 13, 503: 14, 504: 4}.get(status, 13)
    message = {13: "Internal error", 14: "Service unavailable", 4: "Deadline exceeded"}[code]
    return grpc_json(status, code, message)


def for_fault(fault: Fault) -> web.Response | None:
    """The HTTP response a status fault stands for, or None for non-status faults."""
    name = fault.name
    if name == "401":
        return unauthorized()
    if name in ("403", "cloudflare"):
        return cloudflare_challenge()
    if name == "antibot":
        return anti_bot()
    if name == "blocked":
        return blocked()
    if name == "400":
        return bad_request("Bad request")
    if name == "404":
        return not_found()
    if name == "429":
        return too_many(fault.int_arg(0, -1) if fault.args else None)
    if name in ("500", "502", "503", "504"):
        return server_error(int(name), fault.args[0] if fault.args else None)
    return None
