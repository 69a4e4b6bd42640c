"""The ``grok2api`` command line.

    grok2api serve [--host H] [--port P] [--data-dir D]      run the gateway
    grok2api simulate [--host H] [--port P]                  run the Grok simulator
    grok2api tokens import FILE [--pool basic|super]         add tokens (one per line)
    grok2api tokens list                                     show tokens (masked)
    grok2api tokens remove TOKEN...                          delete tokens
    grok2api config show [SECTION.KEY]                       print the config (secrets masked)
    grok2api config set SECTION.KEY VALUE                    change one key (validated first)

Settings come from the environment (``SERVER_*``, ``DATA_DIR``, ``LOG_*``); flags win.
User mistakes end with one line on stderr and exit status 1 (2 for usage errors), never a
traceback.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import inspect
import logging
import os
import sys
import tempfile
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlsplit, urlunsplit

import tomlkit

from grok2api import __version__
from grok2api.catalog import BASIC, SUPER
from grok2api.config.env import ServerSettings
from grok2api.config.errors import ConfigError
from grok2api.storage.base import Storage, StorageError, TokenRecord, mask_token, normalize_token

log = logging.getLogger("grok2api.cli")

DEFAULT_ADMIN_KEY = "grok2api"
POOL_CHOICES = (BASIC, SUPER)

T = TypeVar("T")


class CliError(Exception):
    """A user-facing failure: printed as ``error: <message>``; ``code`` is the exit status."""

    def __init__(self, message: str, code: int = 1) -> None:
        super().__init__(message)
        self.code = code


# -- plumbing --------------------------------------------------------------------------


def settings_from_args(args: argparse.Namespace) -> ServerSettings:
    """Environment settings with the command's flags applied on top."""
    overrides = {
        name: getattr(args, name, None)
        for name in ("host", "port", "workers", "data_dir", "storage_type", "storage_url")
    }
    return ServerSettings.from_env(overrides=overrides)


def make_storage(settings: ServerSettings) -> Storage:
    """The storage backend selected by the settings (not yet opened)."""
    from grok2api.storage import create_storage

    return create_storage(settings.storage_type, settings.storage_url, settings.data_dir)


def config_service_for(storage: Storage, settings: ServerSettings) -> Any:
    from grok2api.config.service import ConfigService

    if settings.storage_type == "local":
        return ConfigService(storage, location=str(settings.config_path))
    return ConfigService(storage, seed_path=settings.config_path)


async def with_storage(settings: ServerSettings, body: Callable[[Storage], Awaitable[T]]) -> T:
    storage = make_storage(settings)
    try:
        await storage.open()
    except StorageError as exc:
        raise CliError(f"storage ({settings.storage_type}) is not reachable: {exc}") from None
    try:
        return await body(storage)
    finally:
        try:
            await storage.close()
        except Exception:  # noqa: BLE001 - closing must not hide the real outcome
            pass


def _add_storage_flags(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("storage (default: environment)")
    group.add_argument("--data-dir", type=Path, metavar="D", help="data directory (DATA_DIR, default ./data)")
    group.add_argument(
        "--storage-type",
        metavar="TYPE",
        help="local, redis, mysql or pgsql (SERVER_STORAGE_TYPE, default local)",
    )
    group.add_argument("--storage-url", metavar="URL", help="backend URL (SERVER_STORAGE_URL)")


# -- serve ---------------------------------------------------------------------------------


def check_data_dir(path: Path) -> None:
    """Create ``path`` if needed and prove it is writable."""
    try:
        path.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=path, prefix=".write-test-", delete=True):
            pass
    except OSError as exc:
        raise CliError(f"DATA_DIR {path} is not writable: {exc.strerror or exc}") from None


def check_exposure(settings: ServerSettings, config: Any) -> list[str]:
    """Refuse a public bind with the default admin password; return warnings otherwise."""
    if settings.is_loopback:
        return []
    if config.app.app_key == DEFAULT_ADMIN_KEY:
        raise CliError(
            f"refusing to listen on {settings.host}:{settings.port} with the default admin password "
            f"'{DEFAULT_ADMIN_KEY}': set app.app_key first (grok2api config set app.app_key '<strong password>') "
            "or bind to 127.0.0.1 (SERVER_HOST)"
        )
    warnings = []
    if not config.app.api_key and not config.app.public_enabled:
        warnings.append(
            f"app.api_key is empty: the API on {settings.host}:{settings.port} accepts requests without a key"
        )
    return warnings


