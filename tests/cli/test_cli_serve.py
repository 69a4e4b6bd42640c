"""`grok2api serve`: startup checks before the gateway starts."""

from __future__ import annotations

import socket
import sys
import types
from pathlib import Path

import pytest

from grok2api import cli as cli_module
from grok2api import server

from .conftest import Cli


def test_refuses_public_bind_with_default_admin_password(cli: Cli) -> None:
    result = cli("serve", "--host", "0.0.0.0")
    assert result.code == 1
    assert "default admin password" in result.err and "app.app_key" in result.err
    assert "Traceback" not in result.err
    result = cli("serve", env={"SERVER_HOST": "0.0.0.0"})
    assert result.code == 1 and "default admin password" in result.err


def test_unwritable_data_dir(cli: Cli, tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("x")
    result = cli("serve", "--data-dir", str(blocker / "data"))
    assert result.code == 1 and "DATA_DIR" in result.err and "not writable" in result.err


def test_unreachable_storage(cli: Cli) -> None:
    env = {"SERVER_STORAGE_TYPE": "redis", "SERVER_STORAGE_URL": "redis://127.0.0.1:1/0"}
    result = cli("serve", env=env, timeout=90)
    assert result.code == 1 and "not reachable" in result.err and "Traceback" not in result.err


@pytest.fixture
def fake_server(monkeypatch: pytest.MonkeyPatch) -> list[tuple]:
    calls: list[tuple] = []
    module = types.ModuleType("grok2api.server")

    def run(settings, config, *, address=None, num_cpus=None, ingress="haproxy", dashboard=False):  # noqa: ANN001
        calls.append((settings, config, address, ingress))
        return 0

    module.run = run  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "grok2api.server", module)
    monkeypatch.setattr("grok2api.logging_setup.setup_logging", lambda *a, **k: None)
    return calls


def test_serve_runs_the_gateway_after_checks(fake_server: list[tuple], tmp_path: Path,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SERVER_PORT", "8100")
    monkeypatch.setenv("SERVER_WORKERS", "3")
    monkeypatch.setenv("LOG_FILE_ENABLED", "false")
    code = cli_module.main(["serve", "--data-dir", str(tmp_path / "d"), "--port", "8200", "--address", "auto"])
    assert code == 0
    ((settings, config, address, ingress),) = fake_server
    assert settings.port == 8200 and settings.workers == 3 and settings.data_dir == tmp_path / "d"
    assert config.serve.resolve_chat_replicas(settings.workers) == 3
    assert address == "auto" and ingress == "haproxy"
    assert (tmp_path / "d" / "config.toml").exists()


def test_public_bind_allowed_once_admin_key_changed(fake_server: list[tuple], tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch,
                                                    caplog: pytest.LogCaptureFixture) -> None:
    monkeypatch.setenv("LOG_FILE_ENABLED", "false")
    data = tmp_path / "d"
    assert cli_module.main(["config", "set", "--data-dir", str(data), "app.app_key", "a-strong-password"]) == 0
    assert cli_module.main(["serve", "--data-dir", str(data), "--host", "0.0.0.0"]) == 0
    assert fake_server and fake_server[0][0].host == "0.0.0.0"
    assert any("app.api_key is empty" in r.getMessage() for r in caplog.records)


def test_missing_gateway_module_is_exit_2(monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("LOG_FILE_ENABLED", "false")
    monkeypatch.setattr("grok2api.logging_setup.setup_logging", lambda *a, **k: None)
    real_import = cli_module.importlib.import_module

    def fake_import(name: str, *args, **kwargs):  # noqa: ANN002, ANN003, ANN202
        if name == "grok2api.server":
            raise ModuleNotFoundError("No module named 'grok2api.server'", name="grok2api.server")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(cli_module.importlib, "import_module", fake_import)
    assert cli_module.main(["serve", "--data-dir", str(tmp_path / "d")]) == 2
    assert "grok2api.server" in capsys.readouterr().err


def test_simulate_without_simulator_is_a_clear_error(monkeypatch: pytest.MonkeyPatch,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setattr(cli_module, "_simulator_cli", lambda: None)
    assert cli_module.main(["simulate"]) == 2
    assert "simulator" in capsys.readouterr().err


def test_simulate_delegates_to_the_simulator(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[object] = []
    fake = types.SimpleNamespace(
        configure_parser=lambda parser: parser.add_argument("--scenario", default="x"),
        run=lambda args: seen.append(args.scenario) or 0,
    )
    monkeypatch.setattr(cli_module, "_simulator_cli", lambda: fake)
    assert cli_module.main(["simulate", "--scenario", "slow"]) == 0
    assert seen == ["slow"]


def test_a_second_gateway_claims_serve_ports_nobody_listens_on(monkeypatch: pytest.MonkeyPatch) -> None:
    """Replicas and the fallback proxy bind with SO_REUSEPORT: two gateways on one machine must not
    share such a port, or the kernel would hand one gateway's requests to the other's application."""
    # 20 free ports below the kernel's ephemeral range, where client connections (and their
    # TIME_WAIT leftovers) do not take ports while the test runs.
    base = next(b for b in range(20000, 30000, 20) if all(server._port_free(p) for p in range(b, b + 20)))
    monkeypatch.setattr(server, "_DIRECT_INGRESS_RANGES", {"HTTP": (base, base + 20)})
    monkeypatch.setattr(server, "_PORT_BLOCK", 10)
    with socket.socket() as replica, socket.socket() as proxy:  # another gateway, listening
        for sock, port in ((replica, base + 3), (proxy, 0)):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
            sock.bind(("0.0.0.0", port))
            sock.listen()
        taken = proxy.getsockname()[1]
        monkeypatch.setattr(server, "_FALLBACK_PROXY_PORT", taken)
        env: dict[str, str] = {}
        server.claim_serve_ports(env)
    assert env["RAY_SERVE_DIRECT_INGRESS_MIN_HTTP_PORT"] == str(base + 10)
    assert env["RAY_SERVE_DIRECT_INGRESS_MAX_HTTP_PORT"] == str(base + 19)
    fallback = int(env["RAY_SERVE_FALLBACK_PROXY_HTTP_PORT"])
    assert fallback != taken
    # ports the operator set are left alone
    env = {"RAY_SERVE_DIRECT_INGRESS_MIN_HTTP_PORT": "35000", "RAY_SERVE_DIRECT_INGRESS_MAX_HTTP_PORT": "35099",
           "RAY_SERVE_FALLBACK_PROXY_HTTP_PORT": "8600"}
    server.claim_serve_ports(env)
    assert env == {"RAY_SERVE_DIRECT_INGRESS_MIN_HTTP_PORT": "35000",
                   "RAY_SERVE_DIRECT_INGRESS_MAX_HTTP_PORT": "35099", "RAY_SERVE_FALLBACK_PROXY_HTTP_PORT": "8600"}
