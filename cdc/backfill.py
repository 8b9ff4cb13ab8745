"""The backfill task: snapshot chunks into the running session, beside the binlog stream.

The reading is cdc/source/snapshot.py's (consistent chunks of posts with their binlog position);
this module paces it and hands each chunk to the session, whose assembler decides, post by post,
whether a document is news.

It runs inside a stream session (same assembler, same flush, same Kafka transaction), so the
ordering rule between snapshot documents and stream changes is applied in one place
(``Assembler.on_snapshot``) and its progress is checkpointed atomically with its events.

A repair (``wpcdc verify --repair``) is a backfill of listed posts (``SnapshotProgress.ids``): it
reads those by ID, and a listed post that is not in the database gets its delete, ordered by the
same rule (``Assembler.on_absent``).

Two brakes keep it polite: ``--snapshot-rows-per-second`` limits the read load on MySQL, and at
most ``max_chunks_ahead`` chunks may sit ahead of the committed resume point, which bounds the
per-post marks the checkpoint must carry while the stream catches up to the snapshot.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from cdc import metrics
from cdc.assemble import Assembler
from cdc.model import PostChange
from cdc.position import Position
from cdc.progress import ProgressBar
from cdc.source.snapshot import SnapshotChunk, SnapshotProgress, SnapshotReader, SnapshotSettings

if TYPE_CHECKING:
    from cdc.ports import ChunkReader
from cdc.wordpress import Capture

log = logging.getLogger(__name__)

MAX_REREADS = 3


def skip_types(capture: Capture) -> frozenset[str]:
    """Post types the capture policy drops anyway: the snapshot need not read them."""
    if capture.included_post_types is not None:
        return frozenset()
    return frozenset(t for t in capture.excluded_post_types if not capture.wants_type(t))


def new_progress(reader: SnapshotReader, wanted: dict[int, tuple[int, ...]] | None = None) -> SnapshotProgress:
    """A new backfill of every post the reader reads, or (``wanted``, a repair) of those posts."""
    blogs = reader.blogs()
    started = int(time.time() * 1000)
    if wanted is not None:
        gone = sorted(set(wanted) - set(blogs))
        if gone:
            log.warning("repair: blogs %s have no tables; their posts %s cannot be read, drop them downstream",
                        gone, {b: list(wanted[b]) for b in gone})
        ids = {b: sorted(set(wanted[b])) for b in blogs if b in wanted}
        return SnapshotProgress(id=uuid.uuid4().hex[:12], blogs=list(ids), total=sum(len(v) for v in ids.values()),
                                started_ms=started, ids=ids)
    return SnapshotProgress(id=uuid.uuid4().hex[:12], blogs=blogs, total=reader.count(blogs), started_ms=started)


def has_room(ahead: list[tuple[Position, int]], settings: SnapshotSettings, unflushed: int) -> bool:
    """Whether the next chunk may be read, given the chunks still ahead of the committed resume
    point as (position, posts). Few chunks and posts ahead (every documented post keeps a mark in
    the checkpoint until the stream passes its chunk: a bounded record), and the last chunks'
    events flushed (bounded memory). With nothing ahead one chunk may always go."""
    posts_ahead = sum(n for _, n in ahead)
    return (len(ahead) < settings.max_chunks_ahead
            and (not posts_ahead or posts_ahead + settings.chunk_size <= settings.max_posts_ahead)
            and unflushed < settings.chunk_size)


class Backfill:
    def __init__(self, reader: ChunkReader, settings: SnapshotSettings,
                 progress: SnapshotProgress, assembler: Assembler,
                 emit: Callable[[list[PostChange]], None], committed_resume: Callable[[], Position],
                 unflushed: Callable[[], int] = lambda: 0, *,
                 blocking: Callable[..., Awaitable[Any]] | None = None,
                 pause: Callable[[float], Awaitable[None]] = asyncio.sleep) -> None:
        self.reader = reader
        self.blocking = blocking or asyncio.to_thread
        self.pause = pause
        self.settings = settings
        self.progress = progress
        self.assembler = assembler
        self.emit = emit
        self.committed_resume = committed_resume
        self.unflushed = unflushed
        self.fallbacks = 0  # posts whose meta and terms were read row by row (SnapshotChunk.fallbacks)
        self._ahead: list[tuple[Position, int]] = []  # (position, posts) of chunks not yet behind the resume point
        self._bar = ProgressBar("backfill", progress.total, progress.posts_done)

    def state(self) -> dict[str, object]:
        """Progress as it must be checkpointed (taken together with the changes emitted)."""
        return self.progress.as_dict()

    async def run(self) -> None:
        p = self.progress
        log.info("backfill %s: %d posts in blogs %s, resuming at %s", p.id, p.total, p.blogs, p.last_id or "start")
        metrics.snapshot_started(p.total)
        try:
            for blog in p.blogs:
                if blog in p.done_blogs:
                    continue
                await self._blog(blog)
                p.done_blogs.append(blog)
            p.finished_ms = int(time.time() * 1000)
            self.emit([])  # nothing more to write, but the end itself goes with the next checkpoint
            metrics.snapshot_finished()
            self._bar.close()
            log.info("backfill %s finished: %d posts (%d of them with meta and terms read row by row: "
                     "aggregate fallbacks)", p.id, p.posts_done, self.fallbacks)
        finally:
            await self.blocking(self.reader.close)

    async def _blog(self, blog: int) -> None:
        progress = self.progress
        cursor = progress.last_id.get(blog, 0)
        # Stale documents to read again are progress like the cursor: kept in the checkpoint, set
        # in the same instant as the cursor moves past them, so a crash cannot skip them.
        rereads = progress.rereads.setdefault(blog, [])
        listed = None if progress.ids is None else progress.ids.get(blog, [])
        if listed is None:
            await self._scan(blog, rereads)
        while listed is not None:  # a repair: the next listed posts, by ID
            await self._wait_for_room()
            batch = [i for i in listed if i > cursor][:self.settings.chunk_size]
            if not batch:
                break
            chunk = await self.blocking(self.reader.read_chunk, blog, cursor, batch)
            rereads.extend(self._apply(chunk, batch))
            cursor = progress.last_id[blog] = batch[-1]
            if batch[-1] >= listed[-1]:
                break
        for _ in range(MAX_REREADS):
            if not rereads:
                break
            # A change newer than the snapshot was emitted first: read those posts again, from
            # a newer snapshot, so each still gets its complete document.
            await self._wait_for_room()
            chunk = await self.blocking(self.reader.reread, blog, list(rereads))
            rereads[:] = self._apply(chunk, None if listed is None else list(rereads))
        if rereads:
            log.warning("backfill: posts %s of blog %d kept changing; their stream events stand in", rereads, blog)
            rereads.clear()

    async def _scan(self, blog: int, rereads: list[int]) -> None:
        """Every post of the blog after the cursor, chunk by chunk, reading the next chunk while
        the last one is applied, built and written (the server's share of a chunk, about half
        of it, overlaps with ours). One read runs at a time (the reader has one connection),
        and a chunk read ahead waits for room like any before it is applied: the bounds hold,
        with one chunk more in memory."""
        progress = self.progress
        ahead: asyncio.Future[SnapshotChunk] | None = None
        try:
            await self._wait_for_room()
            chunk = await self.blocking(self.reader.read_chunk, blog, progress.last_id.get(blog, 0))
            while True:
                if not chunk.exhausted:
                    ahead = asyncio.ensure_future(self.blocking(self.reader.read_chunk, blog, chunk.last_id))
                await self._wait_for_room()
                rereads.extend(self._apply(chunk))
                progress.last_id[blog] = chunk.last_id  # with the stale ids, before any await
                if ahead is None:
                    return
                chunk, ahead = await ahead, None
        finally:
            if ahead is not None:
                # Stopped (cancelled, or a failure): the reader's connection must be free before
                # it is closed; what the read-ahead raised, if anything, no longer matters.
                await asyncio.wait([ahead])
                if not ahead.cancelled():
                    ahead.exception()

    def _apply(self, chunk: SnapshotChunk, listed: list[int] | None = None) -> list[int]:
        """Hand the chunk's documents to the assembler; returns the ids found stale. ``listed``
        (a repair): the posts the chunk was read for; those it does not hold are not in the
        database (or no longer captured) at its position, and get their delete."""
        ts = int(time.time())
        changes: list[PostChange] = []
        stale: list[int] = []
        for doc in chunk.docs:
            change = self.assembler.on_snapshot(doc, chunk.position, ts, exact=chunk.exact)
            if change is None:
                stale.append(doc.post_id)
            else:
                changes.append(change)
        absent = sorted(set(listed or ()) - {doc.post_id for doc in chunk.docs})
        for post_id in absent:
            change = self.assembler.on_absent(chunk.blog_id, post_id, chunk.position, ts, exact=chunk.exact)
            if change is None:
                stale.append(post_id)
            else:
                changes.append(change)
        self.emit(changes)  # together with the progress below, before any await
        self.progress.posts_done += len(chunk.docs) + len(absent) - len(stale)
        self._ahead.append((chunk.position, len(chunk.docs) + len(absent)))
        metrics.snapshot_rows("posts", chunk.rows_read)
        if chunk.fallbacks:
            metrics.snapshot_fallbacks(chunk.fallbacks)
        self.fallbacks += chunk.fallbacks
        metrics.snapshot_progress(self.progress.posts_done)
        self._bar.update(self.progress.posts_done)
        return stale

    async def _wait_for_room(self) -> None:
        while True:
            resume = self.committed_resume()
            self._ahead = [(pos, n) for pos, n in self._ahead if pos > resume]
            if has_room(self._ahead, self.settings, self.unflushed()):
                return
            await self.pause(0.01)
