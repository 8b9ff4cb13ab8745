"""Repair requests: how ``wpcdc verify --repair`` asks a *running* connector to re-emit posts.

A running connector owns its transactional id; a second session under that id (the inline repair
of cdc/repair.py) would fence it. So beside a running connector verify writes no events: it writes
a *request* to the connector's compacted checkpoint topic, keyed ``<name>/repair/<id>``, whose
value lists the posts (per blog) and when they were asked for. The checkpoint's own key is the bare
connector name, which never holds a ``/`` (``--name`` allows letters, digits, ``.``, ``_``, ``-``),
so ``CheckpointStore.load``, which keeps the records of its key only, the lost-checkpoint rule and
``offsets`` never see a request.

The connector's session watches the topic (:class:`RepairWatcher`: a task that reads on,
read_committed, from where it last stood, every few seconds; it reads the checkpoint records too,
so the cost is reading back what the connector writes, keys only). With no backfill running it
turns the oldest pending request into a backfill of exactly those posts whose progress id is the
request's id (:func:`progress`), so the ordering rule against the stream and the checkpointed
progress apply as for any backfill, and a crash mid-repair resumes from the checkpoint. The
checkpoint that records that backfill finished carries the request's tombstone in the same Kafka
transaction (:meth:`RepairWatcher.finished`): the request is gone exactly when its repair is
committed. verify splits a repair of more than :data:`BATCH` posts into several requests.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections import defaultdict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import orjson
from aiokafka import AIOKafkaProducer, TopicPartition
from aiokafka.errors import KafkaError

from cdc.config import KafkaSettings
from cdc.encode import Record
from cdc.errors import SinkError
from cdc.kafka import KafkaReader, sink_error
from cdc.source.snapshot import SnapshotProgress

log = logging.getLogger(__name__)

VERSION = 1
BATCH = 10_000  # posts per request (per repair backfill): their ids ride in every checkpoint record (~70 KB)
POLL_INTERVAL = 2.0  # seconds between the connector's looks at the checkpoint topic
READ_TIMEOUT = 60.0  # reading the checkpoint topic from where the watcher stood to its stable end
INFIX = "/repair/"


@dataclass(frozen=True)
class RepairRequest:
    """Re-emit ``posts`` (blog → post ids) through a backfill; asked at ``asked_ms``."""

    id: str
    posts: dict[int, tuple[int, ...]]
    asked_ms: int = 0

    @property
    def count(self) -> int:
        return sum(len(ids) for ids in self.posts.values())

    def key(self, connector: str) -> bytes:
        return f"{connector}{INFIX}{self.id}".encode()

    def encode(self) -> bytes:
        return orjson.dumps({
            "version": VERSION, "id": self.id, "asked_ms": self.asked_ms or int(time.time() * 1000),
            "posts": {str(blog): list(ids) for blog, ids in sorted(self.posts.items())},
        })

    @classmethod
    def decode(cls, value: bytes) -> RepairRequest:
        """The request, or ValueError for a value this version cannot read."""
        try:
            doc = orjson.loads(value)
            if doc.get("version") != VERSION:
                raise ValueError(f"version {doc.get('version')} is not {VERSION}")
            return cls(str(doc["id"]), {int(b): tuple(int(i) for i in ids) for b, ids in doc["posts"].items()},
                       int(doc.get("asked_ms") or 0))
        except (orjson.JSONDecodeError, KeyError, TypeError, AttributeError) as exc:
            raise ValueError(str(exc)) from None

    def as_dict(self) -> dict[str, Any]:
        return {"id": self.id, "posts": self.count, "asked_ms": self.asked_ms,
                "first": [f"{b}:{p}" for b, ids in sorted(self.posts.items()) for p in ids][:10]}


def request_id(connector: str, key: bytes | None) -> str | None:
    """The request id of a checkpoint-topic key, None for any other key (the checkpoint's own)."""
    prefix = f"{connector}{INFIX}".encode()
    if key is None or not key.startswith(prefix):
        return None
    return key[len(prefix):].decode(errors="replace")


def batches(keys: Iterable[tuple[int, int]], size: int = BATCH) -> Iterator[dict[int, tuple[int, ...]]]:
    """The posts per blog, at most ``size`` of them per batch, in (blog, post) order."""
    batch: dict[int, list[int]] = defaultdict(list)
    n = 0
    for blog, post in sorted(set(keys)):
        batch[blog].append(post)
        n += 1
        if n == size:
            yield {b: tuple(ids) for b, ids in batch.items()}
            batch, n = defaultdict(list), 0
    if n:
        yield {b: tuple(ids) for b, ids in batch.items()}


def split(keys: Iterable[tuple[int, int]], size: int = BATCH, now_ms: int | None = None) -> list[RepairRequest]:
    """The requests for re-emitting ``keys`` (blog, post): one per ``size`` posts."""
    asked = now_ms or int(time.time() * 1000)
    return [RepairRequest(uuid.uuid4().hex[:12], posts, asked) for posts in batches(keys, size)]


def progress(request: RepairRequest, blogs: Iterable[int], now_ms: int | None = None) -> SnapshotProgress:
    """The backfill of ``request``: its posts in the blogs that have tables (``blogs``), under the
    request's id, which is how the checkpoint that finishes it names the request to tombstone."""
    have = set(blogs)
    gone = sorted(set(request.posts) - have)
    if gone:
        log.warning("repair %s: blogs %s have no tables; their posts %s cannot be read, drop them downstream",
                    request.id, gone, {b: list(request.posts[b]) for b in gone})
    ids = {b: sorted(set(request.posts[b])) for b in sorted(request.posts) if b in have}
    return SnapshotProgress(id=request.id, blogs=list(ids), total=sum(len(v) for v in ids.values()),
                            started_ms=now_ms or int(time.time() * 1000), ids=ids)


async def write(settings: KafkaSettings, topic: str, connector: str, requests: list[RepairRequest]) -> None:
    """Write the requests to the checkpoint topic (acknowledged by every in-sync replica)."""
    producer = AIOKafkaProducer(**settings.client_kwargs("producer"), enable_idempotence=True, acks="all")
    try:
        await producer.start()
        for r in requests:
            await (await producer.send(topic, r.encode(), key=r.key(connector)))
    except KafkaError as exc:
        raise sink_error(settings, f"write a repair request to {topic}", exc, "write") from None
    finally:
        try:
            await asyncio.wait_for(producer.stop(), 10)
        except Exception:  # noqa: BLE001 - closing after the work; its errors were reported
            pass


class RepairWatcher:
    """The pending repair requests of one connector, read on from the checkpoint topic.

    The session runs :meth:`watch` as a task and asks :meth:`next` (a request to start, once none
    runs) and :meth:`finished` (the tombstone a flush writes with the checkpoint that finishes a
    repair). ``verify`` uses :meth:`catch_up` directly to wait for its requests' tombstones, and
    ``status`` to list the pending ones.
    """

    def __init__(self, settings: KafkaSettings, topic: str, connector: str, interval: float = POLL_INTERVAL) -> None:
        self.settings = settings
        self.topic = topic
        self.connector = connector
        self.interval = interval
        self.pending: dict[str, RepairRequest] = {}  # in the order they were written
        self.loaded = False  # the topic was read to its end once
        self.checkpoint: bytes | None = None  # the newest checkpoint record read (verify shows its progress)
        self._next: dict[TopicPartition, int] = {}
        self._tps: list[TopicPartition] | None = None  # the topic's partitions, once it exists
        self.done: set[str] = set()  # requests whose tombstone was read (their repair is committed)
        self._tombstoned: set[str] = set()  # by a flush of this session, not read back yet

    async def watch(self) -> None:
        """Read on every ``interval`` seconds, until cancelled. A failing read is logged and tried
        again: the stream does not depend on it (Kafka trouble ends the session through its
        writes anyway), so nothing here may end the session."""
        while True:
            try:
                async with KafkaReader(self.settings, f"read repair requests in {self.topic}", "checkpoint") as reader:
                    while True:
                        await self.catch_up(reader)
                        await asyncio.sleep(self.interval)
            except SinkError as exc:
                log.warning("repair requests: %s; trying again in %.0fs", exc, self.interval)
            except Exception:  # noqa: BLE001 - a bug here must not stop the stream: say so, go on
                log.exception("repair requests: reading %s failed; trying again in %.0fs", self.topic, self.interval)
            await asyncio.sleep(self.interval)

    async def catch_up(self, reader: KafkaReader) -> None:
        """Read the committed records written since the last call (the whole topic the first time)."""
        tps = self._tps = self._tps or await reader.partitions(self.topic)
        if tps:
            offsets = await reader.offsets(tps)
            for tp in tps:
                start = max(self._next.get(tp, 0), offsets.begin[tp])
                if start < offsets.stable[tp]:
                    async for msg in reader.read(tp, start, offsets.stable[tp], READ_TIMEOUT):
                        self.apply(msg.key, msg.value)
                self._next[tp] = offsets.stable[tp]
        self.loaded = True

    def apply(self, key: bytes | None, value: bytes | None) -> None:
        """One record of the checkpoint topic: a request, a request's tombstone, or another key."""
        if key == self.connector.encode():
            self.checkpoint = value
            return
        rid = request_id(self.connector, key)
        if rid is None:
            return
        if value is None:
            self.pending.pop(rid, None)
            self._tombstoned.discard(rid)
            self.done.add(rid)
            return
        try:
            self.pending[rid] = RepairRequest.decode(value)
        except ValueError as exc:
            log.warning("repair request %s in %s is unreadable (%s): skipped; write it again with this "
                        "version's `wpcdc verify --repair`", rid, self.topic, exc)

    def next(self, finished: str | None = None) -> RepairRequest | None:
        """The oldest request still to do; ``finished``: the id of the committed checkpoint's
        finished backfill, whose request waits only for its tombstone."""
        for rid, request in self.pending.items():
            if rid != finished and rid not in self._tombstoned:
                return request
        return None

    def finished(self, snapshot: dict[str, Any] | None) -> list[Record]:
        """The tombstone to write with a checkpoint whose ``snapshot`` is a finished repair whose
        request is pending (once; a session whose write fails ends, and its watcher with it)."""
        if not snapshot or not snapshot.get("finished_ms"):
            return []
        rid = str(snapshot.get("id"))
        request = self.pending.get(rid)
        if request is None or rid in self._tombstoned:
            return []
        self._tombstoned.add(rid)
        return [Record(topic_key=request.key(self.connector), value=None, topic=self.topic)]


async def pending(settings: KafkaSettings, topic: str, connector: str) -> RepairWatcher:
    """A watcher that has read the topic once: its ``pending`` requests, its newest ``checkpoint``."""
    watcher = RepairWatcher(settings, topic, connector)
    async with KafkaReader(settings, f"read repair requests in {topic}", "checkpoint") as reader:
        await watcher.catch_up(reader)
    return watcher


__all__ = ["BATCH", "RepairRequest", "RepairWatcher", "batches", "pending", "progress", "request_id", "split", "write"]
