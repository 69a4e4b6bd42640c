"""The serving floor: what Ray Serve itself costs per stream on this machine, with no gateway work.

Deploys a trivial streaming app (it reads the request body and answers with ``--chunks`` SSE
chunks written as one body, as a coalescing gateway does for a fast answer) and drives it with
the same closed-loop client as ``bench/chat.py``, next to the Grok simulator driven directly:

- ``asgi``: the app is a bare ASGI callable behind ``@serve.ingress``;
- ``fastapi``: the same answer from a FastAPI route returning a ``StreamingResponse``.

Both run with the gateway's Serve settings (HAProxy with direct ingress, user code on the
server's loop, ...: ``grok2api.server.configure_ingress_env``). The figure is the ceiling for any gateway that serves its
HTTP through Serve on this machine: the gateway's streams/s can only be lower.

    python bench/serve_floor.py --concurrency 64 --duration 8
"""


import argparse
import asyncio
import sys
import time
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.responses import StreamingResponse

sys.path.insert(0, str(Path(__file__).resolve().parent))
from chat import TOKENS, cpu_per_stream, cpu_snapshot, direct_body, fmt, free_port, sim_control, start_simulator  # noqa: E402
from loadgen import run_load  # noqa: E402

CHUNK = b'data: {"id":"chatcmpl-x","object":"chat.completion.chunk","choices":[{"index":0,"delta":{"content":"tok"}}]}\n\n'


def make_asgi(chunks: int):  # noqa: ANN201 - returns an ASGI app
    body = CHUNK * chunks + b"data: [DONE]\n\n"

    async def app(scope, receive, send) -> None:  # noqa: ANN001
        if scope["type"] != "http":
            return
        more = True
        while more:
            msg = await receive()
            more = msg.get("more_body", False)
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-type", b"text/event-stream"), (b"cache-control", b"no-cache")]})
        await send({"type": "http.response.body", "body": body})

    return app


def make_fastapi(chunks: int):  # noqa: ANN201
    app = FastAPI()
    body = CHUNK * chunks + b"data: [DONE]\n\n"

    @app.post("/v1/chat/completions")
    async def chat(request: Request) -> StreamingResponse:
        await request.body()

        async def gen():  # noqa: ANN202
            yield body

        return StreamingResponse(gen(), media_type="text/event-stream")

    return app


async def main_async(args: argparse.Namespace) -> None:
    import os

    from grok2api.server import configure_ingress_env

    configure_ingress_env("haproxy")  # the gateway's own Serve settings
    import ray
    from ray import serve

    sim, sim_url = start_simulator()
    try:
        sim_control(sim_url, "/_sim/tokens", {"token": TOKENS[0], "plan": "super", "quota_total": 10**9})
        port = free_port()
        ray.init(num_cpus=args.num_cpus, include_dashboard=False, log_to_driver=False)
        serve.start(http_options={"host": "127.0.0.1", "port": port})
        session_dir = ray._private.worker._global_node.get_session_dir_path()
        procs = {sim.pid: "simulator", os.getpid(): "client (bench driver)"}
        direct_url = sim_url + "/rest/app-chat/conversations/new"
        cookie = {"Cookie": f"sso={TOKENS[0]}; sso-rw={TOKENS[0]}"}
        gw_body = b'{"model":"grok-4.1-fast","stream":true,"messages":[{"role":"user","content":"hi"}]}'
        for variant in args.variants:
            make = make_asgi if variant == "asgi" else make_fastapi
            chunks = args.chunks

            @serve.deployment(ray_actor_options={"num_cpus": 0}, max_ongoing_requests=2048,
                              logging_config={"enable_access_log": False})
            @serve.ingress(lambda: make(chunks))  # a builder: Serve calls it in the replica
            class Floor:
                pass

            serve.run(Floor.bind(), name="floor", route_prefix="/")
            url = f"http://127.0.0.1:{port}/v1/chat/completions"
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline:
                probe = await run_load(url, gw_body, concurrency=1, duration=0.2)
                if probe.completed:
                    break
            await run_load(url, gw_body, concurrency=16, duration=1)  # warm-up
            for c in args.concurrency:
                direct = await run_load(direct_url, direct_body(args.tokens), concurrency=c, duration=args.duration,
                                        headers=cookie, warmup=0.5)
                cpu0 = cpu_snapshot(session_dir, procs)
                floor = await run_load(url, gw_body, concurrency=c, duration=args.duration, warmup=0.5)
                cpu = cpu_per_stream(cpu0, cpu_snapshot(session_dir, procs), floor.completed)
                print(f"{variant:8s} c={c:<4} direct {fmt(direct)}\n{'':15s}serve  {fmt(floor)}\n{'':15s}ratio "
                      f"{floor.rps / direct.rps if direct.rps else 0:.2f}  CPU ms/stream {cpu}", flush=True)
            serve.delete("floor")
    finally:
        try:
            serve.shutdown()
            ray.shutdown()
        finally:
            sim.terminate()
            sim.wait(timeout=10)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--concurrency", type=lambda s: [int(x) for x in s.split(",")], default=[64])
    parser.add_argument("--duration", type=float, default=8.0)
    parser.add_argument("--tokens", type=int, default=20, help="answer tokens of the direct simulator streams")
    parser.add_argument("--chunks", type=int, default=21, help="SSE chunks in the floor app's answer")
    parser.add_argument("--variants", type=lambda s: s.split(","), default=["asgi", "fastapi"])
    parser.add_argument("--num-cpus", type=int, default=2)
    asyncio.run(main_async(parser.parse_args()))


if __name__ == "__main__":
    main()
