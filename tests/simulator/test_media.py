"""Media bytes (PNG/JPEG/MP4 decoders in mediacheck), video generation, posts, upscale."""

from __future__ import annotations

import pytest

from grok2api.simulator import media

from .conftest import model_response, post_chat, responses
from .mediacheck import check_jpeg, check_mp4, check_png


def test_png_decodes():
    assert check_png(media.make_png(40, 24, seed="a")) == (40, 24)
    big = media.make_png(128, 192, seed="m", level=0)
    assert check_png(big) == (128, 192) and len(big) > 30_000


@pytest.mark.parametrize("size", [(8, 8), (256, 256), (384, 576), (100, 60)])
def test_jpeg_decodes(size):
    w, h = check_jpeg(media.make_jpeg(*size, seed="x"))
    assert (w, h) == ((size[0] + 7) // 8 * 8, (size[1] + 7) // 8 * 8)


def test_mp4_structure():
    info = check_mp4(media.make_mp4(112, 64, seconds=6, seed="v"))
    assert info == {"samples": 12, "duration_ms": 6000}


def test_mp4_fails_check_when_corrupted():
    data = bytearray(media.make_mp4(seed="c"))
    data[-5] ^= 0xFF  # still parses; but break a box size:
    data[3] = 0x07
    with pytest.raises(AssertionError):
        check_mp4(bytes(data))


async def test_video_generation_progress_and_real_mp4(sim, client):
    r = await client.post(sim.base_url + "/rest/media/post/create",
                          json={"mediaType": "MEDIA_POST_TYPE_VIDEO", "prompt": "a fox"}, cookies=sim.cookies("v"))
    assert r.status_code == 200
    post_id = r.json()["post"]["id"]
    override = {"modelMap": {"videoGenModelConfig": {"aspectRatio": "16:9", "videoLength": 6,
                                                    "resolutionName": "480p", "parentPostId": post_id}}}
    status, raw, _ = await post_chat(client, sim, "v", "a fox running --mode=normal", modelName="grok-3",
                                     modelMode="MODEL_MODE_FAST", modeId=None, toolOverrides={"videoGen": True},
                                     responseMetadata={"requestModelDetails": {"modelId": "grok-3"},
                                                       "modelConfigOverride": override})
    assert status == 200
    frames = [x["streamingVideoGenerationResponse"] for x in responses(raw)
              if "streamingVideoGenerationResponse" in x]
    progress = [f["progress"] for f in frames]
    assert progress[0] == 0 and progress[-1] == 100 and progress == sorted(progress)
    last = frames[-1]
    assert last["moderated"] is False and last["videoPostId"] == post_id
    assert last["videoUrl"].endswith("/generated_video.mp4") and last["thumbnailImageUrl"].endswith(".jpg")
    assert model_response(raw)["fileAttachments"] == [last["videoUrl"]]
    video = await client.get(f"{sim.assets_url}/{last['videoUrl']}", cookies=sim.cookies("v"))
    assert video.status_code == 200 and video.headers["content-type"] == "video/mp4"
    assert check_mp4(video.content)["duration_ms"] == 6000
    thumb = await client.get(f"{sim.assets_url}/{last['thumbnailImageUrl']}", cookies=sim.cookies("v"))
    assert check_jpeg(thumb.content)
    # upscale to HD
    r = await client.post(sim.base_url + "/rest/media/video/upscale", json={"videoId": last["videoId"]},
                          cookies=sim.cookies("v"))
    assert r.status_code == 200
    hd = await client.get(r.json()["hdMediaUrl"], cookies=sim.cookies("v"))
    assert hd.status_code == 200 and check_mp4(hd.content)["samples"] == 12
    r = await client.post(sim.base_url + "/rest/media/video/upscale", json={"videoId": "nope"},
                          cookies=sim.cookies("v"))
    assert r.status_code == 404


async def test_video_pacing_and_stuck(sim, client):
    import time

    t0 = time.monotonic()
    _, raw, _ = await post_chat(client, sim, "v", "x [[sim:video_ms=500]]", toolOverrides={"videoGen": True})
    assert time.monotonic() - t0 >= 0.45
    _, raw, _ = await post_chat(client, sim, "v", "x [[sim:fault=video_stuck:40:100]]",
                                toolOverrides={"videoGen": True})
    progress = [x["streamingVideoGenerationResponse"]["progress"] for x in responses(raw)
                if "streamingVideoGenerationResponse" in x]
    assert max(progress) == 40 and 100 not in progress
    assert model_response(raw)["fileAttachments"] == []


async def test_moderated_video(sim, client):
    _, raw, _ = await post_chat(client, sim, "v", "x", toolOverrides={"videoGen": True},
                                headers={"x-sim-fault": "moderated"})
    last = [x["streamingVideoGenerationResponse"] for x in responses(raw)
            if "streamingVideoGenerationResponse" in x][-1]
    assert last["progress"] == 100 and last["moderated"] is True and "videoUrl" not in last


async def test_post_create_validation(sim, client):
    r = await client.post(sim.base_url + "/rest/media/post/create", json={"mediaType": "PHOTO"},
                          cookies=sim.cookies("v"))
    assert r.status_code == 400
    r = await client.post(sim.base_url + "/rest/media/post/create",
                          json={"mediaType": "MEDIA_POST_TYPE_IMAGE", "mediaUrl": "https://assets/x.png"},
                          cookies=sim.cookies("v"))
    post = r.json()["post"]
    assert post["mediaType"] == "MEDIA_POST_TYPE_IMAGE" and post["mediaUrl"] == "https://assets/x.png"
    assert post["id"] in sim.account("v")["post_ids"]
