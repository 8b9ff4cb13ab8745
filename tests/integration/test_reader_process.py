"""The reader process (cdc/source/reader_process.py) against the real MariaDB: a failure of the
reader reaches the connector as the same exception the in-process reader gives, and a connector
killed with SIGKILL leaves no reader behind holding its replication connection.

What it hands over is compared item by item with the in-process reader in test_framing.py.
"""

from __future__ import annotations

import os
import queue
import signal
import subprocess
import sys
import textwrap
import time
from typing import Any

import pytest

from cdc.config import MysqlSettings
from cdc.position import Position
from cdc.source.binlog import BinlogSource, SourceFailed
from cdc.source.reader_process import ProcessSource
from cdc.wordpress import TableNames
from tests.integration.harness import REPO, admin_connection, binlog_end

import stack as local_stack

pytestmark = pytest.mark.integration


def _settings(port: int) -> MysqlSettings:
    return MysqlSettings(host="127.0.0.1", port=port, user="wpcdc", password="wpcdc-pw", database="wordpress")


def _first_failure(source: Any) -> BaseException:
    source.start()
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                chunk = source.queue.get(timeout=5)
            except queue.Empty:
                continue
            for item in chunk:
                if isinstance(item, SourceFailed):
                    return item.error
        pytest.fail("no failure reached the connector")
    finally:
        source.stop()


def test_a_reader_failure_arrives_as_the_in_process_reader_gives_it(stack: local_stack.Ports) -> None:
    start = Position("mariadb-bin.999999", 4)  # a file the server never had
    tables = TableNames("wp_")
    here = _first_failure(BinlogSource(_settings(stack.mysql), tables, server_id=3_920_001, start=start, gtid=None))
    piped = _first_failure(ProcessSource(_settings(stack.mysql), tables, server_id=3_920_002, start=start, gtid=None))
    assert type(piped) is type(here)
    assert str(piped).replace("3920002", "3920001") == str(here)
    assert vars(piped) == vars(here)


def _slave_hosts(port: int) -> set[int]:
    conn = admin_connection(port)
    try:
        with conn.cursor() as cur:
            cur.execute("SHOW SLAVE HOSTS")
            return {int(row[0]) for row in cur.fetchall()}
    finally:
        conn.close()


def test_a_killed_connector_leaves_no_reader_behind(stack: local_stack.Ports) -> None:
    server_id = 3_920_003
    conn = admin_connection(stack.mysql)
    start = binlog_end(conn)
    conn.close()
    script = textwrap.dedent(f"""
        import sys, time
        from cdc.config import MysqlSettings
        from cdc.position import Position
        from cdc.source.reader_process import ProcessSource
        from cdc.wordpress import TableNames
        settings = MysqlSettings(host="127.0.0.1", port={stack.mysql}, user="wpcdc", password="wpcdc-pw",
                                 database="wordpress")
        source = ProcessSource(settings, TableNames("wp_"), server_id={server_id}, start=Position.parse("{start}"),
                               gtid=None, report_host="wpcdc-kill-test")
        source.start()
        print(source._proc.pid, flush=True)
        time.sleep(120)
    """)
    env = dict(os.environ, PYTHONPATH=str(REPO))
    parent = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, env=env, cwd=REPO)
    try:
        assert parent.stdout is not None
        child = int(parent.stdout.readline())
        deadline = time.monotonic() + 30
        while server_id not in _slave_hosts(stack.mysql):  # the reader registered and reads
            assert time.monotonic() < deadline, "the reader process never connected"
            time.sleep(0.2)
        os.kill(parent.pid, signal.SIGKILL)
        parent.wait(10)
        deadline = time.monotonic() + 10
        while os.path.exists(f"/proc/{child}"):
            assert time.monotonic() < deadline, "the reader process outlived the killed connector"
            time.sleep(0.1)
        deadline = time.monotonic() + 30
        while server_id in _slave_hosts(stack.mysql):  # the server saw the connection go
            assert time.monotonic() < deadline, "the killed reader's replication connection stayed"
            time.sleep(0.2)
    finally:
        if parent.poll() is None:
            parent.kill()
