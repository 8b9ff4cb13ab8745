"""Binlog retention risk without a server: the arithmetic of cdc/source/retention.py and the expiry
settings of each flavour (recorded answers)."""

from __future__ import annotations

import pytest

from cdc.position import Position
from cdc.source.flavor import Flavor
from cdc.source.retention import ServerBinlogs, assess

DAY = 86_400.0
NOW = 1_700_000_000.0
FILES = {"mysql-bin.000007": 1_000, "mysql-bin.000008": 5_000, "mysql-bin.000009": 2_000, "mysql-bin.000010": 700}


def server(expire: float | None = 2 * DAY, files: dict[str, int] | None = None) -> ServerBinlogs:
    return ServerBinlogs(FILES if files is None else files, expire, NOW)


def test_files_and_bytes_behind() -> None:
    r = assess(server(), Position("mysql-bin.000008", 1_200), None, NOW)
    assert (r.server_files, r.oldest_file, r.current_file) == (4, 7, 10)
    assert r.files_behind == 1  # one purge left before the checkpoint's file goes
    assert r.bytes_behind_end == (5_000 - 1_200) + 2_000 + 700
    oldest = assess(server(), Position("mysql-bin.000007", 4), None, NOW)
    assert oldest.files_behind == 0  # the next purge takes it: a backfill would follow
    at_end = assess(server(), Position("mysql-bin.000010", 700), None, NOW)
    assert (at_end.files_behind, at_end.bytes_behind_end) == (3, 0)


def test_seconds_left_of_a_closed_file_count_from_its_close() -> None:
    closed = NOW - DAY - 600  # closed 24h10m ago, expiry 48h: 23h50m left
    r = assess(server(), Position("mysql-bin.000008", 1_200), closed, NOW)
    assert r.seconds_left == pytest.approx(DAY - 600)
    overdue = assess(server(), Position("mysql-bin.000008", 1_200), NOW - 3 * DAY, NOW)
    assert overdue.seconds_left == 0  # eligible: gone at the next rotation or FLUSH BINARY LOGS


def test_seconds_left_in_the_file_being_written_is_the_whole_expiry() -> None:
    r = assess(server(), Position("mysql-bin.000010", 300), None, NOW)
    assert r.seconds_left == 2 * DAY  # it must be closed first, then age


def test_seconds_left_unknown_without_expiry_or_close_time() -> None:
    assert assess(server(expire=None), Position("mysql-bin.000008", 4), NOW - 10, NOW).seconds_left is None
    assert assess(server(expire=None), Position("mysql-bin.000010", 4), None, NOW).seconds_left is None
    assert assess(server(), Position("mysql-bin.000008", 4), None, NOW).seconds_left is None


def test_a_purged_checkpoint_file() -> None:
    r = assess(server(), Position("mysql-bin.000005", 4), NOW, NOW)
    assert (r.files_behind, r.bytes_behind_end, r.seconds_left) == (-1, None, 0.0)


def test_no_checkpoint_yet_or_no_files() -> None:
    r = assess(server(), None, None, NOW)
    assert (r.server_files, r.files_behind, r.bytes_behind_end, r.seconds_left) == (4, None, None, None)
    empty = assess(server(files={}), Position("mysql-bin.000005", 4), None, NOW)
    assert (empty.server_files, empty.oldest_file, empty.files_behind) == (0, None, None)


def test_file_numbers_not_names_order_the_files() -> None:
    files = {"bin.999999": 10, "bin.1000000": 20, "bin.1000001": 30}
    r = assess(server(files=files), Position("bin.1000000", 5), None, NOW)
    assert (r.oldest_file, r.current_file, r.files_behind, r.bytes_behind_end) == (999_999, 1_000_001, 1, 15 + 30)


@pytest.mark.parametrize(("version", "values", "expected"), [
    # MariaDB 10.11 as the local stack answers: both set, linked; the seconds win.
    ("10.11.19-MariaDB-0+deb12u1-log", {"binlog_expire_logs_seconds": "172800", "expire_logs_days": "2.000000"}, 2 * DAY),
    ("10.11.19-MariaDB", {"binlog_expire_logs_seconds": "0", "expire_logs_days": "0.000000"}, None),
    ("10.11.19-MariaDB", {"binlog_expire_logs_seconds": "0", "expire_logs_days": "0.500000"}, DAY / 2),
    ("10.5.22-MariaDB", {"expire_logs_days": "7"}, 7 * DAY),  # before 10.6: days only
    # MySQL 8: seconds (default 30 days); expire_logs_days when the seconds are 0; auto purge off.
    ("8.0.36", {"binlog_expire_logs_seconds": "2592000", "expire_logs_days": "0",
                "binlog_expire_logs_auto_purge": "ON"}, 30 * DAY),
    ("8.0.20", {"binlog_expire_logs_seconds": "0", "expire_logs_days": "3"}, 3 * DAY),
    ("8.0.36", {"binlog_expire_logs_seconds": "2592000", "binlog_expire_logs_auto_purge": "OFF"}, None),
    ("8.4.0", {"binlog_expire_logs_seconds": "604800", "binlog_expire_logs_auto_purge": "ON"}, 7 * DAY),
    ("8.4.0", {"binlog_expire_logs_seconds": "0", "binlog_expire_logs_auto_purge": "ON"}, None),
])
def test_expiry_of_each_flavour(version: str, values: dict[str, str], expected: float | None) -> None:
    flavor = Flavor.from_version(version)
    assert set(values) <= set(flavor.expiry_variables)
    assert flavor.binlog_expiry(values) == expected
