"""The simulator's aiohttp application: one port serving every Grok host.

Routes (paths as on the real hosts):

* grok.com REST: ``/rest/app-chat/conversations/new``, ``/rest/app-chat/upload-file``,
  ``/rest/rate-limits``, ``/rest/assets``, ``/rest/assets-metadata/{id}``,
  ``/rest/media/post/create``, ``/rest/media/video/upscale``, ``/rest/auth/set-birth-date``,
  ``/rest/livekit/tokens``, ``/api/auth/session``
* grok.com gRPC-web: ``/auth_mgmt.AuthManagement/UpdateUserFeatureControls``
* accounts.x.ai gRPC-web: ``/auth_mgmt.AuthManagement/SetTosAcceptedVersion``
* grok.com WebSocket: ``/ws/imagine/listen``
* assets.grok.com: ``/users/<uid>/...`` (optionally under ``Options.assets_prefix``)
* public image hosts: ``/imagine-public/images/<id>.(png|jpg)``, ``/sim-images/<id>.jpg``
* the control API: ``/_sim/...`` (see :mod:`grok2api.simulator.control`)
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
import hmac
import logging
import socket
import struct
import time
import uuid
from datetime import date
from typing import Any, Awaitable, Callable

import orjson
from aiohttp import web

from grok2api.simulator import errors, grpcweb, media
from grok2api.simulator.faults import (
    STATUS_FAULTS, Fault, FaultError, category_of, first, parse_faults, parse_markers,
)
from grok2api.simulator.scenarios import SCENARIOS, ChatRequest, Plan, build_stream, choose_scenario, usage_limit_stream
from grok2api.storage.base import mask_token
from grok2api.simulator.state import (
    HIGH_COST, KNOWN_MODEL_MODES, KNOWN_MODEL_NAMES, MODE_IDS, Account, Asset, SimState, effort_cost, iso_ms,
)

log = logging.getLogger("grok2api.simulator")

STATE_KEY: web.AppKey[SimState] = web.AppKey("sim_state", SimState)
_JSON_CT = "application/json"
_LIVEKIT_SECRET = b"grok-simulator-livekit"


# --------------------------------------------------------------------------- request helpers


def sso_token(request: web.Request) -> str | None:
    """The session token when the ``sso`` and ``sso-rw`` cookies are present and equal."""
    cookies = request.cookies
    sso = cookies.get("sso")
    if not sso or cookies.get("sso-rw") != sso:
        return None
    return sso


def public_base(request: web.Request) -> str:
    return f"{request.scheme}://{request.host}"


def header_options(request: web.Request) -> dict[str, str]:
    opts: dict[str, str] = {}
    raw = request.headers.get("x-sim-options")
    if raw:
        for item in raw.split(";"):
            if "=" in item:
                k, v = item.split("=", 1)
                opts[k.strip().lower()] = v.strip()
    scenario = request.headers.get("x-sim-scenario")
    if scenario:
        opts["scenario"] = scenario.strip()
    return opts


@web.middleware
async def record_middleware(request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
                            ) -> web.StreamResponse:
    st = request.app[STATE_KEY]
    path = request.path
    if path.startswith("/_sim/"):
        return await handler(request)
    body: Any = None
    if request.can_read_body:
        raw = await request.read()
        ctype = request.headers.get("Content-Type", "")
        if "json" in ctype:
            try:
                body = orjson.loads(raw) if raw else None
            except orjson.JSONDecodeError:
                body = None
                request["bad_json"] = True
        elif raw:
            body = {"_hex": raw.hex()} if len(raw) <= 4096 else {"_len": len(raw)}
        request["json"] = body
    category = category_of(path)
    st.stats[f"requests.{category}"] += 1
    if st.options.record:
        token = sso_token(request)
        st.record({
            "time": time.time(), "method": request.method, "path": path, "query": request.query_string,
            "category": category, "token": token,
            "headers": {str(k): v for k, v in request.headers.items()}, "json": body,
        })
    return await handler(request)


class Gate:
    """Checks every Grok route applies: faults, Cloudflare/statsig policy, session cookies."""

    def __init__(self, st: SimState) -> None:
        self.st = st

    async def __call__(self, request: web.Request, category: str, extra: list[Fault] | None = None,
                       statsig: bool = True) -> tuple[Account | None, list[Fault], web.StreamResponse | None]:
        st = self.st
        token = sso_token(request)
        try:
            faults = parse_faults(request.headers.get("x-sim-fault"))
        except FaultError as exc:
            return None, [], errors.bad_request(f"simulator: {exc}")
        if extra:
            faults += extra
        faults += st.faults.take(token, request.path, category)
        slow = first(faults, ["slow_first_byte"])
        if slow is not None:
            await asyncio.sleep(slow.int_arg(0, 1000) / 1000.0)
        for f in faults:
            if f.name in STATUS_FAULTS:
                st.stats[f"faults.{f.name}"] += 1
                return None, faults, errors.for_fault(f)
        opts = st.options
        if opts.cf_clearance and category != "download" and request.cookies.get("cf_clearance") != opts.cf_clearance:
            return None, faults, errors.cloudflare_challenge()
        if statsig and opts.statsig != "off" and not _statsig_ok(request.headers.get("x-statsig-id", ""), opts.statsig):
            return None, faults, errors.anti_bot()
        if token is None:
            return None, faults, errors.unauthorized()
        acc = st.lookup(token)
        if acc is None or acc.state == "expired":
            log.debug("401 for %s %s (token %s)", request.method, request.path, mask_token(token))
            return None, faults, errors.unauthorized()
        if acc.state == "blocked":
            return None, faults, errors.blocked()
        return acc, faults, None


def _statsig_ok(value: str, policy: str) -> bool:
    if not value:
        return False
    try:
        decoded = base64.b64decode(value + "=" * (-len(value) % 4), validate=True)
    except (binascii.Error, ValueError):
        return False
    if policy == "base64":
        return True
    if policy == "reject-e":
        return not decoded.startswith(b"e:")
    if policy == "x1":
        return decoded.startswith(b"x1:") or len(decoded) == 70
    return True


async def _abort(request: web.Request) -> None:
    """Reset the TCP connection once what was written has left the buffer (RST, no chunk terminator)."""
    transport = request.transport
    if transport is None:
        return
    for _ in range(200):
        if transport.get_write_buffer_size() == 0:
            break
        await asyncio.sleep(0.005)
    await asyncio.sleep(0.01)
    sock = transport.get_extra_info("socket")
    if sock is not None:
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        except (OSError, AttributeError):
            pass
    transport.abort()


async def write_plan(request: web.Request, plan: Plan, content_type: str = "application/json") -> web.StreamResponse:
    resp = web.StreamResponse(status=200, headers={"Content-Type": content_type, "Cache-Control": "no-store"})
    await resp.prepare(request)
    buf: list[bytes] = []
    try:
        for delay, line in plan.frames:
            if delay > 0:
                if buf:
                    await resp.write(b"".join(buf))
                    buf.clear()
                await asyncio.sleep(delay)
            if line:
                buf.append(line)
        if buf:
            await resp.write(b"".join(buf))
        if plan.end == "reset":
            await _abort(request)
            return resp
        await resp.write_eof()
        request.app[STATE_KEY].stats["streams.completed"] += 1
    except (ConnectionResetError, ConnectionError):
        request.app[STATE_KEY].stats["streams.client_gone"] += 1
    except asyncio.CancelledError:  # aiohttp cancels the handler when the client disconnects
        request.app[STATE_KEY].stats["streams.client_gone"] += 1
        raise
    return resp


# --------------------------------------------------------------------------- handlers


class Handlers:
    def __init__(self, st: SimState) -> None:
        self.st = st
        self.gate = Gate(st)

    # -- chat ------------------------------------------------------------------
    async def chat(self, request: web.Request) -> web.StreamResponse:
        st = self.st
        body = request.get("json")
        message = body.get("message") if isinstance(body, dict) else None
        markers: dict[str, str] = {}
        clean = ""
        marker_faults: list[Fault] = []
        if isinstance(message, str):
            markers, clean = parse_markers(message)
            try:
                marker_faults = parse_faults(markers.get("fault"))
            except FaultError as exc:
                return errors.bad_request(f"simulator: {exc}")
        acc, faults, denied = await self.gate(request, "chat", marker_faults)
        if denied is not None:
            return denied
        assert acc is not None
        if not isinstance(body, dict):
            return errors.bad_request("Invalid JSON payload")
        if not isinstance(message, str):
            return errors.bad_request("message: expected a string")
        mode_id = body.get("modeId")
        model_name = body.get("modelName")
        model_mode = body.get("modelMode")
        if mode_id is not None:
            if mode_id not in MODE_IDS:
                return errors.bad_request(f"Unknown modeId {mode_id!r}")
            mode = mode_id
            model = model_name if model_name in KNOWN_MODEL_NAMES else "grok-4-1-thinking-1129"
        else:
            if model_name not in KNOWN_MODEL_NAMES:
                return errors.bad_request(f"Unknown modelName {model_name!r}")
            if model_mode is not None and model_mode not in KNOWN_MODEL_MODES:
                return errors.bad_request(f"Unknown modelMode {model_mode!r}")
            mode = model_mode or "MODEL_MODE_FAST"
            model = model_name
        attachments = body.get("fileAttachments") or []
        if not isinstance(attachments, list) or any(a not in acc.uploads for a in attachments):
            return errors.bad_request("Unknown file attachment")
        options = {**header_options(request), **markers}
        scenario = choose_scenario(options.get("scenario"), mode, clean, body)
        if scenario not in SCENARIOS:
            return errors.bad_request(f"simulator: unknown scenario {scenario!r}")
        cost = HIGH_COST if scenario == "video" else effort_cost(mode)
        now = st.clock.now()
        req = ChatRequest(state=st, account=acc, body=body, message=clean, options=options, faults=faults,
                          mode=mode, model=model, effort="high" if cost >= HIGH_COST else "low",
                          scenario=scenario, public_base=public_base(request), seq=acc.chats)
        if not acc.try_consume(cost, now):
            st.stats["quota_exhausted"] += 1
            if scenario == "image_lite":
                return await write_plan(request, usage_limit_stream(req))
            retry = st.options.retry_after
            return errors.too_many(acc.wait_seconds(now) if retry == -1 else retry)
        acc.chats += 1
        st.stats["streams"] += 1
        plan = build_stream(req)
        return await write_plan(request, plan)

    # -- upload ----------------------------------------------------------------
    async def upload(self, request: web.Request) -> web.StreamResponse:
        acc, _, denied = await self.gate(request, "upload")
        if denied is not None:
            return denied
        assert acc is not None
        body = request.get("json")
        if not isinstance(body, dict):
            return errors.bad_request("Invalid JSON payload")
        name, mime, content = body.get("fileName"), body.get("fileMimeType"), body.get("content")
        if not isinstance(name, str) or not isinstance(mime, str) or not isinstance(content, str):
            return errors.bad_request("fileName, fileMimeType and content are required")
        try:
            data = base64.b64decode(content, validate=True)
        except (binascii.Error, ValueError):
            return errors.bad_request("content is not valid base64")
        if not data:
            return errors.bad_request("empty file")
        if mime.startswith("image/") and (len(data) < 100 or _is_one_pixel(data)):
            return errors.bad_request("Image is too small")
        st = self.st
        rng = st.rng("upload", acc.token, name, len(acc.assets), hashlib.sha256(data).hexdigest())
        file_id = st.uuid_from(rng) if st.options.seed is not None else str(uuid.uuid4())
        now = st.clock.now()
        key = f"users/{acc.user_id}/{file_id}/content"
        st.add_asset(acc, Asset(asset_id=file_id, key=key, mime=mime, name=name, create_time=now, data=data))
        acc.uploads.add(file_id)
        return web.json_response({
            "fileMetadataId": file_id, "fileMimeType": mime, "fileName": name, "fileUri": key,
            "parsedFileUri": "", "createTime": iso_ms(now), "fileSource": "SELF_UPLOAD_FILE_SOURCE",
        }, dumps=_dumps)

    # -- rate limits -----------------------------------------------------------
    async def rate_limits(self, request: web.Request) -> web.StreamResponse:
        acc, _, denied = await self.gate(request, "rate_limits")
        if denied is not None:
            return denied
        assert acc is not None
        body = request.get("json")
        body = body if isinstance(body, dict) else {}
        name = body.get("modelName") or "grok-3"
        now = self.st.clock.now()
        remaining = acc.remaining(now)
        wait = acc.wait_seconds(now)
        if name in MODE_IDS:
            cost = effort_cost(name)
            out: dict[str, Any] = {
                "windowSizeSeconds": acc.window_seconds,
                "remainingQueries": remaining // cost,
                "totalQueries": acc.quota_total // cost,
            }
            if remaining < cost:
                out["waitTimeSeconds"] = wait
            out["lowEffortRateLimits"] = None
            out["highEffortRateLimits"] = None
            return web.json_response(out, dumps=_dumps)
        if name not in KNOWN_MODEL_NAMES:
            return errors.not_found("Model not found")
        return web.json_response({
            "windowSizeSeconds": acc.window_seconds,
            "remainingQueries": remaining,
            "totalQueries": acc.quota_total,
            "remainingTokens": remaining,
            "totalTokens": acc.quota_total,
            "lowEffortRateLimits": {"cost": 1, "remainingQueries": remaining,
                                    "waitTimeSeconds": wait if remaining < 1 else 0},
            "highEffortRateLimits": {"cost": HIGH_COST, "remainingQueries": remaining // HIGH_COST,
                                     "waitTimeSeconds": wait if remaining < HIGH_COST else 0},
            "waitTimeSeconds": wait if remaining < 1 else 0,
            "preGenerationDelayMs": 0,
        }, dumps=_dumps)

    # -- assets ----------------------------------------------------------------
    async def assets_list(self, request: web.Request) -> web.StreamResponse:
        acc, _, denied = await self.gate(request, "assets")
        if denied is not None:
            return denied
        assert acc is not None
        q = request.query
        try:
            size = max(1, min(int(q.get("pageSize", "50")), 1000))
            offset = int(base64.urlsafe_b64decode(q["pageToken"]).decode()) if q.get("pageToken") else 0
        except (ValueError, binascii.Error, UnicodeDecodeError):
            return errors.bad_request("invalid pageSize or pageToken")
        items = sorted(acc.assets.values(), key=lambda a: (a.create_time, a.asset_id), reverse=True)
        page = items[offset:offset + size]
        out: dict[str, Any] = {"assets": [a.list_item() for a in page]}
        for item, asset in zip(out["assets"], page):
            if asset.data is None:
                item["sizeBytes"] = str(len(self._render(asset)))
        if offset + size < len(items):
            out["nextPageToken"] = base64.urlsafe_b64encode(str(offset + size).encode()).decode()
        return web.json_response(out, dumps=_dumps)

    async def asset_delete(self, request: web.Request) -> web.StreamResponse:
        acc, _, denied = await self.gate(request, "assets")
        if denied is not None:
            return denied
        assert acc is not None
        if not self.st.delete_asset(acc, request.match_info["asset_id"]):
            return errors.not_found("Asset not found")
        return web.json_response({})

    def _render(self, asset: Asset) -> bytes:
        if asset.data is not None:
            return asset.data
        w, h = asset.size
        if asset.kind == "video":
            return media.mp4_for(asset.key, seconds=max(1, min(w, 15)))
        if asset.kind == "video_hd":
            return media.mp4_for(asset.key, 224, 128, seconds=max(1, min(w, 15)))
        if asset.kind == "thumbnail":
            return media.jpeg_for(asset.key, 224, 128)
        return media.jpeg_for(asset.key, w, h)

    async def download(self, request: web.Request) -> web.StreamResponse:
        acc, faults, denied = await self.gate(request, "download", statsig=False)
        if denied is not None:
            return denied
        key = request.match_info["tail"]
        found = self.st.assets_by_key.get(key)
        if found is None:
            return errors.not_found("File not found")
        asset = found[1]
        data = self._render(asset)
        trunc = first(faults, ["truncate"])
        if trunc is not None:
            resp = web.StreamResponse(status=200, headers={"Content-Type": asset.mime})
            resp.content_length = len(data)
            await resp.prepare(request)
            await resp.write(data[: trunc.int_arg(0, len(data) // 2)])
            await _abort(request)
            return resp
        return web.Response(body=data, content_type=asset.mime,
                            headers={"Cache-Control": "private, max-age=31536000"})

    async def public_image(self, request: web.Request) -> web.StreamResponse:
        name = request.match_info["name"]
        stem, _, ext = name.rpartition(".")
        data = self.st.public_images.get(name)
        if ext == "png":
            return web.Response(body=data or media.png_for(stem, 96, 144), content_type="image/png")
        if ext in ("jpg", "jpeg"):
            return web.Response(body=data or media.jpeg_for(stem, 256, 256), content_type="image/jpeg")
        return errors.not_found()

    # -- media -----------------------------------------------------------------
    async def post_create(self, request: web.Request) -> web.StreamResponse:
        acc, _, denied = await self.gate(request, "media")
        if denied is not None:
            return denied
        assert acc is not None
        body = request.get("json")
        if not isinstance(body, dict) or body.get("mediaType") not in ("MEDIA_POST_TYPE_VIDEO",
                                                                       "MEDIA_POST_TYPE_IMAGE"):
            return errors.bad_request("mediaType must be MEDIA_POST_TYPE_VIDEO or MEDIA_POST_TYPE_IMAGE")
        st = self.st
        post_id = st.uuid_from(st.rng("post", acc.token, len(acc.posts))) if st.options.seed is not None \
            else str(uuid.uuid4())
        now = iso_ms(st.clock.now())
        post = {"id": post_id, "userId": acc.user_id, "createTime": now, "prompt": body.get("prompt") or "",
                "mediaType": body["mediaType"], "mediaUrl": body.get("mediaUrl") or "",
                "mimeType": "video/mp4" if body["mediaType"] == "MEDIA_POST_TYPE_VIDEO" else "image/jpeg",
                "originalPostId": "", "childPosts": [], "isPublic": False}
        acc.posts[post_id] = post
        return web.json_response({"post": post}, dumps=_dumps)

    async def upscale(self, request: web.Request) -> web.StreamResponse:
        acc, _, denied = await self.gate(request, "media")
        if denied is not None:
            return denied
        assert acc is not None
        body = request.get("json")
        video_id = body.get("videoId") if isinstance(body, dict) else None
        if not isinstance(video_id, str) or video_id not in acc.videos:
            return errors.not_found("Video not found")
        key = f"users/{acc.user_id}/generated/{video_id}/generated_video_hd.mp4"
        source = self.st.assets_by_key.get(f"users/{acc.user_id}/generated/{video_id}/generated_video.mp4")
        seconds = source[1].size[0] if source else 6
        self.st.add_asset(acc, Asset(asset_id=video_id, key=key, mime="video/mp4", name="generated_video_hd.mp4",
                                     create_time=self.st.clock.now(), generated=True, kind="video_hd",
                                     size=(seconds, 0)), listed=False)
        base = public_base(request) + self.st.options.assets_prefix
        return web.json_response({"hdMediaUrl": f"{base}/{key}"})

    # -- account ---------------------------------------------------------------
    async def birth_date(self, request: web.Request) -> web.StreamResponse:
        acc, _, denied = await self.gate(request, "auth")
        if denied is not None:
            return denied
        assert acc is not None
        body = request.get("json")
        raw = body.get("birthDate") if isinstance(body, dict) else None
        try:
            born = date.fromisoformat(raw) if isinstance(raw, str) and len(raw) == 10 else None
        except ValueError:
            born = None
        if born is None:
            return errors.bad_request("birthDate must be YYYY-MM-DD")
        today = date.fromtimestamp(self.st.clock.now())
        age = today.year - born.year - ((today.month, today.day) < (born.month, born.day))
        if age < 18 or age > 130:
            return errors.bad_request("User must be at least 18 years old")
        acc.birth_date = raw
        return web.json_response({})

    async def session(self, request: web.Request) -> web.StreamResponse:
        acc, _, denied = await self.gate(request, "auth")
        if denied is not None:
            return denied
        assert acc is not None
        return web.json_response({"user": {"userId": acc.user_id, "email": f"{acc.user_id[:8]}@sim.invalid",
                                           "tier": acc.plan}})

    async def livekit(self, request: web.Request) -> web.StreamResponse:
        acc, _, denied = await self.gate(request, "livekit")
        if denied is not None:
            return denied
        assert acc is not None
        body = request.get("json")
        if not isinstance(body, dict) or not isinstance(body.get("sessionPayload"), str):
            return errors.bad_request("sessionPayload: expected a JSON string")
        try:
            session = orjson.loads(body["sessionPayload"])
        except orjson.JSONDecodeError:
            return errors.bad_request("sessionPayload is not JSON")
        if not isinstance(session, dict):
            return errors.bad_request("sessionPayload must be an object")
        now = int(self.st.clock.now())
        room = f"grok-voice-{uuid.uuid4().hex[:12]}"
        claims = {
            "exp": now + 3600, "iss": "grok-simulator", "nbf": now, "sub": acc.user_id, "name": acc.user_id,
            "video": {"room": room, "roomJoin": True, "canPublish": True, "canSubscribe": True},
            "metadata": orjson.dumps(session).decode(),
        }
        return web.json_response({"token": _jwt(claims), "livekitUrl": body.get("livekitUrl")
                                  or "wss://livekit.grok.com", "roomName": room})

    # -- gRPC-web --------------------------------------------------------------
    async def _grpc(self, request: web.Request) -> tuple[Account | None, bytes | None, web.StreamResponse | None]:
        acc, _, denied = await self.gate(request, "grpc", statsig=False)
        if denied is not None:
            if denied.status == 401:
                return None, None, _grpc_response(16, errors.INVALID_SESSION)
            if denied.status == 403 and denied.content_type == _JSON_CT:
                return None, None, _grpc_response(7, "blocked-user" if acc is None else "permission denied")
            return None, None, denied
        if not request.headers.get("Content-Type", "").startswith("application/grpc-web"):
            return None, None, web.Response(status=415, text="unsupported content type")
        raw = await request.read()
        try:
            frames = grpcweb.parse_frames(raw)
        except grpcweb.FramingError as exc:
            return None, None, _grpc_response(13, f"invalid gRPC-web framing: {exc}")
        data = [p for flag, p in frames if flag == grpcweb.DATA]
        if len(data) != 1:
            return None, None, _grpc_response(13, "expected exactly one data frame")
        return acc, data[0], None

    async def nsfw(self, request: web.Request) -> web.StreamResponse:
        acc, msg, denied = await self._grpc(request)
        if denied is not None:
            return denied
        assert acc is not None and msg is not None
        try:
            enabled, names = grpcweb.parse_feature_controls(msg)
        except grpcweb.FramingError as exc:
            return _grpc_response(3, f"invalid message: {exc}")
        if "always_show_nsfw_content" not in names:
            return _grpc_response(3, "unknown feature control")
        if enabled and self.st.options.require_birth_date and not acc.birth_date:
            return _grpc_response(9, "birth date must be set before enabling this feature")
        acc.nsfw = enabled
        return _grpc_response(0, "", b"")

    async def tos(self, request: web.Request) -> web.StreamResponse:
        acc, msg, denied = await self._grpc(request)
        if denied is not None:
            return denied
        assert acc is not None and msg is not None
        try:
            version = grpcweb.parse_tos(msg)
        except grpcweb.FramingError as exc:
            return _grpc_response(3, f"invalid message: {exc}")
        if version is None:
            return _grpc_response(3, "missing ToS version")
        acc.tos_version = version
        return _grpc_response(0, "", b"")


def _grpc_response(status: int, message: str, payload: bytes | None = None) -> web.Response:
    body = (grpcweb.frame(payload) if payload is not None else b"") + grpcweb.trailer(status, message)
    return web.Response(status=200, body=body, headers={"Content-Type": grpcweb.CONTENT_TYPE,
                                                        "Access-Control-Expose-Headers": "grpc-status,grpc-message"})


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _jwt(claims: dict[str, Any]) -> str:
    head = _b64url(orjson.dumps({"alg": "HS256", "typ": "JWT"})) + "." + _b64url(orjson.dumps(claims))
    sig = hmac.new(_LIVEKIT_SECRET, head.encode(), hashlib.sha256).digest()
    return head + "." + _b64url(sig)


def _is_one_pixel(data: bytes) -> bool:
    if data.startswith(b"\x89PNG\r\n\x1a\n") and len(data) >= 24:
        w, h = struct.unpack(">II", data[16:24])
        return w * h <= 1
    if data[:6] in (b"GIF87a", b"GIF89a") and len(data) >= 10:
        w, h = struct.unpack("<HH", data[6:10])
        return w * h <= 1
    return False


def _dumps(obj: Any) -> str:
    return orjson.dumps(obj).decode()


def create_app(st: SimState) -> web.Application:
    from grok2api.simulator import control, imagine_ws

    app = web.Application(middlewares=[record_middleware], client_max_size=64 * 1024 * 1024)
    app[STATE_KEY] = st
    h = Handlers(st)
    r = app.router
    r.add_post("/rest/app-chat/conversations/new", h.chat)
    r.add_post("/rest/app-chat/upload-file", h.upload)
    r.add_post("/rest/rate-limits", h.rate_limits)
    r.add_get("/rest/assets", h.assets_list)
    r.add_delete("/rest/assets-metadata/{asset_id}", h.asset_delete)
    r.add_post("/rest/media/post/create", h.post_create)
    r.add_post("/rest/media/video/upscale", h.upscale)
    r.add_post("/rest/auth/set-birth-date", h.birth_date)
    r.add_get("/api/auth/session", h.session)
    r.add_post("/rest/livekit/tokens", h.livekit)
    r.add_post("/auth_mgmt.AuthManagement/UpdateUserFeatureControls", h.nsfw)
    r.add_post("/auth_mgmt.AuthManagement/SetTosAcceptedVersion", h.tos)
    r.add_get("/ws/imagine/listen", imagine_ws.Imagine(st, h.gate).handle)
    r.add_get("/imagine-public/images/{name}", h.public_image)
    r.add_get("/sim-images/{name}", h.public_image)
    prefix = st.options.assets_prefix.rstrip("/")
    r.add_get(prefix + "/{tail:users/.+}", h.download)
    control.add_routes(app, st)
    return app
