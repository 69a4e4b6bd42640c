"""The GrokWorker deployment: stateless replicas that serve the whole HTTP API.

Each replica runs the FastAPI app from :func:`grok2api.api.app.build_app` and one
:class:`~grok2api.worker.runtime.WorkerRuntime`. With HAProxy ingress (the
default, see ``docs/architecture.md``) clients reach replicas directly through
HAProxy, so a streamed chunk crosses no Python proxy. Replica count and
``max_ongoing_requests`` are the concurrency knobs (``[serve]`` in the config).
"""

from __future__ import annotations

from typing import Any

from ray import serve

from grok2api.api.app import build_app
from grok2api.config.env import ServerSettings
from grok2api.worker.runtime import WorkerRuntime


@serve.deployment(
    name="GrokWorker",
    ray_actor_options={"num_cpus": 0},
    graceful_shutdown_timeout_s=30,
    graceful_shutdown_wait_loop_s=1,
    health_check_period_s=10,
    # One access-log line per request costs a stdout write on the hot path; the app logs what matters.
    logging_config={"enable_access_log": False},
)
@serve.ingress(build_app)
class GrokWorker:
    def __init__(self, settings: dict[str, Any]) -> None:
        self.runtime = WorkerRuntime(ServerSettings.model_validate(settings))

    async def __del__(self) -> None:
        """Serve's shutdown hook: give leases back and flush outcomes so nothing is lost."""
        await self.runtime.aclose()
