"""Where the connector stands: the record (codec) and its store, a compacted Kafka topic keyed by
connector name. Everything that reads or writes a checkpoint goes through here: the stream (whose
sink sends :meth:`CheckpointStore.record` inside its transactions), ``status`` and ``offsets``.

A checkpoint says where to resume reading (the assembler's low watermark, with the GTID state
there) and which posts already have their rows up to some position in Kafka (``emitted``), so a
restart re-forms exactly the events not yet committed. In exactly-once mode the record is written
in the same Kafka transaction as the events it covers; see docs/design.md.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson

from cdc import metrics
from cdc.config import LEGACY_CHECKPOINT_TOPIC, KafkaSettings, default_checkpoint_topic
from cdc.errors import CheckpointBlockedError, CheckpointError, CheckpointMissingError
from cdc.kafka import KafkaReader, topic_offsets
from cdc.model import PostKey
from cdc.position import Position

CHECKPOINT_VERSION = 1


@dataclass(frozen=True)
class Checkpoint:
    connector: str
    resume: Position
    gtid: str | None = None
    emitted: dict[PostKey, Position] = field(default_factory=dict)
    server_id: int | None = None
    ts_ms: int = 0
    snapshot: dict[str, Any] | None = None
    done_upto: Position | None = None  # every row up to here is in Kafka (see Assembler.done_upto)

    def __post_init__(self) -> None:
        for key, pos in self.emitted.items():
            if pos <= self.resume:
                raise CheckpointError(f"checkpoint mark for post {key} at {pos} is not after resume {self.resume}")

    def encode(self) -> bytes:
        return orjson.dumps(
            {
                "version": CHECKPOINT_VERSION,
                "connector": self.connector,
                "resume": {"file": self.resume.file, "pos": self.resume.pos, "gtid": self.gtid},
                "emitted": self._encode_marks(),
                "server_id": self.server_id,
                "ts_ms": self.ts_ms or int(time.time() * 1000),
                "snapshot": self.snapshot,
                "done_upto": [self.done_upto.file, self.done_upto.pos] if self.done_upto else None,
            }
        )

    def _encode_marks(self) -> list[list[Any]]:
        """Marks grouped by position: a backfill chunk marks hundreds of posts at one position."""
        by_position: dict[Position, list[str]] = {}
        for (blog, post), pos in self.emitted.items():
            by_position.setdefault(pos, []).append(f"{blog}:{post}")
        return [[pos.file, pos.pos, sorted(keys)] for pos, keys in by_position.items()]

    @classmethod
    def decode(cls, value: bytes) -> Checkpoint:
        try:
            doc = orjson.loads(value)
            if doc.get("version") != CHECKPOINT_VERSION:
                raise CheckpointError(
                    f"checkpoint version {doc.get('version')} is not {CHECKPOINT_VERSION}: "
                    "this wpcdc is older than the one that wrote it; upgrade wpcdc"
                )
            emitted = {}
            for file, pos, keys in doc.get("emitted", []):
                position = Position(file, int(pos))
                for key in keys:
                    blog, _, post = key.partition(":")
                    emitted[(int(blog), int(post))] = position
            resume = doc["resume"]
            return cls(
                connector=doc["connector"],
                resume=Position(resume["file"], int(resume["pos"])),
                gtid=resume.get("gtid"),
                emitted=emitted,
                server_id=doc.get("server_id"),
                ts_ms=int(doc.get("ts_ms") or 0),
                snapshot=doc.get("snapshot"),
                done_upto=Position(*doc["done_upto"]) if doc.get("done_upto") else None,
            )
        except CheckpointError:
            raise
        except (ValueError, KeyError, TypeError) as exc:
            raise CheckpointError(
                f"checkpoint record is unreadable ({exc}); inspect it with `wpcdc offsets show` "
                "and replace it with `wpcdc offsets set`"
            ) from None


class CheckpointStore:
    """The checkpoint topic of one connector: read the newest record, and the record to write.

    Writing happens in the sink, inside the transaction of the events the record covers (that is
    what makes a restart exact); :meth:`record` is the one place that says what is written where.
    """

    def __init__(self, settings: KafkaSettings, topic: str, connector: str) -> None:
        self.settings = settings
        self.topic = topic
        self.connector = connector
        self.key = connector.encode()

    def record(self, checkpoint: Checkpoint) -> tuple[str, bytes, bytes]:
        """(topic, key, value) of ``checkpoint``'s record."""
        return self.topic, self.key, checkpoint.encode()

    async def load(self, timeout: float = 30.0, topic: str | None = None) -> Checkpoint | None:
        """The newest committed checkpoint of this connector: the topic read to its stable end.

        A transaction another producer left open hides every record after its first offset;
        resuming from what is visible would repeat events, so this waits for it to end and raises
        the retriable CheckpointBlockedError after ``timeout``.
        """
        topic = topic or self.topic
        latest: bytes | None = None
        async with KafkaReader(self.settings, f"read checkpoint topic {topic}", "checkpoint") as reader:
            tps = await reader.partitions(topic)
            if not tps:
                return None
            offsets = await reader.offsets(tps)
            ends = await reader.stable_ends(tps, timeout)
            if ends is None:
                metrics.kafka_error("checkpoint")
                now = await reader.offsets(tps)
                blocked = ", ".join(f"partition {tp.partition} from offset {now.stable[tp]}" for tp in tps
                                    if now.stable[tp] < now.high[tp])
                raise CheckpointBlockedError(
                    f"checkpoint topic {topic} has a transaction another producer left open ({blocked}); "
                    "the newest checkpoint may be behind it, so wpcdc waits for it to end (at most that "
                    "producer's transaction.timeout.ms) instead of resuming from an older one and "
                    "repeating events. Give every connector a checkpoint topic of its own (the default, "
                    f"{default_checkpoint_topic('<name>')})"
                )
            for tp in tps:
                async for msg in reader.read(tp, offsets.begin[tp], ends[tp], timeout):
                    if msg.key == self.key:
                        latest = msg.value
        return None if latest is None else Checkpoint.decode(latest)

    async def find(self) -> tuple[Checkpoint | None, str]:
        """(checkpoint, topic it was read from). A connector on the default topic that has no record
        there yet but one in the legacy shared topic gets that one: the stream writes it to the new
        topic, which is the whole migration (the old record is left for a rollback)."""
        saved = await self.load()
        if saved is None and self.topic == default_checkpoint_topic(self.connector):
            legacy = await self.load(topic=LEGACY_CHECKPOINT_TOPIC)
            if legacy is not None:
                return legacy, LEGACY_CHECKPOINT_TOPIC
        return saved, self.topic

    async def require_not_lost(self, event_topics: Sequence[str]) -> None:
        """The lost-checkpoint rule: no checkpoint while the event topic holds events.

        Starting at the binlog's end then would skip every change since in silence, so this raises
        CheckpointMissingError (exit 41) with the three ways on. Callers ask only when no
        checkpoint was found and the operator did not say how to start.
        """
        held = sum([await topic_offsets(self.settings, topic) for topic in event_topics])
        event_topic = ", ".join(event_topics)
        if held:
            raise CheckpointMissingError(
                f"no checkpoint for connector {self.connector!r} in {self.topic}, but its event topic "
                f"{event_topic} already holds {held} offsets: the checkpoint was lost (a deleted or recreated "
                "topic, another --checkpoint-topic or --name?). Starting at the binlog's end would skip every "
                "change since in silence. Choose one: `wpcdc offsets set FILE:POS` to resume where the events "
                "end (`wpcdc status` shows the newest event's position; an earlier position repeats events, "
                "which consumers drop by seq), `--start end` to start at the end on purpose, or `wpcdc "
                "backfill` to re-read every post"
            )
