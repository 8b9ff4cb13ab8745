"""A model of a WordPress database and its binlog, for the deterministic simulation (tests/sim).

The session under test reads the binlog and, beside it, the database (post rows, term names,
consistent backfill chunks). The model keeps the two in step the way MariaDB does: a
transaction's rows reach the binlog whole at its commit, and the reader may start only at a
transaction boundary. Each transaction keeps its full row images, so the database as of an
earlier position is the current one with the later transactions undone (``state_at``): what a
consistent snapshot taken there would see.

Positions look like a MariaDB binlog's: files ``mariadb-bin.000001``…, the first transaction of a
file at 256 (after the format description, GTID list and checkpoint events), +100 for the
GTID/BEGIN event, +200 per rows event, +31 for the commit (XID) event. Nothing here is random:
the ``Workload`` draws every choice from the ``random.Random`` it is given.
"""

from __future__ import annotations

import bisect
import datetime as dt
import random
from collections import defaultdict
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from cdc.model import Commit, PostKey, Row, RowChange, RowsBatch, TxnRef
from cdc.position import Position, file_number
from cdc.wordpress import AUTO_DRAFT, PUBLISH, TRASH, Capture, TableKind, TableNames, WpTable
from tests.unit.rows import post_row

BASENAME = "mariadb-bin"
EPOCH = 1_800_000_000  # binlog time of the first transaction (2027-01-15)
FILE_START = 4  # a binlog file's first event (the format description): a valid start
HEADER_END = 256  # where the first transaction of a file begins
GTID_BYTES = 100
ROWS_BYTES = 200
COMMIT_BYTES = 31
DOMAIN = "0-1"  # MariaDB GTID domain and server id: GTIDs are "0-1-N"

Key = Any  # a row's primary key: an int, or (object_id, term_taxonomy_id)


def row_key(kind: TableKind, row: Row) -> Key:
    """The primary key of a row of one of the five tables."""
    if kind is TableKind.POSTS:
        return int(row["ID"])
    if kind is TableKind.POSTMETA:
        return int(row["meta_id"])
    if kind is TableKind.TERM_RELATIONSHIPS:
        return (int(row["object_id"]), int(row["term_taxonomy_id"]))
    if kind is TableKind.TERMS:
        return int(row["term_id"])
    return int(row["term_taxonomy_id"])


@dataclass
class Tables:
    """One blog's tables, each {primary key: row}, and an index of meta ids by post.

    Rows are never edited in place (an update stores a new dict), so copying the maps is a
    snapshot, and a row image handed to the binlog stays what it was.
    """

    posts: dict[int, Row] = field(default_factory=dict)
    postmeta: dict[int, Row] = field(default_factory=dict)
    term_relationships: dict[tuple[int, int], Row] = field(default_factory=dict)
    terms: dict[int, Row] = field(default_factory=dict)
    term_taxonomy: dict[int, Row] = field(default_factory=dict)
    meta_by_post: dict[int, set[int]] = field(default_factory=dict)

    def table(self, kind: TableKind) -> dict[Key, Row]:
        return getattr(self, kind.value)  # type: ignore[no-any-return]

    def put(self, kind: TableKind, row: Row) -> None:
        key = row_key(kind, row)
        self.table(kind)[key] = row
        if kind is TableKind.POSTMETA:
            self.meta_by_post.setdefault(int(row["post_id"]), set()).add(key)

    def remove(self, kind: TableKind, row: Row) -> None:
        key = row_key(kind, row)
        old = self.table(kind).pop(key, None)
        if kind is TableKind.POSTMETA and old is not None:
            self.meta_by_post.get(int(old["post_id"]), set()).discard(key)

    def copy(self) -> Tables:
        maps = {k.value: dict(self.table(k)) for k in TableKind}
        return Tables(**maps, meta_by_post={p: set(ids) for p, ids in self.meta_by_post.items() if ids})

    def meta_of(self, post_id: int) -> list[Row]:
        return [self.postmeta[i] for i in sorted(self.meta_by_post.get(post_id, ()))]

    def terms_of(self, post_id: int) -> list[int]:
        return sorted(ttid for oid, ttid in self.term_relationships if oid == post_id)


