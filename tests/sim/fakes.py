"""The fakes behind cdc/ports.py: Kafka, the event sink, the binlog reader, the database.

Each models the server behaviour the session's correctness rests on, and nothing else:
transactions, fencing and the last stable offset of Kafka; a binlog reader that starts only at
transaction boundaries and drops its connection when told; lookups that see the database now;
backfill chunks that see one consistent snapshot. All of it is deterministic given the
``random.Random`` each fake is handed, and faults are injected through hooks, so a failing seed
replays exactly.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from cdc.checkpoint import Checkpoint
from cdc.encode import Record
from cdc.errors import (
    BinlogPurgedError,
    CheckpointBlockedError,
    FencedError,
    InvalidPositionError,
    RecordTooLargeError,
    SinkError,
    SourceError,
)
from cdc.model import Commit, Idle, PostDoc, Row, RowChange, RowsBatch, TxnRef
from cdc.position import Position
from cdc.repair_requests import RepairWatcher
from cdc.source.binlog import SourceFailed
from cdc.source.snapshot import SnapshotChunk
from cdc.wordpress import AUTO_DRAFT, Capture, TableKind, TableNames
from tests.sim.model import Binlog, Rotation, Site, Transaction


class Crash(BaseException):
    """The process died here (kill -9). A BaseException, so no ``except Exception`` in the session
    can swallow it: it unwinds to the simulator, which starts a new process (a new session)."""


class VirtualClock:
    """Simulated time: it moves only when told, so a run does not depend on the machine."""

    def __init__(self, start: float = 1000.0) -> None:
        self._now = start

    def monotonic(self) -> float:
        return self._now

    def advance(self, seconds: float) -> None:
        self._now += max(0.0, seconds)

    async def sleep(self, seconds: float) -> None:
        """For ``Ports.pause``: time passes at once, and other tasks get their turn."""
        self.advance(seconds)
        await asyncio.sleep(0)


# ------------------------------------------------------------------------------------------ Kafka


@dataclass
class KafkaRecord:
    """One offset of a (single-partition) topic. ``state``: open, committed, aborted, or marker
    (the commit/abort control record a transaction leaves in every topic it wrote)."""

    offset: int
    key: bytes | None
    value: bytes | None
    producer: int
    txn: int | None
    state: str


@dataclass
class _Transaction:
    id: int
    producer: Producer
    started: float
    timeout: float
    records: list[KafkaRecord] = field(default_factory=list)
    first: dict[str, int] = field(default_factory=dict)  # topic → its first offset in this transaction


class Producer:
    """One producer session. A transactional one is fenced by the next producer of its id."""

    def __init__(self, kafka: FakeKafka, pid: int, transactional_id: str | None, timeout: float) -> None:
        self.kafka = kafka
        self.pid = pid
        self.transactional_id = transactional_id
        self.timeout = timeout
        self.fenced = False
        self.expired = False  # the coordinator aborted its transaction after transaction.timeout.ms
        self.txn: _Transaction | None = None
        self.broken: set[str] = set()  # topics a refused record left it unable to write to

    def _check(self) -> None:
        self.kafka.expire()
        if self.fenced:
            raise FencedError(f"producer {self.pid} ({self.transactional_id}) was fenced by a newer one")
        if self.expired:
            self.expired = False
            raise SinkError(f"producer {self.pid}: its transaction timed out and the coordinator aborted it")

    def begin(self) -> None:
        self._check()
        if self.transactional_id is None:
            raise RuntimeError("not a transactional producer")
        if self.txn is not None:
            raise RuntimeError("a transaction is already open")
        self.txn = self.kafka._begin(self)  # noqa: SLF001

    def send(self, topic: str, key: bytes | None, value: bytes | None) -> int:
        """Append one record; in a transaction it stays invisible until commit. Returns its offset."""
        self._check()
        if self.transactional_id is not None and self.txn is None:
            raise RuntimeError("send outside a transaction")
        return self.kafka._append(self, topic, key, value)  # noqa: SLF001

    def commit(self) -> None:
        self._check()
        if self.txn is None:
            raise RuntimeError("no open transaction")
        self.kafka._end(self.txn, "committed")  # noqa: SLF001

    def abort(self) -> None:
        self._check()
        if self.txn is not None:
            self.kafka._end(self.txn, "aborted")  # noqa: SLF001


class FakeKafka:
    """Topics of one partition each, with transactions as a read_committed consumer sees them.

    * a transaction's records become visible at its commit, never after an abort;
    * a new producer with the same transactional id fences the old one (whose later calls
      raise FencedError) and aborts its open transaction;
    * an open transaction hides, under read_committed, every record from its first offset on
      (the last stable offset), other producers' committed ones included;
    * a transaction older than its timeout is aborted by ``expire`` (called on every producer
      call and read, with ``clock``), and its producer's next call fails with a SinkError;
    * a record larger than ``max_request_bytes`` (or a topic's own limit) raises RecordTooLargeError.
    """

    def __init__(self, *, max_request_bytes: int = 1 << 20, transaction_timeout: float = 60.0,
                 clock: VirtualClock | None = None) -> None:
        self.max_request_bytes = max_request_bytes
        self.topic_max_bytes: dict[str, int] = {}
        self.transaction_timeout = transaction_timeout
        self.clock = clock or VirtualClock()
        self.topics: dict[str, list[KafkaRecord]] = {}
        self._by_tid: dict[str, Producer] = {}
        self._open: dict[int, _Transaction] = {}
        self._ids = 0
        self._foreign: Producer | None = None

    # ------------------------------------------------------------------ producers

    def producer(self, transactional_id: str | None = None, timeout: float | None = None) -> Producer:
        """A started producer (``init_transactions`` done): fences and aborts its predecessor."""
        self._ids += 1
        producer = Producer(self, self._ids, transactional_id, timeout or self.transaction_timeout)
        if transactional_id is not None:
            old = self._by_tid.get(transactional_id)
            if old is not None:
                old.fenced = True
                if old.txn is not None:
                    self._end(old.txn, "aborted")
            self._by_tid[transactional_id] = producer
        return producer

    def open_foreign_transaction(self, topic: str, key: bytes = b"foreign", value: bytes = b"{}",
                                 timeout: float | None = None) -> Producer:
        """Another producer (another connector sharing the topic) leaves a transaction open here."""
        self._ids += 1
        producer = self.producer(f"foreign-{self._ids}", timeout)
        producer.begin()
        producer.send(topic, key, value)
        self._foreign = producer
        return producer

    def end_foreign_transaction(self, commit: bool = False) -> None:
        producer, self._foreign = self._foreign, None
        if producer is not None and producer.txn is not None:
            self._end(producer.txn, "committed" if commit else "aborted")

    def expire(self, now: float | None = None) -> int:
        """Abort every transaction open longer than its timeout; returns how many."""
        now = self.clock.monotonic() if now is None else now
        expired = [t for t in self._open.values() if now - t.started >= t.timeout]
        for t in expired:
            self._end(t, "aborted")
            t.producer.expired = True
        return len(expired)

    def _begin(self, producer: Producer) -> _Transaction:
        self._ids += 1
        txn = _Transaction(self._ids, producer, self.clock.monotonic(), producer.timeout)
        self._open[txn.id] = txn
        return txn

    def _append(self, producer: Producer, topic: str, key: bytes | None, value: bytes | None) -> int:
        size = len(key or b"") + len(value or b"")
        limit = min(self.max_request_bytes, self.topic_max_bytes.get(topic, self.max_request_bytes))
        txn = producer.txn
        if topic in producer.broken:
            # As aiokafka after a refused batch: that sequence number never reached the broker, so
            # every later send of this producer to the partition fails (OutOfOrderSequenceNumber).
            raise SinkError(f"producer {producer.pid}: out of order sequence number on {topic}")
        if size > limit:
            # As Kafka: the partition was already added to the transaction (its abort leaves a
            # marker), and the producer cannot write to it again.
            if txn is not None:
                self.topics.setdefault(topic, [])
                txn.first.setdefault(topic, len(self.topics[topic]))
            producer.broken.add(topic)
            raise RecordTooLargeError(f"a record of {size} bytes for topic {topic} is over the limit of {limit}")
        records = self.topics.setdefault(topic, [])
        record = KafkaRecord(len(records), key, value, producer.pid, txn.id if txn else None,
                             "open" if txn else "committed")
        records.append(record)
        if txn is not None:
            txn.records.append(record)
            txn.first.setdefault(topic, record.offset)
        return record.offset

    def _end(self, txn: _Transaction, state: str) -> None:
        for record in txn.records:
            record.state = state
        for topic in txn.first:
            records = self.topics[topic]
            records.append(KafkaRecord(len(records), None, None, txn.producer.pid, txn.id, "marker"))
        self._open.pop(txn.id, None)
        txn.producer.txn = None

    # ------------------------------------------------------------------ consumers

    def high_watermark(self, topic: str) -> int:
        """Offsets written, markers and aborted records included (what ``topic_offsets`` counts)."""
        return len(self.topics.get(topic, ()))

    def last_stable_offset(self, topic: str) -> int:
        """The end a read_committed consumer sees: the first offset of the oldest open transaction."""
        firsts = [t.first[topic] for t in self._open.values() if topic in t.first]
        return min(firsts) if firsts else self.high_watermark(topic)

    def read_committed(self, topic: str) -> list[KafkaRecord]:
        self.expire()
        lso = self.last_stable_offset(topic)
        return [r for r in self.topics.get(topic, ())[:lso] if r.state == "committed"]

    def read_uncommitted(self, topic: str) -> list[KafkaRecord]:
        return [r for r in self.topics.get(topic, ()) if r.state != "marker"]

    def open_transactions(self, topic: str | None = None) -> list[int]:
        return [t.id for t in self._open.values() if topic is None or topic in t.first]


# ------------------------------------------------------------------------------------------ sink

Hook = Callable[["FakeSink", Sequence[Record], Checkpoint | None], None]


class FakeSink:
    """``EventSink`` over FakeKafka, the way cdc/sink.py's KafkaSink writes.

    Exactly-once (a ``transactional_id``): one write is one transaction, the events then the
    checkpoint record (key = connector name). At-least-once (``None``): the events, then the
    checkpoint. Faults come from two hooks, called with (sink, records, checkpoint):

    * ``before_commit``: everything is sent, nothing committed (at-least-once: the events are
      in, the checkpoint not). Raising ``Crash`` leaves the transaction open, as a killed process
      does, until the next producer of the id starts or it times out; any other exception takes
      the sink's error path (abort, then raise, as KafkaSink does for a Kafka error).
    * ``after_commit``: everything is committed; ``Crash`` here is a crash before the session
      learned that its write succeeded.

    After a Crash the sink is dead: every later write raises Crash again.
    """

    def __init__(self, kafka: FakeKafka, topic: str, checkpoint_topic: str, connector: str,
                 transactional_id: str | None, *, rng: random.Random | None = None,
                 before_commit: Hook | None = None, after_commit: Hook | None = None) -> None:
        self.kafka = kafka
        self.topic = topic
        self.checkpoint_topic = checkpoint_topic
        self.connector_key = connector.encode()
        self.transactional_id = transactional_id
        self.rng = rng or random.Random(0)
        self.before_commit = before_commit
        self.after_commit = after_commit
        self.producer: Producer | None = None
        self.crashed = False
        self.writes = self.committed = self.aborted = 0

    def start(self) -> None:
        """Start the producer: it fences an older one of the same id and aborts its transaction.
        The runner must do this before ``load_checkpoint`` (cdc/pipeline.py does)."""
        self.producer = self.kafka.producer(self.transactional_id)

    def stop(self) -> None:
        self.producer = None

    async def write(self, records: Sequence[Record], checkpoint: Checkpoint | None) -> None:
        if self.crashed:
            raise Crash("this process is dead")
        if self.producer is None:
            raise RuntimeError("FakeSink.start() first: the producer fences before the checkpoint is read")
        self.writes += 1
        if self.transactional_id is None:
            await self._write_acked(self.producer, records, checkpoint)
        else:
            await self._write_transaction(self.producer, records, checkpoint)

    async def _interleave(self) -> None:
        for _ in range(self.rng.randint(0, 3)):
            await asyncio.sleep(0)

    def _hook(self, hook: Hook | None, records: Sequence[Record], checkpoint: Checkpoint | None) -> None:
        if hook is None:
            return
        try:
            hook(self, records, checkpoint)
        except Crash:
            self.crashed = True
            raise

    async def _write_transaction(self, producer: Producer, records: Sequence[Record],
                                 checkpoint: Checkpoint | None) -> None:
        producer.begin()
        try:
            # The real sink awaits begin_transaction and every send: other tasks (the backfill)
            # run before the checkpoint record is encoded, and so they do here.
            await self._interleave()
            for r in records:
                producer.send(r.topic or self.topic, r.topic_key, r.value)
            await self._interleave()
            if checkpoint is not None:
                producer.send(self.checkpoint_topic, self.connector_key, checkpoint.encode())
            await self._interleave()
            self._hook(self.before_commit, records, checkpoint)
        except (Crash, asyncio.CancelledError):
            raise  # the transaction stays open: the next producer's start aborts it
        except BaseException:
            try:
                producer.abort()
                self.aborted += 1
            except Exception:  # noqa: BLE001 - the original error is the one to report
                pass
            raise
        producer.commit()
        self.committed += 1
        self._hook(self.after_commit, records, checkpoint)

    async def _write_acked(self, producer: Producer, records: Sequence[Record],
                           checkpoint: Checkpoint | None) -> None:
        for r in records:
            producer.send(r.topic or self.topic, r.topic_key, r.value)
        await self._interleave()
        self._hook(self.before_commit, records, checkpoint)
        if checkpoint is not None:
            producer.send(self.checkpoint_topic, self.connector_key, checkpoint.encode())
        self.committed += 1
        self._hook(self.after_commit, records, checkpoint)


class FakeRepairWatcher(RepairWatcher):
    """cdc.repair_requests.RepairWatcher reading FakeKafka's checkpoint topic: its decisions (which
    request next, which tombstone with which checkpoint) are the real ones; only the reading is
    modelled. It reads on (committed records up to the last stable offset) each time ``interval``
    simulated seconds passed, and yields between looks."""

    def __init__(self, kafka: FakeKafka, topic: str, connector: str, clock: VirtualClock,
                 interval: float = 2.0) -> None:
        super().__init__(None, topic, connector, interval)  # type: ignore[arg-type]
        self.kafka = kafka
        self.clock = clock
        self._offset = 0
        self._looked: float | None = None

    async def watch(self) -> None:
        while True:
            now = self.clock.monotonic()
            if self._looked is None or now - self._looked >= self.interval:
                self._looked = now
                self.read_on()
            await asyncio.sleep(0)

    def read_on(self) -> None:
        self.kafka.expire()
        end = self.kafka.last_stable_offset(self.topic)
        for record in self.kafka.topics.get(self.topic, [])[self._offset:end]:
            if record.state == "committed":
                self.apply(record.key, record.value)
        self._offset = max(self._offset, end)
        self.loaded = True


def load_checkpoint(kafka: FakeKafka, topic: str, connector: str, timeout: float = 30.0,
                    poll: float = 0.5) -> Checkpoint | None:
    """The newest committed checkpoint of ``connector``, as cdc/checkpoint.py's CheckpointStore.load reads it.

    Its rule (``_stable_ends``): wait until the last stable offset reaches the high watermark seen
    first, polling every ``poll`` seconds of ``kafka.clock`` (which lets transaction timeouts
    fire), and raise CheckpointBlockedError after ``timeout``. A transaction of our own crashed
    process counts too: the runner must start the new sink (fencing it) first.
    """
    high = kafka.high_watermark(topic)
    waited = 0.0
    while True:
        kafka.expire()
        stable = kafka.last_stable_offset(topic)
        if stable >= high:
            break
        if waited >= timeout:
            raise CheckpointBlockedError(
                f"checkpoint topic {topic} has a transaction another producer left open (from offset {stable})")
        kafka.clock.advance(poll)
        waited += poll
    key = connector.encode()
    latest: bytes | None = None
    found = False
    for record in kafka.read_committed(topic):
        if record.offset < stable and record.key == key:
            latest, found = record.value, True
    if not found or latest is None:
        return None
    return Checkpoint.decode(latest)


# ---------------------------------------------------------------------------------------- source

DropAt = Callable[[int, object], bool]


class FakeSource:
    """``ChangeSource`` over the model binlog, item for item what cdc/source/binlog.py makes of it.

    From ``start`` (a transaction boundary) it yields, like the real reader: first the server's
    fake Rotate as ``Commit(start, gtid, ts=0)``; per transaction its RowsBatch items then a
    Commit (end, GTID state after it); a rotation as ``Commit((next file, 4))``; ``Idle(position,
    gtid)`` once per ``heartbeat`` seconds of waiting when caught up, at the binlog's end when that
    is in the file read (past a fresh file's header: 256, not 4). Transactions appended while it reads are read
    too. Row images are copies, so the session cannot change the model by mistake.

    Errors come as the real reader's do, as a ``SourceFailed`` item after the items before them
    (``raise_errors=True``: raised by ``next_items`` instead): a start that is not a boundary
    (InvalidPositionError), a file not in the binlog (BinlogPurgedError), or ``drop_at(n, item)``
    returning True for the n-th item (SourceError "connection dropped"; that item is not delivered).
    """

    def __init__(self, binlog: Binlog, start: Position, gtid: str | None, rng: random.Random, *,
                 clock: VirtualClock | None = None, on_wait: Callable[[float], None] | None = None,
                 drop_at: DropAt | None = None, heartbeat: float = 1.0, max_items: int = 50,
                 raise_errors: bool = False) -> None:
        self.binlog = binlog
        self.start_position = start
        self.rng = rng
        self.clock = clock
        self.on_wait = on_wait
        self.drop_at = drop_at
        self.heartbeat = heartbeat
        self.max_items = max_items
        self.raise_errors = raise_errors
        self.position = start  # the last position read, as BinlogSource.position
        self.delivered = 0  # items handed out
        self._gtid = gtid
        self._queue: list[object] = []  # items generated, not yet handed out
        self._next_entry = 0
        self._started = self._stopped = False
        self._error: Exception | None = None
        self._idle_for = 0.0
        self._waiting = self._woken = False  # in next_items' wait; woken by the session meanwhile

    def start(self) -> None:
        self._started = True
        start = self.start_position
        if start.file not in self.binlog.files():
            self._error = BinlogPurgedError(f"the server no longer has binlog position {start}")
        elif not self.binlog.is_boundary(start):
            self._error = InvalidPositionError(f"the server refused binlog position {start}: not an event start")
        else:
            self._queue.append(Commit(start, self._gtid, 0))  # the server's fake Rotate event
            self._next_entry = self.binlog.index_from(start)

    def stop(self) -> None:
        self._stopped = True

    def backlog(self) -> bool:
        return not self._stopped and (bool(self._queue) or self._next_entry < len(self.binlog.entries)
                                      or self._error is not None)

    def wake(self) -> None:
        if self._waiting:  # as the real hand-off: only a wait under way ends
            self._woken = True

    async def next_items(self, timeout: float) -> list[object]:
        self._waiting, self._woken = True, False
        try:
            for _ in range(self.rng.randint(0, 2)):
                await asyncio.sleep(0)  # the session's other tasks (a backfill) run here
        finally:
            self._waiting = False
        if not self._started or self._stopped:
            return []
        if not self.backlog() and self._woken:
            return []  # woken by the session: the wait ends before any time passes
        if not self.backlog():
            if self.on_wait is not None:
                self.on_wait(timeout)  # the simulator's time passes; the workload may write meanwhile
            elif self.clock is not None:
                self.clock.advance(timeout)
            if not self.backlog():
                self._idle_for += timeout
                if self._idle_for >= self.heartbeat:
                    # A heartbeat carries the end of the binlog (cdc/source/binlog.py): past the
                    # header events of a fresh file, which no item stands for.
                    self._idle_for = 0.0
                    end = self.binlog.end()
                    if end.file == self.position.file and self.position < end:
                        self.position = end
                    return [Idle(self.position, self._gtid)]
                return []
        self._idle_for = 0.0
        return self._take(self.rng.randint(1, self.max_items))

    def _take(self, n: int) -> list[object]:
        items: list[object] = []
        while len(items) < n and self._fill():
            item = self._queue[0]
            if self.drop_at is not None and self.drop_at(self.delivered, item):
                self._error = SourceError(f"lost the binlog connection at {self.position}: connection dropped")
                self._queue.clear()
                break
            self._queue.pop(0)
            items.append(item)
            self.delivered += 1
            self.position = _position_of(item, self.position)
        if self._error is not None and not self._queue:
            error, self._error = self._error, None
            self._stopped = True  # the reader thread ended
            if self.raise_errors:
                raise error
            items.append(SourceFailed(error))
        return items

    def _fill(self) -> bool:
        """At least one item queued (the next binlog entry's items, if there is one)."""
        if self._queue:
            return True
        if self._error is not None or self._next_entry >= len(self.binlog.entries):
            return False
        entry = self.binlog.entries[self._next_entry]
        self._next_entry += 1
        if isinstance(entry, Rotation):
            self._queue.append(Commit(entry.next, self._gtid, entry.ts))
        else:
            self._queue.extend(self._items(entry))
        return True

    def _items(self, entry: Transaction) -> list[object]:
        prev, self._gtid = self._gtid, entry.txn.gtid
        txn = TxnRef(entry.start, entry.txn.gtid, prev)
        # Read now (simulated time), as the real reader stamps each rows event it reads.
        received = self.clock.monotonic() if self.clock is not None else 0.0
        items: list[object] = [
            RowsBatch(tuple(_copy_change(c, txn) for c in batch.changes), batch.position, txn, received)
            for batch in entry.batches
        ]
        items.append(Commit(entry.end, self._gtid, entry.commit.ts))
        return items


def _copy_change(change: RowChange, txn: TxnRef) -> RowChange:
    return RowChange(change.table, change.op, None if change.before is None else dict(change.before),
                     None if change.after is None else dict(change.after), change.position, txn, change.ts)


def _position_of(item: object, default: Position) -> Position:
    if isinstance(item, RowsBatch):
        return item.position
    if isinstance(item, Commit):
        return item.end
    return default


# ------------------------------------------------------------------------------------- database

ReadHook = Callable[[str], None]


def _site(source: Site | Binlog) -> Site:
    return source.state_now() if isinstance(source, Binlog) else source


def _check_tables(site: Site, tables: TableNames) -> None:
    if tables.prefix != site.prefix:
        raise SourceError(f"MySQL query failed (Table '{tables.prefix}posts' doesn't exist)")


SIM_OPTIONS = {"home": "http://site{blog}.test", "permalink_structure": "/%category%/%author%/%postname%/",
               "show_on_front": "posts", "page_on_front": "0", "default_category": "1"}
STUB_COLUMNS = ("ID", "post_author", "post_date", "post_name", "post_parent", "post_status", "post_type")


class FakeStore:
    """``PostStore`` over the database now: a lookup sees every committed transaction, as the
    real ones do (the binlog reader may be behind). ``before_read(method)`` may raise a SourceError."""

    def __init__(self, source: Site | Binlog, *, before_read: ReadHook | None = None) -> None:
        self.source = source
        self.before_read = before_read

    def _enter(self, method: str, tables: TableNames) -> Site:
        if self.before_read is not None:
            self.before_read(method)
        site = _site(self.source)
        _check_tables(site, tables)
        return site

    def post_rows(self, tables: TableNames, blog: int, ids: list[int]) -> dict[int, Row]:
        posts = self._enter("post_rows", tables).blogs.get(blog)
        if posts is None:
            return {}
        return {pid: dict(posts.posts[pid]) for pid in ids if pid in posts.posts}

    def term_rows(self, tables: TableNames, blog: int) -> list[Row]:
        t = self._enter("term_rows", tables).blogs[blog]
        return [{"term_taxonomy_id": tt["term_taxonomy_id"], "term_id": tt["term_id"], "taxonomy": tt["taxonomy"],
                 "parent": tt["parent"], "description": tt["description"], "count": tt["count"],
                 "slug": t.terms[tt["term_id"]]["slug"], "name": t.terms[tt["term_id"]]["name"]}
                for tt in t.term_taxonomy.values() if tt["term_id"] in t.terms]

    def term_posts(self, tables: TableNames, blog: int, term_taxonomy_id: int, limit: int) -> list[int]:
        t = self._enter("term_posts", tables).blogs[blog]
        return sorted(oid for oid, ttid in t.term_relationships if ttid == term_taxonomy_id)[:limit]

    def blog_ids(self, tables: TableNames) -> list[int]:
        site = self._enter("blog_ids", tables)
        return sorted(b for b in site.blogs if tables.parse(tables.name(b, TableKind.POSTS)) is not None)

    # Links (cdc/links.py). The model has no options or users tables: every blog has SIM_OPTIONS,
    # whose structure needs categories and nicenames, and user N is "user-N".

    def post_stubs(self, tables: TableNames, blog: int, ids: list[int]) -> dict[int, Row]:
        rows = self.post_rows(tables, blog, ids)
        return {pid: {k: row[k] for k in STUB_COLUMNS} for pid, row in rows.items()}

    def post_children(self, tables: TableNames, blog: int, parent_ids: list[int], limit: int) -> list[Row]:
        t = self._enter("post_children", tables).blogs.get(blog)
        if t is None:
            return []
        parents = set(parent_ids)
        rows = [dict(r) for pid, r in sorted(t.posts.items()) if int(r["post_parent"] or 0) in parents
                and r["post_type"] != "revision" and r["post_status"] != AUTO_DRAFT]
        return rows[:max(0, limit)]

    def post_categories(self, tables: TableNames, blog: int, ids: list[int]) -> dict[int, list[int]]:
        t = self._enter("post_categories", tables).blogs.get(blog)
        if t is None:
            return {}
        wanted, out = set(ids), {}
        for oid, ttid in t.term_relationships:
            tt = t.term_taxonomy.get(ttid)
            if oid in wanted and tt is not None and tt["taxonomy"] == "category":
                out.setdefault(oid, []).append(int(tt["term_id"]))
        return out

    def options(self, tables: TableNames, blog: int, names: Iterable[str]) -> dict[str, Any]:
        site = self._enter("options", tables)
        if blog not in site.blogs:
            return {}
        values = {k: v.format(blog=blog) for k, v in SIM_OPTIONS.items()}
        return {n: values[n] for n in names if n in values}

    def user_nicenames(self, tables: TableNames, ids: list[int]) -> dict[int, str]:
        self._enter("user_nicenames", tables)
        return {uid: f"user-{uid}" for uid in ids if uid > 0}


def snapshot_skip_types(capture: Capture) -> frozenset[str]:
    """Post types a backfill does not read: cdc/backfill.py's ``skip_types``."""
    if capture.included_post_types is not None:
        return frozenset()
    return frozenset(t for t in capture.excluded_post_types if not capture.wants_type(t))


class FakeChunkReader:
    """``ChunkReader``: keyset chunks of posts with their meta and terms, each from one consistent
    snapshot, filtered as cdc/source/snapshot.py's SQL filters (no skipped types, no auto-drafts).

    ``flavor="mariadb"``: the chunk's position is the binlog's end at the call (MariaDB's
    ``binlog_snapshot_position``) and the data is the database there. ``"mysql"``: the position is
    read just before the snapshot starts, and ``between()`` runs 0–2 times (seeded) in that gap:
    the simulator writes there, so the data may hold transactions after the position (the
    stream replays them: harmless, never a loss). ``before_read(method)`` runs first on every
    call: the simulator can let the workload write, or raise a SourceError.
    """

    def __init__(self, binlog: Binlog, chunk_size: int, rng: random.Random, *, capture: Capture | None = None,
                 post_types: frozenset[str] | None = None, flavor: str = "mariadb",
                 blog_ids: frozenset[int] | None = None, before_read: ReadHook | None = None,
                 between: Callable[[], None] | None = None) -> None:
        self.binlog = binlog
        self.chunk_size = chunk_size
        self.rng = rng
        self.skip_types = snapshot_skip_types(capture or Capture())
        self.post_types = post_types
        self.flavor = flavor
        self.wanted_blogs = blog_ids
        self.before_read = before_read
        self.between = between
        self.closed = False
        self.chunks_read = 0

    def close(self) -> None:
        self.closed = True

    def blogs(self) -> list[int]:
        return [b for b in sorted(self.binlog.state_now().blogs) if self.wanted_blogs is None or b in self.wanted_blogs]

    def count(self, blogs: list[int]) -> int:
        site = self.binlog.state_now()
        return sum(1 for b in blogs for row in site.blogs[b].posts.values() if self._readable(row))

    def _readable(self, row: Row) -> bool:
        return (row["post_type"] not in self.skip_types and row["post_status"] != AUTO_DRAFT
                and (self.post_types is None or row["post_type"] in self.post_types))

    def _snapshot(self) -> tuple[Position, Site]:
        position = self.binlog.end()
        if self.flavor == "mysql" and self.between is not None:
            for _ in range(self.rng.randint(0, 2)):
                self.between()
        # The data is the database now: the copy state_at would make is not needed, as the docs
        # copy what they take and nothing writes while this runs.
        return position, self.binlog.state_now()

    def read_chunk(self, blog: int, after_id: int, ids: list[int] | None = None) -> SnapshotChunk:
        if self.before_read is not None:
            self.before_read("read_chunk")
        position, site = self._snapshot()
        tables = site.blogs[blog]
        wanted = None if ids is None else set(ids)
        limit = self.chunk_size if ids is None else len(ids)
        rows = sorted((r for pid, r in tables.posts.items()
                       if pid > after_id and self._readable(r) and (wanted is None or pid in wanted)),
                      key=lambda r: r["ID"])[:limit]
        docs = tuple(PostDoc(blog, dict(r), tuple(dict(m) for m in tables.meta_of(r["ID"])),
                             tuple(tables.terms_of(r["ID"]))) for r in rows)
        self.chunks_read += 1
        n_rows = len(rows) + sum(len(d.meta) + len(d.term_taxonomy_ids) for d in docs)
        return SnapshotChunk(blog, position, docs, docs[-1].post_id if docs else after_id, n_rows,
                             exhausted=len(rows) < self.chunk_size)

    def reread(self, blog: int, ids: list[int]) -> SnapshotChunk:
        return self.read_chunk(blog, 0, ids=ids)


__all__ = ["Crash", "FakeChunkReader", "FakeKafka", "FakeSink", "FakeSource", "FakeStore", "KafkaRecord",
           "Producer", "VirtualClock", "load_checkpoint", "snapshot_skip_types"]
