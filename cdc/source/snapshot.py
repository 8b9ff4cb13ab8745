"""Snapshot reading: every existing post, in consistent chunks whose binlog position is known
(the source side of a backfill; cdc/backfill.py feeds the chunks into the session).

A consumer that starts empty (a new search index, a new cache) needs the posts that exist, not
only the changes from now on. The snapshot reads ``{prefix}posts`` by keyset pagination on
``ID``; each chunk is read inside ``START TRANSACTION WITH CONSISTENT SNAPSHOT`` with the binlog
position of that snapshot, together with the chunk's meta and terms, so each post becomes one
complete document stamped with a position comparable to the stream's (its ``seq``). The
assembler then decides, post by post, whether the document is news (see
``Assembler.on_snapshot`` and docs/design.md).

Progress (the last ID per blog) travels in the checkpoint, in the same Kafka transaction as the
snapshot events, so a killed backfill resumes where it stood.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import Any

from cdc.config import MysqlSettings, SnapshotSettings
from cdc.errors import SourceError
from cdc.model import PostDoc
from cdc.position import Position
from cdc.source.database import Database, column_value
from cdc.wordpress import TableKind, TableNames

log = logging.getLogger(__name__)


@dataclass
class SnapshotProgress:
    """Where a snapshot stands: carried in the checkpoint (``snapshot`` field)."""

    id: str
    blogs: list[int]
    last_id: dict[int, int] = field(default_factory=dict)
    done_blogs: list[int] = field(default_factory=list)
    rereads: dict[int, list[int]] = field(default_factory=dict)  # stale documents to read again, per blog
    # A repair (``wpcdc verify --repair``): exactly these posts per blog, in ID order. Kept in the
    # checkpoint, so a connector that resumes an interrupted repair reads these and no others.
    ids: dict[int, list[int]] | None = None
    posts_done: int = 0
    total: int = 0
    started_ms: int = 0
    finished_ms: int | None = None

    @property
    def done(self) -> bool:
        return self.finished_ms is not None

    def as_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            # Copies: the checkpoint is encoded later, while the backfill task goes on appending.
            "blogs": list(self.blogs),
            "last_id": {str(b): i for b, i in self.last_id.items()},
            "done_blogs": list(self.done_blogs),
            "rereads": {str(b): list(ids) for b, ids in self.rereads.items() if ids},
            "posts_done": self.posts_done,
            "total": self.total,
            "started_ms": self.started_ms,
            "finished_ms": self.finished_ms,
        } | ({} if self.ids is None else {"ids": {str(b): list(ids) for b, ids in self.ids.items()}})

    @classmethod
    def from_dict(cls, doc: dict[str, Any]) -> SnapshotProgress:
        return cls(
            id=str(doc["id"]),
            blogs=[int(b) for b in doc["blogs"]],
            last_id={int(b): int(i) for b, i in doc.get("last_id", {}).items()},
            done_blogs=[int(b) for b in doc.get("done_blogs", [])],
            rereads={int(b): [int(i) for i in ids] for b, ids in (doc.get("rereads") or {}).items()},
            posts_done=int(doc.get("posts_done", 0)),
            total=int(doc.get("total", 0)),
            started_ms=int(doc.get("started_ms", 0)),
            finished_ms=doc.get("finished_ms"),
            ids=None if doc.get("ids") is None else {int(b): [int(i) for i in ids] for b, ids in doc["ids"].items()},
        )


@dataclass(frozen=True, slots=True)
class SnapshotChunk:
    blog_id: int
    position: Position
    docs: tuple[PostDoc, ...]
    last_id: int  # keyset cursor after this chunk
    rows_read: int
    exhausted: bool  # no more posts after this chunk in this blog
    # False when ``position`` is only a lower bound of the snapshot (MySQL, with commits between
    # reading the position and starting the snapshot): see Assembler.on_snapshot.
    exact: bool = True


class SnapshotReader:
    """Reads chunks with its own connection (one thread at a time)."""

    def __init__(self, mysql: MysqlSettings, tables: TableNames, settings: SnapshotSettings,
                 skip_types: frozenset[str] = frozenset()) -> None:
        self.skip_types = skip_types
        self.db = Database(mysql)
        self.tables = tables
        self.settings = settings
        self._budget_at = time.monotonic()

    def close(self) -> None:
        self.db.close()

    def blogs(self) -> list[int]:
        found = self.db.blog_ids(self.tables)
        wanted = self.settings.blog_ids
        return [b for b in found if wanted is None or b in wanted]

    def count(self, blogs: list[int]) -> int:
        total = 0
        for blog in blogs:
            where, args = self._filter(0)
            table = self._table(blog, TableKind.POSTS)
            total += int(self.db.query(f"SELECT COUNT(*) AS n FROM {table} WHERE {where}", args)[0]["n"])
        return total

    def _table(self, blog: int, kind: TableKind) -> str:
        return f"`{self.db.settings.database}`.`{self.tables.name(blog, kind)}`"

    def _filter(self, after_id: int, scoped: bool = True) -> tuple[str, list[Any]]:
        """The WHERE clause: after the cursor, what the capture policy keeps and, when ``scoped``,
        what the --snapshot-* options ask for (posts asked for by ID are read whatever those say)."""
        s = self.settings
        clauses = ["ID > %s"]
        args: list[Any] = [max(after_id, s.id_min - 1) if scoped else after_id]
        if s.id_max is not None and scoped:
            clauses.append("ID <= %s")
            args.append(s.id_max)
        if s.post_types and scoped:
            clauses.append("post_type IN (" + ",".join(["%s"] * len(s.post_types)) + ")")
            args.extend(sorted(s.post_types))
        if self.skip_types:
            # Revisions are often most of wp_posts: not reading them is most of a backfill's speed.
            clauses.append("post_type NOT IN (" + ",".join(["%s"] * len(self.skip_types)) + ")")
            args.extend(sorted(self.skip_types))
        clauses.append("post_status <> 'auto-draft'")
        return " AND ".join(clauses), args

    def _position(self) -> Position:
        """The binlog position of the snapshot just started in this transaction."""
        flavor = self.db.flavor
        if flavor.is_mariadb:
            rows = {r["Variable_name"]: r["Value"] for r in self.db.query("SHOW STATUS LIKE 'binlog_snapshot_%%'")}
            return Position(str(rows["Binlog_snapshot_file"]), int(rows["Binlog_snapshot_position"]))
        raise SourceError("internal: MySQL positions are read before the snapshot starts")

    def read_chunk(self, blog: int, after_id: int, ids: list[int] | None = None) -> SnapshotChunk:
        """The next chunk after ``after_id`` (or exactly the posts ``ids`` among those after it, the
        --snapshot-* filters aside: they were chosen already), consistently."""
        self._throttle()
        flavor = self.db.flavor
        before: Position | None = None
        if not flavor.is_mariadb:
            # MySQL has no position tied to the snapshot; one read just before it is a lower
            # bound: rows committed in between are in the snapshot *and* replayed by the stream
            # after it, which is harmless (events carry absolute values) and never loses one.
            before, _ = self.db.current_position()
        # A consistent snapshot spans statements only under REPEATABLE READ, whatever the server's
        # default isolation level is.
        self.db.query("SET SESSION TRANSACTION ISOLATION LEVEL REPEATABLE READ")
        self.db.query("START TRANSACTION WITH CONSISTENT SNAPSHOT")
        exact = True
        try:
            if before is not None:
                # Unchanged after the snapshot started: nothing committed in between, so the
                # snapshot is exactly at ``before``.
                exact = self.db.current_position()[0] == before
            position = before or self._position()
            where, args = self._filter(after_id, scoped=ids is None)
            if ids is not None:
                where += " AND ID IN (" + ",".join(["%s"] * len(ids)) + ")"
                args = [*args, *ids]
            rows = self.db.query(
                f"SELECT * FROM {self._table(blog, TableKind.POSTS)} WHERE {where} ORDER BY ID LIMIT %s",
                [*args, self.settings.chunk_size if ids is None else len(ids)],
            )
            ids = [int(r["ID"]) for r in rows]
            meta: dict[int, list[dict[str, Any]]] = {i: [] for i in ids}
            terms: dict[int, list[int]] = {i: [] for i in ids}
            if ids:
                marks = ",".join(["%s"] * len(ids))
                for m in self.db.query(
                    f"SELECT meta_id, post_id, meta_key, meta_value FROM {self._table(blog, TableKind.POSTMETA)} "
                    f"WHERE post_id IN ({marks}) ORDER BY meta_id", ids,
                ):
                    meta[int(m["post_id"])].append(m)
                for t in self.db.query(
                    f"SELECT object_id, term_taxonomy_id FROM {self._table(blog, TableKind.TERM_RELATIONSHIPS)} "
                    f"WHERE object_id IN ({marks}) ORDER BY term_taxonomy_id", ids,
                ):
                    terms[int(t["object_id"])].append(int(t["term_taxonomy_id"]))
        finally:
            self.db.query("COMMIT")
        docs = tuple(
            PostDoc(blog, {k: column_value(v) for k, v in r.items()}, tuple(meta[int(r["ID"])]),
                    tuple(terms[int(r["ID"])]))
            for r in rows
        )
        n_rows = len(rows) + sum(len(d.meta) + len(d.term_taxonomy_ids) for d in docs)
        self._spend(n_rows)
        return SnapshotChunk(blog, position, docs, ids[-1] if ids else after_id, n_rows,
                             exhausted=len(rows) < self.settings.chunk_size, exact=exact)

    def reread(self, blog: int, post_ids: list[int]) -> SnapshotChunk:
        """A fresh snapshot of a few posts (those a concurrent change made stale)."""
        return self.read_chunk(blog, 0, ids=post_ids)

    def _throttle(self) -> None:
        if self.settings.rows_per_second and self._budget_at > time.monotonic():
            time.sleep(self._budget_at - time.monotonic())

    def _spend(self, rows: int) -> None:
        if self.settings.rows_per_second:
            self._budget_at = max(self._budget_at, time.monotonic()) + rows / self.settings.rows_per_second
