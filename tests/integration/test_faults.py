"""Faults survived against the real stack: rotations, restarts, cut connections, schema changes,
a purged binlog, a second instance, and values too big for Kafka.

Each test drives real WordPress, disturbs one server (or the connector), and then checks that
every change arrived once, in order.
"""

from __future__ import annotations

import base64
import time
from collections import Counter
from typing import Any

import pymysql
import pytest

from tests.integration.harness import Connector, admin_connection, wait_until

import stack as local_stack

pytestmark = pytest.mark.integration


def admin(port: int, database: str = "wordpress") -> pymysql.connections.Connection:
    return admin_connection(port, database, cursorclass=pymysql.cursors.DictCursor)


def sql(port: int, statement: str, args: Any = None) -> list[dict[str, Any]]:
    conn = admin(port)
    with conn, conn.cursor() as cur:
        cur.execute(statement, args)
        return list(cur.fetchall())


def assert_once_in_order(events: list[dict[str, Any]]) -> None:
    dupes = [i for i, n in Counter(e["event_id"] for e in events).items() if n > 1]
    assert not dupes, f"duplicate events {dupes}"
    last: dict[tuple[int, int], int] = {}
    for e in events:
        key = (e["blog_id"], e["post_id"])
        assert e["seq"] > last.get(key, -1), f"seq of {key} went backwards"
        last[key] = e["seq"]


def titles(events: list[dict[str, Any]]) -> list[str]:
    return [e["after"]["post_title"] for e in events if e["after"]]


def test_binlog_rotation_mid_stream(connectors, wordpress, stack) -> None:  # type: ignore[no-untyped-def]
    c: Connector = connectors()
    c.start()
    pid = wordpress.create_post("rotate 0", status="publish")
    c.wait_events((1, pid), count=1)
    files = []
    for i in range(1, 4):
        sql(stack.mysql, "FLUSH BINARY LOGS")
        wordpress.update_post(pid, title=f"rotate {i}")
        events = c.wait_events((1, pid), count=i + 1)
        files.append(events[-1]["source"]["file"])
    assert len(set(files)) == 3, files  # each edit landed in a new binlog file
    assert titles(events) == ["rotate 0", "rotate 1", "rotate 2", "rotate 3"]
    assert_once_in_order(events)


def test_mariadb_restart_and_cut_connection(connectors, wordpress, stack) -> None:  # type: ignore[no-untyped-def]
    c: Connector = connectors()
    c.start()
    pid = wordpress.create_post("restart 0", status="publish")
    c.wait_events((1, pid), count=1)

    local_stack.mariadb_down()
    local_stack.up(["mariadb"])
    wordpress.update_post(pid, title="restart 1")
    c.wait_events((1, pid), count=2, timeout=60)

    # Cut the replication connection from the server side.
    dumps = [r["Id"] for r in sql(stack.mysql, "SHOW PROCESSLIST") if r["Command"] == "Binlog Dump"]
    assert dumps
    for thread in dumps:
        sql(stack.mysql, f"KILL {int(thread)}")
    wordpress.update_post(pid, title="restart 2")
    events = c.wait_events((1, pid), count=3, timeout=60)
    assert titles(events) == ["restart 0", "restart 1", "restart 2"]
    assert_once_in_order(events)
    assert c.running
    assert "reconnecting from the checkpoint" in c.log()


def test_kafka_restart_mid_stream_and_down_at_start(connectors, wordpress, stack) -> None:  # type: ignore[no-untyped-def]
    c: Connector = connectors()
    c.start()
    pid = wordpress.create_post("kafka 0", status="publish")
    c.wait_events((1, pid), count=1)

    local_stack.kafka_down()
    wordpress.update_post(pid, title="kafka 1")  # written while Kafka is down
    time.sleep(2)
    assert c.running  # waiting with backoff, not dead
    local_stack.up(["kafka"])
    wordpress.update_post(pid, title="kafka 2")
    events = c.wait_events((1, pid), count=3, timeout=90)
    assert titles(events) == ["kafka 0", "kafka 1", "kafka 2"]
    assert_once_in_order(events)
    assert c.stop() == 0

    # Kafka down when a connector starts: it waits, then streams what happened meanwhile.
    local_stack.kafka_down()
    try:
        c.start(wait=False)
        wordpress.update_post(pid, title="kafka 3")
        time.sleep(3)
        assert c.running, c.log()[-2000:]
    finally:
        local_stack.up(["kafka"])
    events = c.wait_events((1, pid), count=4, timeout=90)
    assert titles(events)[-1] == "kafka 3"
    assert_once_in_order(events)


