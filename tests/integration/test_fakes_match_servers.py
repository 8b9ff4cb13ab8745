"""The fakes are held to the real thing: one script, run against FakeKafka and the real Kafka.

The deterministic simulation (tests/sim) trusts tests/sim/fakes.py to behave as Kafka does where
wpcdc's correctness rests on it: transactions, fencing, the last stable offset, the request-size
limit, and reading the checkpoint under a transaction another producer left open. Each scenario
below is a plain function of a small adapter (``KafkaUnderTest``) that returns a small outcome
(keys visible, offsets, error families); it runs once over FakeKafka and once over the Kafka 4.x
of the local stack (aiokafka), and both must give the scenario's expected outcome. The expected
values are what the real Kafka does: when only the ``fake`` case fails, the fake is the one wrong.

Errors are compared by family: the fake raises wpcdc's own errors, aiokafka's go through the
connector's own mapping (cdc/sink.py ``_fenced_or_sink``) first, so "fenced" in both means the
connector would stop as fenced in both. The real adapter waits, after a commit or an abort, for the
transaction's markers (the coordinator answers before writing them; the fake ends a transaction at
once), so a read right after an end is no race.

Known differences (the ``fake`` case of these fails until tests/sim/fakes.py models them): a
transaction whose only send was refused as too large still leaves an abort marker (the partition
joined the transaction before the broker refused the record), and an aiokafka producer that had a
record refused can never send to that partition again (OutOfOrderSequenceNumber).
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, Protocol

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import KafkaError

from cdc import sink as real_sink
from cdc.checkpoint import Checkpoint, CheckpointStore
from cdc.config import KafkaSettings
from cdc.errors import CheckpointBlockedError, FencedError, RecordTooLargeError, SinkError
from cdc.position import Position
from tests.sim import fakes

pytestmark = pytest.mark.integration

Records = tuple[tuple[bytes | None, bytes | None], ...]


# ---------------------------------------------------------------------------------------- adapter


class TxProducer(Protocol):
    """A started transactional producer (``init_transactions`` done)."""

    async def begin(self) -> None: ...

    async def send(self, topic: str, key: bytes, value: bytes) -> None:
        """Append one record and wait until the broker has it (still invisible until commit)."""

    async def commit(self) -> None: ...

    async def abort(self) -> None: ...


class KafkaUnderTest(Protocol):
    name: str
    errors: list[str]  # every error a scenario caught, raw, for the failure message

    async def create_topic(self, max_message_bytes: int | None = None) -> str:
        """A new single-partition topic of a unique name."""

    async def producer(self, transactional_id: str, *, compression: str | None = "zstd") -> TxProducer:
        """Start a producer of this (per-test) transactional id: it fences an older one of the id."""

    async def visible(self, topic: str) -> Records:
        """(key, value) of every record a read_committed consumer sees, in offset order."""

    async def offsets(self, topic: str) -> tuple[int, int]:
        """(last stable offset, high watermark) of the topic's partition."""

    async def load_checkpoint(self, topic: str, connector: str, timeout: float) -> Checkpoint | None: ...

    async def close(self) -> None: ...


# --- over FakeKafka


class FakeProducer:
    def __init__(self, producer: fakes.Producer) -> None:
        self.p = producer

    async def begin(self) -> None:
        self.p.begin()

    async def send(self, topic: str, key: bytes, value: bytes) -> None:
        self.p.send(topic, key, value)

    async def commit(self) -> None:
        self.p.commit()

    async def abort(self) -> None:
        self.p.abort()


class FakeAdapter:
    name = "fake"

    def __init__(self) -> None:
        # Transactions never time out here: no scenario may depend on the fake's clock.
        self.kafka = fakes.FakeKafka(transaction_timeout=1e12)
        self.prefix = uuid.uuid4().hex[:8]
        self.errors: list[str] = []

    async def create_topic(self, max_message_bytes: int | None = None) -> str:
        topic = f"fakes-match-{self.prefix}-{uuid.uuid4().hex[:6]}"
        self.kafka.topics[topic] = []
        if max_message_bytes is not None:
            self.kafka.topic_max_bytes[topic] = max_message_bytes
        return topic

    async def producer(self, transactional_id: str, *, compression: str | None = "zstd") -> FakeProducer:
        return FakeProducer(self.kafka.producer(f"{self.prefix}-{transactional_id}"))

    async def visible(self, topic: str) -> Records:
        return tuple((r.key, r.value) for r in self.kafka.read_committed(topic))

    async def offsets(self, topic: str) -> tuple[int, int]:
        return self.kafka.last_stable_offset(topic), self.kafka.high_watermark(topic)

    async def load_checkpoint(self, topic: str, connector: str, timeout: float) -> Checkpoint | None:
        return fakes.load_checkpoint(self.kafka, topic, connector, timeout=timeout)

    async def close(self) -> None:
        pass


