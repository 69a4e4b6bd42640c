"""From the gateway config to the typed settings each component takes.

The engine parts (upstream client, token pool, renderer) never see the whole
config tree; this module is the one place that maps ``AppConfig`` onto them.
"""

from __future__ import annotations

from grok2api.actors.token_pool import PoolSettings
from grok2api.config.schema import AppConfig
from grok2api.upstream.settings import UpstreamSettings


def upstream_settings(cfg: AppConfig) -> UpstreamSettings:
    return UpstreamSettings(
        base_url=cfg.upstream.base_url,
        assets_url=cfg.upstream.assets_url,
        accounts_url=cfg.upstream.accounts_url,
        user_agent=cfg.proxy.user_agent,
        browser=cfg.proxy.browser,
        cf_clearance=cfg.proxy.cf_clearance,
        statsig_mode=cfg.upstream.statsig_mode,
        statsig_value=cfg.upstream.statsig_value,
        proxy_url=cfg.proxy.base_proxy_url,
        asset_proxy_url=cfg.proxy.asset_proxy_url,
        skip_proxy_ssl_verify=cfg.proxy.skip_proxy_ssl_verify,
        reset_session_status_codes=tuple(cfg.proxy.reset_session_status_codes),
        first_byte_timeout=cfg.chat.timeout,
        idle_timeout=cfg.timeout.stream_idle_timeout,
        request_timeout=cfg.chat.timeout,
        rate_limits_timeout=cfg.usage.timeout,
        upload_timeout=cfg.asset.upload_timeout,
        download_timeout=cfg.asset.download_timeout,
        max_clients=cfg.chat.concurrent,
    )


def pool_settings(cfg: AppConfig) -> PoolSettings:
    t = cfg.token
    return PoolSettings(
        fail_threshold=t.fail_threshold,
        save_delay_ms=t.save_delay_ms,
        reload_interval_sec=t.reload_interval_sec,
        auto_refresh=t.auto_refresh,
        refresh_interval_hours=t.refresh_interval_hours,
        super_refresh_interval_hours=t.super_refresh_interval_hours,
        refresh_concurrency=cfg.performance.usage_max_concurrent,
        scheduler_period_sec=min(60.0, t.super_refresh_interval_hours * 3600 / 4),
        basic_default_quota=t.basic_default_quota,
        super_default_quota=t.super_default_quota,
        basic_window_hours=t.basic_window_hours,
        super_window_hours=t.super_window_hours,
    )