def test_saves_queued_behind_a_hung_kafka_write_stay_separate(connectors, wordpress, stack) -> None:  # type: ignore[no-untyped-def]
    """One event per save, also across a Kafka write that hangs (a broker that stops answering,
    here SIGSTOP): two saves made seconds apart while the write hangs queue up behind it, and
    once it returns they are still two events. Before the hung write was left out of the
    assembler's clock, the wall clock had run past both saves and they folded into one."""
    import os
    import signal

    c: Connector = connectors(window=1.0)
    c.start()
    bystander = wordpress.create_post("hang bystander 0", status="publish")
    pid = wordpress.create_post("hang 0", status="publish")
    c.wait_events((1, pid), count=1)
    c.wait_events((1, bystander), count=1)
    kafka = int((local_stack.kafka_dir() / "kafka.pid").read_text())
    os.kill(kafka, signal.SIGSTOP)
    try:
        wordpress.update_post(bystander, title="hang bystander 1")
        time.sleep(2.5)  # its window ends: the session is now inside a write Kafka does not answer
        wordpress.update_post(pid, title="hang 1")
        time.sleep(4)
        wordpress.update_post(pid, title="hang 2")
        time.sleep(1)
    finally:
        os.kill(kafka, signal.SIGCONT)
    events = c.wait_events((1, pid), count=3, timeout=90)
    assert titles(events) == ["hang 0", "hang 1", "hang 2"], c.log()[-3000:]
    assert_once_in_order(events)
    assert titles(c.wait_events((1, bystander), count=2, timeout=60)) == ["hang bystander 0", "hang bystander 1"]


def test_alter_table_mid_stream(connectors, wordpress, stack) -> None:  # type: ignore[no-untyped-def]
    c: Connector = connectors()
    c.start()
    pid = wordpress.create_post("alter 0", status="publish")
    c.wait_events((1, pid), count=1)
    sql(stack.mysql, "ALTER TABLE wp_posts ADD COLUMN wpcdc_extra INT NOT NULL DEFAULT 7")
    try:
        wordpress.update_post(pid, title="alter 1")
        events = c.wait_events((1, pid), count=2)
    finally:
        sql(stack.mysql, "ALTER TABLE wp_posts DROP COLUMN wpcdc_extra")
    wordpress.update_post(pid, title="alter 2")
    events = c.wait_events((1, pid), count=3)
    assert "wpcdc_extra" not in events[0]["after"]
    assert events[1]["after"]["wpcdc_extra"] == 7 and events[1]["after"]["post_title"] == "alter 1"
    assert "wpcdc_extra" not in events[2]["after"] and events[2]["after"]["post_title"] == "alter 2"


def test_purged_binlog_is_a_clear_fatal_error(connectors, wordpress, stack) -> None:  # type: ignore[no-untyped-def]
    c: Connector = connectors()
    c.start()
    assert c.stop() == 0
    saved = c.checkpoint()
    assert saved is not None
    sql(stack.mysql, "FLUSH BINARY LOGS")
    wordpress.create_post("written while wpcdc was down", status="publish")
    current = sql(stack.mysql, "SHOW MASTER STATUS")[0]["File"]
    sql(stack.mysql, f"PURGE BINARY LOGS TO '{current}'")
    c.start(wait=False)
    assert c.proc is not None
    assert c.proc.wait(60) == 21
    log = c.log()
    assert saved.resume.file in log and "wpcdc backfill" in log


def test_second_instance_is_fenced(connectors, wordpress, cdc_env) -> None:  # type: ignore[no-untyped-def]
    first: Connector = connectors()
    first.start()
    pid = wordpress.create_post("fence 0", status="publish")
    first.wait_events((1, pid), count=1)
    second: Connector = connectors(name=first.name)
    second.start(wait=False)
    wordpress.update_post(pid, title="fence 1")
    assert first.proc is not None
    assert first.proc.wait(60) == 31  # replaced: MariaDB hands the binlog to the newest replica
    assert "Is another instance running?" in first.log()
    first.wait_events((1, pid), count=2, timeout=60)  # so that fence 2 is a change of its own
    wordpress.update_post(pid, title="fence 2")
    events = first.wait_events((1, pid), count=3, timeout=60)  # same topic, written by the second
    assert titles(events) == ["fence 0", "fence 1", "fence 2"]
    assert_once_in_order(events)
    assert second.running


