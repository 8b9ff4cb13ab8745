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
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError, MessageSizeTooLargeError, ProducerFenced
from aiokafka.partitioner import DefaultPartitioner
from aiokafka.record.default_records import DefaultRecordBatchBuilder

from cdc import login, metrics
from cdc.checkpoint import Checkpoint, CheckpointStore
from cdc.config import KafkaSettings
from cdc.encode import Record
from cdc.errors import FencedError, RecordTooLargeError, SinkError

log = logging.getLogger(__name__)

# After a commit the transaction coordinator still writes its markers for a millisecond or two;
# the next transaction's AddPartitionsToTxn meanwhile gets CONCURRENT_TRANSACTIONS, and aiokafka
# then waits a fixed 20 ms before asking again (KAFKA-5477's override of the 100 ms backoff). At
# the live edge a flush follows the last one within milliseconds, so that wait was most of an
# edit's delivery time after its window (docs/performance.md, *Latency*). 2 ms asks again about
# when the markers are written.
CONCURRENT_TRANSACTIONS_RETRY = 0.002


def shorten_concurrent_transactions_retry() -> bool:
    """Set aiokafka's retry after CONCURRENT_TRANSACTIONS to CONCURRENT_TRANSACTIONS_RETRY.

    A module constant of aiokafka's sender (read where the error is handled, so setting it takes
    effect for every producer); False, and nothing changed, when this aiokafka has no such
    constant: transactions then work as before, only with the longer wait.
    """
    from aiokafka.producer import sender

    if not isinstance(getattr(sender, "BACKOFF_OVERRIDE", None), float):
        return False
    sender.BACKOFF_OVERRIDE = CONCURRENT_TRANSACTIONS_RETRY  # type: ignore[attr-defined]
    return True


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


def _record_size(key: bytes | None, value: bytes | None, headers: list[tuple[str, bytes]]) -> int:
    """A record's size as the producer's own check counts it (against max_request_size)."""
    return int(DefaultRecordBatchBuilder.estimate_size_in_bytes(key, value, headers))


