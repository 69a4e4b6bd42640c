"""Assemble the Serve application: the TokenPool actor, then the GrokWorker replicas.

The MediaCache actor is started by the first replica that needs it (``WorkerRuntime.media``).
"""

from __future__ import annotations

import functools
from pathlib import Path

import ray
from ray.serve.deployment import Application

from grok2api.actors.token_pool import get_or_create_token_pool
from grok2api.config.env import ServerSettings
from grok2api.config.schema import AppConfig
from grok2api.deployments.grok_worker import GrokWorker
from grok2api.storage import create_storage
from grok2api.worker.pool_config import PoolConfigWatch
from grok2api.worker.refresher import make_refresher
from grok2api.worker.settings import pool_settings, upstream_settings

APP_NAME = "grok2api"


def build_application(settings: ServerSettings, config: AppConfig) -> Application:
    """Create (or find) the cluster's token pool and bind the worker deployment."""
    storage_factory = functools.partial(
        create_storage, settings.storage_type, settings.storage_url, Path(settings.data_dir)
    )
    pool = get_or_create_token_pool(
        storage_factory, pool_settings(config), functools.partial(make_refresher, upstream_settings(config)),
        PoolConfigWatch(),
    )
    ray.get(pool.ready.remote(), timeout=60)
    return GrokWorker.options(
        num_replicas=config.serve.resolve_chat_replicas(settings.workers),
        max_ongoing_requests=config.serve.max_ongoing_requests,
    ).bind(settings.model_dump(mode="json"))


def app_builder(args: dict[str, str]) -> Application:
    """Entry point for ``serve run`` / ``serve deploy configs/serve.yaml`` on a running cluster.

    Settings come from the environment (``SERVER_*``, ``DATA_DIR``; set them in the Serve
    config's ``runtime_env``) with ``args`` as overrides, and pass the same startup checks as
    ``grok2api serve``. On a cluster, storage must be ``redis``, ``mysql`` or ``pgsql``.
    """
    import asyncio

    from grok2api.cli import startup_checks

    settings = ServerSettings.from_env(overrides=dict(args or {}))
    config = asyncio.run(startup_checks(settings))
    return build_application(settings, config)