# --- over the real Kafka (aiokafka)


class RealProducer:
    def __init__(self, producer: AIOKafkaProducer, adapter: RealAdapter) -> None:
        self.p = producer
        self.adapter = adapter
        self.topics: set[str] = set()  # partitions this transaction added (a refused send adds one too)

    async def begin(self) -> None:
        await self.p.begin_transaction()
        self.topics = set()

    async def send(self, topic: str, key: bytes, value: bytes) -> None:
        self.topics.add(topic)
        await (await self.p.send(topic, value, key=key))

    async def commit(self) -> None:
        await self._end(self.p.commit_transaction)

    async def abort(self) -> None:
        await self._end(self.p.abort_transaction)

    async def _end(self, end: Callable[[], Awaitable[None]]) -> None:
        """End the transaction, then wait for its markers: the coordinator answers EndTxn before it
        writes them, and a read right after would race them (the fake ends a transaction at once)."""
        topics, self.topics = self.topics, set()
        before = {t: (await self.adapter.offsets(t))[1] for t in topics}
        await end()
        await self.adapter.wait_for_markers(before)


class RealAdapter:
    name = "real"

    def __init__(self, bootstrap: str) -> None:
        self.bootstrap = bootstrap
        self.prefix = uuid.uuid4().hex[:8]
        self.errors: list[str] = []
        self._producers: list[AIOKafkaProducer] = []
        self._ends: dict[str, AIOKafkaConsumer] = {}

    async def create_topic(self, max_message_bytes: int | None = None) -> str:
        topic = f"fakes-match-{self.prefix}-{uuid.uuid4().hex[:6]}"
        configs = {} if max_message_bytes is None else {"max.message.bytes": str(max_message_bytes)}
        admin = AIOKafkaAdminClient(bootstrap_servers=self.bootstrap)
        await admin.start()
        try:
            await admin.create_topics([NewTopic(topic, 1, 1, topic_configs=configs)])
        finally:
            await admin.close()
        return topic

    async def producer(self, transactional_id: str, *, compression: str | None = "zstd") -> RealProducer:
        producer = AIOKafkaProducer(
            bootstrap_servers=self.bootstrap,
            transactional_id=f"fakes-match-{self.prefix}-{transactional_id}",
            enable_idempotence=True,
            acks="all",
            linger_ms=0,
            compression_type=compression,
            # Far above any topic limit of the scenarios: the broker refuses, not the client.
            max_request_size=4 << 20,
            max_batch_size=512 << 10,
        )
        self._producers.append(producer)
        await producer.start()  # init_transactions: fences the older producer of the id
        return RealProducer(producer, self)

    def _consumer(self, isolation_level: str) -> AIOKafkaConsumer:
        return AIOKafkaConsumer(bootstrap_servers=self.bootstrap, isolation_level=isolation_level,
                                enable_auto_commit=False, auto_offset_reset="earliest")

    async def _end_consumer(self, isolation_level: str) -> AIOKafkaConsumer:
        consumer = self._ends.get(isolation_level)
        if consumer is None:
            consumer = self._ends[isolation_level] = self._consumer(isolation_level)
            await consumer.start()
        return consumer

    async def visible(self, topic: str) -> Records:
        consumer = self._consumer("read_committed")
        await consumer.start()
        try:
            tp = TopicPartition(topic, 0)
            consumer.assign([tp])
            await consumer.seek_to_beginning(tp)
            end = (await consumer.end_offsets([tp]))[tp]
            out: list[tuple[bytes | None, bytes | None]] = []
            deadline = asyncio.get_running_loop().time() + 10
            while await consumer.position(tp) < end:
                assert asyncio.get_running_loop().time() < deadline, f"reading {topic} to offset {end} timed out"
                batch = await consumer.getmany(tp, timeout_ms=500)
                out.extend((m.key, m.value) for m in batch.get(tp, []))
            return tuple(out)
        finally:
            await consumer.stop()

    async def offsets(self, topic: str) -> tuple[int, int]:
        tp = TopicPartition(topic, 0)
        stable = await (await self._end_consumer("read_committed")).end_offsets([tp])
        high = await (await self._end_consumer("read_uncommitted")).end_offsets([tp])
        return stable[tp], high[tp]

    async def wait_for_markers(self, before: dict[str, int], timeout: float = 5.0) -> None:
        """Until every topic's high watermark passed ``before`` (nothing else writes meanwhile: the
        scenarios are sequential). A marker that never comes only costs the timeout: the outcome
        shows the difference."""
        deadline = asyncio.get_running_loop().time() + timeout
        while asyncio.get_running_loop().time() < deadline:
            highs = {t: (await self.offsets(t))[1] for t in before}
            if all(highs[t] > high for t, high in before.items()):
                return
            await asyncio.sleep(0.02)

    async def load_checkpoint(self, topic: str, connector: str, timeout: float) -> Checkpoint | None:
        return await CheckpointStore(KafkaSettings(self.bootstrap), topic, connector).load(timeout=timeout)

    async def close(self) -> None:
        for producer in self._producers:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(producer.stop(), 10)
        for consumer in self._ends.values():
            with contextlib.suppress(Exception):
                await asyncio.wait_for(consumer.stop(), 10)


