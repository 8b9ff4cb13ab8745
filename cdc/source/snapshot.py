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

Reading a post's meta row by row costs more than everything else a backfill does (PyMySQL parses
each of ten or so rows per post in Python). On MariaDB, when the meta columns are UTF-8 text, the
chunk is one SELECT whose correlated subqueries let the server fold each post's meta and terms into
one JSON value, checked on arrival (count, characters, shape) so that nothing can be lost or
altered; a post whose aggregate is not exact (larger than ``group_concat_max_len`` or
``max_allowed_packet``, anything unexpected) has its meta and terms read row by row, in the same
transaction (``wpcdc_snapshot_aggregate_fallbacks_total``). Both paths give equal documents
(tests/integration/test_snapshot_aggregate.py).
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import Any

import orjson

from cdc.config import MysqlSettings, SnapshotSettings
from cdc.errors import SourceError
from cdc.model import PostDoc
from cdc.position import Position
from cdc.source.database import ZERO_DATES, Database, column_value
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
    fallbacks: int = 0  # posts whose meta and terms were read row by row (aggregate not exact)


# The two columns the aggregated SELECT adds to a post's row (removed before it becomes a document).
META_COLUMN, TERMS_COLUMN, ROW_COLUMN = "__wpcdc_meta", "__wpcdc_terms", "__wpcdc_row"
INTEGER_TYPES = frozenset({"tinyint", "smallint", "mediumint", "int", "bigint"})
# Text charsets in which the server's JSON is the column's text exactly (anything else: row by row).
UTF8_CHARSETS = frozenset({"utf8mb4", "utf8mb3", "utf8"})
TEXT_TYPES = frozenset({"char", "varchar", "tinytext", "text", "mediumtext", "longtext"})


