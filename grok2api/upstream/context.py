"""The shared per-process upstream state every endpoint module works with."""

from __future__ import annotations

import asyncio

import orjson

from grok2api.upstream.errors import UpstreamError, classify_http
from grok2api.upstream.headers import HeaderFactory, bare_token
from grok2api.upstream.settings import UpstreamSettings
from grok2api.upstream.statsig import StatsigProvider, make_statsig
from grok2api.upstream.transport import Response, Transport


_retiring: set[asyncio.Task[None]] = set()  # replaced clients waiting to close


class UpstreamContext:
    """Settings + transport + header templates + statsig provider. One per worker process."""

    def __init__(self, settings: UpstreamSettings | None = None, *, statsig: StatsigProvider | None = None,
                 transport: Transport | None = None) -> None:
        self.settings = settings or UpstreamSettings()
        self.headers = HeaderFactory(self.settings)
        self.statsig: StatsigProvider = statsig or make_statsig(self.settings.statsig_mode,
                                                                self.settings.statsig_value)
        self.transport = transport or Transport(self.settings)

    def url(self, path: str) -> str:
        return self.settings.base_url + path

    async def rest_headers(self, token: str, method: str, path: str, *, files_referer: bool = False
                           ) -> dict[str, str]:
        sid = await self.statsig.statsig_id(method, path)
        return self.headers.rest(token, sid, files_referer=files_referer)

    @staticmethod
    def secrets(token: str) -> tuple[str, ...]:
        t = bare_token(token)
        return (t,) if t else ()

    async def post_json(self, token: str, path: str, body: object, *, scope: str = "api",
                        timeout: float | None = None, files_referer: bool = False) -> Response:
        """POST a JSON body on the base host; raise the classified error unless 2xx."""
        headers = await self.rest_headers(token, "POST", path, files_referer=files_referer)
        resp = await self.transport.request("POST", self.url(path), headers=headers, data=orjson.dumps(body),
                                            scope=scope, timeout=timeout, secrets=self.secrets(token))
        if not 200 <= resp.status < 300:
            raise classify_http(resp.status, resp.content, resp.headers, *self.secrets(token))
        return resp

    async def aclose(self) -> None:
        await self.transport.aclose()

    def close_later(self, delay: float = 60.0) -> None:
        """Close this client after ``delay`` seconds, once the calls still using it are done (a client
        replaced after a config change). Needs a running event loop."""
        async def close() -> None:
            await asyncio.sleep(delay)
            await self.aclose()

        task = asyncio.get_running_loop().create_task(close())
        _retiring.add(task)
        task.add_done_callback(_retiring.discard)


__all__ = ["UpstreamContext", "UpstreamError"]
