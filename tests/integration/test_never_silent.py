"""What the binlog can hold that wpcdc cannot turn into events: never skipped in silence.

Each case writes, against the real MariaDB, a change of a captured table that arrives in a form
wpcdc cannot decode into correct post events (a partial row image, a statement, a TRUNCATE, a
compressed event), and checks the documented policy: everything before it reaches Kafka, the
connector stops with exit 23 and a message naming the position and the remedy, and the remedy
(`wpcdc offsets set END`, the end of that transaction) lets it go on. Transaction control that
is *not* a boundary (SAVEPOINT) and positions given by hand are covered too, and so is a server
setting that changes under a running connector (binlog_checksum).

Every case runs in a scratch database of its own (tables cloned from WordPress's), so the other
connectors of the suite never meet these rows.
"""

from __future__ import annotations

import re
import subprocess
import sys
import uuid
from collections.abc import Iterator
from typing import Any

import pymysql
import pytest

from cdc.errors import UnsupportedChangeError
from tests.integration.harness import REPO, Connector, admin_connection, wait_until

pytestmark = pytest.mark.integration

KINDS = ("posts", "postmeta", "term_relationships", "terms", "term_taxonomy")


def admin(port: int, database: str | None = None) -> pymysql.connections.Connection:
    return admin_connection(port, database, cursorclass=pymysql.cursors.DictCursor)


@pytest.fixture
def scratch(stack) -> Iterator[str]:  # type: ignore[no-untyped-def]
    """A database with empty WordPress tables (prefix ns_), dropped afterwards."""
    db = f"ns_{uuid.uuid4().hex[:8]}"
    conn = admin(stack.mysql)
    with conn, conn.cursor() as cur:
        cur.execute(f"CREATE DATABASE `{db}`")
        for kind in KINDS:
            cur.execute(f"CREATE TABLE `{db}`.`ns_{kind}` LIKE wordpress.`wp_{kind}`")
    yield db
    conn = admin(stack.mysql)
    with conn, conn.cursor() as cur:
        cur.execute(f"DROP DATABASE IF EXISTS `{db}`")


def insert_post(cur: Any, title: str, content: str = "body") -> int:
    cur.execute(
        "INSERT INTO ns_posts (post_author, post_date, post_date_gmt, post_content, post_title, post_excerpt,"
        " post_status, post_name, to_ping, pinged, post_modified, post_modified_gmt, post_content_filtered,"
        " post_type) VALUES (1, NOW(), UTC_TIMESTAMP(), %s, %s, '', 'publish', %s, '', '', NOW(),"
        " UTC_TIMESTAMP(), '', 'post')", (content, title, re.sub(r"\W+", "-", title.lower())))
    return int(cur.lastrowid)


def titles(c: Connector) -> list[str]:
    return [e["after"]["post_title"] for e in c.events() if e.get("after")]


def wait_exit(c: Connector, timeout: float = 60.0) -> int:
    assert c.proc is not None
    try:
        return c.proc.wait(timeout)
    except subprocess.TimeoutExpired:
        raise AssertionError(f"connector still running after {timeout}s:\n{c.log()[-3000:]}") from None


def cli(c: Connector, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "cdc", *args, "--name", c.name], env=c.env, cwd=REPO,
                          capture_output=True, text=True, timeout=120)


def stop_message(c: Connector) -> str:
    messages = [line for line in c.log().splitlines() if "cannot turn the binlog" in line]
    assert messages, f"no stop message in the log:\n{c.log()[-3000:]}"
    return messages[-1]


def skip_past(c: Connector) -> None:
    """The documented remedy: `wpcdc offsets set` the end the message names, then run again."""
    end = re.search(r"`wpcdc offsets set ([^`]+)`", stop_message(c))
    assert end, stop_message(c)
    done = cli(c, "offsets", "set", end.group(1))
    assert done.returncode == 0, done.stdout + done.stderr


@pytest.mark.parametrize("image", ["MINIMAL", "NOBLOB"])
def test_partial_row_image_stops_with_position_and_remedy(connectors, stack, scratch, image) -> None:  # type: ignore[no-untyped-def]
    c: Connector = connectors(database=scratch, prefix="ns_")
    c.start()
    conn = admin(stack.mysql, scratch)
    with conn, conn.cursor() as cur:
        pid = insert_post(cur, "before")
        wait_until(lambda: "before" in titles(c), 30, what="the event before the partial image")
        cur.execute(f"SET SESSION binlog_row_image={image}")
        cur.execute("UPDATE ns_posts SET post_title = 'partial' WHERE ID = %s", (pid,))
        cur.execute("SET SESSION binlog_row_image=FULL")
        assert wait_exit(c) == UnsupportedChangeError.exit_code
        message = stop_message(c)
        assert "binlog_row_image" in message and "ns_posts" in message and "offsets set" in message
        assert "partial" not in titles(c), "a value from a partial image became an event"
        # The remedy: skip the transaction, then later changes flow again.
        skip_past(c)
        c.start()
        insert_post(cur, "after the skip")
        wait_until(lambda: "after the skip" in titles(c), 30, what="the event after the skip")
    assert c.running


