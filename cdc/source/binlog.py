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
import queue
import struct
import threading
from dataclasses import dataclass
from typing import Any

import pymysql
from pymysqlreplication import BinLogStreamReader, binlogstream
from pymysqlreplication.event import (
    GtidEvent,
    HeartbeatLogEvent,
    MariadbGtidEvent,
    QueryEvent,
    RotateEvent,
    XidEvent,
)
from pymysqlreplication.row_event import DeleteRowsEvent, UpdateRowsEvent, WriteRowsEvent

from cdc.changes import Commit, Idle, TxnRef
from cdc.config import MysqlSettings
from cdc.errors import BinlogPurgedError, InvalidPositionError, ReplicaReplacedError, SourceError
from cdc.normalize import normalize_rows
from cdc.position import Position
from cdc.source import decoding, fastpath, handoff
from cdc.wordpress import TableNames

log = logging.getLogger(__name__)

# The library retries these two errors ("server has gone away", "lost connection") on its own,
# from wherever it was. We want them: recovery goes through our checkpoint.
binlogstream.MYSQL_EXPECTED_ERROR_CODES = []

_OPS = {WriteRowsEvent: "insert", UpdateRowsEvent: "update", DeleteRowsEvent: "delete"}
_EVENTS = [WriteRowsEvent, UpdateRowsEvent, DeleteRowsEvent, XidEvent, QueryEvent, RotateEvent,
           MariadbGtidEvent, GtidEvent, HeartbeatLogEvent]


@dataclass(frozen=True, slots=True)
class SourceFailed:
    error: Exception


class GtidState:
    """MariaDB's GTID position: the last GTID per replication domain."""

    def __init__(self, text: str | None = None) -> None:
        self._by_domain: dict[str, str] = {}
        for part in (text or "").split(","):
            part = part.strip()
            if part:
                self._by_domain[part.split("-")[0] if "-" in part else part] = part

    def apply(self, gtid: str) -> None:
        self._by_domain[gtid.split("-")[0] if "-" in gtid else gtid] = gtid
        self._text: str | None = None

    def __str__(self) -> str:
        return ",".join(self._by_domain[d] for d in sorted(self._by_domain))

    def text(self) -> str | None:
        # Asked for at every transaction boundary (3 times per autocommit row): built once per GTID.
        cached = getattr(self, "_text", None)
        if cached is None:
            cached = self._text = str(self)
        return cached or None


