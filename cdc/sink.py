"""The sink stage: post-event records and their checkpoint into Kafka, together.

In ``exactly-once`` mode one flush is one Kafka transaction: the events, their tombstones and the
checkpoint record that covers them commit or vanish together, and the stable transactional id
fences a second instance of the same connector. In ``at-least-once`` mode the checkpoint is only
sent after Kafka acknowledged every event of the flush, so a crash can repeat, never skip.

aiokafka errors are mapped here to SinkError / FencedError.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import (
    KafkaError,
    MessageSizeTooLargeError,
    ProducerFenced,
    TopicAlreadyExistsError,
)

from cdc import metrics
from cdc.checkpoint import Checkpoint
from cdc.config import LEGACY_CHECKPOINT_TOPIC, KafkaSettings, default_checkpoint_topic
from cdc.encode import Record
from cdc.errors import CheckpointBlockedError, FencedError, RecordTooLargeError, SinkError

log = logging.getLogger(__name__)


def _fenced_or_sink(exc: BaseException, settings: KafkaSettings, what: str, topic: str = "",
                    max_message_bytes: int = 0) -> Exception:
    if isinstance(exc, MessageSizeTooLargeError):
        return RecordTooLargeError(
            f"Kafka at {settings.bootstrap} refused a record of topic {topic} as too large ({exc!r}): the "
            f"topic's max.message.bytes (or the broker's message.max.bytes) is below --max-message-bytes "
            f"{max_message_bytes}. Raise it (kafka-configs.sh --alter --entity-type topics --entity-name "
            f"{topic} --add-config max.message.bytes={max_message_bytes + 65536}) or lower --max-message-bytes; "
            "nothing after the last checkpoint was committed, so a restart loses nothing"
        )
    if isinstance(exc, ProducerFenced) or "fenced" in type(exc).__name__.lower():
        return FencedError(
            "another wpcdc instance with the same --name took over (its transactional id fenced "
            "this one); run one instance per source database. Is another instance running?"
        )
    return SinkError(f"Kafka at {settings.bootstrap} failed to {what}: {exc!r}")


async def ensure_topics(settings: KafkaSettings, topic: str, checkpoint_topic: str, partitions: int,
                        max_message_bytes: int = 900_000) -> None:
    """Create the event topic (compacted, keyed by post) and the checkpoint topic if missing.

    A --max-message-bytes above what Kafka takes by default (about 1 MiB) raises the new event
    topic's max.message.bytes to match; an existing topic is the operator's (see RecordTooLargeError).
    """
    admin = AIOKafkaAdminClient(**settings.client_kwargs())
    try:
        await admin.start()
        existing = set(await admin.list_topics())
        wanted = []
        if topic not in existing:
            configs = {"cleanup.policy": "compact", "min.compaction.lag.ms": "3600000"}
            if max_message_bytes + (64 << 10) > 1_048_588:
                configs["max.message.bytes"] = str(max_message_bytes + (64 << 10))
            wanted.append(NewTopic(topic, partitions, 1, topic_configs=configs))
        if checkpoint_topic not in existing:
            wanted.append(NewTopic(checkpoint_topic, 1, 1, topic_configs={
                "cleanup.policy": "compact", "min.cleanable.dirty.ratio": "0.1",
                "segment.ms": "600000",
            }))
        if wanted:
            try:
                await admin.create_topics(wanted)
            except TopicAlreadyExistsError:
                pass
    except KafkaError as exc:
        metrics.kafka_error("topics")
        raise SinkError(f"cannot create topics on Kafka at {settings.bootstrap}: {exc!r}") from None
    finally:
        await admin.close()


async def _stable_ends(consumer: AIOKafkaConsumer, uncommitted: AIOKafkaConsumer, tps: list[TopicPartition],
                       topic: str, timeout: float) -> dict[TopicPartition, int]:
    """End offsets once every transaction open when we looked has ended.

    Under read_committed the end offset is the last stable offset: a transaction another producer
    left open (a connector killed mid-flush, one sharing the topic) hides every record after its
    first one, ours included. Reading only to there would resume from an older checkpoint and
    repeat events, so wait until the stable offset reaches the high watermark seen at the start
    (our own transactions are all below it: the producer started, and so ended ours, before).
    """
    high = await uncommitted.end_offsets(tps)
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        stable = await consumer.end_offsets(tps)
        if all(stable[tp] >= high[tp] for tp in tps):
            return stable
        if asyncio.get_running_loop().time() > deadline:
            metrics.kafka_error("checkpoint")
            blocked = ", ".join(f"partition {tp.partition} from offset {stable[tp]}" for tp in tps
                                if stable[tp] < high[tp])
            raise CheckpointBlockedError(
                f"checkpoint topic {topic} has a transaction another producer left open ({blocked}); "
                "the newest checkpoint may be behind it, so wpcdc waits for it to end (at most that "
                "producer's transaction.timeout.ms) instead of resuming from an older one and "
                "repeating events. Give every connector a checkpoint topic of its own (the default, "
                f"{default_checkpoint_topic('<name>')})"
            )
        await asyncio.sleep(0.5)


async def load_checkpoint(settings: KafkaSettings, topic: str, connector: str,
                          timeout: float = 30.0) -> Checkpoint | None:
    """The newest committed checkpoint of ``connector``: read the topic to its stable end."""
    consumer = AIOKafkaConsumer(
        **settings.client_kwargs(),
        isolation_level="read_committed",
        enable_auto_commit=False,
        auto_offset_reset="earliest",
    )
    uncommitted = AIOKafkaConsumer(**settings.client_kwargs(), isolation_level="read_uncommitted",
                                   enable_auto_commit=False)
    latest: bytes | None = None
    found = False
    try:
        await consumer.start()
        await uncommitted.start()
        partitions = consumer.partitions_for_topic(topic)
        if partitions is None:
            await consumer._client.force_metadata_update()  # noqa: SLF001 - no public refresh
            partitions = consumer.partitions_for_topic(topic)
        if not partitions:
            return None
        tps = [TopicPartition(topic, p) for p in sorted(partitions)]
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        ends = await _stable_ends(consumer, uncommitted, tps, topic, timeout)
        key = connector.encode()
        deadline = asyncio.get_running_loop().time() + timeout
        for tp in tps:
            while await consumer.position(tp) < ends[tp]:
                if asyncio.get_running_loop().time() > deadline:
                    metrics.kafka_error("checkpoint")
                    raise SinkError(f"timed out reading checkpoint topic {topic}")
                batch = await consumer.getmany(tp, timeout_ms=1000)
                for msg in batch.get(tp, []):
                    if msg.key == key:
                        latest, found = msg.value, True
    except KafkaError as exc:
        metrics.kafka_error("checkpoint")
        raise SinkError(f"cannot read checkpoint topic {topic} from {settings.bootstrap}: {exc!r}") from None
    finally:
        await consumer.stop()
        await uncommitted.stop()
    if not found or latest is None:
        return None
    return Checkpoint.decode(latest)


async def find_checkpoint(settings: KafkaSettings, topic: str, connector: str) -> tuple[Checkpoint | None, str]:
    """(checkpoint, topic it was read from). A connector on the default topic that has no record
    there yet but one in the legacy shared topic gets that one: the caller writes it to the new
    topic, which is the whole migration (the old record is left for a rollback)."""
    saved = await load_checkpoint(settings, topic, connector)
    if saved is None and topic == default_checkpoint_topic(connector):
        legacy = await load_checkpoint(settings, LEGACY_CHECKPOINT_TOPIC, connector)
        if legacy is not None:
            return legacy, LEGACY_CHECKPOINT_TOPIC
    return saved, topic


async def topic_offsets(settings: KafkaSettings, topic: str) -> int:
    """How many offsets ``topic`` holds (0 when missing or empty): whether events were written."""
    consumer = AIOKafkaConsumer(**settings.client_kwargs(), isolation_level="read_uncommitted",
                                enable_auto_commit=False)
    try:
        await consumer.start()
        await consumer._client.force_metadata_update()  # noqa: SLF001 - no public refresh
        partitions = consumer.partitions_for_topic(topic)
        if not partitions:
            return 0
        tps = [TopicPartition(topic, p) for p in sorted(partitions)]
        begin = await consumer.beginning_offsets(tps)
        end = await consumer.end_offsets(tps)
        return sum(end[tp] - begin[tp] for tp in tps)
    except KafkaError as exc:
        metrics.kafka_error("topics")
        raise SinkError(f"cannot read the offsets of topic {topic} from {settings.bootstrap}: {exc!r}") from None
    finally:
        await consumer.stop()


class KafkaSink:
    """One producer; ``write`` sends a flush (records + checkpoint) with the configured guarantee."""

    def __init__(self, settings: KafkaSettings, *, topic: str, checkpoint_topic: str, connector: str,
                 transactional_id: str | None, max_message_bytes: int = 900_000,
                 write_timeout: float = 60.0) -> None:
        self.settings = settings
        self.topic = topic
        self.checkpoint_topic = checkpoint_topic
        self.connector_key = connector.encode()
        self.transactional = transactional_id is not None
        self.write_timeout = write_timeout
        self.max_message_bytes = max_message_bytes
        # Room for the largest event the size policy lets through, its key and batch framing; never
        # below Kafka's usual 1 MiB, so the checkpoint record and small batches always fit.
        max_request_size = max(1 << 20, max_message_bytes + (64 << 10))
        self._producer = AIOKafkaProducer(
            **settings.client_kwargs(),
            enable_idempotence=True,
            acks="all",
            transactional_id=transactional_id,
            # zstd (Rust, through cramjam) compresses JSON better than gzip at ~10x its speed;
            # gzip level 9 in the event loop was a tenth of wpcdc's CPU while catching up.
            compression_type="zstd",
            # No linger: a flush appends all its records before the sender runs (send() does not
            # yield), so they batch anyway; lingering only delayed every transaction by 5 ms.
            linger_ms=0,
            max_batch_size=min(max_request_size, 512 << 10),  # default 16 KiB: 2-3 post events
            max_request_size=max_request_size,
        )

    async def start(self) -> None:
        try:
            await self._producer.start()
        except KafkaError as exc:
            metrics.kafka_error("start")
            await self._close_quietly()
            raise _fenced_or_sink(exc, self.settings, "start the producer") from None

    async def stop(self) -> None:
        await self._close_quietly()

    async def _close_quietly(self) -> None:
        try:
            await asyncio.wait_for(self._producer.stop(), 10)
        except Exception:  # noqa: BLE001 - stopping after a failure; the failure was reported
            pass

    async def write(self, records: Sequence[Record], checkpoint: Checkpoint | None) -> None:
        metrics.write_started()
        try:
            # aiokafka waits for a broker that went away instead of failing the transaction: the
            # timeout turns a hang into a failure the runner heals (new producer, checkpoint).
            write = self._write_transaction if self.transactional else self._write_acked
            await asyncio.wait_for(write(records, checkpoint), self.write_timeout)
        except TimeoutError:
            metrics.kafka_error("write")
            raise SinkError(
                f"Kafka at {self.settings.bootstrap} did not acknowledge a write within "
                f"{self.write_timeout:.0f}s; reconnecting from the checkpoint"
            ) from None
        except KafkaError as exc:
            metrics.kafka_error("write")
            raise _fenced_or_sink(exc, self.settings, "accept events", self.topic, self.max_message_bytes) from None
        finally:
            metrics.write_finished()

    async def _write_transaction(self, records: Sequence[Record], checkpoint: Checkpoint | None) -> None:
        producer = self._producer
        await producer.begin_transaction()
        try:
            futures = [await producer.send(self.topic, r.value, key=r.topic_key) for r in records]
            if checkpoint is not None:
                futures.append(await producer.send(self.checkpoint_topic, checkpoint.encode(),
                                                   key=self.connector_key))
            await asyncio.gather(*futures)
        except asyncio.CancelledError:
            raise  # timed out: the next producer's start aborts this transaction
        except BaseException:
            try:
                await producer.abort_transaction()
                metrics.transaction(committed=False)
            except Exception:  # noqa: BLE001 - the original error is the one to report
                pass
            raise
        await producer.commit_transaction()
        metrics.transaction(committed=True)

    async def _write_acked(self, records: Sequence[Record], checkpoint: Checkpoint | None) -> None:
        producer = self._producer
        futures = [await producer.send(self.topic, r.value, key=r.topic_key) for r in records]
        await asyncio.gather(*futures)
        if checkpoint is not None:
            await (await producer.send(self.checkpoint_topic, checkpoint.encode(), key=self.connector_key))