async def startup_checks(settings: ServerSettings) -> Any:
    """Data dir writable, storage reachable, config valid (created on first run), bind safe.

    Returns the validated :class:`~grok2api.config.schema.AppConfig`.
    """
    check_data_dir(settings.data_dir)

    async def body(storage: Storage) -> Any:
        try:
            await storage.ping()
        except StorageError as exc:
            raise CliError(f"storage ({settings.storage_type}) is not reachable: {exc}") from None
        return await config_service_for(storage, settings).load()

    config = await with_storage(settings, body)
    for warning in check_exposure(settings, config):
        log.warning("%s", warning)
    return config


def cmd_serve(args: argparse.Namespace) -> int:
    settings = settings_from_args(args)
    from grok2api.logging_setup import setup_logging

    setup_logging(settings)
    config = asyncio.run(startup_checks(settings))
    try:
        server = importlib.import_module("grok2api.server")
    except ModuleNotFoundError as exc:
        if exc.name != "grok2api.server":
            raise
        raise CliError("the gateway (grok2api.server) is not part of this build yet", code=2) from None
    where = f"{settings.host}:{settings.port}"
    log.info("starting grok2api on %s (storage %s, data %s)", where, settings.storage_type, settings.data_dir)
    extra = {
        name: getattr(args, name)
        for name in ("address", "ingress", "num_cpus", "dashboard")
        if getattr(args, name, None) not in (None, False)
    }
    accepted = inspect.signature(server.run).parameters
    unsupported = sorted(name for name in extra if name not in accepted)
    if unsupported:
        raise CliError("this build of the gateway does not support --" + ", --".join(
            n.replace("_", "-") for n in unsupported), code=2)
    try:
        result = server.run(settings, config, **extra)
        if inspect.isawaitable(result):
            result = asyncio.run(result)  # type: ignore[arg-type]
    except ModuleNotFoundError as exc:
        if not (exc.name or "").startswith("grok2api."):
            raise
        raise CliError(f"this build of the gateway is incomplete: {exc}", code=2) from None
    return int(result or 0)


# -- simulate ------------------------------------------------------------------------------


def _simulator_cli() -> Any | None:
    try:
        return importlib.import_module("grok2api.simulator.cli")
    except ModuleNotFoundError as exc:
        if exc.name in {"grok2api.simulator.cli", "grok2api.simulator"}:
            return None
        raise


def configure_simulate(parser: argparse.ArgumentParser, load: bool) -> None:
    simulator_cli = _simulator_cli() if load else None
    if simulator_cli is not None and hasattr(simulator_cli, "configure_parser"):
        simulator_cli.configure_parser(parser)
        parser.set_defaults(func=lambda args: simulator_cli.run(args))
        return
    parser.add_argument("--host", default="127.0.0.1", help="bind address (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=9000, help="port (default 9000)")
    parser.set_defaults(func=cmd_simulate_missing)


def cmd_simulate_missing(args: argparse.Namespace) -> int:
    raise CliError("the Grok simulator (grok2api.simulator.cli) is not part of this build yet", code=2)


# -- tokens --------------------------------------------------------------------------------


def read_token_lines(lines: Sequence[str]) -> tuple[list[str], int]:
    """Tokens from a file's lines: blank and ``#`` lines ignored, ``sso=`` stripped, duplicates
    dropped (first wins). Returns ``(tokens, skipped)`` where skipped counts duplicates and
    unusable lines."""
    tokens: list[str] = []
    seen: set[str] = set()
    skipped = 0
    for line in lines:
        text = line.strip()
        if not text or text.startswith("#"):
            continue
        token = normalize_token(text)
        if not token or token in seen:
            skipped += 1
            continue
        seen.add(token)
        tokens.append(token)
    return tokens, skipped


def cmd_tokens_import(args: argparse.Namespace) -> int:
    settings = settings_from_args(args)
    try:
        if args.file == "-":
            lines = sys.stdin.read().splitlines()
        else:
            lines = Path(args.file).read_text(encoding="utf-8-sig").splitlines()
    except OSError as exc:
        raise CliError(f"cannot read {args.file}: {exc.strerror or exc}") from None
    except UnicodeDecodeError:
        raise CliError(f"{args.file} is not UTF-8 text") from None
    tokens, skipped = read_token_lines(lines)

    async def body(storage: Storage) -> int:
        config = await config_service_for(storage, settings).load()
        quota = config.token.super_default_quota if args.pool == SUPER else config.token.basic_default_quota
        records = [TokenRecord(token=t, pool=args.pool, quota=quota) for t in tokens]
        added = await storage.add_tokens(records) if records else []
        return len(added)

    added = asyncio.run(with_storage(settings, body))
    skipped += len(tokens) - added
    print(f"added {added}, skipped {skipped}")
    return 0


def _fmt_status(record: TokenRecord) -> str:
    return str(record.status.value if hasattr(record.status, "value") else record.status)


def cmd_tokens_list(args: argparse.Namespace) -> int:
    settings = settings_from_args(args)

    async def body(storage: Storage) -> list[TokenRecord]:
        return await storage.load_tokens()

    records = asyncio.run(with_storage(settings, body))
    if args.pool:
        records = [r for r in records if r.pool == args.pool]
    records.sort(key=lambda r: (r.pool, r.created_at, r.token))
    rows = [("TOKEN", "POOL", "STATUS", "QUOTA", "USES", "FAILS")]
    rows += [
        (mask_token(r.token), r.pool, _fmt_status(r), str(r.quota), str(r.use_count), str(r.fail_count))
        for r in records
    ]
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        print("  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip())
    print(f"{len(records)} token{'s' if len(records) != 1 else ''}")
    return 0


def cmd_tokens_remove(args: argparse.Namespace) -> int:
    settings = settings_from_args(args)
    tokens = [t for t in (normalize_token(raw) for raw in args.tokens) if t]
    if not tokens:
        raise CliError("no token given")

    async def body(storage: Storage) -> int:
        return await storage.delete_tokens(tokens)

    removed = asyncio.run(with_storage(settings, body))
    print(f"removed {removed}")
    if removed < len(set(tokens)):
        missing = len(set(tokens)) - removed
        print(f"error: {missing} of the given tokens {'was' if missing == 1 else 'were'} not found", file=sys.stderr)
        return 1
    return 0


# -- config --------------------------------------------------------------------------------


def _mask_url_password(value: str) -> str:
    out = []
    for url in value.split(","):
        parts = urlsplit(url.strip())
        if parts.password:
            netloc = f"{parts.username or ''}:***@{parts.hostname}" + (f":{parts.port}" if parts.port else "")
            url = urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))
        out.append(url.strip())
    return ",".join(out)