class KafkaSink:
    """One producer; ``write`` sends a flush (records + checkpoint) with the configured guarantee."""

    def __init__(self, settings: KafkaSettings, *, topic: str, checkpoint_topic: str, connector: str,
                 transactional_id: str | None, max_message_bytes: int = 900_000,
                 write_timeout: float = 60.0, compression: str = "none",
                 new_topic: Callable[[str], Awaitable[None]] | None = None) -> None:
        self.settings = settings
        self.topic = topic
        # Topics a routing template names are created as they are first needed (before the
        # transaction that writes to them); the ones known to exist are remembered.
        self._new_topic = new_topic
        self._known_topics = {topic, checkpoint_topic}  # a repair request's tombstone goes to the latter
        self.checkpoints = CheckpointStore(settings, checkpoint_topic, connector)
        self.transactional = transactional_id is not None
        self.write_timeout = write_timeout
        self.max_message_bytes = max_message_bytes
        # Room for the largest event the size policy lets through, its key and batch framing; never
        # below Kafka's usual 1 MiB, so the checkpoint record and small batches always fit.
        max_request_size = max(1 << 20, max_message_bytes + (64 << 10))
        self._max_request_size = max_request_size
        # The producer's own (partitioner.class is not among --kafka-option's keys): a post's key
        # lands where any Java or librdkafka producer with murmur2 would put it.
        self._partitioner = DefaultPartitioner()
        tuning = dict(
            # No linger: a flush fills its record batches itself before the sender runs (_send),
            # so lingering only delayed every transaction by 5 ms.
            linger_ms=0,
            # Default 16 KiB: 2-3 post events. Never above --max-message-bytes: a batch is one
            # message to the broker's max.message.bytes, which the operator sets to fit it.
            max_batch_size=min(max_request_size, 512 << 10, max_message_bytes),
        )
        self._producer = AIOKafkaProducer(
            # --kafka-option's producer settings (linger.ms, batch.size ...) override the tuning;
            # the guarantees below are not among the keys it takes (cdc/kafka_options.py).
            **(tuning | settings.client_kwargs("producer")),
            enable_idempotence=True,
            acks="all",
            transactional_id=transactional_id,
            # --compression: none by default, the one codec every client reads at no CPU cost
            # (aiokafka's gzip is level 9, ~36x the cost of no codec; docs/performance.md).
            compression_type=None if compression == "none" else compression,
            max_request_size=max_request_size,
        )

    async def start(self) -> None:
        if self.transactional and not shorten_concurrent_transactions_retry():
            log.warning("this aiokafka has no BACKOFF_OVERRIDE: transactions at the live edge may wait "
                        "20 ms after each commit (docs/performance.md); check the aiokafka version range")
        try:
            await self._producer.start()
        except KafkaError as exc:
            metrics.kafka_error("start")
            await self._close_quietly()
            error = _fenced_or_sink(exc, self.settings, "start the producer")
            more = login.hint(self.settings)  # aiokafka cannot see a refused login (cdc/login.py)
            if more and type(error) is SinkError:
                error = SinkError(f"{error}; {more}")
            raise error from None

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
            await self._create_topics(records)
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
            # The topic of the largest record: the one Kafka refused when it says "too large".
            largest = max(records, key=lambda r: len(r.value or b""), default=None)
            topic = (largest.topic if largest is not None else None) or self.topic
            raise _fenced_or_sink(exc, self.settings, "accept events", topic, self.max_message_bytes) from None
        finally:
            metrics.write_finished()

    async def _create_topics(self, records: Sequence[Record]) -> None:
        wanted = {r.topic for r in records if r.topic is not None} - self._known_topics
        for topic in sorted(wanted):
            if self._new_topic is None:
                raise SinkError(f"record for topic {topic} but no way to create topics was given")
            await self._new_topic(topic)
            self._known_topics.add(topic)

    async def _send(self, records: Sequence[Record], checkpoint: Checkpoint | None = None) -> list[asyncio.Future[Any]]:
        """Queue the records (and the checkpoint's, last) in record batches, one per partition
        while it has room, each partition's records in their order; the futures of the batches.

        What ``producer.send`` does per record, per batch instead: the same partitioner over the
        same partition list (keys always set: blog:post, the connector's name), the same size
        check, the same transaction bookkeeping (``send_batch`` adds each partition to the
        transaction). ``send`` also makes a future, a metadata lookup and a partition list per
        record: 31-38 against 20 us of CPU a record for a backfill's events (docs/performance.md).
        """
        producer = self._producer
        queued: list[tuple[str, bytes, bytes | None, list[tuple[str, bytes]]]] = [
            (r.topic or self.topic, r.topic_key, r.value, list(r.headers)) for r in records]
        if checkpoint is not None:
            queued.append((*self.checkpoints.record(checkpoint), []))
        partitions: dict[str, list[int]] = {}
        open_batches: dict[tuple[str, int], Any] = {}
        futures: list[asyncio.Future[Any]] = []
        for topic, key, value, headers in queued:
            parts = partitions.get(topic)
            if parts is None:
                parts = partitions[topic] = list(await producer.partitions_for(topic))
            size = _record_size(key, value, headers)
            if size > self._max_request_size:
                raise MessageSizeTooLargeError(
                    f"a record of {size} bytes is larger than max_request_size {self._max_request_size}")
            where = (topic, self._partitioner(key, parts, parts))
            batch = open_batches.get(where)
            if batch is None:
                batch = open_batches[where] = producer.create_batch()
            if batch.append(key=key, value=value, timestamp=None, headers=headers) is None:
                # Full: it goes, the record opens the next one (an empty batch takes any record).
                futures.append(await self._send_batch(batch, *where))
                batch = open_batches[where] = producer.create_batch()
                if batch.append(key=key, value=value, timestamp=None, headers=headers) is None:
                    raise SinkError(f"aiokafka refused a record of {len(value or b'')} bytes into an empty "
                                    "batch; check the aiokafka version range")
        for (topic, partition), batch in open_batches.items():
            futures.append(await self._send_batch(batch, topic, partition))
        return futures

    async def _send_batch(self, batch: Any, topic: str, partition: int) -> asyncio.Future[Any]:
        try:
            return await self._producer.send_batch(batch, topic, partition=partition)
        except AssertionError:  # aiokafka's check that the partition is in its metadata
            raise SinkError(f"topic {topic} lost partition {partition} during a write (deleted and created "
                            "again?); the write is retried from the checkpoint") from None

    async def _write_transaction(self, records: Sequence[Record], checkpoint: Checkpoint | None) -> None:
        producer = self._producer
        await producer.begin_transaction()
        try:
            await asyncio.gather(*await self._send(records, checkpoint))
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
        await asyncio.gather(*await self._send(records))
        if checkpoint is not None:  # only once every event is acknowledged
            await asyncio.gather(*await self._send((), checkpoint))
