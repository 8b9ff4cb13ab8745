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
import contextlib
import gc
import logging
import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import replace

from tenacity import AsyncRetrying, RetryCallState, retry_if_exception, stop_never

from cdc import endpoints, metrics, repair_requests
from cdc.assemble import Assembler
from cdc.backfill import Backfill, new_progress, skip_types
from cdc.checkpoint import Checkpoint, CheckpointStore
from cdc.clock import Clock
from cdc.config import StreamSettings
from cdc.encode import Record, encode
from cdc.errors import PreflightError, UnsupportedChangeError, WpcdcError
from cdc.events import Origin, PostEvent, build, moved_event, with_links
from cdc.kafka import connector_topics, ensure_topics, event_topic_spec, event_topics
from cdc.links import Linker, LinkRequest
from cdc.model import Commit, Idle, PostChange, Row, RowsBatch, SettingsWritten, fold_into, gone
from cdc.ports import ChangeSource, ChunkReader, Ports
from cdc.position import Position
from cdc.routing import TopicRouter
from cdc.sink import KafkaSink
from cdc.source import preflight
from cdc.source.binlog import BinlogSource, SourceFailed, report_host
from cdc.source.database import Database
from cdc.source.reader_process import ProcessSource
from cdc.source.retention import BinlogPoller
from cdc.source.snapshot import SnapshotProgress, SnapshotReader
from cdc.term_events import build as build_term
from cdc.term_events import encode as encode_term
from cdc.term_fanout import TermFanout
from cdc.terms import TermCatalog, TermChange
from cdc.wordpress import TableNames

log = logging.getLogger(__name__)


