"""``wpcdc stream``: source → assemble → encode → sink → checkpoint, and recovery.

One *session* reads from a checkpoint until it stops or fails. Every failure that can heal (the
database restarted, Kafka unreachable, a dropped connection) ends the session; the runner then
waits with backoff, reads the last *committed* checkpoint back from Kafka and starts a new
session from it. That single recovery path is also the crash-restart path, so it is the one the
tests exercise hardest. Fatal errors (purged binlog, fenced by another instance, bad config)
stop the process with their exit code.

The order of a flush is written here once: close due changes → build and encode events →
compute the checkpoint (low watermark + per-post marks) → write events and checkpoint to Kafka
(one transaction in exactly-once mode) → only then treat the checkpoint as current.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import time
from collections import defaultdict
from dataclasses import replace

from tenacity import AsyncRetrying, RetryCallState, retry_if_exception, stop_never

from cdc import metrics
from cdc.assemble import Assembler
from cdc.backfill import Backfill, new_progress, skip_types
from cdc.changes import Commit, Idle, PostChange, RowsBatch, fold_into, gone
from cdc.checkpoint import Checkpoint, CheckpointStore
from cdc.clock import Clock
from cdc.config import StreamSettings
from cdc.encode import Record, encode
from cdc.errors import PreflightError, UnsupportedChangeError, WpcdcError
from cdc.events import Origin, PostEvent, build
from cdc.kafka import connector_topics, ensure_topics
from cdc.ports import ChangeSource, Ports
from cdc.position import Position
from cdc.sink import KafkaSink
from cdc.snapshot import SnapshotProgress, SnapshotReader
from cdc.source import preflight
from cdc.source.binlog import BinlogSource, SourceFailed
from cdc.source.database import Database
from cdc.terms import TermCatalog
from cdc.wordpress import TableNames

log = logging.getLogger(__name__)


MAX_CLOSED_PER_FLUSH = 500  # closed changes one flush (one Kafka transaction) takes at most
MAX_PIECE_MARKS = 40_000  # marks a piece's checkpoint may carry (~12 bytes each: under 1 MiB)


class Session:
    """One run of the pipeline from one checkpoint.

    It takes its collaborators as ports (cdc/ports.py) and decides everything else itself, so the
    same code runs against the real servers and in the deterministic simulation (tests/sim).
    """

    def __init__(self, settings: StreamSettings, checkpoint: Checkpoint, ports: Ports,
                 backfill: SnapshotProgress | None = None, exit_after_backfill: bool = False) -> None:
        self.settings = settings
        self.checkpoint = checkpoint
        self.ports = ports
        self.db = ports.store
        self.sink = ports.sink
        self.tables = TableNames(settings.table_prefix, settings.blog_ids)
        self.catalog = TermCatalog()
        self.assembler = Assembler(
            settings.capture,
            self.catalog,
            window=settings.window,
            max_delay=settings.max_delay,
            max_pending_bytes=settings.max_pending_bytes,
            emitted=checkpoint.emitted,
            done_upto=checkpoint.done_upto,
        )
        self.origin = Origin(settings.name, settings.mysql.database, settings.server_id)
        self.clock = Clock(ports.monotonic)
        self.source: ChangeSource | None = None
        self._closed: list[PostChange] = []
        self._last_checkpoint_at = ports.monotonic()
        self._last_flush_at = 0.0
        self.backfill: Backfill | None = None
        if backfill is not None and not backfill.done:
            self.backfill = Backfill(ports.chunk_reader(), settings.snapshot, backfill, self.assembler,
                                     self._closed_extend, lambda: self.checkpoint.resume, lambda: len(self._closed),
                                     blocking=ports.blocking, pause=ports.pause)
        self.exit_after_backfill = exit_after_backfill
        self.backfill_committed = False

    def _closed_extend(self, changes: list[PostChange]) -> None:
        self._closed.extend(changes)

    async def _load_terms(self) -> None:
        def load() -> None:
            for blog in self.db.blog_ids(self.tables):
                if self.tables.blog_ids is None or blog in self.tables.blog_ids:
                    self.catalog.load(blog, self.db.term_rows(self.tables, blog))

        await self.ports.blocking(load)

    async def run(self, stop: asyncio.Event) -> None:
        await self._load_terms()
        self.source = source = self.ports.source(self.checkpoint.resume, self.checkpoint.gtid)
        source.start()
        if self.ports.observe:
            metrics.attach(self)
        log.info("streaming from %s (%d posts already emitted past it)", self.checkpoint.resume,
                 len(self.checkpoint.emitted), extra={"position": str(self.checkpoint.resume)})
        backfill_task = asyncio.create_task(self.backfill.run()) if self.backfill else None
        try:
            try:
                while not stop.is_set():
                    for item in await self._next_items(source):
                        self._on_item(item)
                        if len(self._closed) >= MAX_CLOSED_PER_FLUSH:
                            # A statement over many posts (a term removed from 100,000) closes them
                            # by the memory bound: write them now, not after the whole chunk, so the
                            # posts looked up, the events and their records stay bounded too.
                            await self._flush()
                    self._closed.extend(self.assembler.due(self.clock.now()))
                    if backfill_task is not None and backfill_task.done():
                        backfill_task.result()  # raises what the backfill raised
                    await self._maybe_flush()
                    metrics.heartbeat()
                    if self.exit_after_backfill and self.backfill_committed:
                        log.info("backfill committed; stopping as asked")
                        break
            except UnsupportedChangeError:
                # The source stopped at a change it cannot turn into events. Everything before it
                # is in hand: write it, so the checkpoint stands right at that transaction and the
                # operator's remedy (skip it, backfill) loses nothing else. Then stop loudly.
                self._closed.extend(self.assembler.close_all())
                await self._flush(force=True)
                raise
            # Clean stop: close what is pending so consumers get it now, then checkpoint.
            self._closed.extend(self.assembler.close_all())
            await self._flush(force=True)
        finally:
            if backfill_task is not None and not backfill_task.done():
                backfill_task.cancel()
            if self.ports.observe:
                metrics.detach(self)
            source.stop()

    async def _next_items(self, source: ChangeSource) -> list[object]:
        """Wait up to flush_interval (or until the next change is due) for what the source has."""
        return await source.next_items(self._wait_time())

    def _wait_time(self) -> float:
        """Wait for input no longer than until the next pending change is due: an edit's event
        then leaves when its window ends, not up to flush_interval later."""
        due_at = self.assembler.next_due()
        if due_at is None:
            return self.settings.flush_interval
        return min(self.settings.flush_interval, max(0.0, due_at - self.clock.now()))

    def _on_item(self, item: object) -> None:
        if isinstance(item, RowsBatch):
            if item.changes and self.clock.advance(item.changes[0].ts):
                # Binlog time jumped (a backlog): close what that jump ends before folding more.
                self._closed.extend(self.assembler.due(self.clock.now()))
            metrics.rows_seen(item)
            folded = self.assembler.rows_folded
            self._closed.extend(self.assembler.on_batch(item, self.clock.now()))
            metrics.rows_filtered(item, self.assembler.rows_folded - folded)
        elif isinstance(item, Commit):
            if self.clock.advance(item.ts):
                self._closed.extend(self.assembler.due(self.clock.now()))
            self._closed.extend(self.assembler.on_commit(item))
            metrics.position(item.end, item.ts)
        elif isinstance(item, Idle):
            self.assembler.on_idle(item.position, item.gtid)
            metrics.idle()
        elif isinstance(item, SourceFailed):
            raise item.error

    async def _maybe_flush(self) -> None:
        now = self.ports.monotonic()
        due_checkpoint = now - self._last_checkpoint_at >= self.settings.checkpoint_interval
        if (self._closed and not due_checkpoint and len(self._closed) < 1000 and self.source is not None
                and self.source.backlog() and now - self._last_flush_at < self.settings.flush_interval):
            # Catching up (more is queued already): one Kafka transaction per flush_interval, not
            # one per loop turn; a transaction's round trips cost more than a small flush's events.
            return
        if self._closed or due_checkpoint:
            self._last_flush_at = now
            await self._flush(force=due_checkpoint)

    def _current_checkpoint(self) -> Checkpoint:
        # Nothing read yet (an idle binlog): the place this session started from still stands.
        resume, gtid = self.assembler.resume_point() or (self.checkpoint.resume, self.checkpoint.gtid)
        if resume < self.checkpoint.resume:
            resume, gtid = self.checkpoint.resume, self.checkpoint.gtid
        return Checkpoint(
            connector=self.settings.name,
            resume=resume,
            gtid=gtid,
            emitted=self.assembler.marks(resume),
            server_id=self.settings.server_id,
            ts_ms=int(time.time() * 1000),
            snapshot=self.backfill.state() if self.backfill else self.checkpoint.snapshot,
            done_upto=self.assembler.done_upto,
        )

    async def _flush(self, force: bool = False) -> None:
        while len(self._closed) >= 2 * MAX_CLOSED_PER_FLUSH and await self._flush_piece():
            pass
        # The checkpoint is taken at the same instant as the changes it covers (after the lookup's
        # await, so what the backfill task added meanwhile is in both), before the next await.
        self._closed, looked_up = await self._look_up_rows(self._closed)
        closed, self._closed = self._closed, []
        checkpoint = self._current_checkpoint()
        events = self._build(closed, looked_up)
        records = self._encode(events)
        moved = (checkpoint.resume, checkpoint.emitted, checkpoint.snapshot, checkpoint.done_upto) != (
            self.checkpoint.resume, self.checkpoint.emitted, self.checkpoint.snapshot, self.checkpoint.done_upto
        )
        if records or (force and moved):
            pass  # events always travel with the checkpoint that covers them
        elif self.ports.monotonic() - self._last_checkpoint_at >= self.settings.checkpoint_keepalive:
            # Rewrite the same place now and then: it keeps the checkpoint's age honest and makes
            # a fenced instance (another one took over the transactional id) find out and stop.
            checkpoint = replace(self.checkpoint, ts_ms=int(time.time() * 1000))
        else:
            return
        await self._write(events, records, checkpoint)
        if checkpoint.snapshot and checkpoint.snapshot.get("finished_ms") and self.backfill is not None:
            self.backfill_committed = True

    async def _flush_piece(self) -> bool:
        """Write some closed stream changes on their own; False when none can go alone.

        The memory bound can close tens of thousands of posts at once (a statement over every
        post's term rows); looking them all up, building and encoding them in one go would hold
        all of it at once. A piece's checkpoint is the last committed one plus a mark for each
        post it wrote: replaying from there skips exactly those rows and re-forms the rest, so a
        crash between pieces repeats nothing and loses nothing. A piece takes every closed change
        of its posts (a post's changes stay together and in order) and no post with a backfill
        document waiting (the document goes first, in the full flush). Past MAX_PIECE_MARKS marks
        the checkpoint record would grow too big: the rest waits for the full flush.
        """
        base = self.checkpoint
        documented = {c.key for c in self._closed if c.snapshot}
        keys: dict[tuple[int, int], None] = {}
        for c in self._closed:
            if c.key not in documented:
                keys[c.key] = None
                if len(keys) >= MAX_CLOSED_PER_FLUSH:
                    break
        if len(keys) < MAX_CLOSED_PER_FLUSH or len(base.emitted) + len(keys) > MAX_PIECE_MARKS:
            return False
        piece = [c for c in self._closed if c.key in keys]
        self._closed = [c for c in self._closed if c.key not in keys]
        piece, looked_up = await self._look_up_rows(piece)
        events = self._build(piece, looked_up)
        records = self._encode(events)
        marks = dict(base.emitted)
        for c in piece:
            if c.last_pos > base.resume and (base.done_upto is None or c.last_pos > base.done_upto):
                marks[c.key] = max(c.last_pos, marks.get(c.key, c.last_pos))
        await self._write(events, records, replace(base, emitted=marks, ts_ms=int(time.time() * 1000)))
        return True

    def _encode(self, events: list[PostEvent]) -> list[Record]:
        """Each event's records (the event, and a tombstone after a delete), in order."""
        return [r for event in events for r in encode(event, self.settings.max_message_bytes)]

    async def _write(self, events: list[PostEvent], records: list[Record], checkpoint: Checkpoint) -> None:
        started = time.perf_counter()
        await self.sink.write(records, checkpoint)
        metrics.flushed(events, time.perf_counter() - started)
        for event in events:
            log.debug("%s %s post %s:%s seq=%s (%s)", event.op, event.post_type, event.blog_id,
                      event.post_id, event.seq, event.action)
        self.checkpoint = checkpoint
        self._last_checkpoint_at = self.ports.monotonic()
        metrics.checkpointed(checkpoint)

    async def _look_up_rows(self, closed: list[PostChange]) -> tuple[list[PostChange], dict[tuple[int, int], dict]]:
        """(the changes to emit, the post rows of those that carried none) for ``closed``.

        A meta-only change of a post not in the row cache carries no row: it is read from the
        database. A post that is no longer there was deleted after those rows (WordPress deletes
        meta, terms and revisions before the post row): its change goes back to the assembler to
        fold into the delete that follows, so no event says ``update`` without a row. This runs
        before the flush takes its checkpoint, so that checkpoint keeps the rows it took back.
        """
        unknown = {c.key for c in closed if not c.row_known}
        if not unknown:
            return closed, {}
        found: dict[tuple[int, int], dict] = {}

        def lookup() -> None:
            by_blog: dict[int, list[int]] = defaultdict(list)
            for blog, pid in unknown:
                by_blog[blog].append(pid)
            for blog, ids in by_blog.items():
                for pid, row in self.db.post_rows(self.tables, blog, ids).items():
                    found[(blog, pid)] = row

        await self.ports.blocking(lookup)
        missing = unknown - found.keys()
        if missing:
            closed = self._fold_gone(closed, missing)
        self.assembler.settle(unknown)
        return closed, found

    def _fold_gone(self, closed: list[PostChange], missing: set[tuple[int, int]]) -> list[PostChange]:
        """Changes without a row whose post is not in the database: fold each into a later change
        of the post in this list (the delete), else hand it back to the assembler to wait for
        the delete row; one that cannot wait becomes the post's delete (see Assembler.reopen)."""
        out: list[PostChange] = []
        carried: dict[tuple[int, int], PostChange] = {}
        for c in closed:
            key = c.key
            if key in carried and c.snapshot:
                # A backfill document after it (read before the post went): the taken-back change
                # is older than the document, so it goes first, as the post's delete (it cannot
                # wait for the delete row behind the document); the document keeps its label.
                out.append(gone(carried.pop(key)))
            elif key in carried:
                c = fold_into(carried.pop(key), c)
            if key in missing and not c.row_known:
                carried[key] = c
            else:
                out.append(c)
        now = self.clock.now()
        for key, c in carried.items():
            if self.assembler.reopen(key, now):
                continue
            metrics.orphan_change()
            log.warning(
                "post %s:%s is not in the database and its delete row did not follow within --max-delay (or "
                "the memory bound already wrote past it): its change of %d row(s) at %s..%s is emitted as "
                "the post's delete", key[0], key[1], c.rows, c.first_pos, c.last_pos,
                extra={"position": str(c.last_pos)})
            out.append(gone(c))
        return out

    def _build(self, closed: list[PostChange], looked_up: dict[tuple[int, int], dict]) -> list[PostEvent]:
        now_ms = int(time.time() * 1000)
        events = []
        for c in closed:
            event = build(c, self.settings.capture, self.origin, now_ms, looked_up.get(c.key))
            if event is not None:
                events.append(event)
        return events


async def starting_checkpoint(settings: StreamSettings, db: Database, start: str,
                              fresh_ok: bool = False) -> tuple[Checkpoint, bool, bool]:
    """(checkpoint to start from, whether it must be saved before streaming, whether it is new).

    The committed checkpoint, or for a new connector one at the current end of the binlog (or at
    ``--start FILE:POS``). A new one is written before the first row is read, so a crash before
    the first event still resumes from there instead of from a later "end". A checkpoint found
    only in the legacy shared topic is taken and written to the connector's own.

    No checkpoint while the event topic already holds events means the checkpoint was lost:
    starting at the end would skip every change since in silence, so that stops with
    CheckpointMissingError unless the operator said how to start (``--start end|FILE:POS``) or a
    snapshot will re-read every post anyway (``fresh_ok``).
    """
    store = CheckpointStore(settings.kafka, settings.checkpoint_topic, settings.name)
    saved, found_in = await store.find()
    if saved is not None and start == "checkpoint":
        if found_in != settings.checkpoint_topic:
            log.warning("checkpoint of connector %s found in the shared topic %s: moving it to the "
                        "connector's own topic %s", settings.name, found_in, settings.checkpoint_topic)
            return saved, True, False
        return saved, False, False
    if start not in ("checkpoint", "end"):
        position = await asyncio.to_thread(preflight.transaction_start, db, Position.parse(start))
        return Checkpoint(settings.name, position, server_id=settings.server_id), True, True
    if start == "checkpoint" and not fresh_ok:
        await store.require_not_lost(settings.topic)
    position, gtid = await asyncio.to_thread(db.current_position)
    return Checkpoint(settings.name, position, gtid=gtid, server_id=settings.server_id), True, True


def _new_snapshot(settings: StreamSettings, tables: TableNames) -> SnapshotProgress:
    reader = SnapshotReader(settings.mysql, tables, settings.snapshot, skip_types(settings.capture))
    try:
        return new_progress(reader, settings.snapshot.ids)
    finally:
        reader.close()


def _retriable(exc: BaseException) -> bool:
    return isinstance(exc, WpcdcError) and getattr(exc, "retriable", False)


class Backoff:
    """Exponential backoff over *consecutive* failures (tenacity ``wait``).

    tenacity counts every attempt since the start, so a connector that failed a few times in its
    first week would wait the 30 s maximum after every later Kafka blip. A session that streamed
    for ``healthy_after`` seconds resets the count; one that fails right after connecting does
    not, so a persistent fault still backs off.
    """

    def __init__(self, base: float = 0.5, cap: float = 30.0, healthy_after: float = 30.0) -> None:
        self.base, self.cap, self.healthy_after = base, cap, healthy_after
        self.failures = 0
        self._streaming_since: float | None = None

    def streaming(self, now: float | None = None) -> None:
        """The session connected both ends and started streaming."""
        self._streaming_since = time.monotonic() if now is None else now

    def __call__(self, state: RetryCallState | None = None, now: float | None = None) -> float:
        now = time.monotonic() if now is None else now
        if self._streaming_since is not None and now - self._streaming_since >= self.healthy_after:
            self.failures = 0
        self._streaming_since = None
        self.failures += 1
        return float(min(self.cap, self.base * 2 ** (self.failures - 1)))


async def run_stream(settings: StreamSettings, stop: asyncio.Event, *, backfill_now: bool = False) -> None:
    """Run sessions until ``stop`` is set; heal retriable failures from the last checkpoint.

    ``backfill_now`` (``wpcdc backfill``): start a new snapshot in the first session and return
    once it is committed. Otherwise ``settings.snapshot_mode`` decides: ``initial`` snapshots a
    new connector, ``when_needed`` also one whose saved position was purged, ``never`` does not;
    an interrupted snapshot is always resumed.
    """
    # Millions of short-lived row dicts: with CPython's default gen-0 threshold (700) the cyclic GC
    # ran every few hundred rows and rescanned the row cache and pending changes, ~12 % of the CPU
    # while catching up (docs/performance.md). Rows hold no reference cycles: collect less often.
    gc.set_threshold(10_000, 20, 100)
    db = Database(settings.mysql)
    try:
        await _run_sessions(settings, stop, db, backfill_now)
    finally:
        db.close()  # on every way out: a stop, a fatal error, a failed preflight


async def _run_sessions(settings: StreamSettings, stop: asyncio.Event, db: Database, backfill_now: bool) -> None:
    tables = TableNames(settings.table_prefix, settings.blog_ids)
    await asyncio.to_thread(preflight.run_all, db, tables, None)
    if settings.metrics_port:
        metrics.configure(connector=settings.name, stall_timeout=settings.stall_timeout,
                          mysql=f"{settings.mysql.host}:{settings.mysql.port}", kafka=settings.kafka.bootstrap)
        metrics.serve(settings.metrics_port, settings.metrics_host)

    start = settings.start
    want_backfill = backfill_now
    backoff = Backoff()

    async def one_session() -> None:
        nonlocal start, want_backfill
        await ensure_topics(settings.kafka, connector_topics(settings), settings.replication_factor)
        sink = KafkaSink(
            settings.kafka, topic=settings.topic, checkpoint_topic=settings.checkpoint_topic,
            connector=settings.name,
            transactional_id=settings.transactional_id if settings.delivery == "exactly-once" else None,
            max_message_bytes=settings.max_message_bytes,
            write_timeout=settings.kafka_write_timeout,
            compression=settings.compression,
        )
        # The producer starts (and so fences any older instance and aborts its open transaction)
        # *before* the checkpoint is read: after that no one else can commit, so the checkpoint
        # we read is the last word.
        await sink.start()
        try:
            fresh_ok = want_backfill or settings.snapshot_mode in ("initial", "when_needed")
            checkpoint, must_write, is_new = await starting_checkpoint(settings, db, start, fresh_ok)
            snapshot_new = want_backfill or (is_new and settings.snapshot_mode in ("initial", "when_needed"))
            try:
                await asyncio.to_thread(preflight.check_position, db, checkpoint.resume)
            except PreflightError as exc:
                if exc.check != "position" or not (want_backfill or settings.snapshot_mode == "when_needed"):
                    raise
                log.warning("%s; starting over at the current end with a new snapshot", exc)
                position, gtid = await asyncio.to_thread(db.current_position)
                checkpoint = Checkpoint(settings.name, position, gtid=gtid, server_id=settings.server_id)
                must_write = snapshot_new = True
            progress = None
            if checkpoint.snapshot and not checkpoint.snapshot.get("finished_ms"):
                progress = SnapshotProgress.from_dict(checkpoint.snapshot)  # resume an interrupted one
            elif snapshot_new:
                progress = await asyncio.to_thread(_new_snapshot, settings, tables)
                checkpoint = replace(checkpoint, snapshot=progress.as_dict())
                must_write = True
            if must_write:
                await sink.write([], checkpoint)
            start = "checkpoint"  # --start applies once; every later session resumes from Kafka
            exit_after = want_backfill
            want_backfill = False
            metrics.ready(True)
            backoff.streaming()
            ports = Ports(
                source=lambda position, gtid: BinlogSource(settings.mysql, tables, server_id=settings.server_id,
                                                           start=position, gtid=gtid),
                sink=sink, store=db,
                chunk_reader=lambda: SnapshotReader(settings.mysql, tables, settings.snapshot,
                                                    skip_types(settings.capture)),
            )
            await Session(settings, checkpoint, ports, progress, exit_after_backfill=exit_after).run(stop)
        finally:
            metrics.ready(False)
            await sink.stop()

    def before_sleep(state: object) -> None:
        exc = state.outcome.exception()  # type: ignore[attr-defined]
        metrics.reconnect(exc)
        log.warning("%s; retrying in %.1fs", exc, state.next_action.sleep)  # type: ignore[attr-defined]

    async for attempt in AsyncRetrying(
        retry=retry_if_exception(_retriable),
        wait=backoff,
        stop=stop_never,
        before_sleep=before_sleep,
        reraise=True,
    ):
        with attempt:
            if stop.is_set():
                return
            await one_session()


__all__ = ["run_stream", "Session", "starting_checkpoint"]