@dataclass
class Site:
    """The database of a WordPress site (blog 1, and blog 2 of a multisite as ``{prefix}2_``)."""

    prefix: str = "wp_"
    blogs: dict[int, Tables] = field(default_factory=dict)
    auto_increment: dict[tuple[int, TableKind], int] = field(default_factory=dict)

    @classmethod
    def wordpress(cls, blog_ids: tuple[int, ...] = (1,), prefix: str = "wp_") -> Site:
        """A fresh install: no posts, the default category (term 1, "Uncategorized") per blog."""
        site = cls(prefix, {b: Tables() for b in blog_ids})
        for blog in blog_ids:
            t = site.blogs[blog]
            t.put(TableKind.TERMS, {"term_id": 1, "name": "Uncategorized", "slug": "uncategorized", "term_group": 0})
            t.put(TableKind.TERM_TAXONOMY, {"term_taxonomy_id": 1, "term_id": 1, "taxonomy": "category",
                                            "description": "", "parent": 0, "count": 0})
            site.auto_increment[(blog, TableKind.TERMS)] = 2
            site.auto_increment[(blog, TableKind.TERM_TAXONOMY)] = 2
        return site

    def table_names(self) -> TableNames:
        return TableNames(self.prefix)

    def next_id(self, blog: int, kind: TableKind) -> int:
        """AUTO_INCREMENT: ids are never reused, even after a delete."""
        n = self.auto_increment.get((blog, kind), 1)
        self.auto_increment[(blog, kind)] = n + 1
        return n

    def apply(self, change: RowChange) -> None:
        tables, kind = self.blogs[change.table.blog_id], change.table.kind
        if change.before is not None:
            tables.remove(kind, change.before)
        if change.after is not None:
            tables.put(kind, change.after)

    def undo(self, change: RowChange) -> None:
        tables, kind = self.blogs[change.table.blog_id], change.table.kind
        if change.after is not None:
            tables.remove(kind, change.after)
        if change.before is not None:
            tables.put(kind, change.before)

    def copy(self) -> Site:
        return Site(self.prefix, {b: t.copy() for b, t in self.blogs.items()}, dict(self.auto_increment))


@dataclass(frozen=True, slots=True)
class Transaction:
    """One committed binlog transaction: its rows events and the commit that ends it."""

    txn: TxnRef
    batches: tuple[RowsBatch, ...]
    commit: Commit

    @property
    def start(self) -> Position:
        return self.txn.start

    @property
    def end(self) -> Position:
        return self.commit.end

    def changes(self) -> Iterator[RowChange]:
        for batch in self.batches:
            yield from batch.changes


@dataclass(frozen=True, slots=True)
class Rotation:
    """The Rotate event that ends a file (at ``at``) and names the next (``next``, offset 4)."""

    at: Position
    next: Position
    ts: int


Entry = Transaction | Rotation


def _key(position: Position) -> tuple[int, int]:
    return (file_number(position.file), position.pos)


class Txn:
    """An open transaction. Each statement is one rows event, applied to the tables at once (a
    session sees its own writes); nothing reaches the binlog before ``Binlog.commit``."""

    def __init__(self, binlog: Binlog) -> None:
        self.binlog = binlog
        self.ref = TxnRef(binlog.end(), f"{DOMAIN}-{binlog.gtid_seq + 1}", binlog.gtid())
        self.pos = binlog.pos + GTID_BYTES
        self.ts = binlog.ts
        self.batches: list[RowsBatch] = []

    def rows(self, blog: int, kind: TableKind, op: str, pairs: list[tuple[Row | None, Row | None]]) -> RowsBatch | None:
        """One rows event of (before, after) images. A statement that matched no row writes none."""
        if not pairs:
            return None
        self.pos += ROWS_BYTES
        position = Position(self.binlog.file, self.pos)
        table = WpTable(blog, kind)
        changes = tuple(RowChange(table, op, b, a, position, self.ref, self.ts) for b, a in pairs)
        for change in changes:
            self.binlog.site.apply(change)
        batch = RowsBatch(changes, position, self.ref)
        self.batches.append(batch)
        return batch

    def other_table(self) -> None:
        """A rows event of a table wpcdc does not read (wp_options): binlog bytes, nothing else."""
        self.pos += ROWS_BYTES

    def insert(self, blog: int, kind: TableKind, rows: list[Row]) -> RowsBatch | None:
        return self.rows(blog, kind, "insert", [(None, dict(r)) for r in rows])

    def update(self, blog: int, kind: TableKind, changes: list[tuple[Key, dict[str, Any]]]) -> RowsBatch | None:
        table = self.binlog.site.blogs[blog].table(kind)
        return self.rows(blog, kind, "update", [(table[k], {**table[k], **c}) for k, c in changes if k in table])

    def delete(self, blog: int, kind: TableKind, keys: list[Key]) -> RowsBatch | None:
        table = self.binlog.site.blogs[blog].table(kind)
        return self.rows(blog, kind, "delete", [(table[k], None) for k in keys if k in table])


