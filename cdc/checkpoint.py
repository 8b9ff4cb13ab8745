"""Where the connector stands, stored in a compacted Kafka topic keyed by connector name.

A checkpoint says where to resume reading (the assembler's low watermark, with the GTID state
there) and which posts already have their rows up to some position in Kafka (``emitted``), so a
restart re-forms exactly the events not yet committed. In exactly-once mode the record is written
in the same Kafka transaction as the events it covers; see docs/design.md.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import orjson

from cdc.changes import PostKey
from cdc.errors import CheckpointError
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
