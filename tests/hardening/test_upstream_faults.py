"""Every upstream fault the simulator can script, through the live gateway, with one token in the pool.

For each fault: the status and error code the OpenAI client sees (or, once streaming began, the
in-band error event and ``[DONE]``), how many upstream calls the gateway made, what happened to
the token (``fail_count``, ``status``, quota), that the token never appears in what the client
sees, and that the replica serves the next request normally. ``docs/reliability.md`` lists the
same table. (Covered in ``tests/gateway/test_chat.py`` and not repeated here: 429 rotation to a
second token, three 401s expiring a token, 503 on every token, reset and stall mid-stream.)
"""

from __future__ import annotations

import json
import time
import uuid
from dataclasses import dataclass

import httpx
import pytest

from support import chat_requests, wait_for


@dataclass(frozen=True)
class Case:
    fault: str
    stream: bool
    status: int  # HTTP status the client gets
    code: str | None = None  # error code (HTTP error body, or the in-band event when status is 200)
    token_status: str = "active"
    fail_count: int = 0
    charged: bool = False  # the request counted as a success on the token (use_count +1)
    calls: int = 1  # upstream chat calls made
    answer: bool = False  # the full echo answer arrives
    retry_after: str | None = None
    slow: float = 0.0  # at least this many seconds
    marker: str = ""  # simulator pacing marker added to the prompt


MAX_RETRY = 3  # retry.max_retry default: challenge/anti-bot are retried on the same token

CASES = [
    # -- refused before the first byte: an HTTP error in the OpenAI shape ----------------------
    Case("401", False, 502, "upstream_auth_failed", fail_count=1),
    Case("cloudflare", False, 502, "upstream_challenge", calls=MAX_RETRY),
    Case("antibot", True, 502, "anti_bot_rejected", calls=MAX_RETRY),
    Case("antibot_inband", False, 502, "anti_bot_rejected", calls=MAX_RETRY),
    Case("blocked", False, 502, "upstream_account_blocked", token_status="disabled"),
    Case("429:30", False, 429, "rate_limit_exceeded", token_status="cooling", retry_after="30"),
    Case("response_error", False, 429, "rate_limit_exceeded", token_status="cooling"),
    Case("error_after:3:8", False, 429, "rate_limit_exceeded", token_status="cooling"),
    Case("500", False, 502, "upstream_error"),
    Case("502", True, 502, "upstream_error"),
    Case("504:json", False, 502, "upstream_error"),
    Case("error_after:3", False, 502, "upstream_error"),
    Case("stream_errors", False, 502, "upstream_error"),
    Case("400", False, 400, "upstream_bad_request"),
    Case("reset_after:0", False, 502, "upstream_connection_error"),
    Case("reset_after:3", False, 502, "upstream_connection_error"),
    Case("stall:0", True, 504, "stream_idle_timeout", slow=2.5),
    Case("stall:3", False, 504, "stream_idle_timeout", slow=2.5),
    # -- after the first byte: 200, then an in-band error event and [DONE] ------------------------
    Case("error_after:8", True, 200, "upstream_error", marker="[[sim:delay_ms=40]]"),
    # -- survivable: the answer arrives ----------------------------------------------------------------
    Case("slow_first_byte:1200", True, 200, charged=True, answer=True, slow=1.1),
    Case("malformed:3:garbage", True, 200, charged=True, answer=True),
    Case("malformed:3:nonobject", False, 200, charged=True, answer=True),
    Case("malformed:3:unknown_key", False, 200, charged=True, answer=True),
    Case("malformed:3:two_per_line", True, 200, charged=True, answer=True),
    # -- truncated streams (the body ends before the answer's soft stop / modelResponse) are errors ------
    Case("close_after:6", True, 200, "upstream_error"),
    Case("malformed:3:truncated", False, 502, "upstream_error"),
]


def _id(case: Case) -> str:
    return f"{case.fault}-{'stream' if case.stream else 'json'}"


def _events(text: str) -> list[str]:
    return [line[6:] for line in text.splitlines() if line.startswith("data: ")]


@pytest.mark.parametrize("case", CASES, ids=_id)
def test_upstream_fault(pool, case: Case) -> None:
    token = f"tok-fault-{uuid.uuid4().hex}"
    pool.add_tokens([token])
    pool.sim.set_fault(case.fault, token=token, path="chat")
    prompt = f"fault probe {uuid.uuid4().hex[:8]}"
    t0 = time.monotonic()
    r = httpx.post(pool.api_url + "/chat/completions", timeout=60,
                   headers={"Authorization": f"Bearer {pool.api_key}"},
                   json={"model": "grok-4", "stream": case.stream,
                         "messages": [{"role": "user", "content": f"{prompt} {case.marker}".strip()}]})
    elapsed = time.monotonic() - t0

    # What the client sees.
    assert r.status_code == case.status, r.text[:500]
    assert token not in r.text and token not in str(r.headers)
    assert elapsed >= case.slow and elapsed < 30
    if case.status != 200:
        err = r.json()["error"]
        assert set(err) == {"message", "type", "param", "code"}
        assert err["code"] == case.code
        assert r.headers.get("retry-after") == case.retry_after
    elif case.stream:
        events = _events(r.text)
        assert events and events[-1] == "[DONE]"
        if case.code:
            assert f'"code":"{case.code}"' in events[-2].replace(" ", "")
            assert "Echo:" in r.text  # what arrived before the fault was delivered
        chunks = [json.loads(ev) for ev in events[:-1]]
        text = "".join((c["choices"][0]["delta"].get("content") or "") for c in chunks if c.get("choices"))
        if case.answer:
            assert text.startswith(f"Echo: {prompt}")
    else:
        message = r.json()["choices"][0]["message"]
        assert message["role"] == "assistant"
        if case.answer:
            assert message["content"].startswith(f"Echo: {prompt}")

    # What the gateway did upstream and to the token.
    assert len(chat_requests(pool.sim, token)) == case.calls

    def settled() -> dict | None:
        rec = pool.tokens()[token]
        ok = (rec["status"] == case.token_status and rec["fail_count"] == case.fail_count
              and rec["use_count"] == (1 if case.charged else 0))
        return rec if ok else None

    time.sleep(0.6)  # past the replica's settle interval, so "unchanged" is checked after the outcome landed
    rec = wait_for(settled, timeout=5)
    assert rec, f"token state: {pool.tokens()[token]}"
    if case.token_status == "cooling":
        assert rec["quota"] == 0

    # The replica serves the next request: on the same token when it is still usable, else on a fresh one.
    pool.sim.clear_faults()
    follow_up_token = token
    if case.token_status != "active":
        follow_up_token = f"tok-fresh-{uuid.uuid4().hex}"
        pool.add_tokens([follow_up_token])
    before = len(chat_requests(pool.sim, token))
    resp = pool.client().chat.completions.create(model="grok-4", stream=False,
                                                 messages=[{"role": "user", "content": "next one"}])
    assert resp.choices[0].message.content.startswith("Echo: next one")
    assert len(chat_requests(pool.sim, follow_up_token)) >= 1
    if follow_up_token != token:
        assert len(chat_requests(pool.sim, token)) == before  # the failed token was not used again
