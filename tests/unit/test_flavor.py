"""MariaDB vs MySQL 8.0/8.4: the SQL and checks that differ, against recorded server answers."""

from __future__ import annotations

from typing import Any

import pytest

from cdc.config import MysqlSettings
from cdc.errors import Exit, PreflightError
from cdc.position import Position
from cdc.source import preflight
from cdc.source.flavor import Flavor, GtidState


@pytest.mark.parametrize(("version", "name", "parsed", "status_sql", "gtid_sql", "compression"), [
    ("10.11.19-MariaDB-0+deb12u1-log", "mariadb", (10, 11, 19), "SHOW MASTER STATUS",
     "SELECT @@GLOBAL.gtid_binlog_pos", "log_bin_compress"),
    ("8.0.36", "mysql", (8, 0, 36), "SHOW MASTER STATUS", "SELECT @@GLOBAL.gtid_executed",
     "binlog_transaction_compression"),
    ("8.4.0-commercial", "mysql", (8, 4, 0), "SHOW BINARY LOG STATUS", "SELECT @@GLOBAL.gtid_executed",
     "binlog_transaction_compression"),
])
def test_flavor_from_version(version: str, name: str, parsed: tuple[int, int, int], status_sql: str,
                             gtid_sql: str, compression: str) -> None:
    f = Flavor.from_version(version)
    assert (f.name, f.version, f.binlog_status_sql, f.gtid_position_sql, f.compression_variable) == (
        name, parsed, status_sql, gtid_sql, compression)
    assert f.supports_row_metadata


def test_old_servers_lack_row_metadata() -> None:
    assert not Flavor.from_version("10.4.30-MariaDB").supports_row_metadata
    assert not Flavor.from_version("5.7.44-log").supports_row_metadata


class RecordedServer:
    """Answers preflight's queries the way a server did (a fake Database for pure logic)."""

    def __init__(self, version: str, variables: dict[str, str], grants: list[str],
                 binlogs: dict[str, int] | None = None) -> None:
        self.settings = MysqlSettings(user="wpcdc")
        self.flavor = Flavor.from_version(version)
        self._variables = variables
        self._grants = grants
        self._binlogs = binlogs or {}

    def variable(self, name: str) -> str | None:
        return self._variables.get(name)

    def query(self, sql: str, args: Any = None) -> list[dict[str, Any]]:
        if sql.startswith("SELECT CURRENT_USER()"):
            return [{"u": "wpcdc@%"}]
        assert sql == "SHOW GRANTS", sql
        return [{"Grants for wpcdc@%": g} for g in self._grants]

    def binlogs(self) -> dict[str, int]:
        return self._binlogs


GOOD = {"log_bin": "ON", "binlog_format": "ROW", "binlog_row_image": "FULL", "binlog_row_metadata": "FULL"}


def test_mysql_84_with_compressed_transactions_is_refused() -> None:
    server = RecordedServer("8.4.0", {**GOOD, "binlog_transaction_compression": "ON"}, [])
    with pytest.raises(PreflightError, match="binlog_transaction_compression=OFF") as err:
        preflight.check_binlog_settings(server)  # type: ignore[arg-type]
    assert err.value.exit_code == Exit.COMPRESSION
    ok = RecordedServer("8.4.0", {**GOOD, "binlog_transaction_compression": "OFF"}, [])
    names = [r.name for r in preflight.check_binlog_settings(ok)]  # type: ignore[arg-type]
    assert names == ["log_bin", "binlog_format", "binlog_row_image", "binlog_row_metadata",
                     "binlog_transaction_compression", "binlog_row_value_options"]


def test_mariadb_compressed_binlog_is_read() -> None:
    on = RecordedServer("10.11.6-MariaDB", {**GOOD, "log_bin_compress": "ON", "binlog_checksum": "CRC32"}, [])
    results = {r.name: r.detail for r in preflight.check_binlog_settings(on)}  # type: ignore[arg-type]
    assert results["log_bin_compress"] == "ON (compressed events are inflated)"
    off = RecordedServer("10.11.6-MariaDB", {**GOOD, "log_bin_compress": "OFF", "binlog_checksum": "NONE"}, [])
    results = {r.name: r.detail for r in preflight.check_binlog_settings(off)}  # type: ignore[arg-type]
    assert results["log_bin_compress"] == "OFF" and results["binlog_checksum"].startswith("NONE")