def test_big_and_odd_values(connectors, wordpress, stack) -> None:  # type: ignore[no-untyped-def]
    c: Connector = connectors()
    c.start()
    pid = wordpress.create_post("Ünïcödé 😀 𝔘 — big", "small", status="publish", meta={"emoji": "🦄"})
    c.wait_events((1, pid), count=1)
    big = "<p>" + "x" * 20_000_000 + "</p>"
    sql(stack.mysql, "UPDATE wp_posts SET post_content=%s WHERE ID=%s", (big, pid))
    sql(stack.mysql, "INSERT INTO wp_postmeta (post_id, meta_key, meta_value) VALUES (%s, '_elementor_data', %s)",
        (pid, "[" + "{}," * 1_000_000 + "{}]"))
    c.wait_events((1, pid), count=2, timeout=60)
    sql(stack.mysql, "UPDATE wp_posts SET post_title='after the big one', post_content='small' WHERE ID=%s", (pid,))
    events = c.wait_events((1, pid), count=3, timeout=60)
    first, huge, after = events
    assert first["after"]["post_title"] == "Ünïcödé 😀 𝔘 — big"
    assert [m["after"] for m in first["meta"] if m["key"] == "emoji"] == ["🦄"]
    assert huge["after"]["post_content"]["$truncated"] is True
    assert huge["after"]["post_content"]["bytes"] == len(big)
    assert set(huge["truncated"]) == {"after.post_content", "meta[_elementor_data].after"}
    assert after["after"]["post_title"] == "after the big one"
    assert c.running


def test_zero_dates_and_nulls(connectors, wordpress) -> None:  # type: ignore[no-untyped-def]
    c: Connector = connectors()
    c.start()
    pid = wordpress.create_post("no date yet", status="draft")
    wordpress.publish(pid, via="wp_publish_post")  # leaves post_date_gmt 0000-00-00 00:00:00
    [event] = c.wait_events((1, pid), count=1)
    assert event["after"]["post_date_gmt"] is None
    assert isinstance(event["after"]["post_date"], str)
    wait_until(lambda: c.running)


def test_bytes_that_are_not_utf8_round_trip(connectors, stack) -> None:  # type: ignore[no-untyped-def]
    """A site whose meta_value became a BLOB (plugins do this) holds arbitrary bytes: they arrive
    exactly, as base64, and the stream goes on. (utf8mb4 columns cannot hold invalid UTF-8 in
    MariaDB's strict mode; the lossless text decoding is covered by tests/unit/test_encode.py.)"""
    conn = admin(stack.mysql, database="mysql")
    with conn, conn.cursor() as cur:
        cur.execute("DROP DATABASE IF EXISTS oddbytes")
        cur.execute("CREATE DATABASE oddbytes CHARACTER SET utf8mb4")
        for table in ("posts", "postmeta", "term_relationships", "terms", "term_taxonomy"):
            cur.execute(f"CREATE TABLE oddbytes.wp_{table} LIKE wordpress.wp_{table}")
        cur.execute("ALTER TABLE oddbytes.wp_postmeta MODIFY meta_value LONGBLOB")
    c: Connector = connectors(database="oddbytes")
    c.start()
    raw = b"\xff\xfe\x00 not utf-8 \xc3\x28 \xf0\x9f\x98"
    conn = admin(stack.mysql, database="oddbytes")
    with conn, conn.cursor() as cur:
        cur.execute("INSERT INTO wp_posts (post_title, post_content, post_excerpt, to_ping, pinged, "
                    "post_content_filtered, post_status, post_date, post_date_gmt, post_modified, "
                    "post_modified_gmt) VALUES ('bytes', '', '', '', '', '', 'publish', NOW(), "
                    "'0000-00-00 00:00:00', NOW(), NOW())")
        pid = cur.lastrowid
        cur.execute("INSERT INTO wp_postmeta (post_id, meta_key, meta_value) VALUES (%s, 'blob', %s)", (pid, raw))
        cur.execute("INSERT INTO wp_postmeta (post_id, meta_key, meta_value) VALUES (%s, 'nul', NULL)", (pid,))
    [event] = c.wait_events((1, pid), count=1)
    meta = {m["key"]: m["after"] for m in event["meta"]}
    assert base64.b64decode(meta["blob"]["$base64"]) == raw
    assert meta["nul"] is None
    assert event["after"]["post_date_gmt"] is None  # a zero date