def test_statement_format_update_stops(connectors, stack, scratch) -> None:  # type: ignore[no-untyped-def]
    c: Connector = connectors(database=scratch, prefix="ns_")
    c.start()
    conn = admin(stack.mysql, scratch)
    with conn, conn.cursor() as cur:
        pid = insert_post(cur, "row logged")
        wait_until(lambda: "row logged" in titles(c), 30, what="the row-logged event")
        cur.execute("SET SESSION binlog_format=STATEMENT")
        cur.execute("UPDATE ns_posts SET post_title = 'statement' WHERE ID = %s", (pid,))
        cur.execute("SET SESSION binlog_format=ROW")
    assert wait_exit(c) == UnsupportedChangeError.exit_code
    message = stop_message(c)
    assert "binlog_format" in message and "ns_posts" in message and "UPDATE" not in message.split(":")[0]


def test_statement_format_elsewhere_passes(connectors, stack, scratch) -> None:  # type: ignore[no-untyped-def]
    """A statement that only writes a table wpcdc does not capture is no reason to stop."""
    c: Connector = connectors(database=scratch, prefix="ns_")
    c.start()
    conn = admin(stack.mysql, scratch)
    with conn, conn.cursor() as cur:
        cur.execute("CREATE TABLE ns_stats (id INT PRIMARY KEY, n INT)")
        cur.execute("SET SESSION binlog_format=STATEMENT")
        cur.execute("INSERT INTO ns_stats SELECT 1, COUNT(*) FROM ns_posts")
        cur.execute("SET SESSION binlog_format=ROW")
        insert_post(cur, "still flowing")
        wait_until(lambda: "still flowing" in titles(c), 30, what="the event after the statement")
    assert c.running


@pytest.mark.parametrize("ddl", ["TRUNCATE TABLE ns_postmeta", "DROP TABLE ns_term_relationships",
                                 "RENAME TABLE ns_postmeta TO ns_postmeta_old, ns_postmeta_new TO ns_postmeta"])
def test_ddl_that_removes_captured_rows_stops(connectors, stack, scratch, ddl) -> None:  # type: ignore[no-untyped-def]
    c: Connector = connectors(database=scratch, prefix="ns_")
    c.start()
    conn = admin(stack.mysql, scratch)
    with conn, conn.cursor() as cur:
        pid = insert_post(cur, "with meta")
        cur.execute("INSERT INTO ns_postmeta (post_id, meta_key, meta_value) VALUES (%s, 'color', 'teal')", (pid,))
        wait_until(lambda: any(m["after"] == "teal" for e in c.events() for m in e["meta"]), 30,
                   what="the meta event")
        cur.execute("CREATE TABLE ns_postmeta_new LIKE ns_postmeta")
        cur.execute(ddl)
    assert wait_exit(c) == UnsupportedChangeError.exit_code
    message = stop_message(c)
    verb = " ".join(ddl.split()[:2])
    assert verb in message and "backfill" in message, message


def test_harmless_ddl_passes(connectors, stack, scratch) -> None:  # type: ignore[no-untyped-def]
    c: Connector = connectors(database=scratch, prefix="ns_")
    c.start()
    conn = admin(stack.mysql, scratch)
    with conn, conn.cursor() as cur:
        cur.execute("CREATE TABLE ns_other (id INT)")
        cur.execute("TRUNCATE TABLE ns_other")
        cur.execute("DROP TABLE ns_other")
        cur.execute("ALTER TABLE ns_postmeta ADD INDEX k (meta_key(10))")
        insert_post(cur, "after harmless ddl")
        wait_until(lambda: "after harmless ddl" in titles(c), 30, what="the event after the DDL")
    assert c.running


def test_savepoint_is_not_a_transaction_boundary(connectors, stack, scratch) -> None:  # type: ignore[no-untyped-def]
    """With --window 0 a transaction is one event: a SAVEPOINT inside it must not cut it in two."""
    c: Connector = connectors(database=scratch, prefix="ns_", window=0)
    c.start()
    conn = admin(stack.mysql, scratch)
    with conn, conn.cursor() as cur:
        cur.execute("BEGIN")
        pid = insert_post(cur, "savepoint draft")
        cur.execute("SAVEPOINT a")
        cur.execute("INSERT INTO ns_postmeta (post_id, meta_key, meta_value) VALUES (%s, 'gone', 'x')", (pid,))
        cur.execute("ROLLBACK TO SAVEPOINT a")
        cur.execute("INSERT INTO ns_postmeta (post_id, meta_key, meta_value) VALUES (%s, 'kept', 'y')", (pid,))
        cur.execute("UPDATE ns_posts SET post_title = 'savepoint final' WHERE ID = %s", (pid,))
        cur.execute("COMMIT")
    events = c.wait_events((1, pid), count=1)
    (event,) = events
    assert event["op"] == "create" and event["after"]["post_title"] == "savepoint final"
    assert [(m["key"], m["after"]) for m in event["meta"]] == [("kept", "y")]