# ------------------------------------------------------------------------------------ error names


def family(exc: BaseException) -> str:
    """The same name for the same failure, fake or real."""
    if isinstance(exc, KafkaError):  # real: what the connector makes of it
        exc = real_sink._fenced_or_sink(exc, KafkaSettings(), "test", "topic", 0)  # noqa: SLF001
    if isinstance(exc, FencedError):
        return "fenced"
    if isinstance(exc, RecordTooLargeError):
        return "too_large"
    if isinstance(exc, CheckpointBlockedError):
        return "checkpoint_blocked"
    if isinstance(exc, SinkError):
        return "sink_error"
    return f"unexpected {type(exc).__name__}"


async def attempt(k: KafkaUnderTest, step: Awaitable[Any]) -> str:
    """"ok", or the family of the error the step raised."""
    try:
        await asyncio.wait_for(step, 15)
    except Exception as exc:  # noqa: BLE001 - the outcome is the error's family
        k.errors.append(f"{type(exc).__name__}: {exc}")
        return family(exc)
    return "ok"


def keys(records: Records) -> tuple[bytes | None, ...]:
    return tuple(key for key, _ in records)


# -------------------------------------------------------------------------------------- scenarios


async def open_transaction_holds_back_the_stable_offset(k: KafkaUnderTest) -> object:
    """A's open transaction hides B's later committed record until A ends (aborts)."""
    topic = await k.create_topic()
    a = await k.producer("a")
    b = await k.producer("b")
    await a.begin()
    await a.send(topic, b"k1", b"v1")  # offset 0, open
    await b.begin()
    await b.send(topic, b"k2", b"v2")  # offset 1
    await b.commit()  # marker at 2
    during = keys(await k.visible(topic)), await k.offsets(topic)
    await a.abort()  # marker at 3
    after = keys(await k.visible(topic)), await k.offsets(topic)
    return during, after


async def a_new_producer_of_the_id_fences_the_old_one(k: KafkaUnderTest) -> object:
    """P2 of the same transactional id aborts P1's open transaction; P1 then fails as fenced."""
    topic = await k.create_topic()
    p1 = await k.producer("x")
    await p1.begin()
    await p1.send(topic, b"k1", b"v1")  # offset 0, open
    p2 = await k.producer("x")  # aborts P1's transaction: marker at 1
    after_fence = keys(await k.visible(topic)), await k.offsets(topic)
    p1_commit = await attempt(k, p1.commit())
    await p2.begin()
    await p2.send(topic, b"k2", b"v2")  # offset 2
    await p2.commit()  # marker at 3
    return after_fence, p1_commit, await k.visible(topic), await k.offsets(topic)


