"""upload-file validation, attachments, assets list/delete, downloads from the assets host."""

from __future__ import annotations

import base64
import struct
import zlib

from grok2api.simulator import media

from .conftest import post_chat

UP = "/rest/app-chat/upload-file"


def _one_pixel_png() -> bytes:
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    raw = zlib.compress(b"\x00\xff\x00\x00")
    png = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", 1, 1, 8, 2, 0, 0, 0))
    png += chunk(b"IDAT", raw) + chunk(b"tEXt", b"c" * 120) + chunk(b"IEND", b"")
    return png


async def _upload(client, sim, token, data: bytes | str, mime="image/png", name="file.png"):
    content = data if isinstance(data, str) else base64.b64encode(data).decode()
    r = await client.post(sim.base_url + UP, json={"fileName": name, "fileMimeType": mime, "content": content},
                          cookies=sim.cookies(token))
    return r.status_code, r.json()


async def test_upload_validation(sim, client):
    status, body = await _upload(client, sim, "u", "not base64!!")
    assert status == 400 and body["error"]["code"] == 3
    status, body = await _upload(client, sim, "u", b"\x89PNG tiny")
    assert status == 400 and body["error"]["code"] == 3
    status, body = await _upload(client, sim, "u", _one_pixel_png())
    assert status == 400 and body["error"]["code"] == 3
    r = await client.post(sim.base_url + UP, json={"fileName": "a"}, cookies=sim.cookies("u"))
    assert r.status_code == 400


async def test_upload_attach_list_download_delete(sim, client):
    png = media.make_png(32, 32, seed="up")
    status, body = await _upload(client, sim, "u", png)
    assert status == 200
    fid = body["fileMetadataId"]
    uid = sim.account("u")["user_id"]
    assert body["fileUri"] == f"users/{uid}/{fid}/content"
    assert body["fileMimeType"] == "image/png" and body["fileName"] == "file.png" and body["createTime"]
    # chat accepts the id as an attachment (of this token only)
    assert (await post_chat(client, sim, "u", "describe", fileAttachments=[fid]))[0] == 200
    assert (await post_chat(client, sim, "other", "describe", fileAttachments=[fid]))[0] == 400
    # the assets host serves the same bytes, with cookies only
    r = await client.get(f"{sim.assets_url}/{body['fileUri']}", cookies=sim.cookies("u"))
    assert r.status_code == 200 and r.content == png and r.headers["content-type"] == "image/png"
    r = await client.get(f"{sim.assets_url}/{body['fileUri']}")
    assert r.status_code == 401
    # listed, deletable; deleted ids are no longer attachable
    r = await client.get(sim.base_url + "/rest/assets?pageSize=50&orderBy=ORDER_BY_LAST_USE_TIME"
                         "&source=SOURCE_ANY&isLatest=true", cookies=sim.cookies("u"))
    assets = r.json()["assets"]
    assert [a["assetId"] for a in assets] == [fid] and "nextPageToken" not in r.json()
    assert assets[0]["key"] == body["fileUri"] and assets[0]["mimeType"] == "image/png"
    r = await client.delete(f"{sim.base_url}/rest/assets-metadata/{fid}", cookies=sim.cookies("u"))
    assert r.status_code == 200
    r = await client.delete(f"{sim.base_url}/rest/assets-metadata/{fid}", cookies=sim.cookies("u"))
    assert r.status_code == 404 and r.json()["error"]["code"] == 5
    assert (await post_chat(client, sim, "u", "x", fileAttachments=[fid]))[0] == 400
    r = await client.get(f"{sim.assets_url}/{body['fileUri']}", cookies=sim.cookies("u"))
    assert r.status_code == 404


async def test_assets_pagination(sim, client):
    for i in range(5):
        assert (await _upload(client, sim, "p", media.make_png(16, 16, seed=str(i)) + b"\x00" * i))[0] == 200
    seen, token, pages = [], None, 0
    while True:
        url = sim.base_url + "/rest/assets?pageSize=2" + (f"&pageToken={token}" if token else "")
        data = (await client.get(url, cookies=sim.cookies("p"))).json()
        seen += [a["assetId"] for a in data["assets"]]
        pages += 1
        token = data.get("nextPageToken")
        if not token:
            break
    assert pages == 3 and len(set(seen)) == 5


async def test_generated_assets_are_listed_and_deletable(sim, client):
    _, raw, _ = await post_chat(client, sim, "g", "draw two cats")
    data = (await client.get(sim.base_url + "/rest/assets", cookies=sim.cookies("g"))).json()
    assert len(data["assets"]) == 2 and all(a["isModelGenerated"] for a in data["assets"])
    for a in data["assets"]:
        assert (await client.delete(f"{sim.base_url}/rest/assets-metadata/{a['assetId']}",
                                    cookies=sim.cookies("g"))).status_code == 200
    assert (await client.get(sim.base_url + "/rest/assets", cookies=sim.cookies("g"))).json() == {"assets": []}


async def test_download_faults(sim, client):
    png = media.make_png(64, 64, seed="dl")
    _, body = await _upload(client, sim, "d", png)
    url = f"{sim.assets_url}/{body['fileUri']}"
    for fault, status in (("401", 401), ("403", 403), ("404", 404)):
        r = await client.get(url, cookies=sim.cookies("d"), headers={"x-sim-fault": fault})
        assert r.status_code == status
    try:
        r = await client.get(url, cookies=sim.cookies("d"), headers={"x-sim-fault": "truncate:100"})
    except Exception:  # noqa: BLE001 - a short body is reported as a transfer error
        pass
    else:
        raise AssertionError(f"truncated download completed with {len(r.content)} bytes")
