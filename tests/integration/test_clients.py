"""Every mainstream Kafka client reads what a transactional aiokafka producer writes, per codec.

wpcdc's producer picks one compression codec for every batch it writes, and every consumer must
decode it: KafkaJS 2.2.4, what most Next.js sites read with, decodes only gzip without plugins
(snappy, lz4 and zstd throw ``KafkaJSNotImplemented``), while aiokafka, kcat (librdkafka) and the
Java client read all five. For each codec a topic gets committed records (keys, headers, a
tombstone, two partitions) around an aborted transaction that read-committed must hide; each
client must return exactly the committed records, or, for a codec it cannot decode, fail loudly
(an error, not a silent empty read). This is why the connector's default codec must be none or
gzip.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import pytest
from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from tests.integration.clients import READERS, ClientError, Record, log_codecs, read_all_clients

pytestmark = pytest.mark.integration

CODECS = ("none", "gzip", "snappy", "lz4", "zstd")
# What each client decodes out of the box (KafkaJS: the snappy, lz4 and zstd codecs are
# separate npm packages that a consumer has to register).
SUPPORTED = {
    "aiokafka": set(CODECS),
    "kcat": set(CODECS),
    "java": set(CODECS),
    "kafkajs": {"none", "gzip"},
}


def _event(blog: int, post: int, n: int) -> bytes:
    """A post event's shape, big enough (~2 KB) that every codec shrinks its batch."""
    body = " ".join(f"<!-- wp:paragraph --><p>Paragraph {i} of post {post}, revision {n}.</p>"
                    "<!-- /wp:paragraph -->" for i in range(20))
    doc = {"schema_version": 1, "event_id": f"{blog}-{post}-{n}", "op": "update", "action": "updated",
           "blog_id": blog, "post_id": post, "post_type": "post",
           "after": {"ID": post, "post_title": f"Ünïcode title {post} ✓", "post_content": body}}
    return json.dumps(doc, ensure_ascii=False).encode()


async def _produce(bootstrap: str, topic: str, codec: str) -> list[Record]:
    """Three transactions: committed, aborted, committed (with a tombstone); returns the committed."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(topic, 2, 1)])
    finally:
        await admin.close()
    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap, transactional_id=f"{topic}-producer", enable_idempotence=True,
        acks="all", linger_ms=0, compression_type=None if codec == "none" else codec,
    )
    await producer.start()
    committed: list[Record] = []
    try:
        async def transaction(sends: list[tuple[int, str, bytes | None, list[tuple[str, bytes]]]],
                              commit: bool) -> None:
            async with producer.transaction() if commit else _aborted(producer):
                futures = [await producer.send(topic, value, key=key.encode(), partition=partition,
                                               headers=headers)
                           for partition, key, value, headers in sends]
                metas = await asyncio.gather(*futures)
            if commit:
                for (partition, key, value, headers), meta in zip(sends, metas):
                    committed.append(Record(partition, meta.offset, key, None if value is None else value.decode(),
                                            tuple((k, v.decode()) for k, v in headers)))

        hdrs = [("wpcdc-source", b"test_clients"), ("codec", codec.encode())]
        await transaction([(p, f"1:{post}", _event(1, post, 1), hdrs)
                           for p, post in ((0, 10), (0, 11), (1, 12), (1, 13), (0, 14))], commit=True)
        await transaction([(p, f"1:{post}", _event(1, post, 99), [("aborted", b"yes")])
                           for p, post in ((0, 10), (1, 12), (1, 13))], commit=False)
        await transaction([(0, "1:10", _event(1, 10, 2), hdrs), (1, "2:7", _event(2, 7, 1), []),
                           (1, "1:13", None, [])], commit=True)  # 1:13 deleted: its tombstone
    finally:
        await producer.stop()
    return sorted(committed, key=lambda r: (r.partition, r.offset))


@asynccontextmanager
async def _aborted(producer: AIOKafkaProducer) -> AsyncIterator[None]:
    """``producer.transaction()``'s twin that aborts instead of committing."""
    await producer.begin_transaction()
    yield
    await producer.abort_transaction()


@pytest.mark.parametrize("codec", CODECS)
def test_each_client_reads_the_committed_records_of_every_codec_it_supports(stack, codec: str) -> None:  # type: ignore[no-untyped-def]
    bootstrap = f"127.0.0.1:{stack.kafka}"
    topic = f"clients-{codec}-{uuid.uuid4().hex[:8]}"
    expected = asyncio.run(_produce(bootstrap, topic, codec))
    assert len(expected) == 8
    # The batches in the log are in that codec: the broker kept what the producer wrote.
    assert log_codecs(topic) == {codec}

    outcome: dict[str, str] = {}
    for client, read in READERS.items():
        if codec in SUPPORTED[client]:
            assert read(topic, bootstrap) == expected, client
            outcome[client] = "reads"
        else:
            with pytest.raises(ClientError) as failure:
                read(topic, bootstrap)
            assert codec.lower() in failure.value.message.lower(), failure.value.message
            outcome[client] = f"fails: {failure.value.message}"
    print(f"{codec}: {outcome}")


def test_read_all_clients_returns_every_clients_records(stack) -> None:  # type: ignore[no-untyped-def]
    bootstrap = f"127.0.0.1:{stack.kafka}"
    topic = f"clients-all-{uuid.uuid4().hex[:8]}"
    expected = asyncio.run(_produce(bootstrap, topic, "gzip"))
    seen = read_all_clients(topic, bootstrap)
    assert set(seen) == set(READERS)
    assert all(records == expected for records in seen.values())
