"""Shared helpers for the simulator tests: a curl_cffi client (as the gateway uses) and NDJSON parsing."""

from __future__ import annotations

from typing import Any, AsyncIterator

import orjson
import pytest
from curl_cffi.requests import AsyncSession

from fixtures.simulator import SimulatorHandle

CHAT = "/rest/app-chat/conversations/new"


@pytest.fixture
async def client() -> AsyncIterator[AsyncSession]:
    async with AsyncSession(impersonate="chrome", timeout=15) as session:
        yield session


def chat_body(message: str, **overrides: Any) -> dict[str, Any]:
    """A V1-style payload (protocol README / chat.md §2.1), fast mode by default."""
    body: dict[str, Any] = {
        "deviceEnvInfo": {"darkModeEnabled": False, "devicePixelRatio": 2, "screenWidth": 2056,
                          "screenHeight": 1329, "viewportWidth": 2056, "viewportHeight": 1083},
        "disableMemory": True, "disableSearch": False, "disableSelfHarmShortCircuit": False,
        "disableTextFollowUps": False, "enableImageGeneration": True, "enableImageStreaming": True,
        "enableSideBySide": True, "fileAttachments": [], "forceConcise": False, "forceSideBySide": False,
        "imageAttachments": [], "imageGenerationCount": 2, "isAsyncChat": False, "isReasoning": False,
        "message": message, "modeId": "fast", "responseMetadata": {}, "returnImageBytes": False,
        "returnRawGrokInXaiRequest": False, "sendFinalMetadata": True, "temporary": True, "toolOverrides": {},
    }
    body.update(overrides)
    return body


async def post_chat(client: AsyncSession, sim: SimulatorHandle, token: str, message: str,
                    headers: dict[str, str] | None = None, **overrides: Any) -> tuple[int, bytes, Any]:
    r = await client.post(sim.base_url + CHAT, json=chat_body(message, **overrides),
                          cookies=sim.cookies(token), headers=headers or {})
    return r.status_code, r.content, r


def frames(raw: bytes) -> list[dict[str, Any]]:
    return [orjson.loads(line) for line in raw.split(b"\n") if line.strip()]


def responses(raw: bytes) -> list[dict[str, Any]]:
    return [f["result"]["response"] for f in frames(raw) if "response" in f.get("result", {})]


def answer_text(raw: bytes) -> str:
    return "".join(r["token"] for r in responses(raw)
                   if "token" in r and r.get("messageTag") == "final" and not r["isThinking"])


def model_response(raw: bytes) -> dict[str, Any]:
    found = [r["modelResponse"] for r in responses(raw) if "modelResponse" in r]
    assert len(found) == 1, found
    return found[0]