def mask_value(section: str, key: str, value: Any) -> Any:
    """The display form of a config value: secrets masked, everything else unchanged."""
    from grok2api.config.schema import field_extra, section_models

    try:
        kind = field_extra(section, key).get("secret")
        default = section_models()[section].model_fields[key].default
    except KeyError:
        return value
    if not kind or not isinstance(value, str) or not value or value == default:
        return value  # the well-known default (app_key "grok2api") is shown: it must be changed
    if kind == "url":
        return _mask_url_password(value)
    return mask_token(value) if len(value) >= 24 else "***"


def masked_document(text: str) -> str:
    """The config document with every secret value masked (comments and layout kept)."""
    doc = tomlkit.parse(text)
    for section, table in doc.items():
        if not hasattr(table, "items"):
            continue
        for key in list(table.keys()):
            value = table[key]
            plain = value.unwrap() if hasattr(value, "unwrap") else value
            masked = mask_value(section, key, plain)
            if masked != plain:
                table[key] = masked
    return tomlkit.dumps(doc)


def cmd_config_show(args: argparse.Namespace) -> int:
    settings = settings_from_args(args)

    async def body(storage: Storage) -> tuple[str, Any]:
        service = config_service_for(storage, settings)
        config = await service.load()
        return await service.text(), config

    text, config = asyncio.run(with_storage(settings, body))
    if not args.key:
        sys.stdout.write(masked_document(text))
        return 0
    from grok2api.config.document import resolve_key

    section, key, note = resolve_key(args.key)
    if note:
        print(f"note: {note}", file=sys.stderr)
    value = mask_value(section, key, getattr(getattr(config, section), key))
    print(tomlkit.item(value).as_string())
    return 0


def cmd_config_set(args: argparse.Namespace) -> int:
    settings = settings_from_args(args)

    async def body(storage: Storage) -> tuple[Any, list[str]]:
        service = config_service_for(storage, settings)
        await service.load()
        return await service.set_value(args.key, args.value)

    try:
        config, notes = asyncio.run(with_storage(settings, body))
    except ConfigError as exc:
        raise CliError(f"{exc} (nothing was changed)") from None
    from grok2api.config.document import resolve_key

    section, key, _ = resolve_key(args.key)
    for note in notes:
        print(f"note: {note}", file=sys.stderr)
    value = mask_value(section, key, getattr(getattr(config, section), key))
    print(f"{section}.{key} = {tomlkit.item(value).as_string()}")
    return 0


# -- parser --------------------------------------------------------------------------------


