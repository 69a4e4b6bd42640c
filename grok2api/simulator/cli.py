"""Command line of the simulator: ``python -m grok2api.simulator`` / ``grok2api simulate``."""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sys

from aiohttp import web

from grok2api.simulator.state import Options, SimState

log = logging.getLogger("grok2api.simulator")


def configure_parser(parser: argparse.ArgumentParser) -> None:
    """Add the simulator's options to ``parser``."""
    parser.add_argument("--host", default="127.0.0.1", help="interface to listen on (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=8790, help="port; 0 picks a free one (default 8790)")
    parser.add_argument("--seed", type=int, default=None, help="make ids and answer text deterministic")
    parser.add_argument("--strict-tokens", action="store_true",
                        help="reject unknown tokens with 401 instead of auto-registering them as basic")
    parser.add_argument("--token", action="append", default=[], metavar="TOKEN[:PLAN]",
                        help="pre-register a token (plan basic|super|heavy); repeatable")
    parser.add_argument("--tokens", type=int, default=20, dest="answer_tokens",
                        help="answer tokens per chat stream (default 20)")
    parser.add_argument("--token-delay-ms", type=float, default=None, help="delay between stream tokens")
    parser.add_argument("--ttft-ms", type=float, default=None, help="delay before the first token")
    parser.add_argument("--video-ms", type=float, default=None, help="duration of video progress (0→100)")
    parser.add_argument("--realistic", action="store_true",
                        help="realistic pacing: ttft 400 ms, 25 ms per token, video over 6 s "
                             "(explicit --*-ms flags win)")
    parser.add_argument("--statsig", choices=["off", "base64", "reject-e", "x1"], default="off",
                        help="x-statsig-id policy; failures get the 403 anti-bot JSON")
    parser.add_argument("--cf-clearance", default=None,
                        help="require this cf_clearance cookie, else answer the Cloudflare challenge")
    parser.add_argument("--retry-after", type=int, default=None,
                        help="Retry-After seconds on quota 429s (-1 = seconds until the window refills)")
    parser.add_argument("--no-birth-date-check", action="store_true",
                        help="allow enabling NSFW without a birth date set first")
    parser.add_argument("--assets-prefix", default="", help="path prefix of the assets host routes")
    parser.add_argument("--no-record", action="store_true", help="do not record requests (benchmarks)")
    parser.add_argument("--log-level", default="warning")


def options_from(args: argparse.Namespace) -> Options:
    realistic = bool(getattr(args, "realistic", False))

    def pick(value: float | None, real: float) -> float:
        return value if value is not None else (real if realistic else 0.0)

    return Options(
        seed=args.seed,
        strict_tokens=args.strict_tokens,
        default_tokens=args.answer_tokens,
        token_delay_ms=pick(args.token_delay_ms, 25.0),
        ttft_ms=pick(args.ttft_ms, 400.0),
        video_ms=pick(args.video_ms, 6000.0),
        record=not args.no_record,
        statsig=args.statsig,
        cf_clearance=args.cf_clearance,
        retry_after=args.retry_after,
        require_birth_date=not args.no_birth_date_check,
        assets_prefix=args.assets_prefix.rstrip("/"),
    )


async def serve(args: argparse.Namespace, ready: asyncio.Event | None = None) -> None:
    from grok2api.simulator.server import create_app

    st = SimState(options_from(args))
    for spec in args.token:
        token, _, plan = spec.partition(":")
        st.upsert(token, plan or "basic")
    app = create_app(st)
    runner = web.AppRunner(app, access_log=None, handler_cancellation=True)
    await runner.setup()
    site = web.TCPSite(runner, args.host, args.port, backlog=1024, reuse_address=True)
    await site.start()
    server = site._server  # noqa: SLF001 - the bound socket is only reachable here
    port = server.sockets[0].getsockname()[1] if server and server.sockets else args.port
    host = args.host if ":" not in args.host else f"[{args.host}]"
    print(f"grok-simulator listening on http://{host}:{port}", flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        try:
            loop.add_signal_handler(sig, stop.set)
        except (NotImplementedError, RuntimeError):
            pass
    if ready is not None:
        ready.set()
    try:
        await stop.wait()
    finally:
        await runner.cleanup()


def run(args: argparse.Namespace) -> None:
    """Run the simulator until SIGINT/SIGTERM."""
    logging.basicConfig(level=getattr(logging, str(args.log_level).upper(), logging.WARNING),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop is optional
        asyncio.run(serve(args))
    else:
        uvloop.run(serve(args))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="grok2api simulate", description="Grok web protocol simulator")
    configure_parser(parser)
    run(parser.parse_args(argv))


if __name__ == "__main__":  # pragma: no cover
    main(sys.argv[1:])
