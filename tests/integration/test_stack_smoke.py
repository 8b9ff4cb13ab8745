"""Smoke tests of the local stack: each server is real and set up the way the connector needs.

MariaDB writes full row images with full metadata to a ROW binlog that python-mysql-replication
reads as the connector's least-privilege user; Kafka takes and gives back messages, runs
transactions (an aborted one stays invisible to ``read_committed``), and keeps a topic compacted.
Every test makes its own scratch database or topics and removes them after.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager

import pymysql
import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType
from pymysqlreplication import BinLogStreamReader
from pymysqlreplication.row_event import WriteRowsEvent

import stack as local_stack  # deploy/local/stack.py, on sys.path through tests/conftest.py

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]


def _unique(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex[:10]}"


# --------------------------------------------------------------------------------------- MariaDB


def _admin(ports: local_stack.Ports, **kw) -> pymysql.connections.Connection:
    return pymysql.connect(host="127.0.0.1", port=ports.mysql, user=local_stack.ADMIN_USER,
                           password=local_stack.ADMIN_PASSWORD, autocommit=True, **kw)


def test_mariadb_row_reaches_the_binlog(stack: local_stack.Ports) -> None:
    db = _unique("smoke")
    conn = _admin(stack)
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT VERSION()")
            assert "MariaDB" in cur.fetchone()[0]
            cur.execute(
                "SHOW GLOBAL VARIABLES WHERE Variable_name IN "
                "('log_bin', 'binlog_format', 'binlog_row_image', 'binlog_row_metadata')"
            )
            assert dict(cur.fetchall()) == {
                "log_bin": "ON",
                "binlog_format": "ROW",
                "binlog_row_image": "FULL",
                "binlog_row_metadata": "FULL",
            }
            cur.execute(f"CREATE DATABASE `{db}` CHARACTER SET utf8mb4")
            cur.execute(
                f"CREATE TABLE `{db}`.`notes` (id BIGINT UNSIGNED PRIMARY KEY, body VARCHAR(200) NOT NULL)"
                " ENGINE=InnoDB"
            )
            cur.execute("SHOW MASTER STATUS")
            log_file, log_pos = cur.fetchone()[:2]
            body = f"héllo from {db} ✓"
            cur.execute(f"INSERT INTO `{db}`.`notes` (id, body) VALUES (%s, %s)", (42, body))

        # Read as the connector's own account: replication grants plus SELECT, nothing more.
        stream = BinLogStreamReader(
            connection_settings={"host": "127.0.0.1", "port": stack.mysql,
                                 "user": local_stack.CDC_USER, "password": local_stack.CDC_PASSWORD},
            server_id=100_000 + uuid.uuid4().int % 1_000_000,
            log_file=log_file,
            log_pos=log_pos,
            resume_stream=True,
            blocking=False,
            is_mariadb=False,
            only_events=[WriteRowsEvent],
            only_schemas=[db],
        )
        try:
            rows = [(ev.schema, ev.table, row["values"]) for ev in stream for row in ev.rows]
        finally:
            stream.close()
        assert rows == [(db, "notes", {"id": 42, "body": body})]
    finally:
        with conn.cursor() as cur:
            cur.execute(f"DROP DATABASE IF EXISTS `{db}`")
        conn.close()


# ----------------------------------------------------------------------------------------- Kafka


def _bootstrap(ports: local_stack.Ports) -> str:
    return f"127.0.0.1:{ports.kafka}"


@asynccontextmanager
async def _topics(ports: local_stack.Ports, *topics: NewTopic) -> AsyncIterator[AIOKafkaAdminClient]:
    """Create the topics (failing on any per-topic error), yield the admin client, delete them."""
    admin = AIOKafkaAdminClient(bootstrap_servers=_bootstrap(ports), request_timeout_ms=30_000)
    await admin.start()
    try:
        resp = await admin.create_topics(list(topics))
        errors = [(t[0], t[1]) for t in resp.topic_errors if t[1] != 0]
        assert not errors, f"create_topics failed: {errors}"
        try:
            yield admin
        finally:
            await admin.delete_topics([t.name for t in topics])
    finally:
        await admin.close()


async def _consume(ports: local_stack.Ports, topic: str, until: bytes, timeout: float = 30.0,
                   **kw) -> list[tuple[bytes | None, bytes | None]]:
    """Read the topic from the start until a record whose value is ``until``; return (key, value)s."""
    consumer = AIOKafkaConsumer(topic, bootstrap_servers=_bootstrap(ports), group_id=None,
                                auto_offset_reset="earliest", enable_auto_commit=False, **kw)
    await consumer.start()
    seen: list[tuple[bytes | None, bytes | None]] = []
    try:
        async with asyncio.timeout(timeout):
            while not seen or seen[-1][1] != until:
                msg = await consumer.getone()
                seen.append((msg.key, msg.value))
    except TimeoutError:
        pytest.fail(f"{until!r} not consumed from {topic} within {timeout}s; got {seen!r}")
    finally:
        await consumer.stop()
    return seen


def _names(entries: Iterable[tuple]) -> dict[str, str]:
    return {e[0]: e[1] for e in entries}


async def test_kafka_produce_and_consume(stack: local_stack.Ports) -> None:
    topic = _unique("smoke-plain")
    async with _topics(stack, NewTopic(topic, num_partitions=1, replication_factor=1)):
        producer = AIOKafkaProducer(bootstrap_servers=_bootstrap(stack), acks="all",
                                    enable_idempotence=True)
        await producer.start()
        try:
            meta = await producer.send_and_wait(topic, key=b"k1", value=b"hello kafka")
            assert (meta.topic, meta.partition, meta.offset) == (topic, 0, 0)
        finally:
            await producer.stop()
        assert await _consume(stack, topic, until=b"hello kafka") == [(b"k1", b"hello kafka")]


async def test_kafka_transactions_commit_and_abort(stack: local_stack.Ports) -> None:
    topic = _unique("smoke-txn")
    async with _topics(stack, NewTopic(topic, num_partitions=1, replication_factor=1)):
        producer = AIOKafkaProducer(bootstrap_servers=_bootstrap(stack),
                                    transactional_id=_unique("smoke-txn-id"))
        await producer.start()
        try:
            async with producer.transaction():
                await producer.send(topic, value=b"committed")
            await producer.begin_transaction()
            await producer.send_and_wait(topic, value=b"aborted")
            await producer.abort_transaction()
            async with producer.transaction():
                await producer.send(topic, value=b"sentinel")
        finally:
            await producer.stop()

        committed = await _consume(stack, topic, until=b"sentinel", isolation_level="read_committed")
        assert [v for _, v in committed] == [b"committed", b"sentinel"]
        # The aborted record did reach the log: only the isolation level hides it.
        everything = await _consume(stack, topic, until=b"sentinel", isolation_level="read_uncommitted")
        assert [v for _, v in everything] == [b"committed", b"aborted", b"sentinel"]


async def test_kafka_compacted_topic(stack: local_stack.Ports) -> None:
    topic = _unique("smoke-compact")
    new = NewTopic(topic, num_partitions=1, replication_factor=1,
                   topic_configs={"cleanup.policy": "compact", "min.cleanable.dirty.ratio": "0.01"})
    async with _topics(stack, new) as admin:
        # A topic just created can be unknown to the broker that answers for a moment (error 3,
        # UNKNOWN_TOPIC_OR_PARTITION, seen on a loaded machine): ask again for a few seconds.
        for _ in range(50):
            responses = await admin.describe_configs(
                [ConfigResource(ConfigResourceType.TOPIC, topic, configs={"cleanup.policy": None})]
            )
            resources = [r for resp in responses for r in resp.resources]
            assert len(resources) == 1
            error_code, error_message, _type, name, entries = resources[0][:5]
            if error_code != 3:
                break
            await asyncio.sleep(0.2)
        assert (error_code, name) == (0, topic), error_message
        assert _names(entries)["cleanup.policy"] == "compact"
