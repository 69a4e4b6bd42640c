"""Gateway chat benchmark: grok2api on Ray Serve versus calling the simulator directly.

One run starts the Grok simulator (subprocess) and the whole gateway (embedded Ray
with ``--num-cpus``, Serve, HAProxy ingress unless ``--ingress proxy``), then:

1. for each concurrency in ``--concurrency`` (default 1,16,64): streams/s and
   time-to-first-byte of 20-token streams, first against the simulator directly
   (``POST /rest/app-chat/conversations/new``), then through the gateway
   (``POST /v1/chat/completions``, ``stream: true``);
2. ``--slow`` concurrent slow streams (default 1000 × 50 tokens, 100 ms apart, ~5 s each)
   through the gateway in a closed loop for ``--slow-window`` seconds, the clients' starts
   staggered over ``--slow-ramp`` seconds (one stream's length) so 1,000 streams are open at
   every moment: errors, first-byte p50/p99, stream duration (``--slow-ramp 0``: one burst of
   1,000 simultaneous requests instead);
3. resident memory (RSS) of every process of the Ray session plus HAProxy,
   sampled during the slow phase.

Loopback only; every phase is bounded by ``--duration`` / request counts.
Method and figures: ``bench/README.md``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from loadgen import LoadResult, run_load  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
TOKENS = [f"bench-token-{i:03d}-{'x' * 40}" for i in range(16)]


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_simulator() -> tuple[subprocess.Popen[str], str]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "grok2api.simulator", "--port", "0", "--seed", "1", "--no-record"],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, cwd=ROOT,
    )
    assert proc.stdout is not None
    line = proc.stdout.readline()
    url = line.strip().rsplit(" ", 1)[-1]
    if not url.startswith("http"):
        proc.kill()
        raise SystemExit(f"simulator did not start: {line!r}")
    return proc, url


def sim_control(base: str, path: str, body: Any) -> Any:
    req = urllib.request.Request(base + path, data=json.dumps(body).encode(), method="POST",
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=10) as resp:
        return json.loads(resp.read() or b"null")


def _proc_table() -> dict[int, tuple[int, str, int]]:
    """pid -> (parent pid, command line, RSS in KiB) for every process."""
    table: dict[int, tuple[int, str, int]] = {}
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            cmd = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace").strip()
            status = Path(f"/proc/{pid}/status").read_text()
        except OSError:
            continue
        fields = dict(line.split(":", 1) for line in status.splitlines() if ":" in line)
        ppid = int(fields.get("PPid", "0").strip() or 0)
        rss = int(fields.get("VmRSS", "0 kB").split()[0]) if "VmRSS" in fields else 0
        table[int(pid)] = (ppid, cmd, rss)
    return table


def session_processes(session_dir: str) -> dict[int, tuple[str, int]]:
    """pid -> (group name, RSS KiB) for this Ray session only: its raylet and GCS (found by session
    dir) and all their descendants (workers, actors, replicas, HAProxy). Other Ray sessions on the
    machine are ignored."""
    table = _proc_table()
    roots = {pid for pid, (_, cmd, _) in table.items() if session_dir in cmd}
    children: dict[int, list[int]] = {}
    for pid, (ppid, _, _) in table.items():
        children.setdefault(ppid, []).append(pid)
    seen: set[int] = set()
    stack = list(roots)
    while stack:
        pid = stack.pop()
        if pid in seen:
            continue
        seen.add(pid)
        stack.extend(children.get(pid, ()))
    out: dict[int, tuple[str, int]] = {}
    for pid in seen:
        _, cmd, rss = table[pid]
        name = "haproxy" if "haproxy" in cmd else (cmd.split() or ["?"])[0].rsplit("/", 1)[-1][:40]
        if name.startswith("python"):
            name = next((part.rsplit("/", 1)[-1] for part in cmd.split() if part.endswith(".py")), name)
        if name.startswith("ray::"):
            name = name.split(".", 1)[0]
        out[pid] = (name, rss)
    return out


def rss_of_session(session_dir: str) -> dict[str, float]:
    """RSS (MiB) per process group of this Ray session, and the TOTAL."""
    groups: dict[str, int] = {}
    for name, rss in session_processes(session_dir).values():
        groups[name] = groups.get(name, 0) + rss
    out = {k: round(v / 1024, 1) for k, v in sorted(groups.items(), key=lambda kv: -kv[1])}
    out["TOTAL"] = round(sum(groups.values()) / 1024, 1)
    return out


_TICK = os.sysconf("SC_CLK_TCK")


def _cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of one process, all its threads included."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / _TICK


def cpu_snapshot(session_dir: str, extra: dict[int, str]) -> dict[str, float]:
    """CPU seconds so far per process group: the Ray session's processes plus ``extra`` (pid -> name)."""
    named = {pid: name for pid, (name, _) in session_processes(session_dir).items()}
    named.update(extra)
    groups: dict[str, float] = {}
    for pid, name in named.items():
        groups[name] = groups.get(name, 0.0) + _cpu_seconds(pid)
    return groups


