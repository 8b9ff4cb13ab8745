"""The binlog reader: mysql-replication in a thread, feeding a bounded queue of chunks.

Why a thread: the library is blocking. Why chunks: one hand-off per few hundred items keeps the
thread and the event loop from waiting on each other. The queue is bounded by the binlog bytes
it holds (cdc/source/handoff.py), so a slow Kafka slows the reader instead of filling memory.

Positions are ours: we start the library at an explicit (file, pos) that is always a
transaction boundary (the checkpoint's resume point), and we never let it reconnect by itself
(it would resume mid-transaction and, with ``is_mariadb``, from the first binlog). Any
disconnect ends the reader with a SourceError; the pipeline restarts from the checkpoint.
"""

from __future__ import annotations

import logging
import socket
import struct
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pymysql
from pymysqlreplication import BinLogStreamReader
from pymysqlreplication.event import (
    ExecuteLoadQueryEvent,
    GtidEvent,
    HeartbeatLogEvent,
    MariadbGtidEvent,
    NotImplementedEvent,
    QueryEvent,
    RotateEvent,
    XAPrepareEvent,
    XidEvent,
)
from pymysqlreplication.row_event import (
    DeleteRowsEvent,
    PartialUpdateRowsEvent,
    UpdateRowsEvent,
    WriteRowsEvent,
)

from cdc import metrics
from cdc.config import MysqlSettings
from cdc.errors import (
    BinlogPurgedError,
    InvalidPositionError,
    ReplicaReplacedError,
    SourceError,
    UnsupportedChangeError,
)
from cdc.model import Commit, Idle, RowsBatch, SettingsWritten, TxnRef
from cdc.normalize import normalize_rows
from cdc.position import Position
from cdc.source import compressed, fastpath, framing, handoff, library
from cdc.source.flavor import GtidState
from cdc.source.statements import QueryKind, classify
from cdc.wordpress import SettingsKind, TableNames, WpTable

log = logging.getLogger(__name__)

_OPS = {WriteRowsEvent: "insert", UpdateRowsEvent: "update", DeleteRowsEvent: "delete"}
# NotImplementedEvent: every event type the library does not parse reaches us too, so one that can
# carry rows (MariaDB's compressed events) is never dropped unseen. PartialUpdateRowsEvent and
# ExecuteLoadQueryEvent likewise: rows we cannot decode must stop the stream, not vanish.
_EVENTS = [WriteRowsEvent, UpdateRowsEvent, DeleteRowsEvent, XidEvent, QueryEvent, RotateEvent,
           MariadbGtidEvent, GtidEvent, HeartbeatLogEvent, NotImplementedEvent, PartialUpdateRowsEvent,
           ExecuteLoadQueryEvent, XAPrepareEvent]

# MariaDB's log_bin_compress: QUERY_COMPRESSED_EVENT, then the rows events' compressed forms.
# cdc/source/compressed.py inflates them before the library parses them; one that reaches the
# reader still compressed is one it could not read.
_MARIADB_QUERY_COMPRESSED = compressed.QUERY_COMPRESSED
_MARIADB_ROWS_COMPRESSED = frozenset(compressed.ROWS)
# MySQL 8.0.20+ binlog_transaction_compression: a whole transaction in one zstd payload.
_MYSQL_TRANSACTION_PAYLOAD = 0x28

_REMEDY_SKIP = (
    "Then skip this transaction and re-read the posts: `wpcdc offsets set {end}` (the end of the "
    "transaction) and `wpcdc backfill` (--snapshot-blogs to re-read only some blogs)"
)


@dataclass(frozen=True, slots=True)
class RawRows:
    """A captured table's rows event with its row images still bytes: what the reader process sends
    in place of a RowsBatch, decoded by the connector (cdc/source/reader_process.py)."""

    table: WpTable
    op: str
    signature: tuple[Any, ...]  # the fast decoder's layout (fastpath.by_signature)
    images: bytes
    position: Position
    txn: TxnRef
    ts: int
    received: float
    size: int  # the event's size in the binlog


@dataclass(frozen=True, slots=True)
class SourceFailed:
    error: Exception