def test_start_inside_a_transaction_moves_to_its_start(connectors, stack, scratch) -> None:  # type: ignore[no-untyped-def]
    """--start FILE:POS at a rows event (after its table map) would lose rows: it is moved back."""
    conn = admin(stack.mysql, scratch)
    with conn, conn.cursor() as cur:
        cur.execute("FLUSH BINARY LOGS")
        cur.execute("SHOW MASTER STATUS")
        file = cur.fetchone()["File"]
        pid = insert_post(cur, "inside")
        cur.execute("SHOW BINLOG EVENTS IN %s", (file,))
        rows = [e for e in cur.fetchall() if e["Event_type"].startswith("Write_rows")]
    inside = f"{file}:{rows[-1]['Pos']}"
    c: Connector = connectors(database=scratch, prefix="ns_")
    c.start("--start", inside)
    events = c.wait_events((1, pid), count=1)
    assert events[0]["after"]["post_title"] == "inside"
    assert "moved" in c.log() and inside in c.log()
    # Not the start of any event: refused with the nearest valid places.
    bad = cli(c, "offsets", "set", f"{file}:{rows[-1]['Pos'] + 1}")
    assert bad.returncode == 2 and "not the start of an event" in bad.stderr, bad.stderr


@pytest.fixture
def checksum_none(stack) -> Iterator[None]:  # type: ignore[no-untyped-def]
    conn = admin(stack.mysql)
    with conn, conn.cursor() as cur:
        cur.execute("SELECT @@GLOBAL.binlog_checksum AS c")
        original = cur.fetchone()["c"]
        cur.execute("SET GLOBAL binlog_checksum = NONE")
    try:
        yield
    finally:
        conn = admin(stack.mysql)
        with conn, conn.cursor() as cur:
            cur.execute(f"SET GLOBAL binlog_checksum = {original}")


def test_binlog_checksum_change_reconnects(connectors, stack, scratch, checksum_none) -> None:  # type: ignore[no-untyped-def]
    c: Connector = connectors(database=scratch, prefix="ns_")
    c.start()
    conn = admin(stack.mysql, scratch)
    with conn, conn.cursor() as cur:
        insert_post(cur, "checksum none")
        wait_until(lambda: "checksum none" in titles(c), 30, what="the event before the change")
        cur.execute("SET GLOBAL binlog_checksum = CRC32")
        insert_post(cur, "checksum crc32")
        wait_until(lambda: "checksum crc32" in titles(c), 60, what="the event after the change")
    assert c.running, c.log()[-3000:]
    assert "binlog_checksum changed" in c.log()


@pytest.fixture
def compressed_binlog(stack) -> Iterator[None]:  # type: ignore[no-untyped-def]
    """log_bin_compress=ON for the test (a global setting: new sessions write compressed events)."""
    conn = admin(stack.mysql)
    with conn, conn.cursor() as cur:
        cur.execute("SET GLOBAL log_bin_compress = ON")
    try:
        yield
    finally:
        conn = admin(stack.mysql)
        with conn, conn.cursor() as cur:
            cur.execute("SET GLOBAL log_bin_compress = OFF")


def test_compressed_binlog_is_read(connectors, stack, scratch, compressed_binlog) -> None:  # type: ignore[no-untyped-def]
    """MariaDB's log_bin_compress: query and rows events over 256 bytes are written compressed.
    Three posts, an update and a meta row, all long enough to be compressed, arrive whole."""
    c: Connector = connectors(database=scratch, prefix="ns_")
    c.start()
    check = cli(c, "check")
    assert check.returncode == 0 and "log_bin_compress: ON (compressed events are inflated)" in check.stdout, (
        check.stdout + check.stderr)
    conn = admin(stack.mysql, scratch)
    with conn, conn.cursor() as cur:
        cur.execute("SHOW MASTER STATUS")
        status = cur.fetchone()
        file, start = status["File"], status["Position"]
        ids = [insert_post(cur, f"compressed {i}", f"body {i} " + "x" * 2000) for i in range(3)]
        cur.execute("UPDATE ns_posts SET post_content = %s WHERE ID = %s", ("y" * 3000, ids[0]))
        cur.execute("INSERT INTO ns_postmeta (post_id, meta_key, meta_value) VALUES (%s, 'long', %s)",
                    (ids[1], "z" * 1000))
        cur.execute("SHOW BINLOG EVENTS IN %s FROM %s", (file, start))
        kinds = {e["Event_type"] for e in cur.fetchall()}
    assert {"Write_rows_compressed_v1", "Update_rows_compressed_v1"} <= kinds, kinds  # really compressed
    events = c.wait_events(*[(1, i) for i in ids], count=3)
    by_id = {e["post_id"]: e for e in events}
    assert by_id[ids[0]]["after"]["post_content"] == "y" * 3000
    assert by_id[ids[2]]["after"]["post_content"] == "body 2 " + "x" * 2000
    assert [(m["key"], m["after"]) for m in by_id[ids[1]]["meta"]] == [("long", "z" * 1000)]
    assert c.running