class SnapshotReader:
    """Reads chunks with its own connection (one thread at a time)."""

    # group_concat_max_len for the aggregated reads (it bounds JSON_ARRAYAGG too): a post whose
    # meta is larger is read row by row. A class attribute so that tests can make it small.
    aggregate_max_bytes = 64 << 20

    def __init__(self, mysql: MysqlSettings, tables: TableNames, settings: SnapshotSettings,
                 skip_types: frozenset[str] = frozenset(), *, aggregate: bool = True, row_json: bool = True) -> None:
        self.skip_types = skip_types
        self.db = Database(mysql)
        self.tables = tables
        self.settings = settings
        self.aggregate = aggregate  # meta and terms folded by the server (False: row by row, as before)
        self.row_json = row_json  # with aggregate: post rows as JSON objects where the table allows
        self.fallbacks = 0  # posts read row by row although the chunk was aggregated
        self._aggregates: dict[int, bool] = {}
        # Per blog: the posts table's columns when every one can travel as JSON unchanged (names,
        # and those that are DATETIMEs), else None (``SELECT p.*``, parsed by PyMySQL).
        self._row_json: dict[int, tuple[tuple[str, ...], tuple[str, ...]] | None] = {}
        from pymysql.constants import FIELD_TYPE

        from cdc.source.decoding import sql_conversions

        self._datetime = sql_conversions()[FIELD_TYPE.DATETIME]  # the very conversion SELECT p.* gets
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
            limit = self.settings.chunk_size if ids is None else len(ids)
            fallbacks = 0
            if self._can_aggregate(blog):
                rows = self.db.query(self._aggregate_sql(blog, where), [*args, limit])
                shape = self._row_json.get(blog)
                if shape is not None:
                    rows = self._rows_from_json(rows, *shape) or self.db.query(
                        # A row the server could not give as JSON (over max_allowed_packet):
                        # the chunk again, its post rows parsed by PyMySQL.
                        self._aggregate_sql(blog, where, row_json=False), [*args, limit])
                meta, terms, redo = unpack_aggregates(rows)
                if redo:
                    # Not exact from the server (too large, or anything unexpected): these posts'
                    # meta and terms row by row, in the same consistent snapshot.
                    fallbacks = len(redo)
                    m, t = self._meta_and_terms(blog, redo)
                    meta.update(m)
                    terms.update(t)
            else:
                rows = self.db.query(
                    f"SELECT * FROM {self._table(blog, TableKind.POSTS)} WHERE {where} ORDER BY ID LIMIT %s",
                    [*args, limit],
                )
                meta, terms = self._meta_and_terms(blog, [int(r["ID"]) for r in rows])
            ids = [int(r["ID"]) for r in rows]
        finally:
            self.db.query("COMMIT")
        docs = tuple(
            PostDoc(blog, _row_value(r), tuple(meta[int(r["ID"])]),
                    tuple(terms[int(r["ID"])]))
            for r in rows
        )
        n_rows = len(rows) + sum(len(d.meta) + len(d.term_taxonomy_ids) for d in docs)
        self._spend(n_rows)
        self.fallbacks += fallbacks
        return SnapshotChunk(blog, position, docs, ids[-1] if ids else after_id, n_rows,
                             exhausted=len(rows) < self.settings.chunk_size, exact=exact, fallbacks=fallbacks)

    def _meta_and_terms(self, blog: int, ids: list[int]) -> tuple[dict[int, list[dict[str, Any]]], dict[int, list[int]]]:
        """The posts' meta rows and term_taxonomy ids, row by row (each in ID order)."""
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
        return meta, terms

    def _can_aggregate(self, blog: int) -> bool:
        """Whether the server can fold this blog's meta and terms exactly: MariaDB 10.5 or later
        (JSON_ARRAYAGG with ORDER BY; MySQL's has no ORDER BY and is not tested here) and
        ``meta_key``/``meta_value`` text in a UTF-8 charset (a BLOB or latin1 meta column would
        not come back as the same value through JSON). Asked once per blog; sets the session's
        ``group_concat_max_len`` (again per chunk: a reconnect resets it, and a smaller limit
        only means more fallbacks, never a wrong value)."""
        if not self.aggregate:
            return False
        ok = self._aggregates.get(blog)
        if ok is None:
            flavor = self.db.flavor
            ok = flavor.is_mariadb and flavor.version >= (10, 5, 0)
            if ok:
                cols = self.db.query(
                    "SELECT COLUMN_NAME AS c, DATA_TYPE AS t, CHARACTER_SET_NAME AS cs FROM information_schema.COLUMNS "
                    "WHERE TABLE_SCHEMA = %s AND TABLE_NAME = %s AND COLUMN_NAME IN ('meta_key', 'meta_value')",
                    (self.db.settings.database, self.tables.name(blog, TableKind.POSTMETA)))
                ok = len(cols) == 2 and all(str(c["t"]).lower() in TEXT_TYPES and str(c["cs"]).lower() in UTF8_CHARSETS
                                            for c in cols)
            if not ok:
                log.info("backfill: blog %d's meta is read row by row (server %s, or meta columns not UTF-8 text)",
                         blog, ".".join(map(str, flavor.version)))
            self._aggregates[blog] = ok
            self._row_json[blog] = self._row_shape(blog) if ok and self.row_json else None
        if ok:
            self.db.query(f"SET SESSION group_concat_max_len = {int(self.aggregate_max_bytes)}")
        return ok

    def _row_shape(self, blog: int) -> tuple[tuple[str, ...], tuple[str, ...]] | None:
        """The posts table's columns and its DATETIME columns, when the server can give a row as
        one JSON object that becomes exactly the row ``SELECT *`` gives: integers, UTF-8 text and
        DATETIMEs without fractions only (WordPress's own columns). A plugin's column of any other
        type (DECIMAL, BLOB, TIMESTAMP, …): None, and rows are parsed by PyMySQL as before."""
        cols = self.db.query(
            "SELECT COLUMN_NAME AS c, DATA_TYPE AS t, CHARACTER_SET_NAME AS cs, DATETIME_PRECISION AS fsp "
            "FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = %s AND TABLE_NAME = %s ORDER BY ORDINAL_POSITION",
            (self.db.settings.database, self.tables.name(blog, TableKind.POSTS)))
        names, datetimes = [], []
        for c in cols:
            kind = str(c["t"]).lower()
            if kind == "datetime" and not c["fsp"]:
                datetimes.append(str(c["c"]))
            elif not (kind in INTEGER_TYPES or (kind in TEXT_TYPES and str(c["cs"]).lower() in UTF8_CHARSETS)):
                return None
            names.append(str(c["c"]))
        if "ID" not in names or any(ch in n for n in names for ch in "'`\\"):
            return None  # (a name that would need quoting inside the SQL string literal)
        return tuple(names), tuple(datetimes)

    def _rows_from_json(self, rows: list[dict[str, Any]], names: tuple[str, ...],
                        datetimes: tuple[str, ...]) -> list[dict[str, Any]] | None:
        """The post rows of the aggregated SELECT, each from its JSON object: the dict ``SELECT *``
        gives (same keys in the same order, same values and types; DATETIME text through the
        connection's own conversion), with the meta and terms columns; None if any row is not
        such an object."""
        convert = self._datetime
        out = []
        for r in rows:
            try:
                row = orjson.loads(r[ROW_COLUMN])
            except (orjson.JSONDecodeError, TypeError):
                return None
            if type(row) is not dict or tuple(row) != names:
                return None
            for name in datetimes:
                value = row[name]
                if value is not None:
                    row[name] = convert(value)
            row[META_COLUMN] = r[META_COLUMN]
            row[TERMS_COLUMN] = r[TERMS_COLUMN]
            out.append(row)
        return out

    def _aggregate_sql(self, blog: int, where: str, row_json: bool = True) -> str:
        """The chunk's posts, each with its meta and terms folded by the server into one JSON
        value: ``[count, characters, [[meta_id, meta_key, meta_value], …]]`` and ``[count,
        [term_taxonomy_id, …]]`` (each in ID order), the count and characters to check the
        aggregate on arrival. Correlated subqueries: one index range per post, for the posts of
        the chunk only."""
        pm = self._table(blog, TableKind.POSTMETA)
        tr = self._table(blog, TableKind.TERM_RELATIONSHIPS)
        shape = self._row_json.get(blog) if row_json else None
        if shape is not None:
            # The row as one JSON object: one value for PyMySQL to parse instead of 23.
            pairs = ", ".join(f"'{n}', p.`{n}`" for n in shape[0])
            columns = f"JSON_OBJECT({pairs}) AS `{ROW_COLUMN}`"
        else:
            columns = "p.*"
        return (
            f"SELECT {columns}, "
            f"(SELECT JSON_ARRAY(COUNT(*), "
            f"SUM(COALESCE(CHAR_LENGTH(m.meta_key), 0) + COALESCE(CHAR_LENGTH(m.meta_value), 0)), "
            f"JSON_ARRAYAGG(JSON_ARRAY(m.meta_id, m.meta_key, m.meta_value) ORDER BY m.meta_id)) "
            f"FROM {pm} m WHERE m.post_id = p.ID) AS `{META_COLUMN}`, "
            f"(SELECT JSON_ARRAY(COUNT(*), JSON_ARRAYAGG(t.term_taxonomy_id ORDER BY t.term_taxonomy_id)) "
            f"FROM {tr} t WHERE t.object_id = p.ID) AS `{TERMS_COLUMN}` "
            f"FROM {self._table(blog, TableKind.POSTS)} p WHERE {where} ORDER BY p.ID LIMIT %s"
        )

    def reread(self, blog: int, post_ids: list[int]) -> SnapshotChunk:
        """A fresh snapshot of a few posts (those a concurrent change made stale)."""
        return self.read_chunk(blog, 0, ids=post_ids)

    def _throttle(self) -> None:
        if self.settings.rows_per_second and self._budget_at > time.monotonic():
            time.sleep(self._budget_at - time.monotonic())

    def _spend(self, rows: int) -> None:
        if self.settings.rows_per_second:
            self._budget_at = max(self._budget_at, time.monotonic()) + rows / self.settings.rows_per_second


