"""`grok2api tokens import|list|remove` through the real CLI (local backend)."""

from __future__ import annotations

from pathlib import Path

import pytest

from .conftest import Cli

T1 = "eyJhbGciOiJIUzI1NiJ9.eyJzZXNzaW9uX2lkIjoidG9rZW4tb25lIn0.c2lnLW9uZS1zaWduYXR1cmU"
T2 = "eyJhbGciOiJIUzI1NiJ9.eyJzZXNzaW9uX2lkIjoidG9rZW4tdHdvIn0.c2lnLXR3by1zaWduYXR1cmU"
T3 = "plain-token-three-0123456789"


def _file(tmp: Path, lines: list[str]) -> Path:
    path = tmp / "tokens.txt"
    path.write_text("\n".join(lines) + "\n")
    return path


def test_import_counts_prefixes_duplicates_blanks(cli: Cli) -> None:
    path = _file(cli.cwd, [f"sso={T1}", "", "   ", T2, f"  {T1}  ", "# a comment", f"sso={T2}", T3, "sso="])
    result = cli("tokens", "import", str(path))
    assert result.code == 0, result.err
    assert result.out.strip() == "added 3, skipped 3"
    again = cli("tokens", "import", str(path))
    assert again.out.strip() == "added 0, skipped 6"


def test_import_from_stdin_and_pool(cli: Cli) -> None:
    result = cli("tokens", "import", "-", "--pool", "super", stdin=f"{T1}\n{T3}\n")
    assert result.out.strip() == "added 2, skipped 0"
    listed = cli("tokens", "list")
    rows = [line.split() for line in listed.out.splitlines()[1:-1]]
    assert {row[1] for row in rows} == {"super"}
    assert {row[3] for row in rows} == {"140"}  # token.super_default_quota


def test_import_uses_configured_default_quota(cli: Cli) -> None:
    assert cli("config", "set", "token.basic_default_quota", "33").code == 0
    cli("tokens", "import", "-", stdin=T3 + "\n")
    assert " 33 " in cli("tokens", "list").out


def test_list_is_masked(cli: Cli) -> None:
    cli("tokens", "import", "-", stdin=f"{T1}\n{T2}\n{T3}\n")
    listed = cli("tokens", "list")
    assert listed.code == 0
    header, *rows, footer = listed.out.splitlines()
    assert header.split() == ["TOKEN", "POOL", "STATUS", "QUOTA", "USES", "FAILS"]
    assert footer == "3 tokens" and len(rows) == 3
    for token in (T1, T2, T3):
        assert token not in listed.out
        assert token[20:40] not in listed.out
    assert all(row.split()[1:4] == ["basic", "active", "80"] for row in rows)


def test_list_empty(cli: Cli) -> None:
    listed = cli("tokens", "list")
    assert listed.code == 0 and listed.out.strip().endswith("0 tokens")


def test_remove_accepts_sso_form(cli: Cli) -> None:
    cli("tokens", "import", "-", stdin=f"{T1}\n{T3}\n")
    result = cli("tokens", "remove", f"sso={T1}")
    assert result.code == 0 and result.out.strip() == "removed 1"
    assert cli("tokens", "list").out.strip().endswith("1 token")
    missing = cli("tokens", "remove", T1)
    assert missing.code == 1 and "not found" in missing.err and T1 not in missing.err


def test_import_missing_file_is_one_line(cli: Cli) -> None:
    result = cli("tokens", "import", "nope.txt")
    assert result.code == 1 and result.err.startswith("error: cannot read nope.txt")
    assert "Traceback" not in result.err


def test_bad_pool_is_a_usage_error(cli: Cli) -> None:
    result = cli("tokens", "import", "-", "--pool", "gold", stdin=T1)
    assert result.code == 2 and "--pool" in result.err


def test_tokens_with_redis_backend(cli: Cli, redis_url: str) -> None:
    pytest.importorskip("redis")
    import uuid

    # A private database-like isolation: the CLI uses the default namespace, so clean up after.
    env = {"SERVER_STORAGE_TYPE": "redis", "SERVER_STORAGE_URL": redis_url}
    token = f"redis-cli-test-{uuid.uuid4().hex}"
    try:
        assert cli("tokens", "import", "-", env=env, stdin=f"sso={token}\n").out.strip() == "added 1, skipped 0"
        listed = cli("tokens", "list", env=env)
        assert listed.code == 0 and token not in listed.out
    finally:
        assert cli("tokens", "remove", token, env=env).out.strip() == "removed 1"