def cpu_per_stream(before: dict[str, float], after: dict[str, float], streams: int) -> dict[str, float]:
    """CPU milliseconds per completed stream, by process group (only groups that used any)."""
    out = {k: round((after.get(k, 0.0) - before.get(k, 0.0)) * 1000 / max(streams, 1), 3) for k in after}
    out = {k: v for k, v in sorted(out.items(), key=lambda kv: -kv[1]) if v > 0}
    out["TOTAL"] = round(sum(out.values()), 3)
    return out


def host_speed() -> float:
    """Seconds one core takes for 10 million Python loop iterations (lower is faster): figures from
    different machines of the same kind differ by this factor (seen here: 0.5 s to 1.5 s)."""
    t0 = time.perf_counter()
    total = 0
    for i in range(10_000_000):
        total += i
    return round(time.perf_counter() - t0, 2)


def direct_body(tokens: int, delay_ms: int = 0) -> bytes:
    marker = f"[[sim:tokens={tokens}" + (f";delay_ms={delay_ms}" if delay_ms else "") + "]]"
    return json.dumps({
        "message": f"benchmark {marker}", "modeId": "fast", "temporary": True, "fileAttachments": [],
        "imageAttachments": [], "toolOverrides": {}, "responseMetadata": {},
    }).encode()


def gateway_body(tokens: int, delay_ms: int = 0) -> bytes:
    marker = f"[[sim:tokens={tokens}" + (f";delay_ms={delay_ms}" if delay_ms else "") + "]]"
    return json.dumps({"model": "grok-4.1-fast", "stream": True,
                       "messages": [{"role": "user", "content": f"benchmark {marker}"}]}).encode()


def fmt(res: LoadResult) -> str:
    s = res.summary()
    return (f"{s['streams_per_s']:8.1f} streams/s  ttfb p50 {s['ttfb_ms_p50']:7.2f} ms  p99 {s['ttfb_ms_p99']:7.2f} ms"
            f"  errors {s['errors']}")