def build_parser(argv: Sequence[str] | None = None) -> argparse.ArgumentParser:
    """The argument parser; the simulator's options are loaded only for ``simulate``."""
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = argparse.ArgumentParser(
        prog="grok2api",
        description="OpenAI-compatible gateway over a pool of Grok web accounts, on Ray Serve.",
        epilog="Environment: SERVER_HOST, SERVER_PORT, SERVER_WORKERS, SERVER_STORAGE_TYPE, "
        "SERVER_STORAGE_URL, DATA_DIR, LOG_LEVEL, LOG_FILE_ENABLED, LOG_DIR.",
    )
    parser.add_argument("--version", action="version", version=f"grok2api {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")

    serve = commands.add_parser(
        "serve", help="run the gateway", description="Check storage and config, then run the gateway on Ray Serve."
    )
    serve.add_argument("--host", metavar="H", help="bind address (SERVER_HOST, default 127.0.0.1)")
    serve.add_argument("--port", type=int, metavar="P", help="port (SERVER_PORT, default 8000)")
    serve.add_argument("--workers", type=int, metavar="N", help="gateway replicas (SERVER_WORKERS, default 1)")
    _add_storage_flags(serve)
    ray_group = serve.add_argument_group("Ray")
    ray_group.add_argument("--address", metavar="ADDR", help="join an existing Ray cluster (e.g. auto; RAY_ADDRESS)")
    ray_group.add_argument("--num-cpus", type=int, metavar="N", help="CPUs for the embedded Ray (default: all)")
    ray_group.add_argument(
        "--ingress", choices=("haproxy", "proxy"), help="HTTP ingress in front of the replicas (default haproxy)"
    )
    ray_group.add_argument("--dashboard", action="store_true", help="start the Ray dashboard")
    serve.set_defaults(func=cmd_serve)

    simulate = commands.add_parser(
        "simulate", help="run the Grok simulator", description="Run a local simulator of the Grok web API."
    )
    configure_simulate(simulate, load=bool(argv) and argv[0] == "simulate")

    tokens = commands.add_parser("tokens", help="manage the token pool", description="Manage the Grok SSO tokens.")
    token_commands = tokens.add_subparsers(dest="tokens_command", metavar="ACTION")
    tokens.set_defaults(func=lambda args: _usage(tokens))
    t_import = token_commands.add_parser(
        "import",
        help="add tokens from a file",
        description="Add tokens from FILE (one per line; 'sso=' prefixes stripped; blank lines, "
        "'#' comments and duplicates skipped). FILE '-' reads stdin.",
    )
    t_import.add_argument("file", metavar="FILE")
    t_import.add_argument("--pool", choices=POOL_CHOICES, default=BASIC, help="pool for the new tokens (default basic)")
    _add_storage_flags(t_import)
    t_import.set_defaults(func=cmd_tokens_import)
    t_list = token_commands.add_parser("list", help="list tokens (masked)", description="List tokens, masked.")
    t_list.add_argument("--pool", choices=POOL_CHOICES, help="only this pool")
    _add_storage_flags(t_list)
    t_list.set_defaults(func=cmd_tokens_list)
    t_remove = token_commands.add_parser(
        "remove", help="remove tokens", description="Remove tokens (bare or 'sso=' form)."
    )
    t_remove.add_argument("tokens", nargs="+", metavar="TOKEN")
    _add_storage_flags(t_remove)
    t_remove.set_defaults(func=cmd_tokens_remove)

    config = commands.add_parser("config", help="show or change the config", description="Show or change config.toml.")
    config_commands = config.add_subparsers(dest="config_command", metavar="ACTION")
    config.set_defaults(func=lambda args: _usage(config))
    c_show = config_commands.add_parser(
        "show", help="print the config (secrets masked)", description="Print the config (secrets masked)."
    )
    c_show.add_argument("key", nargs="?", metavar="SECTION.KEY", help="print only this value")
    _add_storage_flags(c_show)
    c_show.set_defaults(func=cmd_config_show)
    c_set = config_commands.add_parser(
        "set",
        help="change one key",
        description="Set SECTION.KEY to VALUE (read as the key's type: true/false, numbers, "
        "[1, 2] or a,b lists). The whole config is validated before it is saved.",
    )
    c_set.add_argument("key", metavar="SECTION.KEY")
    c_set.add_argument("value", metavar="VALUE")
    _add_storage_flags(c_set)
    c_set.set_defaults(func=cmd_config_set)
    return parser


def _usage(parser: argparse.ArgumentParser) -> int:
    parser.print_help(sys.stderr)
    return 2


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``grok2api`` console script and ``python -m grok2api``."""
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser(argv)
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help(sys.stderr)
        return 2
    try:
        return int(args.func(args) or 0)
    except CliError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.code
    except (ConfigError, StorageError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1


if __name__ == "__main__":
    raise SystemExit(main())