class TableFilter:
    """``only_tables`` for the library: WordPress's five tables, and a note of the options and users
    tables a table map names.

    The library asks ``table in only_tables`` for every table map; a table it is told to skip has its
    rows skipped without decoding. Links depend on a few options and on users' nicenames
    (cdc/links.py), and a write to those tables is all the session must know: so their names are
    noted here and never let through. A table map precedes every rows event of its table, and the
    reader thread asks the library for events one at a time, so what this notes belongs to the rows
    event the library is skipping right now.
    """

    def __init__(self, tables: TableNames) -> None:
        self.tables = tables
        self.blogs: set[int] = set()
        self.users = False

    def __contains__(self, table: object) -> bool:
        if not isinstance(table, str):
            return False
        if self.tables.parse(table) is not None:
            return True
        hit = self.tables.settings(table)
        if hit is not None:  # the same name in another schema is noted too: a needless re-read at worst
            if hit[0] is SettingsKind.USERS:
                self.users = True
            else:
                self.blogs.add(hit[1])
        return False

    def take(self) -> SettingsWritten | None:
        """What was noted since the last call."""
        if not self.blogs and not self.users:
            return None
        noted = SettingsWritten(frozenset(self.blogs), self.users)
        self.blogs.clear()
        self.users = False
        return noted


ROW_OBJECT_BYTES = 600  # a decoded RowChange with its row dicts, beyond the values' bytes


