"""The SQL side of the source: server facts, the current position, term names, post rows.

Every pymysql error is mapped here to a SourceError whose message names the server and what to
check, so no caller handles a driver exception.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Iterable, Iterator
from typing import Any

import pymysql
import pymysql.cursors

from cdc.config import MysqlSettings
from cdc.errors import SourceError, SourceUnreachableError
from cdc.position import Position
from cdc.source import decoding
from cdc.source.flavor import Flavor
from cdc.wordpress import SettingsKind, TableKind, TableNames

log = logging.getLogger(__name__)

ZERO_DATES = {"0000-00-00 00:00:00", "0000-00-00"}
# Connection failures that say nothing about the settings: no answer (2002, 2003: refused, timed
# out, no such host yet), a connection dropped during the handshake (2006, 2013), a server
# starting or stopping (1053, 1927) or full (1040, 1203). Anything else (a refused login, an
# unknown database, a host not allowed, a certificate not trusted) stays wrong until someone
# changes a setting.
UNREACHABLE = frozenset({2002, 2003, 2006, 2013, 1040, 1053, 1203, 1927})
_TLS_REFUSED = ("CERTIFICATE_VERIFY_FAILED", "WRONG_VERSION_NUMBER", "certificate", "hostname mismatch")


def connect(settings: MysqlSettings, *, database: str | None = None) -> pymysql.connections.Connection:
    try:
        return pymysql.connect(
            **settings.pymysql_kwargs(),
            database=database,
            autocommit=True,
            cursorclass=pymysql.cursors.DictCursor,
            # Rows read here (a meta-only change's post row, a backfill) must equal rows from the
            # binlog: the same odd dates, BITs as integers, TIMESTAMPs in UTC as the binlog has them.
            conv=decoding.sql_conversions(),
            init_command="SET time_zone = '+00:00'",
        )
    except pymysql.err.OperationalError as exc:
        code = exc.args[0] if exc.args else 0
        where = f"{settings.user}@{settings.host}:{settings.port}"
        if code == 1045:
            raise SourceError(f"MySQL refused the login {where}: check --mysql-user and the password") from None
        if code == 1049:
            raise SourceError(f"database {database!r} does not exist on {settings.host}:{settings.port}") from None
        message = f"cannot connect to MySQL at {settings.host}:{settings.port}: {exc.args[-1]}"
        if code in UNREACHABLE and not any(t in str(exc.args[-1]) for t in _TLS_REFUSED):
            raise SourceUnreachableError(message) from None
        raise SourceError(message) from None


class Database:
    """A small control connection, used from one thread at a time."""

    def __init__(self, settings: MysqlSettings) -> None:
        self.settings = settings
        self._conn: pymysql.connections.Connection | None = None
        self._flavor: Flavor | None = None

    def _c(self) -> pymysql.connections.Connection:
        if self._conn is None or not self._conn.open:
            self._conn = connect(self.settings)
        return self._conn

    def query(self, sql: str, args: Iterable[Any] | None = None) -> list[dict[str, Any]]:
        try:
            with self._c().cursor() as cur:
                cur.execute(sql, args)
                return list(cur.fetchall())
        except pymysql.err.OperationalError as exc:
            self.close()
            raise SourceError(f"MySQL query failed ({exc.args[-1]}): {sql.split()[0]} …") from None

    def close(self) -> None:
        if self._conn is not None:
            try:
                self._conn.close()
            except Exception:  # noqa: BLE001 - closing a broken socket may fail; nothing to do
                pass
            self._conn = None

    @property
    def flavor(self) -> Flavor:
        if self._flavor is None:
            version = self.query("SELECT VERSION() AS v")[0]["v"]
            self._flavor = Flavor.from_version(version)
        return self._flavor

    def variable(self, name: str) -> str | None:
        rows = self.query("SHOW GLOBAL VARIABLES LIKE %s", (name,))
        return str(rows[0]["Value"]) if rows else None

    def current_position(self) -> tuple[Position, str | None]:
        rows = self.query(self.flavor.binlog_status_sql)
        if not rows:
            raise SourceError("the server reports no binary log: set log_bin and restart MySQL")
        row = rows[0]
        gtid = self.query(self.flavor.gtid_position_sql + " AS g")[0]["g"] or None
        return Position(row["File"], int(row["Position"])), gtid

    def binlogs(self) -> dict[str, int]:
        """Binlog files still on the server and their sizes."""
        return {r["Log_name"]: int(r["File_size"]) for r in self.query("SHOW BINARY LOGS")}

    def binlog_events(self, file: str, page: int = 5_000) -> Iterator[dict[str, Any]]:
        """``SHOW BINLOG EVENTS`` of one file, in order, a page at a time (each page starts at the
        previous page's last event end, so the server never rescans the file from its start)."""
        at = 4
        while True:
            rows = self.query(f"SHOW BINLOG EVENTS IN %s FROM {int(at)} LIMIT {int(page)}", (file,))
            yield from rows
            if len(rows) < page:
                return
            at = int(rows[-1]["End_log_pos"])

    def binlog_events_at(self, position: Position, count: int = 2) -> list[dict[str, Any]]:
        """``SHOW BINLOG EVENTS`` from ``position`` on, at most ``count`` of them ([] when the
        server refuses the position: the walk over the whole file then says why)."""
        try:
            return self.query(f"SHOW BINLOG EVENTS IN %s FROM {int(position.pos)} LIMIT {int(count)}",
                              (position.file,))
        except (SourceError, pymysql.err.MySQLError) as exc:
            log.debug("SHOW BINLOG EVENTS FROM %s refused (%s): walking the file instead", position, exc)
            return []

    def blog_ids(self, tables: TableNames) -> list[int]:
        names = self.query(
            "SELECT TABLE_NAME AS t FROM information_schema.TABLES WHERE TABLE_SCHEMA = %s",
            (self.settings.database,),
        )
        ids = set()
        for r in names:
            parsed = tables.parse(r["t"])
            if parsed and parsed.kind is TableKind.POSTS:
                ids.add(parsed.blog_id)
        return sorted(ids)

    def term_rows(self, tables: TableNames, blog_id: int) -> list[dict[str, Any]]:
        db = self.settings.database
        tt = tables.name(blog_id, TableKind.TERM_TAXONOMY)
        t = tables.name(blog_id, TableKind.TERMS)
        return self.query(
            f"SELECT tt.term_taxonomy_id, tt.term_id, tt.taxonomy, tt.parent, tt.description, tt.count, t.slug, "
            f"t.name FROM `{db}`.`{tt}` tt JOIN `{db}`.`{t}` t ON t.term_id = tt.term_id"
        )

    def term_posts(self, tables: TableNames, blog_id: int, term_taxonomy_id: int, limit: int) -> list[int]:
        """Up to ``limit`` object ids that have the term now (``--term-fanout``), smallest first."""
        table = tables.name(blog_id, TableKind.TERM_RELATIONSHIPS)
        rows = self.query(f"SELECT object_id FROM `{self.settings.database}`.`{table}` WHERE term_taxonomy_id = %s "
                          "ORDER BY object_id LIMIT %s", (term_taxonomy_id, limit))
        return [int(r["object_id"]) for r in rows]

    def post_rows(self, tables: TableNames, blog_id: int, ids: list[int]) -> dict[int, dict[str, Any]]:
        """Current wp_posts rows by ID, shaped like binlog rows (zero dates as None)."""
        if not ids:
            return {}
        table = tables.name(blog_id, TableKind.POSTS)
        marks = ",".join(["%s"] * len(ids))
        rows = self.query(f"SELECT * FROM `{self.settings.database}`.`{table}` WHERE ID IN ({marks})", ids)
        return {int(r["ID"]): {k: column_value(v) for k, v in r.items()} for r in rows}

    # What a post's URL needs beside its row (cdc/permalinks.py): small reads, batched per flush.

    def post_stubs(self, tables: TableNames, blog_id: int, ids: list[int]) -> dict[int, dict[str, Any]]:
        """The columns a link reads of other posts (a page's parents, an attachment's parent)."""
        if not ids:
            return {}
        table = tables.name(blog_id, TableKind.POSTS)
        marks = ",".join(["%s"] * len(ids))
        rows = self.query(f"SELECT ID, post_author, post_date, post_name, post_parent, post_status, post_type "
                          f"FROM `{self.settings.database}`.`{table}` WHERE ID IN ({marks})", ids)
        return {int(r["ID"]): {k: column_value(v) for k, v in r.items()} for r in rows}

    def post_children(self, tables: TableNames, blog_id: int, parent_ids: list[int], limit: int) -> list[dict[str, Any]]:
        """Up to ``limit`` rows of the posts whose parent is one of ``parent_ids`` (revisions and
        auto-drafts left out): whose URL may move with their parent's."""
        if not parent_ids or limit <= 0:
            return []
        table = tables.name(blog_id, TableKind.POSTS)
        marks = ",".join(["%s"] * len(parent_ids))
        rows = self.query(f"SELECT * FROM `{self.settings.database}`.`{table}` WHERE post_parent IN ({marks}) "
                          f"AND post_type <> 'revision' AND post_status <> 'auto-draft' ORDER BY ID LIMIT {int(limit)}",
                          parent_ids)
        return [{k: column_value(v) for k, v in r.items()} for r in rows]

    def post_categories(self, tables: TableNames, blog_id: int, ids: list[int]) -> dict[int, list[int]]:
        """The term_ids of each post's categories (posts without any are left out)."""
        if not ids:
            return {}
        db = self.settings.database
        tr = tables.name(blog_id, TableKind.TERM_RELATIONSHIPS)
        tt = tables.name(blog_id, TableKind.TERM_TAXONOMY)
        marks = ",".join(["%s"] * len(ids))
        rows = self.query(f"SELECT tr.object_id, tt.term_id FROM `{db}`.`{tr}` tr JOIN `{db}`.`{tt}` tt "
                          f"ON tt.term_taxonomy_id = tr.term_taxonomy_id "
                          f"WHERE tt.taxonomy = 'category' AND tr.object_id IN ({marks})", ids)
        out: dict[int, list[int]] = {}
        for r in rows:
            out.setdefault(int(r["object_id"]), []).append(int(r["term_id"]))
        return out

    def options(self, tables: TableNames, blog_id: int, names: Iterable[str]) -> dict[str, Any]:
        """Some rows of a blog's options table (``{prefix}options``, ``{prefix}N_options``)."""
        names = list(names)
        table = tables.settings_name(SettingsKind.OPTIONS, blog_id)
        marks = ",".join(["%s"] * len(names))
        try:
            rows = self.query(f"SELECT option_name, option_value FROM `{self.settings.database}`.`{table}` "
                              f"WHERE option_name IN ({marks})", names)
        except pymysql.err.ProgrammingError:
            return {}  # no such table (a blog being created, or deleted): no links for it
        return {r["option_name"]: r["option_value"] for r in rows}

    def user_nicenames(self, tables: TableNames, ids: list[int]) -> dict[int, str]:
        """users.user_nicename by ID (the network's one users table)."""
        if not ids:
            return {}
        table = tables.settings_name(SettingsKind.USERS)
        marks = ",".join(["%s"] * len(ids))
        rows = self.query(f"SELECT ID, user_nicename FROM `{self.settings.database}`.`{table}` "
                          f"WHERE ID IN ({marks})", ids)
        return {int(r["ID"]): r["user_nicename"] for r in rows}


def column_value(value: Any) -> Any:
    """A value as read by SQL, in the form the binlog decoder gives it: MySQL's zero dates
    (``0000-00-00``), which PyMySQL hands over as text or a year-0 datetime, become None, so a
    backfill document and a streamed event agree on the same row."""
    if isinstance(value, str) and value in ZERO_DATES:
        return None
    if isinstance(value, dt.datetime) and value.year == 0:
        return None
    return value
