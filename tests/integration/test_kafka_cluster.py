"""The three-broker cluster is a real one: replicated, in sync, and alive while any one broker dies.

Only aiokafka talks to it here (no wpcdc code): what the brokers report about themselves, and
what a transactional producer and a ``read_committed`` consumer live through when a partition's
leader is killed with ``kill -9``. Each test makes its own topics, deletes them after, and starts
again any broker it stopped.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import NewTopic
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType

from tests.integration.harness import kafka_admin

import cluster as local_cluster  # deploy/local/cluster.py, on sys.path through tests/conftest.py

pytestmark = [pytest.mark.integration, pytest.mark.cluster, pytest.mark.timeout(300)]

NODES = set(local_cluster.NODES)


def _unique(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex[:10]}"


@asynccontextmanager
async def _topic(bootstrap: list[str], configs: dict[str, str] | None = None,
                 partitions: int = 1) -> AsyncIterator[str]:
    """A fresh topic on all three brokers, once every replica is in sync."""
    name = _unique("cluster")
    async with kafka_admin(bootstrap) as admin:
        resp = await admin.create_topics([NewTopic(name, partitions, 3, topic_configs=configs or {})])
        errors = [(t[0], t[1]) for t in resp.topic_errors if t[1] != 0]
        assert not errors, f"create_topics failed: {errors}"
    try:
        await asyncio.to_thread(local_cluster.wait_in_sync, name, 60)
        yield name
    finally:
        async with kafka_admin(bootstrap) as admin:
            await admin.delete_topics([name])


def _partitions(described: list[dict], topic: str) -> list[dict]:
    (entry,) = [t for t in described if t["topic"] == topic]
    assert entry["error_code"] == 0, entry
    return sorted(entry["partitions"], key=lambda p: p["partition"])


def _config(responses: list, name: str) -> dict[str, str]:
    """``{config: value}`` of the one resource called ``name`` in DescribeConfigs responses."""
    (resource,) = [r for resp in responses for r in resp.resources if r[3] == name]
    error_code, error_message, _type, _name, entries = resource[:5]
    assert error_code == 0, error_message
    return {e[0]: e[1] for e in entries}


async def _until(done: Callable[[], bool], what: str, timeout: float,
                 task: asyncio.Task | None = None) -> None:
    """Wait for ``done()``; fail at once with the task's error if the background task died."""
    async with asyncio.timeout(timeout):
        while not done():
            if task is not None and task.done():
                task.result()  # raises what killed it
                pytest.fail(f"the writer stopped before {what}")
            await asyncio.sleep(0.05)


async def _read(bootstrap: list[str], topic: str, **kw) -> list[tuple[bytes | None, bytes | None]]:
    """Every (key, value) of partition 0 from the start to the end offset as of now.

    Read committed, the end offset is the last stable offset, which trails a commit the producer
    has already seen return until the coordinator has written its markers (EndTxn answers before
    that): so the read goes on to the high watermark, which the last transaction's marker closes.
    """
    tp = TopicPartition(topic, 0)
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False,
                                request_timeout_ms=30_000, **kw)
    await consumer.start()
    try:
        consumer.assign([tp])
        await consumer.seek_to_beginning(tp)
        end = (await consumer.end_offsets([tp]))[tp]
        seen: list[tuple[bytes | None, bytes | None]] = []
        async with asyncio.timeout(90):
            while await consumer.position(tp) < max(end, consumer.highwater(tp) or 0):
                for msgs in (await consumer.getmany(tp, timeout_ms=1000)).values():
                    seen.extend((m.key, m.value) for m in msgs)
        return seen
    finally:
        await consumer.stop()


# ------------------------------------------------------------------------- what the brokers say


async def test_three_brokers_in_the_metadata(kafka_cluster: list[str]) -> None:
    async with kafka_admin(kafka_cluster) as admin:
        described = await admin.describe_cluster()
    assert {b["node_id"] for b in described["brokers"]} == NODES
    assert described["controller_id"] in NODES
    assert sorted(f"127.0.0.1:{b['port']}" for b in described["brokers"]) == sorted(kafka_cluster)


async def test_a_topic_gets_three_replicas_all_in_sync(kafka_cluster: list[str]) -> None:
    async with _topic(kafka_cluster, partitions=3) as topic, kafka_admin(kafka_cluster) as admin:
        parts = _partitions(await admin.describe_topics([topic]), topic)
        assert [p["partition"] for p in parts] == [0, 1, 2]
        for p in parts:
            assert set(p["replicas"]) == NODES and set(p["isr"]) == NODES, p
        # The stack's own Metadata client (what wait_in_sync trusts) tells the same story.
        seen = local_cluster.partitions(topic)
        assert [(p.leader, set(p.isr)) for p in seen] == [(p["leader"], set(p["isr"])) for p in parts]