MAX_CLOSED_PER_FLUSH = 500  # closed changes one flush (one Kafka transaction) takes at most
# Binlog time this far behind the wall clock means a backlog, not the live edge: flushes are then
# spaced by flush_interval. Binlog timestamps have one-second resolution, hence two seconds.
CATCHING_UP_LAG = 2.0
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
            term_events=bool(settings.term_topic),
        )
        self.fanout = TermFanout(settings.term_fanout, ports.store, self.tables, ports.blocking)
        self.origin = Origin(settings.name, settings.mysql.database, settings.server_id)
        self.router = TopicRouter(settings.topic, settings.name)
        self.linker = Linker(self.tables, self.catalog, self.assembler.cache.get, dict(settings.post_type_bases))
        self.clock = Clock(ports.monotonic)
        self.source: ChangeSource | None = None
        self._closed: list[PostChange] = []
        self._last_checkpoint_at = ports.monotonic()
        self._last_flush_at = 0.0
        self._read_ts = 0  # binlog time of the last transaction read (catching up or live?)
        self.backfill: Backfill | None = None
        if backfill is not None and not backfill.done:
            self.backfill = self._new_backfill(ports.chunk_reader(), backfill)
        self.exit_after_backfill = exit_after_backfill
        # Nothing left to back fill (a `wpcdc backfill` whose last session failed just after the
        # commit): it is committed already.
        self.backfill_committed = self.backfill is None
        self.repairs = ports.repairs  # repair requests to pick up (cdc/repair_requests.py), or None

    def _new_backfill(self, reader: ChunkReader, progress: SnapshotProgress) -> Backfill:
        return Backfill(reader, self.settings.snapshot, progress, self.assembler, self._closed_extend,
                        lambda: self.checkpoint.resume, lambda: len(self._closed),
                        blocking=self.ports.blocking, pause=self.ports.pause)

    def _closed_extend(self, changes: list[PostChange]) -> None:
        """The backfill's documents, closed: written by the next flush, which must not wait for
        the binlog. The loop may be waiting for rows up to flush_interval; on a quiet binlog
        every chunk then waited that long for its flush, and the next chunk for room (a third of
        the backfill's time: 47.6 against 32.2 s for 100,000 posts, docs/performance.md)."""
        self._closed.extend(changes)
        if self.source is not None:  # [] too: the backfill's end is news for the checkpoint
            self.source.wake()

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
        watch_task = asyncio.create_task(self.repairs.watch()) if self.repairs is not None else None
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
                    if watch_task is not None:
                        if watch_task.done():
                            watch_task.result()  # raises what the watcher raised
                        if backfill_task is None or (backfill_task.done() and self.backfill_committed):
                            backfill_task = await self._start_repair() or backfill_task
                    metrics.heartbeat()
                    if self.exit_after_backfill and self.backfill_committed:
                        log.info("backfill committed; stopping as asked")
                        if backfill_task is not None:
                            await backfill_task  # it closes its reader after its last chunk
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
            for task in (backfill_task, watch_task):
                if task is not None and not task.done():
                    task.cancel()
            if self.ports.observe:
                metrics.detach(self)
            source.stop()

    async def _next_items(self, source: ChangeSource) -> list[object]:
        """Wait up to flush_interval (or until the next change is due) for what the source has."""
        return await source.next_items(self._wait_time())

    def _wait_time(self) -> float:
        """Wait for input no longer than until the next pending change is due: an edit's event
        then leaves when its window ends, not up to flush_interval later. Changes closed already
        (a backfill chunk applied while the last flush was in Kafka) are written this turn: no wait."""
        if self._closed:
            return 0.0
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
            folded, forced = self.assembler.rows_folded, self.assembler.forced_closes
            at = self.clock.at(item.received) if item.received else self.clock.now()
            self._closed.extend(self.assembler.on_batch(item, at))
            metrics.rows_filtered(item, self.assembler.rows_folded - folded)
            if self.assembler.forced_closes > forced:
                metrics.forced_emits(self.assembler.forced_closes - forced)
        elif isinstance(item, Commit):
            if self.clock.advance(item.ts):
                self._closed.extend(self.assembler.due(self.clock.now()))
            self._closed.extend(self.assembler.on_commit(item))
            metrics.position(item.end, item.ts, item.rotate)
            if item.ts and not item.rotate:
                self._read_ts = item.ts
        elif isinstance(item, Idle):
            self.assembler.on_idle(item.position, item.gtid)
            metrics.idle(item.at)
        elif isinstance(item, SettingsWritten):
            self.linker.on_written(item)
        elif isinstance(item, SourceFailed):
            metrics.source_lost()
            raise item.error

    async def _maybe_flush(self) -> None:
        now = self.ports.monotonic()
        due_checkpoint = (now - self._last_checkpoint_at >= self.settings.checkpoint_interval
                          or self._backfill_end_unwritten())
        closed = bool(self._closed) or self.assembler.closed_terms > 0
        if (closed and not due_checkpoint and len(self._closed) < 1000 and self._catching_up()
                and now - self._last_flush_at < self.settings.flush_interval):
            # Catching up: one Kafka transaction per flush_interval, not one per loop turn; a
            # transaction's round trips cost more than a small flush's events.
            return
        if closed or due_checkpoint:
            self._last_flush_at = now
            await self._flush(force=due_checkpoint)

    def _backfill_end_unwritten(self) -> bool:
        """A backfill (or a repair) has finished and no checkpoint says so yet: one goes now, not
        up to checkpoint_interval later. ``wpcdc backfill`` exits on it (it waited a second for
        nothing at the end of every run) and the next repair starts after it."""
        return self.backfill is not None and not self.backfill_committed and self.backfill.progress.done

    def _catching_up(self) -> bool:
        """More is queued and what was read is well behind the wall clock: a backlog.

        At the live edge the queue is rarely empty either (rows arrive while a flush is in
        Kafka), but there each flush goes at once: holding closed changes for flush_interval
        there only added up to that much to every event's delivery. A database server whose
        clock runs over two seconds behind this host's makes a live session look like one
        catching up (flushes spaced by flush_interval, as before this rule); one whose clock runs
        ahead makes a backlog look live (a Kafka transaction per loop turn: slower to catch up,
        nothing lost). The binlog timestamp is a statement's start, so one slow statement can
        look like a backlog for a turn.
        """
        return (self.source is not None and self.source.backlog()
                and self.ports.wall() - self._read_ts >= CATCHING_UP_LAG)

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
        # Closed term changes no longer hold the resume point back: they are taken here and go
        # with this flush's checkpoint (no other task closes one while the awaits below run).
        terms = self.assembler.take_terms()
        fanout_posts = await self.fanout.read(terms) if terms else {}
        # The checkpoint is taken at the same instant as the changes it covers (after the lookup's
        # await, so what the backfill task added meanwhile is in both), before the next await.
        self._closed, looked_up = await self._look_up_rows(self._closed)
        closed, self._closed = self._closed, []
        term_records, fanned = self._build_terms(terms, fanout_posts)  # moves the marks of posts fanned out
        checkpoint = self._current_checkpoint()
        events = await self._link(self._build(closed, looked_up) + fanned)  # a post's own earlier change before its fan-out
        records = self._encode(events) + term_records
        if self.repairs is not None:  # a finished repair's request: its tombstone goes with this checkpoint
            records += self.repairs.finished(checkpoint.snapshot)
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
        events = await self._link(self._build(piece, looked_up))
        records = self._encode(events)
        marks = dict(base.emitted)
        for c in piece:
            if c.last_pos > base.resume and (base.done_upto is None or c.last_pos > base.done_upto):
                marks[c.key] = max(c.last_pos, marks.get(c.key, c.last_pos))
        await self._write(events, records, replace(base, emitted=marks, ts_ms=int(time.time() * 1000)))
        return True

    async def _start_repair(self) -> asyncio.Task[None] | None:
        """With no backfill running: a backfill of the oldest pending repair request, if any (the
        request whose backfill the committed checkpoint says finished only waits for its tombstone)."""
        assert self.repairs is not None
        request = self.repairs.next((self.checkpoint.snapshot or {}).get("id"))
        if request is None:
            return None

        def blogs() -> list[int]:
            wanted = self.tables.blog_ids
            return [b for b in self.db.blog_ids(self.tables) if wanted is None or b in wanted]

        progress = repair_requests.progress(request, await self.ports.blocking(blogs))
        log.info("repair %s: re-emitting %d posts of blogs %s, as asked by `wpcdc verify --repair`", request.id,
                 progress.total, progress.blogs)
        self.backfill = self._new_backfill(await self.ports.blocking(self.ports.chunk_reader), progress)
        self.backfill_committed = False
        return asyncio.create_task(self.backfill.run())

    def _encode(self, events: list[PostEvent]) -> list[Record]:
        """Each event's records (the event, and a tombstone after a delete), in order, routed to
        their topic (and a tombstone in the old topic first when a post moved: cdc/routing.py)."""
        if self.router.static:
            return [r for event in events for r in encode(event, self.settings.max_message_bytes)]
        return [r for event in events for r in self.router.route(event, encode(event, self.settings.max_message_bytes))]

    async def _write(self, events: list[PostEvent], records: list[Record], checkpoint: Checkpoint) -> None:
        started = time.perf_counter()
        with self.clock.stopped():  # a write hung through a Kafka outage is not binlog time
            await self.sink.write(records, checkpoint)
        metrics.flushed(events, time.perf_counter() - started, sum(1 for r in records if r.truncated))
        for event in events:
            log.debug("%s %s post %s:%s seq=%s (%s)", event.op, event.post_type, event.blog_id,
                      event.post_id, event.seq, event.action)
        self.checkpoint = checkpoint
        self._last_checkpoint_at = self.ports.monotonic()
        metrics.checkpointed(checkpoint)

    async def _link(self, events: list[PostEvent]) -> list[PostEvent]:
        """The events with their ``link`` (cdc/links.py): the settings of blogs whose options were
        written since they were read are read first (once per flush, however many writes), then
        what the links need beyond the rows, in batched rounds (a round per unknown level of page
        hierarchy); then the ``moved`` events of descendants whose URL moved with a post's. After
        the flush's checkpoint is taken: nothing here changes what the flush covers."""
        if not events:
            return events
        linker = self.linker
        requests = [LinkRequest(e.blog_id, e.post_id, e.before, e.after, e.terms_added, e.terms_removed,
                                snapshot=e.op == "snapshot") for e in events]
        for req in requests:  # the URL consumers were told last stands for link.before: not made again
            req.make_before = req.make_before and linker.last((req.blog, req.post_id)) is None
        deleted = {(e.blog_id, e.post_id): e.before for e in events if e.op == "delete" and e.before is not None}

        def before_deletion(key: tuple[int, int]) -> Row | None:
            return deleted.get(key) or self.assembler.pending_before(key)

        pairs = await linker.resolve(requests, self.db, self.ports.blocking, gone=before_deletion)
        linked = []
        for e, (before, after) in zip(events, pairs):
            key = (e.blog_id, e.post_id)
            if e.before is not None and e.op != "snapshot":
                before = linker.last(key) or before  # the URL consumers were last told (docs/events.md)
            linker.written(key, after)
            linked.append(with_links(e, before, after))
        events = linked
        if self.settings.link_fanout:
            events = await self._moved(events, requests, before_deletion)
        return events

    async def _moved(self, events: list[PostEvent], requests: list[LinkRequest],
                     before_deletion: Callable[[tuple[int, int]], Row | None]) -> list[PostEvent]:
        """After each update that wrote the post's row or moved its URL, a ``moved`` event for each
        descendant (child pages, attachments, …) whose URL is no longer the one its last event said
        (made from the ancestor's row before the change when this process wrote none), up to
        --link-fanout per flush (the update says how many follow, and whether the bound cut them:
        ``link.descendants``). Any write of the row counts, not only a net change of its slug,
        parent, status or date: a descendant's event in between may have read a state the net hides
        (a page trashed and untrashed within one window).

        A moved event takes its ancestor's ``seq``; it is written only where that keeps the
        descendant's events in order and unique: nothing of it pending, in this flush or waiting for
        the next, nothing emitted past that position. Otherwise its own next event carries the new
        URL. Its mark is set, so a backfill document of it read before is stale.
        """
        moving = [i for i, e in enumerate(events) if e.op == "update" and e.link_before is not None
                  and e.link_after is not None and (e.row_written or e.link_before.path != e.link_after.path)]
        if not moving:
            return events
        linker, capture = self.linker, self.settings.capture
        found, cut = await linker.descendants([requests[i] for i in moving], self.db, self.ports.blocking,
                                              self.settings.link_fanout)
        rows = []
        for n, row in found:
            key = (events[moving[n]].blog_id, int(row["ID"]))
            row = self.assembler.cache.get(key) or row  # the newest row the stream read, else the database's
            if capture.wants_type(row.get("post_type")) and capture.wants_status(row.get("post_status")):
                rows.append((n, row))
        known = {(events[moving[n]].blog_id, int(row["ID"])): row for n, row in rows}
        pairs = await linker.resolve([LinkRequest.moved(row, events[moving[n]].blog_id, requests[moving[n]])
                                      for n, row in rows], self.db, self.ports.blocking, known, before_deletion)
        # From here to the return nothing awaits: what is pending or closed cannot change meanwhile.
        busy = {c.key for c in self._closed} | {(e.blog_id, e.post_id) for e in events}
        follow: dict[int, list[PostEvent]] = defaultdict(list)
        for (n, row), (before, after) in zip(rows, pairs):
            if before is None or after is None:
                continue
            ancestor = events[moving[n]]
            key, position = (ancestor.blog_id, int(row["ID"])), Position(ancestor.source.file, ancestor.source.pos)
            before = linker.last(key) or before
            if (before.path == after.path or key in busy or self.assembler.is_pending(key)
                    or self.assembler.emitted_since(key, position)):
                continue
            busy.add(key)
            self.assembler.mark(key, position)
            linker.written(key, after)
            follow[n].append(moved_event(ancestor, row, before, after))
        out: list[PostEvent] = []
        index = {i: n for n, i in enumerate(moving)}
        for i, e in enumerate(events):
            n = index.get(i, -1)
            if n >= 0 and (follow[n] or n in cut):
                if n in cut:
                    log.warning("post %s:%s moved more descendants' URLs than --link-fanout %d lets this flush "
                                "announce: its event says so (link.descendants.cut); revalidate everything under %s",
                                e.blog_id, e.post_id, self.settings.link_fanout,
                                e.link_before.path if e.link_before else "its old path")
                e = replace(e, link_descendants=(len(follow[n]), n in cut))
            out.append(e)
            out.extend(follow.get(n, ()) if n >= 0 else ())
        return out

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

    def _build_terms(self, changes: list[TermChange],
                     fanout_posts: dict[tuple[int, int], list[dict]]) -> tuple[list[Record], list[PostEvent]]:
        """The term events' records (their own topic) and the ``--term-fanout`` post events."""
        now_ms = int(time.time() * 1000)
        events = [build_term(c, self.origin, now_ms) for c in changes]
        records = [r for e in events for r in encode_term(e, self.settings.term_topic, self.settings.max_message_bytes)]
        if not fanout_posts:
            return records, []
        fanned = self.fanout.events(list(zip(changes, events)), fanout_posts, self.assembler, self.settings.capture,
                                    self.origin, now_ms)
        return records, fanned

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
        await store.require_not_lost(await event_topics(settings))
    position, gtid = await asyncio.to_thread(db.current_position)
    return Checkpoint(settings.name, position, gtid=gtid, server_id=settings.server_id), True, True


