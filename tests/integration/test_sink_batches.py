"""The sink fills its record batches itself (cdc/sink.py, ``KafkaSink._send``): against the real
broker, every record must land where ``producer.send`` puts it (the same partition for the same
key: consumers, compaction and any other producer of these keys agree), in its order within its
partition, with its headers, in both delivery modes; a record too large fails as before."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from cdc.checkpoint import Checkpoint
from cdc.config import KafkaSettings
from cdc.encode import Record
from cdc.errors import RecordTooLargeError
from cdc.position import Position
from cdc.sink import KafkaSink

pytestmark = pytest.mark.integration
PARTITIONS = 6


async def _topics(bootstrap: str, *names: str) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(n, PARTITIONS, 1) for n in names])
    finally:
        await admin.close()


async def _read(bootstrap: str, topic: str, n: int) -> list[Any]:
    consumer = AIOKafkaConsumer(topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest",
                                isolation_level="read_committed", enable_auto_commit=False)
    await consumer.start()
    got: list[Any] = []
    try:
        async with asyncio.timeout(60):
            while len(got) < n:
                for records in (await consumer.getmany(timeout_ms=1000)).values():
                    got.extend(records)
    finally:
        await consumer.stop()
    return got


def _records(topic: str) -> list[Record]:
    """Keys over many partitions, several records per key (their order matters), values large
    enough that a partition's records need several 512 KiB batches, and tombstones."""
    out = []
    for i in range(600):
        post = i % 150
        value = None if i % 97 == 0 else f"{i}:".encode() + bytes(range(256)) * (1 + (i % 7) * 40)
        out.append(Record(f"1:{post}".encode(), value, (("ce_id", f"1-{post}-{i}".encode()), ("n", str(i).encode())),
                          topic=topic))
    return out


@pytest.mark.parametrize("mode", ["exactly-once", "at-least-once"])
def test_records_land_where_producer_send_puts_them_in_order(stack, mode: str) -> None:  # type: ignore[no-untyped-def]
    bootstrap = f"127.0.0.1:{stack.kafka}"
    run = uuid.uuid4().hex[:8]
    ours, theirs, checkpoints = f"sink-batches-{run}", f"sink-send-{run}", f"sink-cp-{run}"

    async def main() -> tuple[list[Any], list[Any], list[Any]]:
        await _topics(bootstrap, ours, theirs, checkpoints)
        sink = KafkaSink(KafkaSettings(bootstrap=bootstrap), topic=ours, checkpoint_topic=checkpoints,
                         connector=f"c-{run}", transactional_id=f"t-{run}" if mode == "exactly-once" else None)
        await sink.start()
        records = _records(ours)
        try:
            await sink.write(records[:300], Checkpoint(f"c-{run}", Position("mariadb-bin.000001", 4)))
            await sink.write(records[300:], Checkpoint(f"c-{run}", Position("mariadb-bin.000001", 8)))
        finally:
            await sink.stop()
        # The reference: the same keys through producer.send, the way aiokafka places a record.
        producer = AIOKafkaProducer(bootstrap_servers=bootstrap)
        await producer.start()
        try:
            for r in records:
                await producer.send(theirs, b"x", key=r.topic_key)
            await producer.flush()
        finally:
            await producer.stop()
        return (await _read(bootstrap, ours, len(records)), await _read(bootstrap, theirs, len(records)),
                await _read(bootstrap, checkpoints, 2))

    got, reference, cps = asyncio.run(main())
    want = _records(ours)
    assert len(got) == len(want)
    placed = {r.key: r.partition for r in reference}
    assert len(set(placed.values())) > 1  # the keys do spread: the check below means something
    assert all(r.partition == placed[r.key] for r in got)
    by_partition: dict[int, list[Any]] = {}
    for r in got:
        by_partition.setdefault(r.partition, []).append(r)
    for p, rs in by_partition.items():
        rs.sort(key=lambda r: r.offset)
        want_here = [w for w in want if placed[w.topic_key] == p]
        assert [(r.key, r.value, tuple(r.headers)) for r in rs] == [
            (w.topic_key, w.value, w.headers) for w in want_here]
    assert [Checkpoint.decode(c.value).resume.pos for c in sorted(cps, key=lambda c: c.offset)] == [4, 8]


def test_a_record_over_max_request_size_fails_before_anything_is_written(stack) -> None:  # type: ignore[no-untyped-def]
    bootstrap = f"127.0.0.1:{stack.kafka}"
    run = uuid.uuid4().hex[:8]
    topic, checkpoints = f"sink-large-{run}", f"sink-large-cp-{run}"

    async def main() -> None:
        await _topics(bootstrap, topic, checkpoints)
        sink = KafkaSink(KafkaSettings(bootstrap=bootstrap), topic=topic, checkpoint_topic=checkpoints,
                         connector=f"c-{run}", transactional_id=f"t-{run}", max_message_bytes=100_000)
        await sink.start()
        try:
            with pytest.raises(RecordTooLargeError, match="max_request_size"):  # refused here, not by the broker
                await sink.write([Record(b"1:1", b"small"), Record(b"1:2", b"x" * (2 << 20))],
                                 Checkpoint(f"c-{run}", Position("mariadb-bin.000001", 4)))
        finally:
            await sink.stop()
        consumer = AIOKafkaConsumer(topic, checkpoints, bootstrap_servers=bootstrap, auto_offset_reset="earliest",
                                    isolation_level="read_committed")
        await consumer.start()
        try:
            assert not await consumer.getmany(timeout_ms=3000)  # the transaction was aborted: nothing
        finally:
            await consumer.stop()

    asyncio.run(main())
