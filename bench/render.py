"""Micro-benchmark of the chat hot path: NDJSON parsing and SSE rendering.

Measures, on a synthetic stream of N answer-token frames (the shape of chat.md §3.11 A):

- ``parse``: :class:`FrameParser` fed with raw chunks (several frames per chunk, like curl reads);
- ``parse_lines``: the same bytes split the way curl_cffi's ``aiter_lines`` does (``splitlines`` per chunk,
  one generator step per line) and then the same ``orjson.loads`` + ``frame_events`` per line — the
  alternative the transport avoids;
- ``parse_minimal``: ``aiter_lines``-style splitting + ``orjson.loads`` + a bare ``TokenEvent`` (no frame
  dispatch, no robustness) — a lower bound for what any parser can do in Python;
- ``render_coalesced``: ``ChatRenderer.feed_many`` with one batch per upstream read (the worker's use);
- ``render_per_token``: ``feed_many`` with one event per call (worst case: one SSE chunk per token);
- ``render_thinking``: thinking tokens (``reasoning_content`` mode, step-change logic);
- ``pipeline``: parse + render per chunk.

Run: ``python bench/render.py [--frames 200000] [--per-chunk 8]``. Prints frames/s and SSE chunks/s
(best of 5 runs each).
"""

from __future__ import annotations

import argparse
import asyncio
import time

import orjson

from grok2api.openai.render import ChatRenderer, RenderOptions
from grok2api.upstream.stream import FrameParser, TokenEvent, frame_events

RID = "9e8d7c6b-5a4f-4e3d-8c2b-1a0f9e8d7c6b"
WORDS = ("Tokyo ", "has ", "about ", "**14.2 ", "million** ", "residents ", "\"quoted\" ", "naïve ", "日本 ", "\n")


def make_chunks(frames: int, per_chunk: int, thinking: bool = False) -> list[bytes]:
    lines = []
    for i in range(frames):
        resp = {"token": WORDS[i % len(WORDS)], "isThinking": thinking, "isSoftStop": False, "responseId": RID,
                "messageTag": "summary" if thinking else "final"}
        if thinking:
            resp["messageStepId"] = i // 20
        lines.append(orjson.dumps({"result": {"response": resp}}) + b"\n")
    return [b"".join(lines[i:i + per_chunk]) for i in range(0, len(lines), per_chunk)]


def bench_parse(chunks: list[bytes]) -> int:
    p = FrameParser()
    n = 0
    for c in chunks:
        n += len(p.feed(c))
    return n


def _aiter_lines_like(chunks: list[bytes]):
    pending = None
    for chunk in chunks:
        if pending is not None:
            chunk = pending + chunk
        ls = chunk.splitlines()
        pending = ls.pop() if ls and ls[-1] and chunk[-1:] == ls[-1][-1:] else None
        yield from ls


def bench_parse_lines(chunks: list[bytes]) -> int:
    n = 0
    for line in _aiter_lines_like(chunks):
        line = line.strip()
        if not line:
            continue
        out: list = []
        frame_events(orjson.loads(line), out)
        n += len(out)
    return n


def bench_parse_minimal(chunks: list[bytes]) -> int:
    n = 0
    for line in _aiter_lines_like(chunks):
        line = line.strip()
        if not line:
            continue
        obj = orjson.loads(line)
        resp = obj["result"]["response"]
        TokenEvent(resp["token"], resp["isThinking"], resp.get("messageTag"), resp.get("messageStepId"),
                   resp.get("rolloutId"), resp.get("responseId"))
        n += 1
    return n


async def bench_render(batches: list[list], options: RenderOptions) -> tuple[int, int]:
    r = ChatRenderer(options)
    out = 0
    sse = 0
    for b in batches:
        data = await r.feed_many(b)
        out += len(data)
        sse += data.count(b"\n\n")
    data = await r.finish()
    return out + len(data), sse + data.count(b"\n\n")


async def bench_pipeline(chunks: list[bytes], options: RenderOptions) -> int:
    p = FrameParser()
    r = ChatRenderer(options)
    sse = 0
    for c in chunks:
        sse += (await r.feed_many(p.feed(c))).count(b"\n\n")
    return sse + (await r.finish()).count(b"\n\n")


def timed(label: str, frames: int, fn, extra: str = "", repeat: int = 5) -> float:
    """Best of ``repeat`` runs (the machine may be shared; the minimum is the least disturbed run)."""
    dt = float("inf")
    res = None
    for _ in range(repeat):
        t0 = time.perf_counter()
        res = fn()
        dt = min(dt, time.perf_counter() - t0)
    suffix = extra.format(res=res, dt=dt) if extra else ""
    print(f"{label:<20} {frames / dt:>12,.0f} frames/s  {dt * 1e6 / frames:6.2f} µs/frame {suffix}")
    return dt


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--frames", type=int, default=200_000)
    ap.add_argument("--per-chunk", type=int, default=8, help="frames per upstream read")
    args = ap.parse_args()
    n, k = args.frames, args.per_chunk
    chunks = make_chunks(n, k)
    think_chunks = make_chunks(n, k, thinking=True)
    opts = RenderOptions(model="grok-4.1-fast", created=0, completion_id="chatcmpl-bench")
    print(f"{n:,} token frames, {k} frames per read, {sum(map(len, chunks)) / 1e6:.1f} MB NDJSON")

    timed("parse", n, lambda: bench_parse(chunks))
    timed("parse_lines", n, lambda: bench_parse_lines(chunks))
    timed("parse_minimal", n, lambda: bench_parse_minimal(chunks))

    p = FrameParser()
    batches = [p.feed(c) for c in chunks]
    singles = [[e] for b in batches for e in b]
    p2 = FrameParser()
    think_batches = [p2.feed(c) for c in think_chunks]
    loop = asyncio.new_event_loop()
    timed("render_coalesced", n, lambda: loop.run_until_complete(bench_render(batches, opts)),
          "  {res[1]:,} SSE chunks ({res[1]:,}/{dt:.2f}s)")
    dt = timed("render_per_token", n, lambda: loop.run_until_complete(bench_render(singles, opts)))
    print(f"{'':<20} {n / dt:>12,.0f} SSE chunks/s (one chunk per token)")
    timed("render_thinking", n, lambda: loop.run_until_complete(bench_render(think_batches, opts)))
    timed("pipeline", n, lambda: loop.run_until_complete(bench_pipeline(chunks, opts)))
    loop.close()


if __name__ == "__main__":
    main()