class Binlog:
    """The binlog of ``site``: an append-only list of transactions and rotations.

    ``site`` is the database now; every transaction is applied to it as it is written, in
    commit order (there is one writer at a time).
    """

    def __init__(self, site: Site, *, basename: str = BASENAME, ts: int = EPOCH,
                 max_file_bytes: int | None = None) -> None:
        self.site = site
        self.basename = basename
        self.entries: list[Entry] = []
        self.file = f"{basename}.000001"
        self.pos = HEADER_END
        self.ts = ts
        self.gtid_seq = 0
        self.max_file_bytes = max_file_bytes
        self._boundaries: dict[str, set[int]] = {self.file: {FILE_START, HEADER_END}}
        self._starts: list[tuple[int, int]] = []  # _key of each entry's first position, for bisect
        self._ends: list[tuple[int, int]] = []  # _key of each transaction's end, for bisect
        self._end_gtids: list[str | None] = []
        self._open: Txn | None = None

    # ------------------------------------------------------------------ writing

    def end(self) -> Position:
        """Where the next transaction will start: what SHOW MASTER STATUS says."""
        return Position(self.file, self.pos)

    def gtid(self) -> str | None:
        """The GTID state after the last transaction (None before the first)."""
        return f"{DOMAIN}-{self.gtid_seq}" if self.gtid_seq else None

    def tick(self, seconds: int) -> None:
        """Binlog time moves on (an idle gap, or the second an editor save spans)."""
        self.ts += max(0, int(seconds))

    def tick_to(self, ts: int) -> None:
        """Move binlog time up to ``ts`` (never back): to follow the simulator's clock."""
        self.ts = max(self.ts, int(ts))

    def begin(self) -> Txn:
        if self._open is not None:
            raise RuntimeError("one transaction at a time: commit the open one first")
        self._open = Txn(self)
        return self._open

    def commit(self, txn: Txn) -> Transaction:
        if txn is not self._open:
            raise RuntimeError("not the open transaction")
        end = Position(self.file, txn.pos + COMMIT_BYTES)
        self.gtid_seq += 1
        entry = Transaction(txn.ref, tuple(txn.batches), Commit(end, txn.ref.gtid, txn.ts))
        self._append(entry, txn.ref.start)
        self._ends.append(_key(end))
        self._end_gtids.append(entry.txn.gtid)
        self.pos = end.pos
        self._boundaries[self.file].add(end.pos)
        self._open = None
        if self.max_file_bytes is not None and self.pos >= self.max_file_bytes:
            self.rotate()
        return entry

    @contextmanager
    def transaction(self) -> Iterator[Txn]:
        """``with binlog.transaction() as t: t.insert(…)``: one transaction, committed at exit."""
        txn = self.begin()
        try:
            yield txn
        except BaseException:
            for change in reversed([c for b in txn.batches for c in b.changes]):
                self.site.undo(change)  # ROLLBACK: nothing was logged
            self._open = None
            raise
        self.commit(txn)

    def rotate(self) -> Rotation:
        """FLUSH BINARY LOGS (or max_binlog_size): the next file; its first transaction at 256."""
        if self._open is not None:
            raise RuntimeError("a rotation waits for the open transaction")
        new = f"{self.basename}.{file_number(self.file) + 1:06d}"
        entry = Rotation(self.end(), Position(new, FILE_START), self.ts)
        self._append(entry, entry.at)
        self.file, self.pos = new, HEADER_END
        self._boundaries[new] = {FILE_START, HEADER_END}
        return entry

    def _append(self, entry: Entry, first: Position) -> None:
        self.entries.append(entry)
        self._starts.append(_key(first))

    # ------------------------------------------------------------------ reading

    def files(self) -> list[str]:
        return list(self._boundaries)

    def is_boundary(self, position: Position) -> bool:
        """Whether a reader may start here: a transaction's start or end, a file's start."""
        return position.pos in self._boundaries.get(position.file, ())

    def index_from(self, position: Position) -> int:
        """The index of the first entry at or after ``position``."""
        return bisect.bisect_left(self._starts, _key(position))

    def transactions(self) -> list[Transaction]:
        return [e for e in self.entries if isinstance(e, Transaction)]

    def state_now(self) -> Site:
        """The database now. Live: read it, do not change it (``state_at`` gives a copy)."""
        return self.site

    def state_at(self, position: Position) -> Site:
        """A copy of the database as of every transaction ending at or before ``position``."""
        if self._open is not None:
            raise RuntimeError("a snapshot cannot see an open transaction")
        state = self.site.copy()
        for entry in reversed(self.entries):
            if isinstance(entry, Rotation):
                continue
            if entry.end <= position:
                break
            for change in reversed(list(entry.changes())):
                state.undo(change)
        return state

    def gtid_at(self, position: Position) -> str | None:
        """The GTID state of the server after the last transaction ending at or before ``position``."""
        i = bisect.bisect_right(self._ends, _key(position))
        return self._end_gtids[i - 1] if i else None


# ---------------------------------------------------------------------------------------- oracle


def wanted(row: Row, capture: Capture) -> bool:
    """Whether a post should be in the consumer's picture under ``capture``."""
    status = row.get("post_status")
    if capture.skip_auto_drafts and status == AUTO_DRAFT:
        return False
    return capture.wants_type(row.get("post_type")) and capture.wants_status(status)


