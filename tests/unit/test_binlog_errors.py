"""How the binlog reader names what ended it: a shared server_id (both servers' words), a purge,
and statement-format writes counted before the stop."""

from __future__ import annotations

import pymysql
from prometheus_client import REGISTRY

from cdc.config import MysqlSettings
from cdc.errors import BinlogPurgedError, Exit, InvalidPositionError, ReplicaReplacedError
from cdc.position import Position
from cdc.source.binlog import BinlogSource, report_host
from cdc.wordpress import TableNames


def source() -> BinlogSource:
    return BinlogSource(MysqlSettings(host="db-1", port=3306), TableNames("wp_"), server_id=1234567,
                        start=Position("mariadb-bin.000042", 4), gtid=None)


def test_a_shared_server_id_names_it_and_both_causes() -> None:
    mariadb = pymysql.err.OperationalError(
        4052, "A slave with the same server_uuid/server_id as this slave has connected to the master")
    mysql = pymysql.err.OperationalError(
        1236, "A slave with the same server_uuid/server_id as this slave has connected to the master; the first "
              "event 'mysql-bin.000016' at 154, the last event read from './mysql-bin.000016' at 123")
    for exc in (mariadb, mysql):
        error = source()._map_error(exc)  # noqa: SLF001
        assert isinstance(error, ReplicaReplacedError) and error.exit_code == Exit.FENCED
        text = str(error)
        assert "server_id 1234567" in text and "db-1:3306" in text
        for words in ("Is another instance running?", "a second instance of this connector", "another connector or a real replica",
                      "--server-id", "SHOW SLAVE HOSTS", "SHOW REPLICAS", "Binlog Dump"):
            assert words in text, words


def test_other_1236_errors_keep_their_meaning() -> None:
    purged = pymysql.err.OperationalError(1236, "Could not find first log file name in binary log index file")
    assert isinstance(source()._map_error(purged), BinlogPurgedError)  # noqa: SLF001
    refused = pymysql.err.OperationalError(1236, "Client requested master to start replication from impossible position")
    assert isinstance(source()._map_error(refused), InvalidPositionError)  # noqa: SLF001


def test_the_reported_host_names_the_connector_within_the_servers_limit() -> None:
    host = report_host("blog-example-com")
    assert host.startswith("wpcdc blog-example-com on ") and len(host) <= 60
    assert len(report_host("x" * 100)) == 60


def test_statement_writes_are_counted_per_table_kind() -> None:
    def count(kind: str) -> float:
        return REGISTRY.get_sample_value("wpcdc_statement_writes_total", {"table": kind}) or 0.0

    posts, meta = count("posts"), count("postmeta")
    source()._count_statement(("wp_posts", "wp_2_posts", "wp_2_postmeta"))  # noqa: SLF001 - the reader's hook
    assert (count("posts"), count("postmeta")) == (posts + 1, meta + 1)  # one statement: once per kind
