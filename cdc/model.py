"""The values that flow between the stages: the data model of the pipeline.

Source → assembly: rows (``RowChange`` in ``RowsBatch``), transaction ends (``Commit``), quiet
moments (``Idle``) and backfill documents (``PostDoc``). Assembly → events: one ``PostChange``
per closed change of a post, with its ``MetaDelta``s, ``Term``s and ``RevisionNote``s. The source
turns binlog events into these, and nothing downstream ever sees a mysql-replication type: that
keeps normalize/assemble testable with plain dicts and the library replaceable.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from cdc.position import Position
from cdc.wordpress import POST_COLUMN, WpTable

Row = dict[str, Any]
ABSENT: Any = type("Absent", (), {"__repr__": lambda self: "ABSENT"})()
"""A row that did not exist (as opposed to a NULL value)."""
PostKey = tuple[int, int]
"""(blog_id, post_id): the unit of ordering and the Kafka key."""


@dataclass(frozen=True, slots=True)
class TxnRef:
    """The binlog transaction a row belongs to.

    ``start`` is where a reader must begin to see this transaction whole (its GTID/BEGIN event),
    ``prev_gtid`` the server's GTID state just before it: together they are a resume point.
    """

    start: Position
    gtid: str | None
    prev_gtid: str | None


@dataclass(frozen=True, slots=True)
class RowChange:
    """One row of one WordPress table changed, as the binlog says.

    ``position`` is the end of the rows event that carried the row: rows of one statement share
    it, and it is what a post event's ``seq`` and the checkpoint's per-post marks are made of.
    """

    table: WpTable
    op: str  # "insert" | "update" | "delete"
    before: Row | None
    after: Row | None
    position: Position
    txn: TxnRef
    ts: int  # binlog timestamp, seconds

    @property
    def row(self) -> Row:
        """The newest image of the row (after, or before for a delete)."""
        return self.after if self.after is not None else self.before  # type: ignore[return-value]

    @property
    def post_id(self) -> int | None:
        """The post the row belongs to; None for term tables (a term belongs to no post)."""
        column = POST_COLUMN.get(self.table.kind)
        return None if column is None else int(self.row[column])


@dataclass(frozen=True, slots=True)
class RowsBatch:
    """The rows of one binlog rows event: the assembler only cuts between batches."""

    changes: tuple[RowChange, ...]
    position: Position
    txn: TxnRef
    # When the reader read it (time.monotonic; 0.0: not known). The window of its posts counts
    # from here, not from when the pipeline got to it after a Kafka write (cdc/clock.py).
    received: float = field(default=0.0, compare=False)


@dataclass(frozen=True, slots=True)
class Commit:
    """A transaction ended: ``end`` is the first position after it, a safe place to resume.

    ``rotate``: no transaction ended, the binlog moved on to the next file (its ``ts`` is when
    the previous file was closed, what the server's expiry counts from; 0 for the rotation the
    server announces when a connection starts).
    """

    end: Position
    gtid: str | None
    ts: int
    rotate: bool = False


@dataclass(frozen=True, slots=True)
class Idle:
    """The source has nothing new: it is caught up at ``position`` (with GTID state ``gtid``).

    Outside a transaction that position is a safe resume point even when no transaction ended
    there (after a rotation, the new file's header events): see Assembler.on_idle.
    """

    position: Position | None
    gtid: str | None = None
    at: float = 0.0  # wall time the heartbeat arrived (0: unknown): the source was caught up then


@dataclass(frozen=True, slots=True)
class SettingsWritten:
    """Rows events wrote these blogs' options tables, or the users table (``users``).

    Seen by table name only, their rows never decoded (an options table holds big serialized
    values and is written on most requests): the few options a link needs are read again before
    the next events are built (cdc/links.py).
    """

    blogs: frozenset[int]
    users: bool = False


@dataclass(frozen=True, slots=True)
class PostDoc:
    """One post as a backfill snapshot saw it: the row, every meta row, every term_taxonomy id."""

    blog_id: int
    row: Row
    meta: tuple[Row, ...]
    term_taxonomy_ids: tuple[int, ...]

    @property
    def post_id(self) -> int:
        return int(self.row["ID"])


@dataclass(frozen=True, slots=True)
class Term:
    term_taxonomy_id: int
    taxonomy: str | None
    term_id: int | None
    slug: str | None
    name: str | None

    def as_dict(self) -> dict[str, Any]:
        return {
            "term_taxonomy_id": self.term_taxonomy_id,
            "taxonomy": self.taxonomy,
            "term_id": self.term_id,
            "slug": self.slug,
            "name": self.name,
        }


@dataclass(frozen=True, slots=True)
class MetaDelta:
    """One meta row's net change over the window: ``op`` says whether the row was added,
    updated or deleted (a NULL value is a value: ``before``/``after`` alone cannot say)."""

    meta_id: int
    key: str
    before: Any
    after: Any
    op: str  # add | update | delete

    @classmethod
    def between(cls, meta_id: int, key: str, before: Any, after: Any) -> MetaDelta:
        """From values where ABSENT means the row did not exist."""
        if before is ABSENT:
            return cls(meta_id, key, None, after, "add")
        if after is ABSENT:
            return cls(meta_id, key, before, None, "delete")
        return cls(meta_id, key, before, after, "update")


@dataclass(frozen=True, slots=True)
class RevisionNote:
    revision_id: int
    autosave: bool


@dataclass(frozen=True, slots=True)
class PostChange:
    """The net change of one post over one window; events.build turns it into a PostEvent.

    ``before``/``after`` are full wp_posts rows. When no posts row was written in the window
    (a meta-only change) they come from the row cache, which is exact because every later change
    to a cached row would have passed through here; ``row_known`` is False when even the cache
    had nothing, and the pipeline then reads the row from the database.
    """

    blog_id: int
    post_id: int
    inserted: bool
    deleted: bool
    before: Row | None
    after: Row | None
    row_known: bool
    posts_row_changed: bool
    meta: tuple[MetaDelta, ...]
    terms_added: tuple[Term, ...]
    terms_removed: tuple[Term, ...]
    revisions: tuple[RevisionNote, ...]
    first_pos: Position
    last_pos: Position
    gtid: str | None
    ts: int
    rows: int
    snapshot: bool = False

    @property
    def key(self) -> PostKey:
        return (self.blog_id, self.post_id)


def fold_into(earlier: PostChange, later: PostChange) -> PostChange:
    """One change out of two consecutive ones of the same post (``earlier``'s rows all before
    ``later``'s): the net meta, terms and revisions over both, ``later``'s row and outcome.

    Used when a meta-only change whose post is gone meets, in the same flush, the change that
    deleted the post: they become one delete.
    """
    meta: dict[int, list[Any]] = {}
    for m in earlier.meta:
        meta[m.meta_id] = [m.key, ABSENT if m.op == "add" else m.before, ABSENT if m.op == "delete" else m.after]
    for m in later.meta:
        entry = meta.get(m.meta_id)
        after = ABSENT if m.op == "delete" else m.after
        if entry is None:
            meta[m.meta_id] = [m.key, ABSENT if m.op == "add" else m.before, after]
        else:
            entry[0], entry[2] = m.key, after
    net = tuple(MetaDelta.between(mid, k, b, a) for mid, (k, b, a) in meta.items()
                if (b is ABSENT) != (a is ABSENT) or (b is not ABSENT and b != a))
    terms: dict[int, tuple[int, Term]] = {}
    for change in (earlier, later):
        for sign, group in ((1, change.terms_added), (-1, change.terms_removed)):
            for t in group:
                n = terms.get(t.term_taxonomy_id, (0, t))[0] + sign
                terms[t.term_taxonomy_id] = (n, t)
    revisions = {r.revision_id: r for r in (*earlier.revisions, *later.revisions)}
    return PostChange(
        blog_id=later.blog_id, post_id=later.post_id, inserted=earlier.inserted or later.inserted,
        deleted=later.deleted, before=later.before if later.posts_row_changed else earlier.before,
        after=later.after, row_known=later.row_known, posts_row_changed=later.posts_row_changed,
        meta=net, terms_added=tuple(t for n, t in terms.values() if n > 0),
        terms_removed=tuple(t for n, t in terms.values() if n < 0), revisions=tuple(revisions.values()),
        first_pos=earlier.first_pos, last_pos=later.last_pos, gtid=later.gtid, ts=later.ts,
        rows=earlier.rows + later.rows,
    )


def gone(change: PostChange) -> PostChange:
    """``change`` as the delete of a post that is not in the database: its rows can wait for no
    delete row (see Assembler.reopen), so the stream says the post is gone (``before`` unknown)."""
    return PostChange(
        blog_id=change.blog_id, post_id=change.post_id, inserted=False, deleted=True, before=None, after=None,
        row_known=True, posts_row_changed=False, meta=change.meta, terms_added=change.terms_added,
        terms_removed=change.terms_removed, revisions=change.revisions, first_pos=change.first_pos,
        last_pos=change.last_pos, gtid=change.gtid, ts=change.ts, rows=change.rows,
    )
