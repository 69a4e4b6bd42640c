"""``grok2api serve``: start (or join) Ray, deploy the gateway, stop cleanly.

Embedded by default: ``ray.init`` on this machine with its CPUs. With
``--address auto`` or ``RAY_ADDRESS`` the same application deploys onto an
existing Ray cluster (see ``ray_cluster.yaml``).

Ingress: HAProxy in front of the replicas (``RAY_SERVE_ENABLE_HA_PROXY``) is the
default because Serve's Python proxy is the first bottleneck on small machines
(measured in ``bench/README.md``); ``--ingress proxy`` selects the classic proxy.
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import threading
import time
from typing import Literal, MutableMapping

from grok2api.config.env import ServerSettings
from grok2api.config.schema import AppConfig

log = logging.getLogger(__name__)

Ingress = Literal["haproxy", "proxy"]


def configure_ingress_env(ingress: Ingress) -> None:
    """Set Serve's ingress switches; must run before Ray starts (replicas inherit the environment)."""
    # Run replica code on the HTTP server's own event loop (no thread hop per ASGI message),
    # freeze GC after start-up, and keep logs off stderr: measured in bench/README.md.
    os.environ.setdefault("RAY_SERVE_THROUGHPUT_OPTIMIZED", "1")
    # Serve's own periodic work, which competes with the streams for the same cores: the controller
    # loop (default every 0.1 s) and each replica's metrics export (every 0.1 s).
    os.environ.setdefault("RAY_SERVE_CONTROL_LOOP_INTERVAL_S", "0.5")
    os.environ.setdefault("RAY_SERVE_METRICS_EXPORT_INTERVAL_MS", "1000")
    if ingress == "haproxy":
        os.environ.setdefault("RAY_SERVE_ENABLE_HA_PROXY", "1")
        # HAProxy stops routing to a draining replica at once; streams in flight still get
        # graceful_shutdown_timeout_s to finish, but an idle replica need not linger 30 s.
        os.environ.setdefault("RAY_SERVE_DIRECT_INGRESS_MIN_DRAINING_PERIOD_S", "2")
        # One HAProxy thread per two cores (Serve's default is 4 threads whatever the machine).
        os.environ.setdefault("RAY_SERVE_HAPROXY_NBTHREAD", str(max(1, (os.cpu_count() or 2) // 2)))
        # Serve's per-request HTTP metrics in HAProxy mode are one log line per request, parsed in
        # Python by the HAProxyManager actor. HAProxy's own Prometheus exporter (port
        # RAY_SERVE_HAPROXY_METRICS_PORT) already counts requests, errors and latencies per backend.
        os.environ.setdefault("RAY_SERVE_HAPROXY_METRICS_ENABLED", "0")
        # A replica whose loop is saturated answers HAProxy's health check late (>5 s); after 2 such
        # checks HAProxy would send every new request through Serve's Python fallback proxy, which
        # reaches the same replica at a higher cost per chunk (bench/README.md, slow streams). A dead
        # replica is still taken out at once by live-traffic observation (connection failures).
        os.environ.setdefault("RAY_SERVE_HAPROXY_HEALTH_CHECK_FALL", "6")
        claim_serve_ports()
    else:
        os.environ.pop("RAY_SERVE_ENABLE_HA_PROXY", None)


# Serve's default port ranges for the replicas' own HTTP and gRPC servers, the size of the block
# one gateway claims from each, and Serve's default port for its fallback proxy.
_DIRECT_INGRESS_RANGES = {"HTTP": (30000, 31000), "GRPC": (40000, 41000)}
_PORT_BLOCK = 100
_FALLBACK_PROXY_PORT = 8500


def claim_serve_ports(environ: MutableMapping[str, str] = os.environ) -> None:
    """Give this gateway's Serve ports that no other process listens on.

    Serve's replicas and its fallback proxy bind with ``SO_REUSEPORT``, and every Serve instance
    starts from the same defaults: a second gateway on the same machine would share its replica
    ports and its fallback proxy with the first, and the kernel would split HAProxy's connections
    between the two applications. A port another process listens on (with or without
    ``SO_REUSEPORT``) fails a plain bind here. Ports the operator set are left alone.
    """
    for proto, (low, high) in _DIRECT_INGRESS_RANGES.items():
        lo_var, hi_var = f"RAY_SERVE_DIRECT_INGRESS_MIN_{proto}_PORT", f"RAY_SERVE_DIRECT_INGRESS_MAX_{proto}_PORT"
        if lo_var in environ or hi_var in environ:
            continue
        for start in range(low, high, _PORT_BLOCK):
            if all(_port_free(p) for p in range(start, start + _PORT_BLOCK)):
                environ[lo_var] = str(start)
                environ[hi_var] = str(start + _PORT_BLOCK - 1)
                break
    if "RAY_SERVE_FALLBACK_PROXY_HTTP_PORT" not in environ and not _port_free(_FALLBACK_PROXY_PORT):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            s.bind(("0.0.0.0", 0))
            environ["RAY_SERVE_FALLBACK_PROXY_HTTP_PORT"] = str(s.getsockname()[1])


def _port_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        try:
            s.bind(("0.0.0.0", port))
        except OSError:
            return False
    return True


def start(settings: ServerSettings, config: AppConfig, *, address: str | None = None, num_cpus: int | None = None,
          ingress: Ingress = "haproxy", dashboard: bool = False) -> str:
    """Start Ray + Serve and deploy the application; returns the base URL once it answers."""
    configure_ingress_env(ingress)
    import ray
    from ray import serve

    from grok2api.deployments.application import APP_NAME, build_application

    address = address or os.environ.get("RAY_ADDRESS") or None
    init_kwargs: dict[str, object] = {"namespace": "grok2api", "log_to_driver": False}
    if address:
        init_kwargs["address"] = address
    else:
        init_kwargs["num_cpus"] = num_cpus or os.cpu_count() or 1
        init_kwargs["include_dashboard"] = dashboard
    ray.init(**init_kwargs)
    serve.start(http_options={"host": settings.host, "port": settings.port})
    serve.run(build_application(settings, config), name=APP_NAME, route_prefix="/", blocking=False)
    host = "127.0.0.1" if settings.host in ("0.0.0.0", "::", "") else settings.host
    return f"http://{host}:{settings.port}"


def stop() -> None:
    """Drain the replicas (streams in flight finish or get a proper end), save pool state, stop Ray."""
    import ray
    from ray import serve

    from grok2api.actors.token_pool import token_pool_handle
    from grok2api.deployments.application import APP_NAME

    try:
        # Drain first: deleting the application lets replicas finish the streams in flight (up to
        # graceful_shutdown_timeout_s) while the ingress still carries their connections.
        serve.delete(APP_NAME, _blocking=True)
    except Exception as exc:  # noqa: BLE001
        log.warning("draining the application: %s", exc)
    try:
        serve.shutdown()
    except Exception as exc:  # noqa: BLE001
        log.warning("serve shutdown: %s", exc)
    try:
        pool = token_pool_handle()
        ray.get(pool.shutdown.remote(), timeout=30)
    except Exception as exc:  # noqa: BLE001
        log.warning("token pool flush on shutdown: %s", exc)
    ray.shutdown()


def run(settings: ServerSettings, config: AppConfig, *, address: str | None = None, num_cpus: int | None = None,
        ingress: Ingress = "haproxy", dashboard: bool = False) -> int:
    """Serve until SIGINT/SIGTERM. Returns the process exit code."""
    stopping = threading.Event()

    def _on_signal(signum: int, _frame: object) -> None:
        log.info("received signal %d, shutting down", signum)
        stopping.set()

    t0 = time.monotonic()
    url = start(settings, config, address=address, num_cpus=num_cpus, ingress=ingress, dashboard=dashboard)
    # After ray.init, which installs its own (noisy) SIGTERM reporter: ours replaces it.
    signal.signal(signal.SIGINT, _on_signal)
    signal.signal(signal.SIGTERM, _on_signal)
    print(f"grok2api is ready at {url} (started in {time.monotonic() - t0:.1f}s) — "
          f"OpenAI base URL {url}/v1, admin API {url}/v1/admin", flush=True)
    try:
        while not stopping.wait(0.5):
            pass
    finally:
        print("grok2api: stopping (draining streams, saving state)...", flush=True)
        stop()
        print("grok2api: stopped", flush=True)
    return 0