async def test_brokers_default_to_replication_3_and_min_isr_2(kafka_cluster: list[str]) -> None:
    wanted = {"default.replication.factor": "3", "min.insync.replicas": "2"}
    async with kafka_admin(kafka_cluster) as admin:
        responses = await admin.describe_configs(
            [ConfigResource(ConfigResourceType.BROKER, str(n), configs=dict.fromkeys(wanted)) for n in NODES]
        )
    for n in NODES:
        assert _config(responses, str(n)) == wanted


async def test_internal_topics_are_replicated_3_with_min_isr_2(kafka_cluster: list[str]) -> None:
    """The transaction log and the group offsets live on all three brokers, not on one."""
    async with _topic(kafka_cluster) as topic:
        producer = AIOKafkaProducer(bootstrap_servers=kafka_cluster, transactional_id=_unique("internal"))
        await producer.start()  # finds a transaction coordinator: __transaction_state exists after
        try:
            async with producer.transaction():
                await producer.send(topic, value=b"x")
        finally:
            await producer.stop()
        consumer = AIOKafkaConsumer(topic, bootstrap_servers=kafka_cluster, group_id=_unique("internal"),
                                    auto_offset_reset="earliest")
        await consumer.start()  # joins a group: __consumer_offsets exists after
        try:
            await consumer.getone()
            await consumer.commit()
        finally:
            await consumer.stop()
        internal = ["__transaction_state", "__consumer_offsets"]
        async with kafka_admin(kafka_cluster) as admin:
            described = await admin.describe_topics(internal)
            responses = await admin.describe_configs(
                [ConfigResource(ConfigResourceType.TOPIC, t, configs={"min.insync.replicas": None}) for t in internal]
            )
    for name in internal:
        for p in _partitions(described, name):
            assert set(p["replicas"]) == NODES, (name, p)
        assert _config(responses, name)["min.insync.replicas"] == "2"


# ---------------------------------------------------------------------------- brokers dying


async def test_transactions_go_on_while_the_leader_is_killed_and_restarted(kafka_cluster: list[str]) -> None:
    """acks=all, min ISR 2: the survivors take over, and read_committed sees each record once."""
    async with _topic(kafka_cluster) as topic:
        producer = AIOKafkaProducer(bootstrap_servers=kafka_cluster, transactional_id=_unique("txn"),
                                    acks="all", enable_idempotence=True, request_timeout_ms=30_000)
        await producer.start()
        committed: list[bytes] = []
        stop = asyncio.Event()

        async def write() -> None:
            batch = 0
            while not stop.is_set():
                values = [f"{batch}-{i}".encode() for i in range(5)]
                async with producer.transaction():
                    for value in values:
                        await producer.send(topic, key=b"k", value=value)
                committed.extend(values)
                batch += 1

        writer = asyncio.create_task(write())
        victim = -1
        try:
            await _until(lambda: len(committed) >= 50, "the first transactions", 60, writer)
            victim = local_cluster.leader(topic)
            assert victim in NODES
            await asyncio.to_thread(local_cluster.broker_stop, victim, True)
            before = len(committed)
            await _until(lambda: len(committed) >= before + 50, "writing without the old leader", 90, writer)
            assert local_cluster.leader(topic) in NODES - {victim}
            await asyncio.to_thread(local_cluster.broker_start, victim)
            await asyncio.to_thread(local_cluster.wait_in_sync, topic)
            after = len(committed)
            await _until(lambda: len(committed) >= after + 50, "writing after the rejoin", 60, writer)
        finally:
            stop.set()
            await asyncio.wait_for(writer, 60)
            await producer.stop()
            if victim in NODES:
                await asyncio.to_thread(local_cluster.broker_start, victim)

        seen = [v for _, v in await _read(kafka_cluster, topic, isolation_level="read_committed")]
        assert len(seen) == len(committed)
        assert seen == committed  # every committed record, once, in order


async def test_a_compacted_topic_reads_with_any_one_broker_down(kafka_cluster: list[str]) -> None:
    configs = {"cleanup.policy": "compact", "min.cleanable.dirty.ratio": "0.01", "segment.ms": "1000"}
    async with _topic(kafka_cluster, configs) as topic:
        producer = AIOKafkaProducer(bootstrap_servers=kafka_cluster, acks="all", enable_idempotence=True)
        await producer.start()
        latest: dict[bytes, bytes] = {}
        try:
            for version in range(5):
                for key in range(20):
                    k, v = f"post-{key}".encode(), f"v{version}".encode()
                    await producer.send(topic, key=k, value=v)
                    latest[k] = v
            await producer.flush()
        finally:
            await producer.stop()

        for n in sorted(NODES):
            await asyncio.to_thread(local_cluster.broker_stop, n, True)
            try:
                folded: dict[bytes | None, bytes | None] = {}
                for k, v in await _read(kafka_cluster, topic):
                    folded[k] = v
                assert folded == latest, f"with broker {n} down"
            finally:
                await asyncio.to_thread(local_cluster.broker_start, n)
            await asyncio.to_thread(local_cluster.wait_in_sync, topic)