async def _new_event_topic(settings: StreamSettings, topic: str) -> None:
    """An event topic the routing template named for the first time (cdc/routing.py)."""
    spec = event_topic_spec(topic, settings.partitions, settings.max_message_bytes)
    await ensure_topics(settings.kafka, [spec], settings.replication_factor)


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
    if settings.metrics_port:
        # Served from the start, so a connector waiting for its servers is alive and says why it
        # is not ready; a fatal exit shows as restarts (kube-state-metrics), not as a silent up.
        metrics.configure(connector=settings.name, stall_timeout=settings.stall_timeout,
                          mysql=f"{settings.mysql.host}:{settings.mysql.port}", kafka=settings.kafka.bootstrap)
        endpoints.serve(settings.metrics_port, settings.metrics_host)
        poller = BinlogPoller(settings.mysql, settings.binlog_poll_interval, metrics.binlogs_polled)
        poller.start()
        try:
            await _retry_sessions(settings, stop, db, tables, backfill_now)
        finally:
            await asyncio.to_thread(poller.stop)
    else:
        await _retry_sessions(settings, stop, db, tables, backfill_now)


async def _retry_sessions(settings: StreamSettings, stop: asyncio.Event, db: Database, tables: TableNames,
                          backfill_now: bool) -> None:
    """Sessions until ``stop``; the preflight runs inside the retries, so a server that is not up
    yet is waited for like one lost mid-stream, while a check the server fails stops the process."""
    checked = False
    start = settings.start
    want_backfill = backfill_now
    backoff = Backoff()

    async def one_session() -> None:
        nonlocal start, want_backfill, checked
        if not checked:
            if not backoff.failures:  # on a retry, /readyz keeps saying what failed
                metrics.starting("checking the MySQL server (preflight)")
            await asyncio.to_thread(preflight.run_all, db, tables, None)
            checked = True
            metrics.starting("connecting to Kafka and reading the checkpoint")
        await ensure_topics(settings.kafka, connector_topics(settings), settings.replication_factor)
        sink = KafkaSink(
            settings.kafka, topic=settings.topic, checkpoint_topic=settings.checkpoint_topic,
            connector=settings.name,
            transactional_id=settings.transactional_id if settings.delivery == "exactly-once" else None,
            max_message_bytes=settings.max_message_bytes,
            write_timeout=settings.kafka_write_timeout,
            compression=settings.compression,
            new_topic=lambda topic: _new_event_topic(settings, topic),
        )
        # The producer starts (and so fences any older instance and aborts its open transaction)
        # *before* the checkpoint is read: after that no one else can commit, so the checkpoint
        # we read is the last word.
        await sink.start()
        metrics.sink_connected()
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
            # `wpcdc backfill` exits once its snapshot is committed, also when a later session
            # (after a lost server) finishes it.
            exit_after = backfill_now
            want_backfill = False
            metrics.ready(True)
            backoff.streaming()
            ports = Ports(
                source=lambda position, gtid: (ProcessSource if settings.binlog_reader == "process" else BinlogSource)(
                    settings.mysql, tables, server_id=settings.server_id, start=position, gtid=gtid,
                    report_host=report_host(settings.name)),
                sink=sink, store=db,
                chunk_reader=lambda: SnapshotReader(settings.mysql, tables, settings.snapshot,
                                                    skip_types(settings.capture)),
                # `wpcdc stream` picks up `verify --repair`'s requests; `backfill` and the inline repair do not.
                repairs=None if backfill_now else repair_requests.RepairWatcher(
                    settings.kafka, settings.checkpoint_topic, settings.name),
            )
            await Session(settings, checkpoint, ports, progress, exit_after_backfill=exit_after).run(stop)
        finally:
            metrics.ready(False)
            await sink.stop()

    def before_sleep(state: object) -> None:
        exc = state.outcome.exception()  # type: ignore[attr-defined]
        metrics.reconnect(exc)
        log.warning("%s; retrying in %.1fs", exc, state.next_action.sleep)  # type: ignore[attr-defined]

    async def sleep(seconds: float) -> None:
        """The backoff, cut short by SIGTERM: a connector waiting for its servers stops at once."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), seconds)

    async for attempt in AsyncRetrying(
        retry=retry_if_exception(_retriable),
        wait=backoff,
        stop=stop_never,
        before_sleep=before_sleep,
        sleep=sleep,
        reraise=True,
    ):
        with attempt:
            if stop.is_set():
                return
            await one_session()


__all__ = ["run_stream", "Session", "starting_checkpoint"]