async def a_fenced_producers_next_send_fails_as_fenced(k: KafkaUnderTest) -> object:
    """The same fencing, met by the next send of the open transaction instead of its commit."""
    topic = await k.create_topic()
    p1 = await k.producer("x")
    await p1.begin()
    await p1.send(topic, b"k1", b"v1")
    p2 = await k.producer("x")
    p1_send = await attempt(k, p1.send(topic, b"k3", b"v3"))
    await p2.begin()
    await p2.send(topic, b"k2", b"v2")
    await p2.commit()
    return p1_send, await k.visible(topic), await k.offsets(topic)


async def a_producer_fenced_between_transactions_fails_its_next_write(k: KafkaUnderTest) -> object:
    """Fenced while idle (its last transaction committed): its next write, begin to commit as
    KafkaSink.write does it, fails as fenced and leaves nothing visible."""
    topic = await k.create_topic()
    p1 = await k.producer("x")
    await p1.begin()
    await p1.send(topic, b"k1", b"v1")  # 0
    await p1.commit()  # 1
    await k.producer("x")

    async def write() -> None:
        await p1.begin()
        await p1.send(topic, b"k3", b"v3")
        await p1.commit()

    return await attempt(k, write()), await k.visible(topic), await k.offsets(topic)


async def an_aborted_transaction_is_never_visible(k: KafkaUnderTest) -> object:
    """Abort, then commit: only the committed records, in order."""
    topic = await k.create_topic()
    p = await k.producer("t")
    await p.begin()
    await p.send(topic, b"k1", b"v1")  # offset 0
    await p.abort()  # marker at 1
    after_abort = await k.visible(topic), await k.offsets(topic)
    await p.begin()
    await p.send(topic, b"k2", b"v2")  # 2
    await p.send(topic, b"k3", b"v3")  # 3
    await p.commit()  # marker at 4
    return after_abort, await k.visible(topic), await k.offsets(topic)


async def a_record_over_the_topic_limit_is_refused(k: KafkaUnderTest) -> object:
    """max.message.bytes=20000: 60,000 incompressible bytes are refused, 1,000 accepted (by a
    producer that had nothing refused: see the two scenarios after this one)."""
    topic = await k.create_topic(max_message_bytes=20_000)
    rng = random.Random(7)
    p = await k.producer("big", compression=None)  # the size sent is the size the broker sees
    await p.begin()
    refused = await attempt(k, p.send(topic, b"big", rng.randbytes(60_000)))
    await p.abort()
    q = await k.producer("small", compression=None)
    await q.begin()
    accepted = await attempt(k, q.send(topic, b"small", rng.randbytes(1_000)))
    await q.commit()
    return refused, accepted, keys(await k.visible(topic))


async def a_refused_record_still_ends_its_transaction_with_a_marker(k: KafkaUnderTest) -> object:
    """The partition joined the transaction before the broker refused the record, so the abort
    leaves a marker there: the topic holds one offset, though no record of it was ever accepted."""
    topic = await k.create_topic(max_message_bytes=20_000)
    p = await k.producer("big", compression=None)
    await p.begin()
    refused = await attempt(k, p.send(topic, b"big", random.Random(7).randbytes(60_000)))
    await p.abort()
    return refused, await k.offsets(topic)


async def a_producer_cannot_send_to_a_partition_after_a_refused_record(k: KafkaUnderTest) -> object:
    """aiokafka gave the refused batch a sequence number the broker never took: every later send of
    that (idempotent) producer to the partition fails with OutOfOrderSequenceNumber (a retriable
    SinkError to the connector), and its commit succeeds with nothing in it. Only a new producer
    (the connector's next session) writes there again."""
    topic = await k.create_topic(max_message_bytes=20_000)
    rng = random.Random(7)
    p = await k.producer("big", compression=None)
    await p.begin()
    refused = await attempt(k, p.send(topic, b"big", rng.randbytes(60_000)))
    await p.abort()
    await p.begin()
    again = await attempt(k, p.send(topic, b"small", rng.randbytes(1_000)))
    committed = await attempt(k, p.commit())
    return refused, again, committed, keys(await k.visible(topic))