class BinlogSource:
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
        max_chunks: int = 64,
        heartbeat: float = 1.0,
        max_queue_bytes: int = 4 << 20,
        chunk_bytes: int = 512 << 10,
    ) -> None:
        decoding.install()
        fastpath.install()  # a cache of parsed table maps (see cdc/source/fastpath.py)
        self.settings = settings
        self.tables = tables
        self.server_id = server_id
        self.start_position = start
        self.chunk_size = chunk_size
        self.heartbeat = heartbeat
        # Bounded by the binlog bytes of the rows it holds (max_chunks is no longer the bound):
        # see cdc/source/handoff.py.
        self.queue: handoff.WeightedQueue = handoff.WeightedQueue(max_queue_bytes)
        self.chunk_bytes = chunk_bytes
        self._chunk_weight = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="binlog-reader", daemon=True)
        self._reader: BinLogStreamReader | None = None
        self._gtid = GtidState(gtid)
        self.position = start  # last position read (reader thread writes, others read)
        self.rows_seen = 0
        self.rows_by_table: dict[str, int] = {}
        self.fastpath = True  # decode WordPress's tables with cdc/source/fastpath.py

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

    @property
    def alive(self) -> bool:
        return self._thread.is_alive()

    # ------------------------------------------------------------- the thread

    def _put(self, chunk: list[Any], weight: int = 1) -> None:
        while not self._stop.is_set():
            try:
                self.queue.put(chunk, timeout=0.2, weight=weight)
                return
            except queue.Full:
                continue

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
        if isinstance(exc, pymysql.err.OperationalError) and exc.args and exc.args[0] == 1236:
            message = str(exc.args[-1])
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
        if isinstance(exc, pymysql.err.OperationalError) and exc.args and exc.args[0] == 4052:
            # The server hands the binlog to the newest replica with this server_id and drops
            # the older one: another instance took over, as Kafka's fencing would say too.
            return ReplicaReplacedError(
                f"another replica with server_id {self.server_id} connected to "
                f"{self.settings.host}:{self.settings.port} and replaced this one (MariaDB error "
                "4052). Is another instance running? Run one wpcdc per --name; stopping"
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
            only_tables=self.tables,
            only_schemas=[self.settings.database],
            slave_heartbeat=self.heartbeat,
            is_mariadb=False,  # see module doc: True makes the library ignore log_file/log_pos
            enable_logging=False,
        )
        file = start.file
        txn: TxnRef | None = None
        while not self._stop.is_set():
            event = reader.fetchone()
            if event is None:
                raise SourceError("the server closed the binlog stream")
            end = event.packet.log_pos
            if isinstance(event, RotateEvent):
                file = event.next_binlog
                self.position = Position(file, event.position)
                if txn is None:
                    chunk.append(Commit(self.position, self._gtid.text(), event.timestamp))
            elif isinstance(event, HeartbeatLogEvent):
                chunk.append(Idle(self.position))
            elif isinstance(event, (MariadbGtidEvent, GtidEvent)):
                begin = Position(file, end - event.packet.event_size)
                prev = self._gtid.text()
                gtid = str(event.gtid)
                self._gtid.apply(gtid)
                txn = TxnRef(begin, gtid, prev)
                self.position = Position(file, end)
            elif isinstance(event, XidEvent):
                self.position = Position(file, end)
                chunk.append(Commit(self.position, self._gtid.text(), event.timestamp))
                txn = None
            elif isinstance(event, QueryEvent):
                query = event.query.strip().upper() if isinstance(event.query, str) else ""
                self.position = Position(file, end)
                if query == "BEGIN":
                    if txn is None:
                        txn = TxnRef(Position(file, end - event.packet.event_size), None, self._gtid.text())
                else:  # COMMIT of a non-transactional table, or a DDL: both end a transaction
                    chunk.append(Commit(self.position, self._gtid.text(), event.timestamp))
                    txn = None
            else:
                op = _OPS.get(type(event))
                if op is not None:
                    self.position = Position(file, end)
                    if txn is None:  # rows without a transaction start: resume at this event
                        txn = TxnRef(Position(file, end - event.packet.event_size), None, self._gtid.text())
                    batch = (fastpath.rows_batch(self.tables, event, op, self.position, txn, event.timestamp)
                             if self.fastpath else fastpath.UNSUPPORTED)
                    if batch is fastpath.UNSUPPORTED:  # a layout the fast path leaves to the library
                        batch = normalize_rows(self.tables, event.table, op, event.rows, self.position,
                                               txn, event.timestamp)
                    if batch is not None:
                        self.rows_seen += len(batch.changes)
                        self.rows_by_table[event.table] = (
                            self.rows_by_table.get(event.table, 0) + len(batch.changes)
                        )
                        chunk.append(batch)
                        self._chunk_weight += event.packet.event_size
            # Hand a chunk over at every transaction end (a held chunk would wait for the next
            # binlog event, up to a heartbeat, when the server goes quiet), when it is full, or
            # when the source is idle. The consumer drains all queued chunks per wake-up, so
            # many small chunks under load cost little.
            if chunk and (isinstance(chunk[-1], (Commit, Idle)) or len(chunk) >= self.chunk_size
                          or self._chunk_weight >= self.chunk_bytes):
                self._put(list(chunk), self._chunk_weight)
                chunk.clear()
                self._chunk_weight = 0