def expected_state(site: Site, capture: Capture | None = None) -> dict[PostKey, dict[str, Any]]:
    """What folding the event topic must give for every post: the row, the meta rows that are
    not bookkeeping ({meta_id: (key, value)}) and the term_taxonomy ids."""
    capture = capture or Capture()
    out: dict[PostKey, dict[str, Any]] = {}
    for blog, t in site.blogs.items():
        meta: dict[int, dict[int, tuple[Any, Any]]] = defaultdict(dict)
        for m in sorted(t.postmeta.values(), key=lambda m: m["meta_id"]):
            if m["meta_key"] not in capture.ignored_meta:
                meta[m["post_id"]][m["meta_id"]] = (m["meta_key"], m["meta_value"])
        terms: dict[int, set[int]] = defaultdict(set)
        for oid, ttid in t.term_relationships:
            terms[oid].add(ttid)
        for pid, row in t.posts.items():
            if wanted(row, capture):
                out[(blog, pid)] = {"row": row, "meta": dict(meta.get(pid, {})), "terms": set(terms.get(pid, ()))}
    return out


# -------------------------------------------------------------------------------------- workload

_WORDS = ("lorem", "ipsum", "dolor", "sit", "amet", "café", "naïve", "日本語", "🚀", "<b>bold</b>", "a&b", "\"q\"")
_META_KEYS = ("_thumbnail_id", "_wp_page_template", "color", "price", "subtitle", "seo_title", "views")
_CONTENT_TYPES = ("post", "post", "page")


