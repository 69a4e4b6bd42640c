"""First light: the official OpenAI client through Ray Serve to the simulator and back."""

from __future__ import annotations


def test_stream_and_non_stream(pool) -> None:
    pool.add_tokens(["smoke-token-aaaaaaaaaaaaaaaa"])
    client = pool.client()
    resp = client.chat.completions.create(model="grok-4", messages=[{"role": "user", "content": "hello there"}],
                                          stream=False)
    assert resp.choices[0].message.content
    chunks = list(client.chat.completions.create(model="grok-4", stream=True,
                                                 messages=[{"role": "user", "content": "hello again"}]))
    assert chunks[0].choices[0].delta.role == "assistant"
    assert chunks[-1].choices[0].finish_reason == "stop"
    text = "".join(c.choices[0].delta.content or "" for c in chunks)
    assert text