CONNECTOR = "fakes-match"
FILE = "mysql-bin.000001"


async def write_checkpoint(p: TxProducer, topic: str, pos: int) -> None:
    await p.begin()
    await p.send(topic, CONNECTOR.encode(), Checkpoint(CONNECTOR, Position(FILE, pos), ts_ms=1).encode())
    await p.commit()


async def a_foreign_open_transaction_blocks_the_checkpoint_read(k: KafkaUnderTest) -> object:
    """load_checkpoint (fake and cdc/sink.py) waits out a foreign transaction instead of returning
    the checkpoint before it; once it aborts, our newest checkpoint (written behind it) is read."""
    topic = await k.create_topic()
    ours = await k.producer("ours")
    await write_checkpoint(ours, topic, 100)
    before = await k.load_checkpoint(topic, CONNECTOR, 3.0)
    foreign = await k.producer("foreign")
    await foreign.begin()
    await foreign.send(topic, b"another-connector", b"{}")
    await write_checkpoint(ours, topic, 200)  # committed, but behind the foreign transaction
    blocked = await attempt(k, k.load_checkpoint(topic, CONNECTOR, 3.0))
    await foreign.abort()
    after = await k.load_checkpoint(topic, CONNECTOR, 3.0)
    return (before and before.resume.pos), blocked, (after and after.resume.pos)


Scenario = Callable[[KafkaUnderTest], Awaitable[object]]

# What the real Kafka 4.x does. Offsets count the commit/abort markers (one per transaction end).
SCENARIOS: list[tuple[Scenario, object]] = [
    (open_transaction_holds_back_the_stable_offset, (((), (0, 3)), ((b"k2",), (4, 4)))),
    (a_new_producer_of_the_id_fences_the_old_one, (((), (2, 2)), "fenced", ((b"k2", b"v2"),), (4, 4))),
    (a_fenced_producers_next_send_fails_as_fenced, ("fenced", ((b"k2", b"v2"),), (4, 4))),
    (a_producer_fenced_between_transactions_fails_its_next_write, ("fenced", ((b"k1", b"v1"),), (2, 2))),
    (an_aborted_transaction_is_never_visible, (((), (2, 2)), ((b"k2", b"v2"), (b"k3", b"v3")), (5, 5))),
    (a_record_over_the_topic_limit_is_refused, ("too_large", "ok", (b"small",))),
    (a_refused_record_still_ends_its_transaction_with_a_marker, ("too_large", (1, 1))),
    (a_producer_cannot_send_to_a_partition_after_a_refused_record, ("too_large", "sink_error", "ok", ())),
    (a_foreign_open_transaction_blocks_the_checkpoint_read, (100, "checkpoint_blocked", 200)),
]


@pytest.fixture(params=["fake", "real"])
async def kafka(request: pytest.FixtureRequest) -> AsyncIterator[KafkaUnderTest]:
    adapter: KafkaUnderTest
    if request.param == "fake":
        adapter = FakeAdapter()
    else:
        adapter = RealAdapter(request.getfixturevalue("cdc_env")["WPCDC_KAFKA_BOOTSTRAP"])
    try:
        yield adapter
    finally:
        await adapter.close()


@pytest.mark.parametrize("scenario", SCENARIOS, ids=[s.__name__ for s, _ in SCENARIOS])
async def test_fake_and_real_kafka_give_the_same_outcome(kafka: KafkaUnderTest,
                                                         scenario: tuple[Scenario, object]) -> None:
    run, expected = scenario
    outcome = await asyncio.wait_for(run(kafka), 30)
    blame = ("tests/sim/fakes.py differs from the real Kafka here (the expected outcome is what Kafka 4.x "
             "with aiokafka does); fix the fake, not the expectation"
             if kafka.name == "fake" else
             "the real Kafka (or aiokafka) no longer does what this scenario recorded; update the expected "
             "outcome, then check the fake against it")
    assert outcome == expected, (f"{blame}.\n{run.__name__} on {kafka.name} gave {outcome!r},\n"
                                 f"expected {expected!r}.\nScenario: {' '.join((run.__doc__ or '').split())}\n"
                                 f"Errors caught: {kafka.errors}")