class Workload:
    """WordPress-shaped writes. Each ``step`` is one editor, cron or plugin action, written as the
    autocommit transactions WordPress makes of it (docs/design.md, "What WordPress writes"), so
    the session meets the same interleavings it meets on a real site."""

    WEIGHTS: dict[str, int] = {
        "create": 8, "auto_draft": 2, "save": 20, "meta": 6, "heartbeat": 4, "terms": 5, "trash": 3,
        "untrash": 2, "delete": 3, "flood": 1, "multi": 3, "bulk": 1, "new_term": 2, "internal": 1,
        "noise": 4, "rotate": 1, "gap": 6,
        # Term events (off unless the run turns them on: a zero weight draws the same as none).
        "rename_term": 0, "move_term": 0, "delete_term": 0,
    }

    def __init__(self, rng: random.Random, site: Site, binlog: Binlog, *, blogs: tuple[int, ...] | None = None,
                 weights: dict[str, int] | None = None, min_posts: int = 4, auto_draft_writes: bool = False) -> None:
        if binlog.site is not site:
            raise ValueError("the binlog must be the binlog of this site")
        self.rng = rng
        self.site = site
        self.binlog = binlog
        self.blogs = blogs or tuple(sorted(site.blogs))
        self.weights = weights or dict(self.WEIGHTS)
        self.min_posts = min_posts
        # WordPress core writes nothing but _edit_lock to an auto-draft before its first save; a
        # plugin may (meta, terms). Off by default: the session drops what an auto-draft got in a
        # window before its first save's (events.build skips auto-drafts; the create that follows
        # carries only its own window's meta and terms), which the oracle reports as missing.
        self.auto_draft_writes = auto_draft_writes
        self.actions: list[str] = []
        self.newest_bias = 0.35  # how often an action takes the newest post

    def run(self, n: int) -> list[str]:
        return [self.step() for _ in range(n)]

    def step(self) -> str:
        """One action, chosen by weight (a create while the site has few posts)."""
        rng = self.rng
        blog = rng.choice(self.blogs)
        if len(self.content(blog)) < self.min_posts:
            action = "create"
        else:
            names = list(self.weights)
            action = rng.choices(names, weights=[self.weights[n] for n in names])[0]
        getattr(self, f"_{action}")(blog)
        self.actions.append(action)
        return action

    # ------------------------------------------------------------------ helpers

    def content(self, blog: int, *, statuses: tuple[str, ...] | None = None) -> list[int]:
        """Ids of the blog's posts and pages (no revisions, no internal types; auto-drafts only
        with ``auto_draft_writes``)."""
        return [pid for pid, r in self.site.blogs[blog].posts.items()
                if r["post_type"] in ("post", "page") and (statuses is None or r["post_status"] in statuses)
                and (self.auto_draft_writes or r["post_status"] != AUTO_DRAFT)]

    def auto_drafts(self, blog: int) -> list[int]:
        return [pid for pid, r in self.site.blogs[blog].posts.items() if r["post_status"] == AUTO_DRAFT]

    def _now(self) -> dt.datetime:
        return dt.datetime.fromtimestamp(self.binlog.ts, dt.UTC).replace(tzinfo=None)

    def _text(self, words: int = 4) -> str:
        rng = self.rng
        text = " ".join(rng.choice(_WORDS) for _ in range(words))
        return text * rng.randint(100, 300) if rng.random() < 0.02 else text  # now and then a long value

    def _value(self) -> Any:
        roll = self.rng.random()
        if roll < 0.05:
            return None  # a NULL meta value is a value
        if roll < 0.15:
            return f'a:1:{{s:3:"key";s:{len(str(roll))}:"{roll}";}}'  # serialized PHP stays a string
        return self._text(2)

    @contextmanager
    def _autocommit(self) -> Iterator[Txn]:
        """One statement's transaction; WordPress's next one comes within the same second or so."""
        with self.binlog.transaction() as t:
            yield t
        self.binlog.tick(self.rng.choice((0, 0, 1)))

    def _set_meta(self, t: Txn, blog: int, pid: int, key: str, value: Any) -> None:
        """update_post_meta: update the first row of the key, or add one."""
        rows = [m for m in self.site.blogs[blog].meta_of(pid) if m["meta_key"] == key]
        if rows:
            t.update(blog, TableKind.POSTMETA, [(rows[0]["meta_id"], {"meta_value": value})])
        else:
            t.insert(blog, TableKind.POSTMETA, [self._meta_row(blog, pid, key, value)])

    def _meta_row(self, blog: int, pid: int, key: str, value: Any) -> Row:
        return {"meta_id": self.site.next_id(blog, TableKind.POSTMETA), "post_id": pid, "meta_key": key,
                "meta_value": value}

    def _relate(self, blog: int, pid: int, ttid: int, add: bool = True) -> None:
        """wp_set_object_terms: the relationship, then the term's count, each its own statement."""
        with self._autocommit() as t:
            if add:
                t.insert(blog, TableKind.TERM_RELATIONSHIPS,
                         [{"object_id": pid, "term_taxonomy_id": ttid, "term_order": 0}])
            else:
                t.delete(blog, TableKind.TERM_RELATIONSHIPS, [(pid, ttid)])
        self._recount(blog, [ttid])

    def _recount(self, blog: int, ttids: list[int]) -> None:
        tables = self.site.blogs[blog]
        for ttid in ttids:
            if ttid in tables.term_taxonomy:
                count = sum(1 for _, tt in tables.term_relationships if tt == ttid)
                with self._autocommit() as t:
                    t.update(blog, TableKind.TERM_TAXONOMY, [(ttid, {"count": count})])

    def _parent(self, blog: int, pid: int) -> int:
        """A parent for page ``pid``: none, or a page with a smaller ID (no loop, as WordPress allows)."""
        pages = [i for i, r in self.site.blogs[blog].posts.items()
                 if r["post_type"] == "page" and i < pid and r["post_status"] != AUTO_DRAFT]
        return self.rng.choice(pages) if pages and self.rng.random() < 0.6 else 0

    def _pick(self, blog: int, statuses: tuple[str, ...] | None = None) -> int | None:
        """A post to act on: often the newest (an editor goes on with what they just created)."""
        ids = self.content(blog, statuses=statuses)
        if not ids:
            return None
        return max(ids) if self.rng.random() < self.newest_bias else self.rng.choice(ids)

    # ------------------------------------------------------------------ actions

    def create_post(self, blog: int = 1, status: str | None = None) -> int:
        """A new post or page (the setup of a known world); returns its id."""
        return self._create(blog, status)

    def _create(self, blog: int, status: str | None = None) -> int:
        """wp_insert_post: the row, its guid, the default category, a few meta, _edit_last."""
        rng, now = self.rng, self._now()
        pid = self.site.next_id(blog, TableKind.POSTS)
        status = status or rng.choice(("draft", PUBLISH))
        post_type = rng.choice(_CONTENT_TYPES)
        parent = self._parent(blog, pid) if post_type == "page" else 0
        row = post_row(pid, post_type=post_type, post_status=status, post_title=self._text(3),
                       post_content=self._text(12), post_name=f"p-{blog}-{pid}", post_date=now, post_date_gmt=now,
                       post_modified=now, post_modified_gmt=now, guid="", post_parent=parent)
        with self._autocommit() as t:
            t.insert(blog, TableKind.POSTS, [row])
        with self._autocommit() as t:
            t.update(blog, TableKind.POSTS, [(pid, {"guid": f"http://site{blog}.test/?p={pid}"})])
        if post_type == "post":
            self._relate(blog, pid, 1)
        for key in rng.sample(_META_KEYS, rng.randint(0, 3)):
            with self._autocommit() as t:
                self._set_meta(t, blog, pid, key, self._value())
        with self._autocommit() as t:
            self._set_meta(t, blog, pid, "_edit_last", "1")
        if status == PUBLISH:
            for key in ("_pingme", "_encloseme"):
                with self._autocommit() as t:
                    self._set_meta(t, blog, pid, key, "1")
        return pid

    def _auto_draft(self, blog: int) -> None:
        """"Add New": an auto-draft row; its first real save (``_save``) makes it a post."""
        pid = self.site.next_id(blog, TableKind.POSTS)
        now = self._now()
        row = post_row(pid, post_status=AUTO_DRAFT, post_title="Auto Draft", post_name="", post_date=now,
                       post_date_gmt=None, post_modified=now, post_modified_gmt=now,
                       guid=f"http://site{blog}.test/?p={pid}")
        with self._autocommit() as t:
            t.insert(blog, TableKind.POSTS, [row])

    def _save(self, blog: int) -> None:
        """A block-editor save: the row, a revision, some meta, terms, the _edit_lock."""
        rng = self.rng
        drafts = self.auto_drafts(blog)
        pid = rng.choice(drafts) if drafts and rng.random() < 0.3 else self._pick(blog)
        if pid is None:
            return
        row, now = self.site.blogs[blog].posts[pid], self._now()
        changes: dict[str, Any] = {"post_title": self._text(3), "post_content": self._text(12),
                                   "post_modified": now, "post_modified_gmt": now}
        if row["post_status"] == AUTO_DRAFT:
            changes.update(post_status=rng.choice(("draft", PUBLISH)), post_name=f"p-{blog}-{pid}", post_date_gmt=now)
        elif row["post_status"] != TRASH and rng.random() < 0.2:
            changes["post_status"] = "draft" if row["post_status"] == PUBLISH else PUBLISH
        if row["post_status"] != AUTO_DRAFT and rng.random() < 0.15:  # a new slug: child pages' URLs move
            changes["post_name"] = f"p-{blog}-{pid}-{self.binlog.ts}"
        if row["post_type"] == "page" and rng.random() < 0.15:  # a new parent (page attributes)
            changes["post_parent"] = self._parent(blog, pid)
        with self._autocommit() as t:
            t.update(blog, TableKind.POSTS, [(pid, changes)])
        autosave = rng.random() < 0.2
        rid = self.site.next_id(blog, TableKind.POSTS)
        revision = post_row(rid, post_type="revision", post_status="inherit", post_parent=pid,
                            post_name=f"{pid}-{'autosave' if autosave else 'revision'}-v1",
                            post_title=changes["post_title"], post_content=changes["post_content"],
                            post_date=now, post_date_gmt=now, post_modified=now, post_modified_gmt=now)
        with self._autocommit() as t:
            t.insert(blog, TableKind.POSTS, [revision])
        for key in rng.sample(_META_KEYS, rng.randint(0, 3)):
            with self._autocommit() as t:
                self._set_meta(t, blog, pid, key, self._value())
        if rng.random() < 0.3:
            self._terms(blog, pid)
        with self._autocommit() as t:
            self._set_meta(t, blog, pid, "_edit_lock", f"{self.binlog.ts}:1")

    def _meta(self, blog: int) -> None:
        """A plugin's update_post_meta / delete_post_meta."""
        pid = self._pick(blog)
        if pid is None:
            return
        mine = [m for m in self.site.blogs[blog].meta_of(pid) if not m["meta_key"].startswith("_edit")]
        with self._autocommit() as t:
            if mine and self.rng.random() < 0.25:
                t.delete(blog, TableKind.POSTMETA, [self.rng.choice(mine)["meta_id"]])
            elif self.rng.random() < 0.2:  # add_post_meta: a second row of the same key
                t.insert(blog, TableKind.POSTMETA, [self._meta_row(blog, pid, self.rng.choice(_META_KEYS),
                                                                   self._value())])
            else:
                self._set_meta(t, blog, pid, self.rng.choice(_META_KEYS), self._value())

    def _heartbeat(self, blog: int) -> None:
        """The editor heartbeat: only the _edit_lock, which is bookkeeping (no event)."""
        pid = self._pick(blog)
        if pid is not None:
            with self._autocommit() as t:
                self._set_meta(t, blog, pid, "_edit_lock", f"{self.binlog.ts}:1")

    def _terms(self, blog: int, pid: int | None = None) -> None:
        """Tag or untag a post (or change its category)."""
        pid = pid if pid is not None else self._pick(blog)
        if pid is None:
            return
        tables = self.site.blogs[blog]
        have = tables.terms_of(pid)
        if have and self.rng.random() < 0.4:
            self._relate(blog, pid, self.rng.choice(have), add=False)
            return
        free = [tt for tt in tables.term_taxonomy if tt not in have]
        if free:
            self._relate(blog, pid, self.rng.choice(free))

    def _trash(self, blog: int) -> None:
        """wp_trash_post: three bookkeeping meta, the slug, then the status."""
        pid = self._pick(blog, statuses=("draft", PUBLISH))
        if pid is None:
            return
        row = self.site.blogs[blog].posts[pid]
        for key, value in (("_wp_trash_meta_status", row["post_status"]), ("_wp_trash_meta_time", str(self.binlog.ts)),
                           ("_wp_desired_post_slug", row["post_name"])):
            with self._autocommit() as t:
                self._set_meta(t, blog, pid, key, value)
        with self._autocommit() as t:
            t.update(blog, TableKind.POSTS, [(pid, {"post_name": f"{row['post_name']}__trashed"})])
        with self._autocommit() as t:
            t.update(blog, TableKind.POSTS, [(pid, {"post_status": TRASH})])

    def _untrash(self, blog: int) -> None:
        """wp_untrash_post: the status back (to draft, as WordPress 5.6+ does), the bookkeeping meta gone."""
        pid = self._pick(blog, statuses=(TRASH,))
        if pid is None:
            return
        row = self.site.blogs[blog].posts[pid]
        with self._autocommit() as t:
            t.update(blog, TableKind.POSTS, [(pid, {"post_status": "draft",
                                                    "post_name": row["post_name"].removesuffix("__trashed")})])
        for m in self.site.blogs[blog].meta_of(pid):
            if m["meta_key"].startswith("_wp_trash_meta_") or m["meta_key"] == "_wp_desired_post_slug":
                with self._autocommit() as t:
                    t.delete(blog, TableKind.POSTMETA, [m["meta_id"]])

    def _delete(self, blog: int) -> None:
        """wp_delete_post: relationships, each revision, all meta, then the post row (now and then
        of an abandoned auto-draft, as the wp_delete_auto_drafts cron does)."""
        rng = self.rng
        drafts = self.auto_drafts(blog)
        pid = rng.choice(drafts) if drafts and rng.random() < 0.2 else None
        pid = pid if pid is not None else (self._pick(blog, statuses=(TRASH,)) if rng.random() < 0.7 else None)
        pid = pid if pid is not None else self._pick(blog)
        if pid is not None:
            self.delete_post(blog, pid)

    def delete_post(self, blog: int, pid: int) -> None:
        """wp_delete_post of ``pid``: its transactions, in WordPress's order."""
        tables = self.site.blogs[blog]
        ttids = tables.terms_of(pid)
        if ttids:
            with self._autocommit() as t:
                t.delete(blog, TableKind.TERM_RELATIONSHIPS, [(pid, tt) for tt in ttids])
            self._recount(blog, ttids)
        for rid in [r for r, row in tables.posts.items() if row["post_type"] == "revision" and row["post_parent"] == pid]:
            with self._autocommit() as t:
                t.delete(blog, TableKind.POSTS, [rid])
        row = tables.posts[pid]
        for kind in ((row["post_type"],) if row["post_type"] == "page" else ()) + ("attachment",):
            # Children of a page point to its parent; attachments of any post too (one UPDATE each).
            children = [c for c, r in tables.posts.items() if r["post_parent"] == pid and r["post_type"] == kind]
            if children:
                with self._autocommit() as t:
                    t.update(blog, TableKind.POSTS, [(c, {"post_parent": row["post_parent"]}) for c in children])
        meta = [m["meta_id"] for m in tables.meta_of(pid)]
        if meta:
            with self._autocommit() as t:
                t.delete(blog, TableKind.POSTMETA, meta)
        with self._autocommit() as t:
            t.delete(blog, TableKind.POSTS, [pid])

    def _flood(self, blog: int) -> None:
        """An import plugin: 200–2000 meta rows of one post in one transaction, several rows events."""
        pid = self._pick(blog)
        if pid is None:
            return
        rng = self.rng
        rows = [self._meta_row(blog, pid, f"import_{i % 37}", f"v{i}") for i in range(rng.randint(200, 2000))]
        with self._autocommit() as t:
            while rows:
                n = rng.randint(50, 400)
                t.insert(blog, TableKind.POSTMETA, rows[:n])
                rows = rows[n:]

    def _multi(self, blog: int) -> None:
        """A plugin's BEGIN … COMMIT over several posts: rows, meta and terms interleaved."""
        rng = self.rng
        ids = self.content(blog)
        if not ids:
            return
        with self._autocommit() as t:
            for pid in rng.sample(ids, min(len(ids), rng.randint(2, 5))):
                for _ in range(rng.randint(1, 2)):
                    roll = rng.random()
                    if roll < 0.4:
                        t.update(blog, TableKind.POSTS, [(pid, {"post_excerpt": self._text(2),
                                                                "post_modified": self._now()})])
                    elif roll < 0.8:
                        self._set_meta(t, blog, pid, rng.choice(_META_KEYS), self._value())
                    else:
                        have = self.site.blogs[blog].terms_of(pid)
                        free = [tt for tt in self.site.blogs[blog].term_taxonomy if tt not in have]
                        if have and rng.random() < 0.5:
                            t.delete(blog, TableKind.TERM_RELATIONSHIPS, [(pid, rng.choice(have))])
                        elif free:
                            t.insert(blog, TableKind.TERM_RELATIONSHIPS,
                                     [{"object_id": pid, "term_taxonomy_id": rng.choice(free), "term_order": 0}])

    def _bulk(self, blog: int) -> None:
        """One UPDATE over up to 50 posts: one rows event (close comments on old posts, say)."""
        ids = sorted(self.content(blog))[:50]
        value = self.rng.choice(("open", "closed"))
        with self._autocommit() as t:
            t.update(blog, TableKind.POSTS, [(pid, {"comment_status": value}) for pid in ids])

    def _new_term(self, blog: int) -> None:
        """wp_insert_term: the term, then its taxonomy row, each its own statement."""
        term_id = self.site.next_id(blog, TableKind.TERMS)
        ttid = self.site.next_id(blog, TableKind.TERM_TAXONOMY)
        taxonomy = self.rng.choice(("post_tag", "post_tag", "category"))
        with self._autocommit() as t:
            t.insert(blog, TableKind.TERMS, [{"term_id": term_id, "name": f"Term {term_id}", "slug": f"term-{term_id}",
                                              "term_group": 0}])
        with self._autocommit() as t:
            t.insert(blog, TableKind.TERM_TAXONOMY, [{"term_taxonomy_id": ttid, "term_id": term_id,
                                                      "taxonomy": taxonomy, "description": "", "parent": 0,
                                                      "count": 0}])

    def _rename_term(self, blog: int) -> None:
        """wp_update_term: the wp_terms row (name, now and then the slug), then now and then its
        wp_term_taxonomy row (description), each its own statement."""
        rng, tables = self.rng, self.site.blogs[blog]
        tt = tables.term_taxonomy[rng.choice(sorted(tables.term_taxonomy))]
        term_id = tt["term_id"]
        changes = {"name": f"Term {term_id} {self._text(1)}"}
        if rng.random() < 0.4:
            changes["slug"] = f"term-{term_id}-{self.binlog.gtid_seq}"
        with self._autocommit() as t:
            t.update(blog, TableKind.TERMS, [(term_id, changes)])
        if rng.random() < 0.3:
            with self._autocommit() as t:
                t.update(blog, TableKind.TERM_TAXONOMY, [(tt["term_taxonomy_id"], {"description": self._text(2)})])

    def _move_term(self, blog: int) -> None:
        """wp_update_term with another parent: a category under another one, or back to the top."""
        rng, tables = self.rng, self.site.blogs[blog]
        categories = [tt for _, tt in sorted(tables.term_taxonomy.items()) if tt["taxonomy"] == "category"]
        tt = rng.choice(categories)
        parent = rng.choice([0, *(c["term_id"] for c in categories if c["term_id"] != tt["term_id"])])
        with self._autocommit() as t:
            t.update(blog, TableKind.TERM_TAXONOMY, [(tt["term_taxonomy_id"], {"parent": parent})])

    def _delete_term(self, blog: int) -> None:
        """wp_delete_term (never the default category): its children move up to its parent, each
        post loses it (the relationship, then the count), then its taxonomy row, then its term row."""
        rng, tables = self.rng, self.site.blogs[blog]
        ttids = sorted(tt for tt in tables.term_taxonomy if tt != 1)
        if not ttids:
            return
        tt = tables.term_taxonomy[rng.choice(ttids)]
        ttid, term_id = tt["term_taxonomy_id"], tt["term_id"]
        children = [c["term_taxonomy_id"] for _, c in sorted(tables.term_taxonomy.items())
                    if c["parent"] == term_id and c["taxonomy"] == tt["taxonomy"]]
        if children:
            with self._autocommit() as t:
                t.update(blog, TableKind.TERM_TAXONOMY, [(c, {"parent": tt["parent"]}) for c in children])
        for pid in sorted(oid for oid, x in tables.term_relationships if x == ttid):
            self._relate(blog, pid, ttid, add=False)
        with self._autocommit() as t:
            t.delete(blog, TableKind.TERM_TAXONOMY, [ttid])
        if not any(x["term_id"] == term_id for x in tables.term_taxonomy.values()):
            with self._autocommit() as t:
                t.delete(blog, TableKind.TERMS, [term_id])

    def _internal(self, blog: int) -> None:
        """An internal post type (an oEmbed cache row and its meta): never an event."""
        pid = self.site.next_id(blog, TableKind.POSTS)
        kind = self.rng.choice(("oembed_cache", "customize_changeset"))
        with self._autocommit() as t:
            t.insert(blog, TableKind.POSTS, [post_row(pid, post_type=kind, post_status=PUBLISH, post_name=f"x{pid}")])
        with self._autocommit() as t:
            t.insert(blog, TableKind.POSTMETA, [self._meta_row(blog, pid, "_oembed_time", str(self.binlog.ts))])

    def _noise(self, blog: int) -> None:
        """A wp_options write (a transient): only a commit reaches the reader."""
        with self._autocommit() as t:
            t.other_table()

    def _rotate(self, blog: int) -> None:
        self.binlog.rotate()

    def _gap(self, blog: int) -> None:
        """Nobody writes for a while (0–40 s of binlog time)."""
        self.binlog.tick(self.rng.randint(0, 40))


def new_world(seed: int, *, blogs: tuple[int, ...] = (1,), posts: int = 0,
              max_file_bytes: int | None = None) -> tuple[Site, Binlog, Workload]:
    """A site, its binlog and a workload seeded with ``seed``; ``posts`` created up front."""
    site = Site.wordpress(blogs)
    binlog = Binlog(site, max_file_bytes=max_file_bytes)
    workload = Workload(random.Random(seed), site, binlog)
    for i in range(posts):
        workload.create_post(blogs[i % len(blogs)])
    return site, binlog, workload


