"""The imagine WebSocket ``/ws/imagine/listen``: image generation in preview → medium → final stages.

Client → server: one JSON text frame per request
``{"type":"conversation.item.create","timestamp":...,"item":{"type":"message","content":[{"requestId",
"text","type":"input_text","properties":{...,"enable_nsfw","aspect_ratio"}}]}}``.

Server → client, per image (``order`` 0..n-1): ``{"type":"image","request_id","id","order","url",
"blob","percentage_complete"}`` three times — a small PNG preview, a medium PNG (blob > 30 KB) and the
final JPEG (``url`` ends in ``.jpg``). A blocked (moderated) request stops after the medium stage and
then stays silent, like the real service. Errors: ``{"type":"error","err_code","err_msg"}``.
"""

from __future__ import annotations

import asyncio
import base64
import uuid
from typing import Any, Awaitable, Callable

import orjson
from aiohttp import WSMsgType, web

from grok2api.simulator import errors, media
from grok2api.simulator.faults import Fault, first, parse_faults, parse_markers, FaultError
from grok2api.simulator.state import HIGH_COST, Account, Asset, SimState

#: aspect ratio → final image size (pixels)
SIZES = {"2:3": (384, 576), "3:2": (576, 384), "1:1": (512, 512), "16:9": (640, 360), "9:16": (360, 640)}


class Imagine:
    def __init__(self, st: SimState, gate: Callable[..., Awaitable[Any]]) -> None:
        self.st = st
        self.gate = gate

    async def handle(self, request: web.Request) -> web.StreamResponse:
        st = self.st
        acc, faults, denied = await self.gate(request, "ws", statsig=False)
        if denied is not None:
            return denied
        assert acc is not None
        if acc.remaining(st.clock.now()) < HIGH_COST:
            return errors.too_many(st.options.retry_after)
        ws = web.WebSocketResponse(heartbeat=None, max_msg_size=16 * 1024 * 1024)
        await ws.prepare(request)
        st.stats["ws.connections"] += 1
        budget = [first(faults, ["ws_close"])]
        sent = [0]

        async def send(obj: dict[str, Any]) -> bool:
            close = budget[0]
            if close is not None and sent[0] >= close.int_arg(0, 1):
                await ws.close(code=1011, message=b"closed early")
                return False
            await ws.send_str(orjson.dumps(obj).decode())
            sent[0] += 1
            return True

        async for msg in ws:
            if msg.type != WSMsgType.TEXT:
                if msg.type in (WSMsgType.ERROR, WSMsgType.CLOSE):
                    break
                continue
            try:
                event = orjson.loads(msg.data)
                content = event["item"]["content"][0]
                prompt = content["text"]
                if event.get("type") != "conversation.item.create" or not isinstance(prompt, str):
                    raise KeyError("type")
            except (orjson.JSONDecodeError, KeyError, IndexError, TypeError):
                if not await send({"type": "error", "err_code": "invalid_request",
                                   "err_msg": "expected a conversation.item.create message"}):
                    break
                continue
            markers, clean = parse_markers(prompt)
            try:
                req_faults = faults + parse_faults(markers.get("fault"))
            except FaultError as exc:
                await send({"type": "error", "err_code": "invalid_request", "err_msg": str(exc)})
                continue
            if first(req_faults, ["ws_close"]) is not None and budget[0] is None:
                budget[0] = first(req_faults, ["ws_close"])
            if not acc.try_consume(HIGH_COST, st.clock.now()):
                if not await send({"type": "error", "err_code": "rate_limit_exceeded",
                                   "err_msg": "Too many requests"}):
                    break
                continue
            ok = await self._generate(request, acc, content, clean, markers, req_faults, send)
            if not ok:
                break
        return ws

    async def _generate(self, request: web.Request, acc: Account, content: dict[str, Any], prompt: str,
                        markers: dict[str, str], faults: list[Fault],
                        send: Callable[[dict[str, Any]], Awaitable[bool]]) -> bool:
        st = self.st
        props = content.get("properties") or {}
        request_id = str(content.get("requestId") or uuid.uuid4())
        ratio = props.get("aspect_ratio") if props.get("aspect_ratio") in SIZES else "2:3"
        width, height = SIZES[ratio]
        count = max(1, min(int(markers.get("images", st.options.imagine_images)), 6))
        blocked = first(faults, ["moderated"]) is not None or (
            "nsfw" in prompt.lower() and not (acc.nsfw and props.get("enable_nsfw")))
        stage_delay = float(markers.get("stage_ms", markers.get("delay_ms", 0))) / 1000.0
        base = f"{request.scheme}://{request.host}/imagine-public/images"
        rng = st.rng("imagine", acc.token, prompt, request_id)
        ids = [st.uuid_from(rng) if st.options.seed is not None else str(uuid.uuid4()) for _ in range(count)]
        stages = (("preview", 33), ("medium", 66)) if blocked else (("preview", 33), ("medium", 66), ("final", 100))
        for stage, pct in stages:
            if stage_delay:
                await asyncio.sleep(stage_delay)
            for order, image_id in enumerate(ids):
                if stage == "final":
                    data = await asyncio.to_thread(media.make_jpeg, width, height, image_id)
                    name = f"{image_id}.jpg"
                    key = f"users/{acc.user_id}/generated/{image_id}/image.jpg"
                    st.add_asset(acc, Asset(asset_id=image_id, key=key, mime="image/jpeg", name="image.jpg",
                                            create_time=st.clock.now(), generated=True, kind="imagine",
                                            source="IMAGINE_SELF_GENERATED_FILE_SOURCE", data=data,
                                            size=(width, height)))
                elif stage == "medium":
                    data = media.png_for(image_id + ":m", 128, 192, level=0)
                    name = f"{image_id}.png"
                else:
                    data = media.png_for(image_id + ":p", 48, 72, level=9)
                    name = f"{image_id}.png"
                st.put_public_image(name, data)
                ok = await send({"type": "image", "request_id": request_id, "id": image_id, "order": order,
                                 "url": f"{base}/{name}", "blob": base64.b64encode(data).decode(),
                                 "percentage_complete": pct})
                if not ok:
                    return False
        st.stats["ws.images"] += count
        return True
