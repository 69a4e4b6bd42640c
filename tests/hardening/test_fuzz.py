"""Schemathesis against the live gateway's own ``/openapi.json``: no 5xx and no hang on any route.

Every operation gets generated bodies, parameters and headers (valid and invalid ones), sent with
the right key for its router (the API key for ``/v1``, the admin key for ``/v1/admin``) so the
fuzz reaches the handlers instead of stopping at 401 (401s are covered in ``test_auth.py``). Half
of the generated chat bodies get a real model id, so they get past the catalog lookup and run
all the way to the simulator on a real token. ``POST /v1/admin/login`` is left out: random
passwords are failed logins and would trip the replica's login limiter for everyone else in the
session; its bad bodies are covered by ``test_auth.py``.

Examples per operation: ``FUZZ_EXAMPLES`` (default 30) — raise it for a deeper local run.
"""

from __future__ import annotations

import os
import uuid
import zlib
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error

from grok2api.catalog import CATALOG, ModelKind
from support import chat_requests

EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "30"))
CALL_TIMEOUT = 45  # seconds: a request still running by then counts as a hang (and fails the test)
# Real model ids for generated chat bodies (video generation is slow by design; it is left out).
MODELS = [m.id for m in CATALOG if m.kind is not ModelKind.VIDEO]


def _operations() -> list[Any]:
    """Every documented operation x generation mode (from the app itself, so collection needs no server).

    Negative (schema-violating) data only for operations that take any input.
    """
    from grok2api.api.app import build_app

    doc = build_app(max_body_bytes=1).openapi()
    out = []
    for path, ops in doc["paths"].items():
        for method, op in ops.items():
            if path == "/v1/admin/login":
                continue
            modes = [GenerationMode.POSITIVE]
            if op.get("parameters") or op.get("requestBody"):
                modes.append(GenerationMode.NEGATIVE)
            out += [pytest.param(method.upper(), path, mode, id=f"{method.upper()} {path} {mode.value}")
                    for mode in modes]
    return out


def _realistic(case: Any) -> None:
    body = case.body
    if isinstance(body, dict) and isinstance(body.get("model"), str):
        h = zlib.crc32(body["model"].encode("utf-8", "replace"))
        if h % 2 == 0:
            body["model"] = MODELS[(h // 2) % len(MODELS)]


@pytest.mark.fuzz
@pytest.mark.parametrize("method, path, mode", _operations())
def test_no_route_answers_5xx_or_hangs(pool, method: str, path: str, mode: GenerationMode) -> None:
    chat = path == "/v1/chat/completions"
    if chat or path.startswith("/v1/admin/tokens"):
        pool.add_tokens([f"tok-fuzz-super-{uuid.uuid4().hex}"], pool="super", plan="super")
        pool.add_tokens([f"tok-fuzz-basic-{uuid.uuid4().hex}"])
    operation = schemathesis.openapi.from_url(pool.base_url + "/openapi.json")[path][method]
    key = pool.admin_key if path.startswith("/v1/admin/") else pool.api_key
    headers = {"Authorization": f"Bearer {key}", "X-Forwarded-For": "192.0.2.200"}

    @settings(max_examples=EXAMPLES, deadline=None, derandomize=True, database=None,
              phases=[Phase.explicit, Phase.generate], suppress_health_check=list(HealthCheck))
    @given(case=operation.as_strategy(generation_mode=mode))
    def fuzz(case: Any) -> None:
        _realistic(case)
        case.call_and_validate(base_url=pool.base_url, headers=headers, checks=[not_a_server_error],
                               timeout=CALL_TIMEOUT)

    fuzz()
    if chat and mode is GenerationMode.POSITIVE:
        assert chat_requests(pool.sim), "no generated chat request reached the upstream"