def test_mysql_partial_json_is_refused() -> None:
    server = RecordedServer("8.0.36", {**GOOD, "binlog_row_value_options": "PARTIAL_JSON"}, [])
    with pytest.raises(PreflightError, match="binlog_row_value_options") as err:
        preflight.check_binlog_settings(server)  # type: ignore[arg-type]
    assert err.value.exit_code == Exit.BINLOG_FORMAT


def test_log_bin_off_names_the_fix() -> None:
    server = RecordedServer("8.0.36", {**GOOD, "log_bin": "OFF"}, [])
    with pytest.raises(PreflightError, match="log_bin") as err:
        preflight.check_binlog_settings(server)  # type: ignore[arg-type]
    assert err.value.exit_code == Exit.LOG_BIN


@pytest.mark.parametrize(("version", "grants", "missing"), [
    ("8.4.0", ["GRANT REPLICATION SLAVE, REPLICATION CLIENT ON *.* TO `wpcdc`@`%`"], None),
    ("8.0.36", ["GRANT SELECT ON `wordpress`.* TO `wpcdc`@`%`"], "REPLICATION SLAVE, REPLICATION CLIENT"),
    ("10.11.6-MariaDB", ["GRANT BINLOG MONITOR, REPLICATION SLAVE ON *.* TO `wpcdc`@`%`"], None),
    ("10.11.6-MariaDB", ["GRANT REPLICATION SLAVE ON *.* TO `wpcdc`@`%`"], "REPLICATION CLIENT"),
    ("8.0.36", ["GRANT ALL PRIVILEGES ON *.* TO `root`@`%`"], None),
])
def test_replication_grants(version: str, grants: list[str], missing: str | None) -> None:
    server = RecordedServer(version, GOOD, grants)
    if missing is None:
        assert preflight.check_privileges(server).ok  # type: ignore[arg-type]
    else:
        with pytest.raises(PreflightError, match=missing) as err:
            preflight.check_privileges(server)  # type: ignore[arg-type]
        assert err.value.exit_code == Exit.PRIVILEGES


def test_saved_position_must_still_exist() -> None:
    server = RecordedServer("8.0.36", GOOD, [], binlogs={"mysql-bin.000010": 5000, "mysql-bin.000011": 100})
    assert preflight.check_position(server, Position("mysql-bin.000010", 4000)).ok  # type: ignore[arg-type]
    with pytest.raises(PreflightError, match="mysql-bin.000003 was purged.*mysql-bin.000010.*wpcdc backfill"):
        preflight.check_position(server, Position("mysql-bin.000003", 4))  # type: ignore[arg-type]
    with pytest.raises(PreflightError, match="past the end"):
        preflight.check_position(server, Position("mysql-bin.000011", 999))  # type: ignore[arg-type]


# ------------------------------------------------------------------------------------ GTID state


def test_mariadb_gtid_state_keeps_the_last_gtid_per_domain() -> None:
    state = GtidState("0-1-10,1-2-5")
    state.apply("0-1-11")
    state.apply("2-3-1")
    assert state.text() == "0-1-11,1-2-5,2-3-1"
    assert GtidState(None).text() is None and GtidState("").text() is None


def test_mysql_gtid_set_grows_by_each_transaction() -> None:
    uuid = "3e11fa47-71ca-11e1-9e33-c80aa9429562"
    other = "0a7b1c2d-0000-11e1-9e33-c80aa9429562"
    state = GtidState(f"{uuid}:1-100:105,\n{other}:1-7")
    state.apply(f"{uuid}:101")
    assert state.text() == f"{other}:1-7,{uuid}:1-101:105"
    for n in (102, 103, 104):
        state.apply(f"{uuid}:{n}")
    assert state.text() == f"{other}:1-7,{uuid}:1-105"  # the gap closed: one interval
    state.apply(f"{other}:9")
    assert state.text() == f"{other}:1-7:9,{uuid}:1-105"


def test_mysql_gtid_state_starts_empty_and_upper_case_uuids_are_one_server() -> None:
    state = GtidState(None)
    state.apply("3E11FA47-71CA-11E1-9E33-C80AA9429562:1")
    state.apply("3e11fa47-71ca-11e1-9e33-c80aa9429562:2")
    assert state.text() == "3e11fa47-71ca-11e1-9e33-c80aa9429562:1-2"