class BinlogSource(handoff.HandedOff):
    """Reads from ``start`` on, in a daemon thread, until ``stop()`` or an error."""

    def __init__(
        self,
        settings: MysqlSettings,
        tables: TableNames,
        *,
        server_id: int,
        start: Position,
        gtid: str | None,
        chunk_size: int = 500,
        heartbeat: float = 1.0,
        max_queue_bytes: int = 4 << 20,
        chunk_bytes: int = 512 << 10,
        report_host: str | None = None,
    ) -> None:
        # Checks the installed mysql-replication, then patches it: our value readers, inflated
        # compressed events, cached table maps, no reconnect by itself (cdc/source/library.py).
        library.install()
        self.settings = settings
        self.tables = tables
        self.filter = TableFilter(tables)
        self.server_id = server_id
        self.start_position = start
        self.chunk_size = chunk_size
        self.heartbeat = heartbeat
        self.report_host = report_host  # registered with COM_REGISTER_SLAVE: see SHOW SLAVE HOSTS
        # Bounded by the decoded size of the rows it holds: see cdc/source/handoff.py.
        self.handoff = handoff.Handoff(max_queue_bytes)
        self.queue: handoff.WeightedQueue = self.handoff.queue
        self.chunk_bytes = chunk_bytes
        self._chunk_weight = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="binlog-reader", daemon=True)
        self._reader: BinLogStreamReader | None = None
        self._gtid = GtidState(gtid)
        self.position = start  # last position read (reader thread writes, others read)
        self.fastpath = True  # decode WordPress's tables with cdc/source/fastpath.py
        self.framing = True  # read the small events from the bytes (cdc/source/framing.py); needs fastpath
        # Counts a write logged as a statement: the reader process sends it to the connector's
        # metrics instead (cdc/source/reader_process.py).
        self.count_statement: Callable[[Any], None] = metrics.statement_write
        # Hand captured rows over undecoded (RawRows): the reader process does, its parent decodes.
        self.defer_rows = False

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        reader = self._reader
        if reader is not None:
            try:
                reader.close()
            except Exception:  # noqa: BLE001 - the reader thread may be using it; it will exit
                pass
        self._thread.join(timeout)

    # ------------------------------------------------------------- the thread

    def _put(self, chunk: list[Any], weight: int = 1) -> None:
        self.handoff.put(chunk, weight, self._stop.is_set)

    def _run(self) -> None:
        chunk: list[Any] = []
        try:
            self._read(chunk)
        except Exception as exc:  # noqa: BLE001 - every failure goes to the pipeline, mapped
            if not self._stop.is_set():
                if chunk:
                    self._put(chunk)
                self._put([SourceFailed(self._map_error(exc))])
        finally:
            if self._reader is not None:
                try:
                    self._reader.close()
                except Exception:  # noqa: BLE001
                    pass

    def _map_error(self, exc: Exception) -> Exception:
        if _same_server_id(exc):
            return ReplicaReplacedError(replaced_message(self.server_id, f"{self.settings.host}:{self.settings.port}",
                                                         str(exc.args[-1])))
        if isinstance(exc, pymysql.err.OperationalError) and exc.args and exc.args[0] == 1236:
            message = str(exc.args[-1])
            if "checksum" in message.lower():
                # SET GLOBAL binlog_checksum rotated the binlog under a connection that negotiated
                # the old setting: the position is fine, a new connection negotiates again.
                return SourceError(
                    f"the server's binlog_checksum changed at {self.position} ({message}); "
                    "reconnecting from the checkpoint to negotiate it again"
                )
            if "purged" not in message and "find first log file" not in message:
                return InvalidPositionError(
                    f"the server refused binlog position {self.position} ({message}): it is not "
                    "the start of an event in that file. The checkpoint may belong to another "
                    "server; check --mysql-host, or `wpcdc offsets set` a valid position"
                )
            return BinlogPurgedError(
                f"the server no longer has binlog position {self.position} "
                f"({exc.args[-1]}): it was purged while wpcdc was not reading. Run "
                "`wpcdc backfill` (or `wpcdc stream --snapshot when_needed`) to take a new "
                "snapshot, then stream from there"
            )
        if isinstance(exc, (pymysql.err.OperationalError, pymysql.err.InterfaceError, OSError,
                            ConnectionError, EOFError, struct.error)):
            return SourceError(
                f"lost the binlog connection to {self.settings.host}:{self.settings.port} "
                f"at {self.position}: {exc!r}; reconnecting from the checkpoint"
            )
        return exc

    def _read(self, chunk: list[Any]) -> None:
        start = self.start_position
        kw = self.settings.pymysql_kwargs()
        kw["read_timeout"] = max(30, int(self.heartbeat * 10))
        self._reader = reader = BinLogStreamReader(
            connection_settings=kw,
            server_id=self.server_id,
            resume_stream=True,
            blocking=True,
            log_file=start.file,
            log_pos=start.pos,
            only_events=_EVENTS,
            only_tables=self.filter,
            only_schemas=[self.settings.database],
            slave_heartbeat=self.heartbeat,
            is_mariadb=False,  # see module doc: True makes the library ignore log_file/log_pos
            enable_logging=False,
            report_slave=self.report_host,
        )
        file = start.file
        txn: TxnRef | None = None
        xa = False  # inside an XA transaction (its rows are logged before it commits)
        # What this transaction holds that we cannot turn into events: we read on to its end, so
        # the error can name the position to skip to, and then stop (see _unsupported).
        problem: tuple[Position, str, str] | None = None
        fetch = (library.Framing(reader, defer=self.defer_rows).fetch if self.framing and self.fastpath
                 else reader.fetchone)
        Frame = framing.Frame  # noqa: N806
        stopped = self._stop.is_set
        noted = self.filter
        while not stopped():
            event = fetch()
            if event is None:
                raise SourceError("the server closed the binlog stream")
            if noted.blogs or noted.users:  # TableFilter.take(), without the call for every event
                written = noted.take()
                if written is not None:
                    chunk.append(written)
            ended = False  # this event ends a transaction
            if type(event) is Frame:  # read from the bytes: cdc/source/framing.py, the same meaning
                end = event.end
                fkind = event.kind
                self.position = Position(file, end)
                if fkind == framing.XID_KIND:
                    ended = True
                elif fkind == framing.GTID_KIND:
                    prev = self._gtid.text()
                    gtid = event.gtid
                    self._gtid.apply(gtid)
                    txn = TxnRef(Position(file, end - event.size), gtid, prev)
                    xa = False
                elif fkind == framing.BEGIN_KIND:
                    if txn is None:
                        txn = TxnRef(Position(file, end - event.size), None, self._gtid.text())
                else:  # rows of a captured table, full images, decoded
                    if txn is None:
                        txn = TxnRef(Position(file, end - event.size), None, self._gtid.text())
                    if problem is None and xa:
                        problem = (Position(file, end - event.size), event.table, "xa")
                    if problem is None:
                        self._frame_rows(chunk, event, txn)
            elif isinstance(event, RotateEvent):
                if event.next_binlog != file:
                    # Table ids hold for one server run. The library forgets its table maps at a
                    # rotation the server wrote (timestamp != 0), not at the one the dump thread
                    # makes up (timestamp 0) to move past a file a restart ended: a map of a
                    # captured table would then decode another table's rows (a filtered table map
                    # does not replace it). Forget them at every move to another file.
                    reader.table_map.clear()
                file = event.next_binlog
                self.position = Position(file, event.position)
                if txn is None:
                    chunk.append(Commit(self.position, self._gtid.text(), event.timestamp, rotate=True))
            elif isinstance(event, HeartbeatLogEvent):
                end = event.packet.log_pos
                # A heartbeat comes when the server has sent everything: its log_pos is the end of
                # the binlog file, past header events we never see (a fresh file's format
                # description, GTID list). Outside a transaction that is where we stand.
                ident = event.ident.decode(errors="replace") if isinstance(event.ident, bytes) else event.ident
                if txn is None and ident == file and end > self.position.pos and self.position.file == file:
                    self.position = Position(file, end)
                chunk.append(Idle(self.position if txn is None else None, self._gtid.text(), time.time()))
            elif isinstance(event, (MariadbGtidEvent, GtidEvent)):
                end = event.packet.log_pos
                begin = Position(file, end - event.packet.event_size)
                prev = self._gtid.text()
                gtid = str(event.gtid)
                self._gtid.apply(gtid)
                txn = TxnRef(begin, gtid, prev)
                xa = False
                self.position = Position(file, end)
            elif isinstance(event, (XidEvent, XAPrepareEvent)):
                end = event.packet.log_pos
                self.position = Position(file, end)
                ended = True
            elif isinstance(event, (QueryEvent, NotImplementedEvent, ExecuteLoadQueryEvent)):
                end = event.packet.log_pos
                query = self._query_text(event)
                self.position = Position(file, end)
                if query is None:
                    table = self._compressed_table(event)
                    if table is not None and problem is None:
                        problem = (_start(file, event), table, "compressed")
                    if event.event_type != _MARIADB_QUERY_COMPRESSED:
                        continue  # another event type without rows (ANNOTATE_ROWS, …)
                    query = "COMMIT"  # an unreadable statement ends its transaction: stop there
                schema = event.schema.decode(errors="replace") if isinstance(event.schema, bytes) else event.schema
                meaning = classify(query, schema or None, self.settings.database, self.tables)
                kind = meaning.kind
                if kind is QueryKind.BEGIN or kind is QueryKind.XA_START:
                    if txn is None:
                        txn = TxnRef(_start(file, event), None, self._gtid.text())
                    xa = xa or kind is QueryKind.XA_START
                elif kind is QueryKind.DML:
                    if meaning.captured:
                        self._count_statement(meaning.captured)
                    if meaning.captured and problem is None:
                        problem = (_start(file, event), ", ".join(meaning.captured), "statement")
                    if txn is None:  # a statement without BEGIN (a non-transactional table) ends here
                        ended = True
                elif kind is not QueryKind.INSIDE:  # COMMIT, ROLLBACK, or a DDL (an implicit commit)
                    if meaning.captured and problem is None:
                        problem = (_start(file, event), ", ".join(meaning.captured), meaning.verb)
                    ended = True
            else:
                end = event.packet.log_pos
                op = _OPS.get(type(event))
                if op is not None or isinstance(event, PartialUpdateRowsEvent):
                    self.position = Position(file, end)
                    if txn is None:  # rows without a transaction start: resume at this event
                        txn = TxnRef(_start(file, event), None, self._gtid.text())
                    if problem is None and self.tables.parse(event.table) is not None:
                        why = _image_problem(event, op)
                        if why is None and xa:
                            why = "xa"
                        if why is not None:
                            problem = (_start(file, event), event.table, why)
                    if problem is None and op is not None:
                        self._rows(chunk, event, op, txn)
            if ended:
                if problem is not None:
                    raise _unsupported(problem, txn, self.position)
                chunk.append(Commit(self.position, self._gtid.text(), event.timestamp))
                txn = None
                xa = False
            # Hand a chunk over at every transaction end (a held chunk would wait for the next
            # binlog event, up to a heartbeat, when the server goes quiet), when it is full, or
            # when the source is idle. The consumer drains all queued chunks per wake-up, so
            # many small chunks under load cost little.
            if chunk and (isinstance(chunk[-1], (Commit, Idle)) or len(chunk) >= self.chunk_size
                          or self._chunk_weight >= self.chunk_bytes):
                self._put(list(chunk), self._chunk_weight)
                chunk.clear()
                self._chunk_weight = 0

    def _count_statement(self, captured: tuple[str, ...]) -> None:
        """A write logged as a statement: counted before the stream stops at its transaction's
        end (exit 23), so the metric shows it even when the process is gone a moment later."""
        kinds = {parsed.kind for name in captured if (parsed := self.tables.parse(name)) is not None}
        for kind in kinds:
            self.count_statement(kind)

    def _rows(self, chunk: list[Any], event: Any, op: str, txn: TxnRef) -> None:
        wp_table = self.tables.parse(event.table)
        if wp_table is None:
            return
        rows = library.fast_rows(event, op) if self.fastpath else None
        batch: RowsBatch | None
        if rows is not None:
            batch = fastpath.rows_batch(wp_table, op, rows, self.position, txn, event.timestamp)
        else:  # a layout the fast path leaves to the library
            batch = normalize_rows(self.tables, event.table, op, event.rows, self.position, txn, event.timestamp)
        if batch is not None:
            chunk.append(batch)
            # Weighted by what the rows cost decoded, not by their binlog bytes: a term row is
            # 20 bytes in the binlog and ~600 as a RowChange, so 4 MB of binlog bytes of them
            # held 120 MB between the threads.
            self._chunk_weight += event.packet.event_size + ROW_OBJECT_BYTES * len(batch.changes)

    def _frame_rows(self, chunk: list[Any], frame: framing.Frame, txn: TxnRef) -> None:
        """:meth:`_rows` for the rows a :class:`framing.Frame` carries (decoded from the bytes)."""
        wp_table = self.tables.parse(frame.table)
        if wp_table is None:
            return
        if frame.raw is not None:
            chunk.append(RawRows(wp_table, frame.op, frame.raw[0], frame.raw[1], self.position, txn,
                                 frame.timestamp, time.monotonic(), frame.size))
            self._chunk_weight += frame.size
            return
        batch = fastpath.rows_batch(wp_table, frame.op, frame.rows, self.position, txn, frame.timestamp)
        chunk.append(batch)
        self._chunk_weight += frame.size + ROW_OBJECT_BYTES * len(batch.changes)

    @staticmethod
    def _query_text(event: Any) -> str | None:
        """The statement of a query event, or None for other events."""
        if isinstance(event, (QueryEvent, ExecuteLoadQueryEvent)):
            query = event.query
            return query if isinstance(query, str) else bytes(query or b"").decode(errors="replace")
        return None

    def _compressed_table(self, event: Any) -> str | None:
        """What a compressed event that could not be inflated may have written, if it may be a
        captured table: compressed rows keep their table id in clear (the first 6 bytes of the
        body), and the library keeps the table maps of captured tables only, so an unknown id is
        not ours. A query or MySQL's compressed transaction cannot be looked into: stop anyway."""
        if event.event_type == _MYSQL_TRANSACTION_PAYLOAD:
            return "(a compressed transaction)"
        if event.event_type == _MARIADB_QUERY_COMPRESSED:
            return "(a compressed statement)"
        if event.event_type not in _MARIADB_ROWS_COMPRESSED:
            return None
        table_id = int.from_bytes(library.event_body(event)[:6], "little")
        table = self._reader.table_map.get(table_id) if self._reader is not None else None
        if table is None or self.tables.parse(table.table) is None:
            return None
        return str(table.table)


