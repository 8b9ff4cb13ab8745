"""Row changes → post changes: the quiescence window lives here.

WordPress writes one editor save as 10–30 autocommit transactions over posts, meta and term
tables. The assembler keeps one *pending* change per post and folds every row of that post into
it, until the post has been quiet for ``window`` seconds (or ``max_delay`` has passed since its
first row, or the memory bound is reached); then it closes the pending change into a
:class:`PostChange` with the *net* difference (a term added then removed leaves no trace).

Exactly-once rests on two facts kept here:

* ``resume_point()`` is the start of the oldest transaction that still has a row in a pending
  change: resuming there replays every row not yet in a closed change (the low watermark).
* ``emitted`` records, per post, the position of the last row that went into a closed change.
  Replaying from the low watermark, a row at or before that mark is already in Kafka and is
  skipped. A post's changes cover contiguous runs of its rows, so one mark per post suffices.

With term events on, a term's rows (``wp_terms``, ``wp_term_taxonomy``) are a pending change
of their own, keyed by ``terms.term_key``: the same window, bounds, resume point and marks.

Cuts happen only between rows events (batches), because a mark names a rows event.
No I/O: time comes in as ``now`` (see pipeline.Clock).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from cdc.model import (
    ABSENT,
    Commit,
    MetaDelta,
    PostChange,
    PostDoc,
    PostKey,
    RevisionNote,
    Row,
    RowChange,
    RowsBatch,
    TxnRef,
)
from cdc.position import Position
from cdc.rowcache import RowCache, row_size
from cdc.slots import constructor
from cdc.terms import TermCatalog, TermChange, TermFold, is_news, term_id_of, term_key
from cdc.wordpress import Capture, TableKind, is_autosave

HISTORY_MAX = 50_000  # pruned marks a session remembers for backfill documents (~150 bytes each: ~8 MB)
PENDING_OVERHEAD = 800  # bytes of one pending change beyond its rows (~730 measured with tracemalloc for a term row)


@dataclass(slots=True)
class _Pending:
    key: PostKey
    first_txn: TxnRef
    first_at: float
    last_at: float
    first_pos: Position
    last_pos: Position
    gtid: str | None
    ts: int
    rows: int = 0
    nbytes: int = 0
    inserted: bool = False
    deleted: bool = False
    posts_row: bool = False
    before: Row | None = None
    after: Row | None = None
    meta: dict[int, list[Any]] = field(default_factory=dict)  # meta_id → [key, before, after]
    terms: dict[int, int] = field(default_factory=dict)  # term_taxonomy_id → net +/-
    revisions: dict[int, RevisionNote] = field(default_factory=dict)
    reopened: bool = False  # closed once with its post row gone from the database, then held
    term: TermFold | None = None  # the pending change of a term (key: terms.term_key), not of a post


# Built on the hot path through their slots (cdc/slots.py): a PostChange per closed change and per
# backfilled post, a MetaDelta per meta row of a backfill (a million for 100,000 posts).
_post_change = constructor(PostChange)
_meta_delta = constructor(MetaDelta)

class Assembler:
    """Folds row changes into one pending change per post and closes them into PostChanges."""

    def __init__(
        self,
        capture: Capture,
        catalog: TermCatalog,
        *,
        window: float = 2.0,
        max_delay: float = 30.0,
        max_pending_bytes: int = 64 << 20,
        emitted: Mapping[PostKey, Position] | None = None,
        row_cache: RowCache | None = None,
        done_upto: Position | None = None,
        max_marks: int = 5_000,
        pruned_upto: Position | None = None,
        term_events: bool = False,
    ) -> None:
        if window < 0 or max_delay < window:
            raise ValueError("need 0 <= window <= max_delay")
        self.capture = capture
        self.catalog = catalog
        self.window = window
        self.max_delay = max_delay
        self.max_pending_bytes = max_pending_bytes
        self.cache = row_cache or RowCache()
        self.emitted: dict[PostKey, Position] = dict(emitted or {})
        # Every row at or before this position is in Kafka, whatever its post: set when the
        # memory bound closes every pending change at once. One mark instead of one per post.
        self.done_upto = done_upto
        self.max_marks = max_marks
        # Marks the checkpoint no longer needs (the resume point passed them, or the memory bound
        # folded them into done_upto) are remembered here for this session, so a backfill
        # document older than a change already emitted is still recognised as stale; past
        # HISTORY_MAX posts the oldest are forgotten and ``pruned_upto`` says up to where a
        # post may have been emitted without anything saying so. A session starts with none: a
        # chunk is read after the session started, so its position is past every change emitted
        # before (those were committed before it was read); only changes emitted between a
        # chunk's read and its use can be newer, and those are in this session.
        self._history: OrderedDict[PostKey, Position] = OrderedDict()
        self.pruned_upto = pruned_upto
        # Posts whose mark a backfill document set: the backfill bounds those itself (it waits for
        # the stream to pass its chunks), so they do not count toward max_marks.
        self._documented: set[PostKey] = set()
        self._pending: dict[PostKey, _Pending] = {}  # in order of first row
        self._by_last: OrderedDict[PostKey, None] = OrderedDict()  # in order of last row
        self._open_txn: TxnRef | None = None
        # Changes closed without a post row (cache miss): kept until the pipeline's lookup says
        # whether the post still exists, with the mark the close replaced (see reopen).
        self._unresolved: dict[PostKey, tuple[_Pending, Position | None]] = {}
        # Reopened changes waiting for their post's delete row, and new terms waiting for their
        # taxonomy row: key → give-up time.
        self._held: dict[PostKey, float] = {}
        self._last_commit: Commit | None = None
        self.pending_bytes = 0
        self.rows_skipped = 0  # replayed rows already in Kafka
        self.rows_folded = 0  # rows that reached a pending change (the rest were filtered)
        self.forced_closes = 0  # changes the memory bound closed before their window
        # Term events (cdc/terms.py): a term's rows are pending changes like a post's, keyed by
        # term_key, so they hold the resume point back and carry a mark once closed. Closed ones
        # wait in ``_closed_terms`` for the next flush, which takes them with the checkpoint.
        self.term_events = term_events
        self._closed_terms: list[TermChange] = []
        self._pending_terms = 0

    # ------------------------------------------------------------------ input

    def on_batch(self, batch: RowsBatch, now: float) -> list[PostChange]:
        """Fold one rows event; returns changes closed by the memory bound, if any."""
        self._open_txn = batch.txn
        for change in batch.changes:
            self._on_row(change, now)
        if self.pending_bytes > self.max_pending_bytes or self.stream_marks > self.max_marks:
            # Close everything, not just the oldest: then one position says it all (done_upto),
            # where closing some would leave a mark per post in the checkpoint. Inside one huge
            # transaction (a statement changing a million rows) the resume point cannot move, so
            # the marks of posts emitted meanwhile are folded into done_upto the same way.
            closed = self.close_all(include_held=True)
            self.forced_closes += len(closed)
            self.done_upto = batch.position
            self._remember(k for k, pos in self.emitted.items() if pos <= batch.position)
            self.emitted = {k: pos for k, pos in self.emitted.items() if pos > batch.position}
            self._documented &= self.emitted.keys()
            return closed
        return []

    def on_idle(self, position: Position | None, gtid: str | None) -> None:
        """The source is caught up at ``position`` outside any transaction: resuming there skips
        nothing, so with nothing pending the resume point moves there (a quiet server after a
        rotation would otherwise keep it at the new file's start, and a backfill chunk read at the
        end of the file would wait for the next write to be behind it)."""
        if position is None or self._open_txn is not None:
            return
        last = self._last_commit
        if last is None or last.end < position:
            self._last_commit = Commit(position, gtid if gtid is not None else (last.gtid if last else None),
                                       last.ts if last else 0)

    def on_commit(self, commit: Commit) -> list[PostChange]:
        """A transaction ended. With ``window == 0`` every pending change closes here."""
        self._open_txn = None
        self._last_commit = commit
        if self.window == 0:
            return self.close_all()
        return []

    def due(self, now: float) -> list[PostChange]:
        """Changes whose post has been quiet for ``window`` or waited ``max_delay``."""
        # The same sums as next_due's, so a change is due exactly when next_due says (a float
        # difference instead would leave it pending at its due time: a zero wait, a busy loop).
        keys: dict[PostKey, None] = {}
        for key in self._by_last:
            if now < self._pending[key].last_at + self.window:
                break
            keys[key] = None
        for key, p in self._pending.items():
            if now < p.first_at + self.max_delay:
                break
            keys[key] = None
        if self._held:
            keys = {k: None for k in keys if k not in self._held}
            keys.update((k, None) for k, until in self._held.items() if until <= now)
        return [c for c in (self._close(k) for k in keys) if c is not None]

    def on_snapshot(self, doc: PostDoc, position: Position, ts: int = 0, exact: bool = True) -> PostChange | None:
        """A backfill document of one post, read at binlog ``position``; None when it is stale.

        The rule that keeps a post's events in order (docs/design.md, "Backfill"):

        * a change of the post already emitted at or past ``position`` makes the document
          stale: the caller reads it again later, from a newer snapshot;
        * a pending change whose rows are all at or before ``position`` is contained in the
          document: it is dropped, the document replaces it;
        * a pending change whose rows are all after ``position`` stays, and is emitted after the
          document; one with rows on both sides makes the document stale (its net cannot be
          split at ``position``);
        * the post is marked as emitted up to ``position``, so the stream skips its rows up to
          there if it is still behind (they are in the document already).
        """
        key = (doc.blog_id, doc.post_id)
        # The document's row is not cached: a backfill touches every post once, and caching them
        # would only evict the rows of posts being edited (a later meta-only change of a
        # documented post reads its row from the database instead).
        if not self._take_document(key, position, exact):
            return None
        ignored = self.capture.ignored_meta
        meta = tuple(
            _meta_delta(int(m["meta_id"]), m["meta_key"], None, m["meta_value"], "add")
            for m in doc.meta if m["meta_key"] not in ignored
        )
        terms = tuple(self.catalog.lookup(doc.blog_id, t) for t in doc.term_taxonomy_ids)
        return _post_change(
            blog_id=doc.blog_id, post_id=doc.post_id, inserted=False, deleted=False, before=None,
            after=doc.row, row_known=True, posts_row_changed=False, meta=meta, terms_added=terms,
            terms_removed=(), revisions=(), first_pos=position, last_pos=position, gtid=None,
            ts=ts, rows=1 + len(doc.meta) + len(doc.term_taxonomy_ids), snapshot=True,
        )

    def on_absent(self, blog_id: int, post_id: int, position: Position, ts: int = 0,
                  exact: bool = True) -> PostChange | None:
        """A post a repair asked for that is not in the database at ``position`` (or not read under
        the capture policy): its delete, under the same rule as a document; None when stale.

        Its rows before ``position`` (the delete the stream may still be behind on) are contained
        in it; those after it (a post created again with the same ID) come after it.
        """
        if not self._take_document((blog_id, post_id), position, exact):
            return None
        return PostChange(
            blog_id=blog_id, post_id=post_id, inserted=False, deleted=True, before=None, after=None,
            row_known=True, posts_row_changed=False, meta=(), terms_added=(), terms_removed=(), revisions=(),
            first_pos=position, last_pos=position, gtid=None, ts=ts, rows=0,
        )

    def _take_document(self, key: PostKey, position: Position, exact: bool) -> bool:
        """Whether a document of ``key`` read at ``position`` goes out now (False: it is stale, read
        it again); if so, the pending change it contains is dropped and the post marked."""
        if self.emitted_since(key, position):
            return False  # a newer change is in Kafka already: read the post again, later
        pending = self._pending.get(key)
        if pending is not None and position < pending.last_pos and (pending.first_pos <= position or not exact):
            # A pending change with rows on both sides of the document: its net (a term added
            # before, removed after; a post born before, deleted after) cannot be split at the
            # document's position, so emitting both would lose what happened after it. Read the
            # post again once this change is out. With a position that is only a lower bound of the
            # snapshot (``exact`` False, MySQL), any row after it may be in the document already.
            return False
        if pending is not None and pending.last_pos <= position:
            self._drop(key)
        self.emitted[key] = position
        self._documented.add(key)
        return True

    def next_due(self) -> float | None:
        """The ``now`` at which ``due`` will next close something (None: nothing is pending)."""
        held = self._held
        quiet = next((k for k in self._by_last if k not in held), None)
        oldest = next((p for k, p in self._pending.items() if k not in held), None)
        times = [t for t in held.values()]
        if quiet is not None:
            times.append(self._pending[quiet].last_at + self.window)
        if oldest is not None:
            times.append(oldest.first_at + self.max_delay)
        return min(times) if times else None

    def close_all(self, include_held: bool = False) -> list[PostChange]:
        """Close every pending change; one held for its post's delete row only when asked (the
        memory bound): at a commit with ``window == 0`` or a clean stop it stays pending, and the
        checkpoint's resume point keeps its rows."""
        keys = [k for k in self._pending if include_held or k not in self._held]
        return [c for c in (self._close(k) for k in keys) if c is not None]

    def reopen(self, key: PostKey, now: float) -> bool:
        """The post of a change closed without its row is gone from the database: take the change
        back, to fold into the post's delete row that follows (WordPress deletes meta, terms and
        revisions in transactions of their own before the post row). Returns False when it was
        taken back once already and no delete came within ``max_delay`` (an orphan: rows of a post
        that no longer exists, or never did), or when the memory bound's ``done_upto`` already
        covers its rows; the caller then emits it as the post's delete, loudly.

        The change is held (not closed by the window, a commit or a clean stop) until a posts row
        of it arrives or ``max_delay`` passes; its mark goes back to what it was, so the
        checkpoint's resume point and marks keep its rows until it is really emitted.
        """
        p, mark = self._unresolved.pop(key)
        if p.reopened or (self.done_upto is not None and self.done_upto >= p.first_pos):
            # Taken back once already, or done_upto (the memory bound) already says its rows are in
            # Kafka: a replay would skip them, so it cannot wait for its delete row.
            return False
        p.reopened = True
        later = self._pending.pop(key, None)
        if later is not None:  # rows that came after the close: fold them in, after the others
            self._by_last.pop(key, None)
            self.pending_bytes -= later.nbytes
            self._merge(p, later)
        if self.emitted.get(key) == p.last_pos:  # not moved on by a later change of the post
            if mark is None:
                self.emitted.pop(key, None)
            else:
                self.emitted[key] = mark
        p.last_at = now
        # Appended, so _pending is only roughly in first-row order: a held change is closed by
        # its own deadline (_held), and once its post row came, by the window.
        self._pending[key] = p
        self._by_last[key] = None
        self.pending_bytes += p.nbytes
        if not p.posts_row:
            self._held[key] = now + self.max_delay
        return True

    def settle(self, keys: set[PostKey] | None = None) -> None:
        """The pipeline looked up these posts (None: all) closed without their row: forget what it kept."""
        if keys is None:
            self._unresolved.clear()
        else:
            for key in keys:
                self._unresolved.pop(key, None)

    # ---------------------------------------------------------------- queries

    def resume_point(self) -> tuple[Position, str | None] | None:
        """The low watermark: (position, GTID state) to resume from so nothing pending is lost.

        None before the first commit was seen with nothing pending (nothing to say yet).
        """
        candidates: list[TxnRef] = [p.first_txn for p in self._pending.values()]
        if self._open_txn is not None:
            candidates.append(self._open_txn)
        if candidates:
            oldest = min(candidates, key=lambda t: t.start._key())
            return oldest.start, oldest.prev_gtid
        if self._last_commit is not None:
            return self._last_commit.end, self._last_commit.gtid
        return None

    def marks(self, since: Position | None) -> dict[PostKey, Position]:
        """Per-post emitted marks still needed when resuming at ``since`` (others pruned)."""
        if since is not None:
            # A replay from ``since`` (a transaction boundary) only meets rows after it.
            stale = [k for k, pos in self.emitted.items() if pos <= since]
            self._remember(stale)
            for k in stale:
                del self.emitted[k]
                self._documented.discard(k)
            if self.done_upto is not None and self.done_upto <= since:
                self.done_upto = None
        return dict(self.emitted)

    def _remember(self, keys: Iterable[PostKey]) -> None:
        """Keep the marks of ``keys`` (about to be pruned) in the session's history."""
        history = self._history
        for key in list(keys):
            history[key] = self.emitted[key]
            history.move_to_end(key)
        while len(history) > HISTORY_MAX:
            _, pos = history.popitem(last=False)
            if self.pruned_upto is None or self.pruned_upto < pos:
                self.pruned_upto = pos

    def emitted_since(self, key: PostKey, position: Position) -> bool:
        """Whether a change of the post past ``position`` may already be in Kafka."""
        mark = self.emitted.get(key)
        if mark is not None and mark >= position:
            return True
        seen = self._history.get(key)
        if seen is not None and seen >= position:
            return True
        return self.pruned_upto is not None and position < self.pruned_upto

    def pending_before(self, key: PostKey) -> Row | None:
        """The post's row before its pending change, when that change wrote its posts row."""
        p = self._pending.get(key)
        return p.before if p is not None and p.posts_row else None

    @property
    def stream_marks(self) -> int:
        """Marks set by the stream's own closes (not by backfill documents)."""
        return len(self.emitted) - len(self._documented)

    @property
    def pending_posts(self) -> int:
        return len(self._pending) - self._pending_terms

    @property
    def pending_terms(self) -> int:
        return self._pending_terms

    @property
    def closed_terms(self) -> int:
        """Term changes closed and not yet taken by a flush."""
        return len(self._closed_terms)

    def take_terms(self) -> list[TermChange]:
        """The term changes closed since the last call. Their rows no longer hold the resume point
        back: the flush that takes them must write them with the checkpoint it computes next."""
        taken, self._closed_terms = self._closed_terms, []
        return taken

    def is_pending(self, key: PostKey) -> bool:
        return key in self._pending

    def mark(self, key: PostKey, position: Position) -> None:
        """An event of a post that has no pending change went out at ``position`` beside its own
        changes (cdc/term_fanout.py): a backfill document read before it is stale from now on."""
        mark = self.emitted.get(key)
        if mark is None or mark < position:
            self.emitted[key] = position
            self._documented.discard(key)

    # -------------------------------------------------------------- internals

    def _on_row(self, change: RowChange, now: float) -> None:
        kind = change.table.kind
        if kind is TableKind.TERMS or kind is TableKind.TERM_TAXONOMY:
            self.catalog.apply(change)
            if self.term_events:
                self._on_term_row(change, now)
            return
        blog = change.table.blog_id
        post_id = change.post_id
        assert post_id is not None
        key: PostKey = (blog, post_id)

        if kind is TableKind.POSTS:
            row = change.row
            if change.op == "delete":
                self.cache.forget(key)
            else:
                self.cache.put(key, row)
            post_type = row.get("post_type")
            if key in self._held and not self.capture.wants_type(post_type):
                # Meta of a post the policy drops (a revision's), held for its delete row: here it is.
                self.emitted[key] = change.position
                self._drop(key)
            if post_type == "revision" and self.capture.revisions != "events":
                self._on_revision(change, now)
                return
            if not self.capture.wants_type(post_type):
                return
        elif kind is TableKind.POSTMETA:
            if change.row.get("meta_key") in self.capture.ignored_meta or self._unwanted(key):
                return
        elif change.op == "update" or self._unwanted(key):  # term relationships
            return  # an update only changes term_order

        if self._already_emitted(key, change.position):
            return
        p = self._touch(key, change, now)
        if kind is TableKind.POSTS:
            self._fold_post(p, change)
        elif kind is TableKind.POSTMETA:
            self._fold_meta(p, change)
        else:
            ttid = int(change.row["term_taxonomy_id"])
            net = p.terms.get(ttid, 0) + (1 if change.op == "insert" else -1)
            if net:
                p.terms[ttid] = net
            else:
                p.terms.pop(ttid, None)

    def _on_term_row(self, change: RowChange, now: float) -> None:
        term_id = term_id_of(change)
        key = term_key(change.table.blog_id, term_id)
        # A count rewrite alone is no event, so it opens no pending change; inside one it is
        # folded (nothing it shows changes but post_count).
        if (key not in self._pending and not is_news(change)) or self._already_emitted(key, change.position):
            return
        p = self._touch(key, change, now)
        if p.term is None:
            p.term = TermFold(term_id)
            self._pending_terms += 1
        p.term.fold(change)
        if change.table.kind is TableKind.TERM_TAXONOMY:
            self._held.pop(key, None)
        elif change.op == "insert" and not p.term.taxonomy:
            # wp_insert_term: the term row, then its taxonomy row in a transaction of its own. Held
            # (not closed by a commit with window 0) until that row comes, so the event's name and
            # slug are the row's, not the catalog's, which after a restart reads a newer database.
            self._held[key] = now + self.max_delay

    def _on_revision(self, change: RowChange, now: float) -> None:
        if self.capture.revisions == "skip" or change.op == "delete":
            return
        row = change.row
        parent = int(row.get("post_parent") or 0)
        if not parent:
            return
        key = (change.table.blog_id, parent)
        if self._unwanted(key) or self._already_emitted(key, change.position):
            return
        p = self._touch(key, change, now)
        rid = int(row["ID"])
        p.revisions[rid] = RevisionNote(rid, is_autosave(row))

    def _unwanted(self, key: PostKey) -> bool:
        """A post of a type the policy drops, as far as the rows seen so far tell."""
        known = self.cache.type_of(key)
        return known is not None and not self.capture.wants_type(known[0])

    def _already_emitted(self, key: PostKey, position: Position) -> bool:
        mark = self.emitted.get(key)
        if (mark is not None and position <= mark) or (self.done_upto is not None and position <= self.done_upto):
            self.rows_skipped += 1
            return True
        return False

    def _touch(self, key: PostKey, change: RowChange, now: float) -> _Pending:
        if change.table.kind is TableKind.POSTS and change.table.blog_id == key[0] and change.post_id == key[1]:
            self._held.pop(key, None)  # its post row came: the usual window closes it now
        p = self._pending.get(key)
        if p is None:
            p = _Pending(key, change.txn, now, now, change.position, change.position,
                         change.txn.gtid, change.ts)
            # The change itself, its key and its places in two dicts cost more than a small row:
            # a statement over 100,000 posts' term rows is bounded by this, not by the rows.
            p.nbytes = PENDING_OVERHEAD
            self.pending_bytes += PENDING_OVERHEAD
            self._pending[key] = p
        self.rows_folded += 1
        p.last_at = now
        p.last_pos = change.position
        p.gtid = change.txn.gtid
        p.ts = change.ts
        p.rows += 1
        size = row_size(change.after) + (0 if change.after is not None else row_size(change.before))
        p.nbytes += size
        self.pending_bytes += size
        self._by_last[key] = None
        self._by_last.move_to_end(key)
        return p

    @staticmethod
    def _fold_post(p: _Pending, change: RowChange) -> None:
        if not p.posts_row:
            p.posts_row = True
            p.before = change.before
            p.inserted = change.op == "insert"
        if change.op == "delete":
            p.deleted = True
            p.after = None
        else:
            p.deleted = False
            p.after = change.after

    @staticmethod
    def _fold_meta(p: _Pending, change: RowChange) -> None:
        row = change.row
        meta_id = int(row["meta_id"])
        entry = p.meta.get(meta_id)
        # ABSENT, not None: a meta row whose value is NULL exists all the same.
        before = change.before["meta_value"] if change.before is not None else ABSENT
        after = change.after["meta_value"] if change.after is not None else ABSENT
        if entry is None:
            p.meta[meta_id] = [row.get("meta_key"), before, after]
        else:
            entry[0] = row.get("meta_key")
            entry[2] = after

    def _drop(self, key: PostKey) -> _Pending:
        p = self._pending.pop(key)
        del self._by_last[key]
        self._held.pop(key, None)
        self.pending_bytes -= p.nbytes
        if p.term is not None:
            self._pending_terms -= 1
        return p

    def _merge(self, p: _Pending, later: _Pending) -> None:
        """Fold ``later`` (the same post's rows after ``p``'s) into ``p``."""
        p.last_at, p.last_pos, p.gtid, p.ts = later.last_at, later.last_pos, later.gtid, later.ts
        p.rows += later.rows
        p.nbytes += later.nbytes
        if later.posts_row:
            if not p.posts_row:
                p.posts_row, p.before, p.inserted = True, later.before, later.inserted
            p.deleted, p.after = later.deleted, later.after
        for meta_id, (k, _, after) in later.meta.items():
            entry = p.meta.get(meta_id)
            if entry is None:
                p.meta[meta_id] = list(later.meta[meta_id])
            else:
                entry[0], entry[2] = k, after
        for ttid, n in later.terms.items():
            net = p.terms.get(ttid, 0) + n
            if net:
                p.terms[ttid] = net
            else:
                p.terms.pop(ttid, None)
        p.revisions.update(later.revisions)

    def _close(self, key: PostKey) -> PostChange | None:
        p = self._drop(key)
        mark_before = self.emitted.get(key)
        self.emitted[key] = p.last_pos
        self._documented.discard(key)
        blog, post_id = key
        if p.term is not None:
            self._closed_terms += p.term.close(blog, self.catalog, p.first_pos, p.last_pos, p.gtid, p.ts, p.rows)
            return None
        meta = tuple(
            MetaDelta.between(mid, k, b, a) for mid, (k, b, a) in p.meta.items()
            if (b is ABSENT) != (a is ABSENT) or (b is not ABSENT and b != a)
        )
        added = tuple(self.catalog.lookup(blog, t) for t, n in p.terms.items() if n > 0)
        removed = tuple(self.catalog.lookup(blog, t) for t, n in p.terms.items() if n < 0)
        if p.inserted and p.deleted:
            return None  # born and gone within one window: nothing to tell
        before, after, row_known = p.before, p.after, True
        if not p.posts_row:
            cached = self.cache.get(key)
            before = after = cached
            row_known = cached is not None
        elif p.inserted:
            before = None
        if not (p.posts_row or meta or added or removed or p.revisions):
            return None
        if not row_known:
            previous = self._unresolved.get(key)
            if previous is None:
                self._unresolved[key] = (p, mark_before)
            else:  # closed twice before the lookup: one change to take back, in row order
                self._merge(previous[0], p)
        return _post_change(
            blog_id=blog,
            post_id=post_id,
            inserted=p.inserted,
            deleted=p.deleted,
            before=before,
            after=after,
            row_known=row_known,
            posts_row_changed=p.posts_row,
            meta=meta,
            terms_added=added,
            terms_removed=removed,
            revisions=tuple(p.revisions.values()),
            first_pos=p.first_pos,
            last_pos=p.last_pos,
            gtid=p.gtid,
            ts=p.ts,
            rows=p.rows,
        )
