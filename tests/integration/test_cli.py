"""The CLI against the real stack: preflight failures, bad config, precedence, offsets.

Every failure must be one clear line with the fix, and a distinct exit code (docs/operations.md).
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import orjson
import pymysql
import pytest

from tests.integration.harness import REPO, unique

pytestmark = pytest.mark.integration


def wpcdc(env: dict[str, str], *args: str, extra_env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    full = {**os.environ, **env, **(extra_env or {})}
    return subprocess.run([sys.executable, "-m", "cdc", "--log-format", "text", *args], env=full, cwd=REPO,
                          capture_output=True, text=True, timeout=120)


@contextmanager
def global_variable(port: int, name: str, value: str) -> Iterator[None]:
    conn = pymysql.connect(host="127.0.0.1", port=port, user="admin", password="admin-pw", autocommit=True)
    with conn, conn.cursor() as cur:
        cur.execute(f"SELECT @@GLOBAL.{name}")
        (old,) = cur.fetchone()
        cur.execute(f"SET GLOBAL {name} = %s", (value,))
        try:
            yield
        finally:
            cur.execute(f"SET GLOBAL {name} = %s", (old,))


def test_check_passes_on_the_stack(cdc_env) -> None:  # type: ignore[no-untyped-def]
    result = wpcdc(cdc_env, "check", "--name", unique("chk"))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "ok    binlog_row_metadata: FULL" in result.stdout


@pytest.mark.parametrize(("variable", "value", "code"), [
    ("binlog_format", "STATEMENT", 12),
    ("binlog_row_image", "MINIMAL", 13),
    ("binlog_row_metadata", "MINIMAL", 14),
])
def test_wrong_server_settings_fail_with_their_code(cdc_env, stack, variable: str, value: str, code: int) -> None:  # type: ignore[no-untyped-def]
    with global_variable(stack.mysql, variable, value):
        result = wpcdc(cdc_env, "check")
        stream = wpcdc(cdc_env, "stream", "--name", unique("bad"))
    assert result.returncode == code, result.stdout + result.stderr
    assert f"FAIL  {variable}" in result.stdout and "my.cnf" in result.stdout
    assert stream.returncode == code  # stream runs the same preflight before reading anything


def test_login_privileges_and_tables(cdc_env, stack) -> None:  # type: ignore[no-untyped-def]
    bad_password = wpcdc(cdc_env, "check", extra_env={"WPCDC_MYSQL_PASSWORD": "nope"})
    assert bad_password.returncode == 10 and "refused the login" in bad_password.stdout

    conn = pymysql.connect(host="127.0.0.1", port=stack.mysql, user="admin", password="admin-pw", autocommit=True)
    with conn, conn.cursor() as cur:
        cur.execute("CREATE USER IF NOT EXISTS 'weak'@'127.0.0.1' IDENTIFIED BY 'weak-pw'")
        cur.execute("GRANT SELECT ON wordpress.* TO 'weak'@'127.0.0.1'")
    weak = wpcdc(cdc_env, "check", extra_env={"WPCDC_MYSQL_USER": "weak", "WPCDC_MYSQL_PASSWORD": "weak-pw"})
    assert weak.returncode == 15, weak.stdout + weak.stderr
    assert "REPLICATION SLAVE" in weak.stdout and "GRANT" in weak.stdout

    wrong_prefix = wpcdc(cdc_env, "check", "--table-prefix", "nope_")
    assert wrong_prefix.returncode == 16 and "--table-prefix" in wrong_prefix.stdout

    single = wpcdc(cdc_env, "check", "--table-prefix", "site_", extra_env={"WPCDC_MYSQL_DATABASE": "wpsingle"})
    assert single.returncode == 0, single.stdout


@pytest.mark.parametrize(("args", "needle"), [
    (["--window", "-1"], "--window"),
    (["--name", "has space"], "--name"),
    (["--max-delay", "1", "--window", "5"], "--max-delay"),
    (["--blogs", "one,two"], "--blogs"),
    (["--snapshot-id-range", "x"], "--snapshot-id-range"),
])
def test_bad_config_values_exit_2_naming_the_option(cdc_env, args: list[str], needle: str) -> None:  # type: ignore[no-untyped-def]
    result = wpcdc(cdc_env, "stream", *args)
    assert result.returncode == 2, result.stdout + result.stderr
    assert needle in result.stderr


def test_precedence_cli_over_env_over_file(cdc_env, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    config = tmp_path / "wpcdc.toml"
    config.write_text('name = "from-file"\n[mysql]\nport = 1\n')
    only_file = wpcdc(cdc_env, "--config", str(config), "offsets", "show",
                      extra_env={"WPCDC_NAME": "", "WPCDC_MYSQL_PORT": ""})
    assert "'from-file'" in only_file.stdout, only_file.stdout + only_file.stderr
    env_wins = wpcdc(cdc_env, "--config", str(config), "offsets", "show", extra_env={"WPCDC_NAME": "from-env"})
    assert "'from-env'" in env_wins.stdout
    cli_wins = wpcdc(cdc_env, "--config", str(config), "offsets", "show", "--name", "from-cli",
                     extra_env={"WPCDC_NAME": "from-env"})
    assert "'from-cli'" in cli_wins.stdout
    broken = tmp_path / "broken.toml"
    broken.write_text("name = [unclosed")
    result = wpcdc(cdc_env, "--config", str(broken), "check")
    assert result.returncode == 2 and "not valid TOML" in result.stderr


def test_offsets_show_set_reset(cdc_env, stack) -> None:  # type: ignore[no-untyped-def]
    name = unique("off")
    none = wpcdc(cdc_env, "offsets", "show", "--name", name)
    assert none.returncode == 3 and "no checkpoint" in none.stdout

    conn = pymysql.connect(host="127.0.0.1", port=stack.mysql, user="admin", password="admin-pw")
    with conn, conn.cursor() as cur:
        cur.execute("SHOW MASTER STATUS")
        file, pos = cur.fetchone()[:2]
    assert wpcdc(cdc_env, "offsets", "set", f"{file}:{pos}", "--name", name).returncode == 0
    shown = orjson.loads(wpcdc(cdc_env, "offsets", "show", "--name", name).stdout)
    assert shown["resume"]["file"] == file and shown["resume"]["pos"] == pos

    gone = wpcdc(cdc_env, "offsets", "set", "mariadb-bin.000000:4", "--name", name)
    assert gone.returncode == 21 and "purged" in gone.stderr
    garbage = wpcdc(cdc_env, "offsets", "set", "nonsense", "--name", name)
    assert garbage.returncode == 2 and "FILE:POS" in garbage.stderr

    assert wpcdc(cdc_env, "offsets", "reset", "--name", name).returncode == 0
    reset = orjson.loads(wpcdc(cdc_env, "offsets", "show", "--name", name).stdout)
    assert (reset["resume"]["file"], reset["resume"]["pos"]) >= (file, pos)
