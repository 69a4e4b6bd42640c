"""`--help` works for every command, and the CLI's basic contract."""

from __future__ import annotations

import pytest

from .conftest import Cli

COMMANDS = [
    [],
    ["serve"],
    ["simulate"],
    ["tokens"],
    ["tokens", "import"],
    ["tokens", "list"],
    ["tokens", "remove"],
    ["config"],
    ["config", "show"],
    ["config", "set"],
]


@pytest.mark.parametrize("command", COMMANDS, ids=lambda c: " ".join(c) or "grok2api")
def test_help(cli: Cli, command: list[str]) -> None:
    result = cli(*command, "--help")
    assert result.code == 0, result.err
    assert result.out.startswith("usage: grok2api")
    assert not result.err


def test_no_command_prints_usage(cli: Cli) -> None:
    result = cli()
    assert result.code == 2 and "usage: grok2api" in result.err


def test_unknown_command_is_a_usage_error(cli: Cli) -> None:
    result = cli("frobnicate")
    assert result.code == 2 and "invalid choice" in result.err and "Traceback" not in result.err


def test_version(cli: Cli) -> None:
    result = cli("--version")
    assert result.code == 0 and result.out.startswith("grok2api ")


def test_help_does_not_touch_data_dir(cli: Cli) -> None:
    cli("config", "show", "--help")
    assert not cli.data_dir.exists()