async def main_async(args: argparse.Namespace) -> dict[str, Any]:
    from grok2api import server
    from grok2api.config.env import ServerSettings
    from grok2api.config.service import ConfigService
    from grok2api.storage import create_storage

    results: dict[str, Any] = {"args": vars(args), "host_speed_s": host_speed()}
    print(f"host speed: {results['host_speed_s']} s per 10M Python loop iterations", flush=True)
    sim, sim_url = start_simulator()
    try:
        for t in TOKENS:
            sim_control(sim_url, "/_sim/tokens", {"token": t, "plan": "super", "quota_total": 10**9})
        if args.stats_port:
            os.environ["RAY_SERVE_HAPROXY_STATS_PORT"] = str(free_port())
            os.environ["RAY_SERVE_HAPROXY_METRICS_PORT"] = str(free_port())
        data_dir = Path(tempfile.mkdtemp(prefix="grok2api-bench-"))
        port = free_port()
        settings = ServerSettings(host="127.0.0.1", port=port, data_dir=data_dir, log_file_enabled=False,
                                  workers=args.replicas)
        storage = create_storage("local", "", data_dir)
        await storage.open()
        svc = ConfigService(storage)
        await svc.load()
        config = await svc.update({
            "upstream": {"base_url": sim_url, "assets_url": sim_url, "accounts_url": sim_url},
            "token": {"super_default_quota": 10**9},
            "serve": {"max_ongoing_requests": args.max_ongoing},
        })
        await storage.close()
        t0 = time.monotonic()
        url = server.start(settings, config, num_cpus=args.num_cpus, ingress=args.ingress)
        import ray

        from grok2api.actors.token_pool import token_pool_handle

        session_dir = ray._private.worker._global_node.get_session_dir_path()

        ray.get(token_pool_handle().add_tokens.remote(TOKENS, "super"))
        while True:
            try:
                with urllib.request.urlopen(url + "/ready", timeout=2) as r:
                    if r.status == 200:
                        break
            except Exception:  # noqa: BLE001
                pass
            await asyncio.sleep(0.2)
        results["startup_s"] = round(time.monotonic() - t0, 1)
        print(f"gateway ready in {results['startup_s']} s at {url} (ingress={args.ingress}, "
              f"replicas={args.replicas})", flush=True)

        procs = {sim.pid: "simulator", os.getpid(): "client (bench driver)"}
        direct_url = sim_url + "/rest/app-chat/conversations/new"
        cookie = {"Cookie": f"sso={TOKENS[0]}; sso-rw={TOKENS[0]}"}
        gw_url = url + "/v1/chat/completions"
        await run_load(gw_url, gateway_body(args.tokens), concurrency=16, duration=2)  # warm-up
        rows = []
        for c in args.concurrency:
            direct = await run_load(direct_url, direct_body(args.tokens), concurrency=c, duration=args.duration,
                                    headers=cookie, warmup=0.5)
            cpu0 = cpu_snapshot(session_dir, procs)
            gw = await run_load(gw_url, gateway_body(args.tokens), concurrency=c, duration=args.duration,
                                warmup=0.5)
            gw_cpu = cpu_per_stream(cpu0, cpu_snapshot(session_dir, procs), gw.completed)
            ratio = gw.rps / direct.rps if direct.rps else 0.0
            added = gw.pct(gw.ttfb_ms, 0.5) - direct.pct(direct.ttfb_ms, 0.5)
            print(f"c={c:<4} direct {fmt(direct)}\n       gateway {fmt(gw)}\n       ratio {ratio:.2f}  "
                  f"added ttfb p50 {added:.2f} ms\n       gateway CPU ms per stream (incl. warm-up): "
                  f"{json.dumps(gw_cpu)}", flush=True)
            rows.append({"concurrency": c, "direct": direct.summary(), "gateway": gw.summary(),
                         "ratio": round(ratio, 3), "added_ttfb_ms_p50": round(added, 2),
                         "gateway_cpu_ms_per_stream": gw_cpu})
        results["throughput"] = rows

        if args.slow:
            mem_samples: list[dict[str, float]] = []

            pool_samples: list[dict[str, Any]] = []

            async def sample_memory() -> None:
                while True:
                    mem_samples.append(rss_of_session(session_dir))
                    pool_samples.append(await token_pool_handle().stats.remote())
                    await asyncio.sleep(1.0)

            base = await run_load(direct_url, direct_body(50, 100), concurrency=args.slow,
                                  duration=args.slow_window, max_requests=None if args.slow_ramp else args.slow,
                                  timeout=120, ramp=args.slow_ramp, headers=cookie)
            b = base.summary()
            print(f"slow x{args.slow} direct: completed {b['completed']} errors {b['errors']} ttfb p50 "
                  f"{b['ttfb_ms_p50']} ms p99 {b['ttfb_ms_p99']} ms  stream p50 {b['total_ms_p50']} ms "
                  f"p99 {b['total_ms_p99']} ms", flush=True)
            results["slow_direct"] = b
            sampler = asyncio.create_task(sample_memory())
            cpu0, t_cpu0 = cpu_snapshot(session_dir, procs), time.monotonic()
            slow = await run_load(gw_url, gateway_body(50, 100), concurrency=args.slow, duration=args.slow_window,
                                  max_requests=None if args.slow_ramp else args.slow, timeout=120,
                                  ramp=args.slow_ramp)
            sampler.cancel()
            cpu1, t_cpu1 = cpu_snapshot(session_dir, procs), time.monotonic()
            cores = {k: round((cpu1.get(k, 0.0) - cpu0.get(k, 0.0)) / (t_cpu1 - t_cpu0), 2) for k in cpu1}
            cores = {k: v for k, v in sorted(cores.items(), key=lambda kv: -kv[1]) if v > 0}
            peak = max(mem_samples, key=lambda m: m["TOTAL"]) if mem_samples else {}
            s = slow.summary()
            print(f"slow x{args.slow} (ramp {args.slow_ramp:g} s, window {args.slow_window:g} s): completed {s['completed']} errors {s['errors']} "
                  f"ttfb p50 {s['ttfb_ms_p50']} ms p99 {s['ttfb_ms_p99']} ms  stream p50 {s['total_ms_p50']} ms "
                  f"p99 {s['total_ms_p99']} ms; peak RSS {peak.get('TOTAL')} MiB\n  errors: {s['error_samples']}\n"
                  f"  peak RSS by process: {json.dumps(peak)}\n  CPU cores used by process: {json.dumps(cores)}",
                  flush=True)
            leases = [p["leases"] for p in pool_samples]
            print(f"  token pool: outstanding leases max {max(leases, default=0)}, "
                  f"last {leases[-1] if leases else 0}", flush=True)
            results["slow"] = {**s, "peak_rss_mib": peak, "max_leases": max(leases, default=0), "cpu_cores": cores}
        results["idle_rss_mib"] = rss_of_session(session_dir)
        print("RSS after run (MiB):", json.dumps(results["idle_rss_mib"]), flush=True)
    finally:
        try:
            server.stop()
        finally:
            sim.terminate()
            sim.wait(timeout=10)
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--concurrency", type=lambda s: [int(x) for x in s.split(",")], default=[1, 16, 64])
    parser.add_argument("--duration", type=float, default=10.0, help="seconds per measured phase")
    parser.add_argument("--tokens", type=int, default=20, help="answer tokens per stream")
    parser.add_argument("--slow", type=int, default=1000, help="concurrent slow streams (0 = skip)")
    parser.add_argument("--slow-window", type=float, default=30.0,
                        help="length of the slow phase (closed loop; with --slow-ramp 0: one burst, bounded by this)")
    parser.add_argument("--slow-ramp", type=float, default=5.0,
                        help="stagger the slow clients' starts over this many seconds (0 = all at once)")
    parser.add_argument("--replicas", type=int, default=1)
    parser.add_argument("--max-ongoing", type=int, default=2048)
    parser.add_argument("--num-cpus", type=int, default=2)
    parser.add_argument("--ingress", choices=["haproxy", "proxy"], default="haproxy")
    parser.add_argument("--stats-port", action="store_true", help="move HAProxy's stats/metrics ports")
    parser.add_argument("--json", type=Path, default=None, help="also write the results here")
    args = parser.parse_args()
    results = asyncio.run(main_async(args))
    if args.json:
        args.json.write_text(json.dumps(results, indent=2, default=str))


if __name__ == "__main__":
    main()