def _same_server_id(exc: Exception) -> bool:
    """The server dropped us for a newer binlog client with the same server_id: MariaDB says so
    with error 4052 (ER_SLAVE_SAME_ID), MySQL with 1236 and these words."""
    if not isinstance(exc, pymysql.err.OperationalError) or not exc.args:
        return False
    return exc.args[0] == 4052 or (exc.args[0] == 1236 and "same server_uuid/server_id" in str(exc.args[-1]))


def replaced_message(server_id: int, server: str, said: str) -> str:
    """Why the binlog stream was taken away, its two causes, and how to tell which one it is."""
    return (
        f"MySQL at {server} dropped this binlog connection for another client with the same server_id "
        f"{server_id} ({said}); stopping. Is another instance running? Either (1) a second instance of this "
        f"connector runs (another pod during a drain or a rollout, a forgotten `wpcdc stream` or `wpcdc "
        f"backfill`): it also fences this one in Kafka, make sure only one runs; or (2) another connector or a "
        f"real replica uses server_id {server_id}: give this one its own --server-id. To tell them apart, "
        f"SHOW SLAVE HOSTS (MySQL 8.0.22+: SHOW REPLICAS) on the server names the Host of server_id "
        f"{server_id} (wpcdc registers as 'wpcdc <name> on <hostname>', a replica with its report_host), and "
        f"SHOW PROCESSLIST shows every reader as a 'Binlog Dump' thread with its client address"
    )