def _row_value(row: dict[str, Any]) -> dict[str, Any]:
    """The row as a document holds it (``column_value`` of each value): the row itself when no
    value is a zero-date text, which one set operation in C tells (nearly every row), instead of a
    call per column."""
    try:
        if ZERO_DATES.isdisjoint(row.values()):
            return row
    except TypeError:  # an unhashable value: let column_value look at each
        pass
    return {k: column_value(v) for k, v in row.items()}


def unpack_aggregates(rows: list[dict[str, Any]]) -> tuple[dict[int, list[dict[str, Any]]], dict[int, list[int]], list[int]]:
    """(meta rows by post, term ids by post, posts whose aggregate is not exact) of the
    aggregated SELECT's rows, whose two added columns are removed from each row. Meta rows are
    the dicts the row-by-row SELECT gives (``meta_id``, ``post_id``, ``meta_key``,
    ``meta_value``)."""
    meta: dict[int, list[dict[str, Any]]] = {}
    terms: dict[int, list[int]] = {}
    redo: list[int] = []
    for r in rows:
        pid = int(r["ID"])
        m = _meta_rows(pid, r.pop(META_COLUMN))
        t = _term_ids(r.pop(TERMS_COLUMN))
        if m is None or t is None:
            redo.append(pid)
            continue
        meta[pid] = m
        terms[pid] = t
    return meta, terms, redo


def _meta_rows(post_id: int, text: Any) -> list[dict[str, Any]] | None:
    """A post's meta rows from ``[count, characters, [[id, key, value], …]]``, or None unless
    the aggregate holds exactly ``count`` well-formed rows of ``characters`` characters (a value
    cut by ``group_concat_max_len``, a NULL for a result over ``max_allowed_packet``, anything
    not JSON fails one of the checks)."""
    try:
        count, chars, items = orjson.loads(text)
    except (orjson.JSONDecodeError, TypeError, ValueError):
        return None
    if count == 0:
        return [] if items is None else None
    if type(items) is not list or len(items) != count:
        return None
    out = []
    seen = 0
    for item in items:
        if type(item) is not list or len(item) != 3:
            return None
        meta_id, key, value = item
        if type(meta_id) is not int:
            return None
        if key is not None:
            if type(key) is not str:
                return None
            seen += len(key)
        if value is not None:
            if type(value) is not str:
                return None
            seen += len(value)
        out.append({"meta_id": meta_id, "post_id": post_id, "meta_key": key, "meta_value": value})
    return out if seen == chars else None


def _term_ids(text: Any) -> list[int] | None:
    """A post's term_taxonomy ids from ``[count, [id, …]]``, or None unless exact."""
    try:
        count, ids = orjson.loads(text)
    except (orjson.JSONDecodeError, TypeError, ValueError):
        return None
    if count == 0:
        return [] if ids is None else None
    if type(ids) is not list or len(ids) != count or any(type(i) is not int for i in ids):
        return None
    return ids