def report_host(connector: str) -> str:
    """What SHOW SLAVE HOSTS shows as this reader's Host: the connector and the machine (or pod),
    at most 60 characters (the server's limit), so a server_id clash names both readers."""
    return f"wpcdc {connector} on {socket.gethostname()}"[:60]


def _start(file: str, event: Any) -> Position:
    """Where an event begins (what SHOW BINLOG EVENTS lists as its Pos), from its size as written
    (an inflated event's size is not: see cdc/source/compressed.py)."""
    return Position(file, event.packet.log_pos - library.written_size(event))


def _full(bitmap: bytes, n: int) -> bool:
    return int.from_bytes(bitmap, "little") & ((1 << n) - 1) == (1 << n) - 1


def _image_problem(event: Any, op: str | None) -> str | None:
    """Why the rows of this event cannot become events (None: full row images, decodable)."""
    if op is None:
        return "partial_json"
    n = event.number_of_columns
    if not _full(event.columns_present_bitmap, n):
        return "image"
    if op == "update" and not _full(event.columns_present_bitmap2, n):
        return "image"
    return None


_WHY = {
    "image": ("the rows event carries a partial row image (the writing session ran with "
              "binlog_row_image=MINIMAL or NOBLOB)",
              "make every session log full rows: binlog_row_image=FULL in my.cnf, and find the plugin or "
              "job that runs SET SESSION binlog_row_image"),
    "statement": ("the change was logged as a statement, not as rows (the writing session ran with "
                  "binlog_format=STATEMENT or MIXED)",
                  "make every session log rows: binlog_format=ROW in my.cnf, and find the plugin or job "
                  "that runs SET SESSION binlog_format"),
    "compressed": ("the change is in a compressed binlog event wpcdc cannot read (MySQL's "
                   "binlog_transaction_compression=ON, or a MariaDB compressed event of an unknown format)",
                   "turn binlog compression off: SET GLOBAL binlog_transaction_compression=OFF (MySQL) or "
                   "log_bin_compress=OFF (MariaDB), and in my.cnf"),
    "partial_json": ("the rows event is a partial JSON update (binlog_row_value_options=PARTIAL_JSON)",
                     "set binlog_row_value_options='' in my.cnf and in the writing sessions"),
    "xa": ("the rows belong to an XA transaction, logged before it is decided",
           "write WordPress's tables outside XA transactions"),
}


def _unsupported(problem: tuple[Position, str, str], txn: TxnRef | None, end: Position) -> UnsupportedChangeError:
    """The stop, with where, why and what to do (the reader read on to the transaction's end)."""
    at, table, why = problem
    begins = f"; the transaction starts at {txn.start} (GTID {txn.gtid})" if txn and txn.gtid else (
        f"; the transaction starts at {txn.start}" if txn else "")
    if why in _WHY:
        cause, fix = _WHY[why]
        what = f"{table}: {cause}"
    else:  # a DDL verb: TRUNCATE TABLE, DROP TABLE, RENAME TABLE, …
        what = f"{why} of {table} removed or replaced its rows without row events"
        fix = ("if that was intended, the posts it touched must be re-read (posts removed this way get "
               "no delete event: drop them downstream)")
    return UnsupportedChangeError(
        f"wpcdc cannot turn the binlog at {at} into post events: {what}{begins}, ends at {end}. "
        f"Nothing after it was read and everything before it is in Kafka. To go on: {fix}. "
        + _REMEDY_SKIP.format(end=end),
        position=at, end=end,
    )
