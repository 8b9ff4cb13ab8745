"""Prometheus metrics and the health state behind /healthz and /readyz (served by cdc/endpoints.py).

Names follow Prometheus conventions (base units, ``_total`` counters, ``wpcdc_`` prefix) and carry
no high-cardinality labels: table *kind*, op, Kafka operation, reconnect cause, never post ids,
file names or hosts. docs/operations.md lists every metric; tests/unit/test_metrics.py checks the
list against this module.

The pipeline calls the small functions below (``rows_seen``, ``position``, ``flushed`` ...); gauges
that describe a live session (pending posts, source lag, readiness, binlog retention) are computed
when scraped, from the session :func:`attach` registered and the last binlog poll, so they are
current even when nothing calls in (a stuck Kafka write, a silent binlog connection).

Source lag is the time since the last moment the connector is known to have read everything the
server had: the binlog timestamp of the last event read, or, when the server had nothing new, the
time its heartbeat arrived (every second on a quiet server). Nothing else moves it: so it grows
from the last heartbeat while MySQL or Kafka is gone (no session, no heartbeat), on a quiet site
as on a busy one, and falls back to ~0 with the first heartbeat of a new session.

Health:

* ``/healthz`` (liveness): the asyncio loop is turning (a callback scheduled on it ran within
  ``LIVENESS_SECONDS``) and the stream has not been stalled for ``STALL_LIVENESS_FACTOR`` times the
  stall timeout (and at least ``STALL_LIVENESS_FLOOR`` seconds: the connector's own timeouts, 60 s
  on a Kafka write and 30 s on a silent binlog connection, heal a hang first; liveness is the
  backstop). A connector waiting for MySQL or Kafka to come back is alive.
* ``/readyz`` (readiness): a session is connected to MySQL and Kafka, and it is not stalled. The
  server sends a heartbeat every second when it has nothing new, so a session that got no binlog
  event, no heartbeat and finished no Kafka write for ``stall_timeout`` seconds is stuck whatever
  the source did. The body says why when it is not ready.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from prometheus_client import Counter, Gauge, Histogram, Info, disable_created_metrics

from cdc import __version__, logs
from cdc.position import Position, file_number
from cdc.source.retention import Retention, ServerBinlogs, assess
from cdc.wordpress import TableKind

if TYPE_CHECKING:
    from cdc.checkpoint import Checkpoint
    from cdc.events import PostEvent
    from cdc.model import RowsBatch

disable_created_metrics()  # no *_created series: they double the output and nobody alerts on them

NAN = float("nan")
LIVENESS_SECONDS = 30.0
FILES_REMEMBERED = 64  # binlog files whose close time the retention estimate keeps
STALL_LIVENESS_FACTOR = 5
STALL_LIVENESS_FLOOR = 180.0
TABLES = tuple(k.value for k in TableKind)
OPS = ("create", "update", "delete", "snapshot")
KAFKA_OPERATIONS = ("write", "start", "topics", "checkpoint")
CAUSES = ("mysql", "kafka", "other")

INFO = Info("wpcdc", "wpcdc version and connector name")
ROWS = Counter("wpcdc_binlog_rows_total", "WordPress table rows read from the binlog", ["table"])
ROWS_FILTERED = Counter(
    "wpcdc_binlog_rows_filtered_total",
    "Rows read but not folded into any post change (ignored meta keys, excluded post types, skipped "
    "revisions, term order updates, rows replayed after a restart that are already in Kafka)",
    ["table"],
)
EVENTS = Counter("wpcdc_events_total", "Post events written to Kafka", ["op"])
KAFKA_WRITE = Histogram(
    "wpcdc_kafka_write_seconds", "Time to write one flush to Kafka (events + checkpoint, one transaction)",
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0),
)
KAFKA_ERRORS = Counter("wpcdc_kafka_errors_total", "Kafka operations that failed", ["operation"])
TXN_COMMITTED = Counter("wpcdc_kafka_transactions_committed_total", "Kafka transactions committed")
TXN_ABORTED = Counter("wpcdc_kafka_transactions_aborted_total", "Kafka transactions aborted")
CHECKPOINTS = Counter("wpcdc_checkpoints_total", "Checkpoints written to Kafka")
ORPHANS = Counter("wpcdc_orphan_changes_total",
                  "Changes of a post that is not in the database and got no delete row within --max-delay "
                  "(rows of a post deleted long ago, or never created): emitted as its delete, with a warning")
RECONNECTS = Counter("wpcdc_reconnects_total", "Sessions restarted from the checkpoint after a failure",
                     ["cause"])
SOURCE_LAG = Gauge("wpcdc_source_lag_seconds",
                   "Seconds since the connector last had read everything the server had: now minus the binlog "
                   "timestamp of the last event read, or minus the arrival of the last heartbeat when caught up; "
                   "grows while MySQL or Kafka is unreachable")
BEHIND = Gauge("wpcdc_seconds_behind_source", "DEPRECATED, removed in the next release: wpcdc_source_lag_seconds")
SOURCE_CONNECTED = Gauge("wpcdc_source_connected", "1 while the binlog connection delivers events or heartbeats")
SINK_CONNECTED = Gauge("wpcdc_sink_connected",
                       "1 from the start of a session's Kafka producer until the session ends (a failed or "
                       "timed-out write ends it)")
SOURCE_TXNS = Counter("wpcdc_source_transactions_total", "Binlog transactions read (every transaction the "
                      "server logged, whatever tables it wrote)")
FORCED_EMITS = Counter("wpcdc_forced_emits_total",
                       "Pending changes closed before their window by the memory bound (--max-pending-mb)")
TRUNCATED = Counter("wpcdc_truncated_events_total",
                    "Events committed with fields cut by the size policy (they list them in truncated/omitted)")
STATEMENT_WRITES = Counter("wpcdc_statement_writes_total",
                           "Writes of captured tables logged as statements, not rows (the stream stops: exit 23)",
                           ["table"])
DELIVERY_AGE = Histogram(
    "wpcdc_delivery_age_seconds",
    "From the binlog timestamp of an event's last row to its Kafka commit (the window included)",
    buckets=(0.5, 1.0, 2.0, 3.0, 5.0, 10.0, 20.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0, 3600.0, 21600.0),
)
QUEUE_BYTES = Gauge("wpcdc_reader_queue_bytes",
                    "Decoded size of the binlog chunks waiting between the binlog reader and the pipeline")
QUEUE_CAPACITY = Gauge("wpcdc_reader_queue_capacity_bytes", "The most that queue holds before the reader waits")
SERVER_FILES = Gauge("wpcdc_binlog_server_files", "Binlog files on the server (SHOW BINARY LOGS)")
SERVER_OLDEST = Gauge("wpcdc_binlog_server_oldest_file_number", "Number of the oldest binlog file on the server")
SERVER_CURRENT = Gauge("wpcdc_binlog_server_current_file_number", "Number of the binlog file the server writes")
FILES_BEHIND = Gauge("wpcdc_binlog_checkpoint_files_behind",
                     "Files on the server older than the checkpoint's: 0 means the next purge takes the "
                     "checkpoint's file; -1 that it is gone (the next start needs a backfill)")
BYTES_BEHIND = Gauge("wpcdc_binlog_checkpoint_bytes_behind_end", "Binlog bytes from the checkpoint to the server's end")
RETENTION_LEFT = Gauge("wpcdc_binlog_retention_seconds_left",
                       "Estimated seconds until the server may purge the checkpoint's file by age; NaN when it "
                       "does not purge by age or the file's close time is not known yet")
EXPIRE = Gauge("wpcdc_binlog_expire_seconds", "The server's binlog expiry (NaN: none)")
POLLED = Gauge("wpcdc_binlog_poll_timestamp_seconds", "Unix time of the last successful SHOW BINARY LOGS")
FILE = Gauge("wpcdc_binlog_file_number", "Number of the binlog file of the last transaction read")
POS = Gauge("wpcdc_binlog_position_bytes", "Offset in that file after the last transaction read")
CKPT_FILE = Gauge("wpcdc_checkpoint_binlog_file_number", "Binlog file number the checkpoint resumes from")
CKPT_POS = Gauge("wpcdc_checkpoint_binlog_position_bytes", "Offset in that file the checkpoint resumes from")
CHECKPOINT_TS = Gauge("wpcdc_checkpoint_timestamp_seconds", "Unix time the last checkpoint was written")
CHECKPOINT_AGE = Gauge("wpcdc_checkpoint_age_seconds", "Seconds since the last checkpoint was written")
PENDING_POSTS = Gauge("wpcdc_assembler_pending_posts", "Posts with changes waiting for their window")
PENDING_BYTES = Gauge("wpcdc_assembler_pending_bytes", "Row data held by pending changes")
PENDING_LIMIT = Gauge("wpcdc_assembler_pending_limit_bytes",
                      "--max-pending-mb in bytes: past it the oldest pending changes are emitted early")
READY = Gauge("wpcdc_ready", "1 when connected to MySQL and Kafka and not stalled (GET /readyz says why not)")
STALLED = Gauge("wpcdc_stalled", "1 when connected but no progress for --stall-timeout seconds")
SNAPSHOT_RUNNING = Gauge("wpcdc_snapshot_running", "1 while a snapshot (backfill) runs")
SNAPSHOT_ROWS = Counter("wpcdc_snapshot_rows_scanned_total", "Rows read by snapshots", ["table"])
SNAPSHOT_POSTS = Gauge("wpcdc_snapshot_posts", "Posts the running (or last) snapshot covers")
SNAPSHOT_DONE = Gauge("wpcdc_snapshot_posts_done", "Posts of that snapshot written to Kafka")
SNAPSHOT_FALLBACKS = Counter("wpcdc_snapshot_aggregate_fallbacks_total",
                             "Posts whose meta and terms a snapshot read row by row because the server's "
                             "aggregate of them was not exact (larger than group_concat_max_len, ...)")

# Every label value exists from the start, so rate() and absent() work before the first event.
for _t in TABLES:
    ROWS.labels(_t)
    ROWS_FILTERED.labels(_t)
    SNAPSHOT_ROWS.labels(_t)
    STATEMENT_WRITES.labels(_t)
for _o in OPS:
    EVENTS.labels(_o)
for _k in KAFKA_OPERATIONS:
    KAFKA_ERRORS.labels(_k)
for _c in CAUSES:
    RECONNECTS.labels(_c)


@dataclass
class _State:
    """What the HTTP thread reads and the event loop writes (single values: no lock needed)."""

    started: float
    tick: float
    stall_timeout: float = 60.0
    connected: bool = False
    reason: str = "starting"
    session: Any = None
    progress_at: float = 0.0
    write_since: float | None = None
    current_at: float = 0.0  # wall clock: everything the server had until then was read (see source_lag)
    source_connected: bool = False
    sink_connected: bool = False
    position: Position | None = None
    checkpoint_at: float = 0.0  # wall clock
    resume: Position | None = None  # the checkpoint's
    binlogs: ServerBinlogs | None = None  # the last poll
    closed_at: dict[str, int] = field(default_factory=dict)  # file → binlog time of its rotate event
    newest_at: dict[str, int] = field(default_factory=dict)  # file → newest binlog timestamp read in it
    mysql: str = ""
    kafka: str = ""


def _fresh_state() -> _State:
    now, wall = time.monotonic(), time.time()
    # Nothing read yet: the lag counts from the start (never 0 for a process that has read nothing).
    return _State(started=now, tick=now, progress_at=now, checkpoint_at=wall, current_at=wall)


_state = _fresh_state()


def reset() -> None:
    """Forget the health state (tests; a process has one stream)."""
    global _state
    _state = _fresh_state()


def configure(*, connector: str, stall_timeout: float, mysql: str = "", kafka: str = "") -> None:
    """Once per process: what the metrics describe and when a stream counts as stalled."""
    _state.stall_timeout = stall_timeout
    _state.mysql, _state.kafka = mysql, kafka
    INFO.info({"version": __version__, "connector": connector})


# --------------------------------------------------------------------------- pipeline hooks


def _progress() -> None:
    _state.progress_at = time.monotonic()


def _read_up_to(ts: float) -> None:
    """A live connection delivered binlog data of time ``ts`` (0: a header without a time)."""
    if ts:
        _state.current_at = ts
    _state.source_connected = True
    _progress()


_ROWS_BY_KIND: dict[TableKind, Any] = {}  # ROWS' child per table kind: labels() per rows event cost ~2 µs


def rows_seen(batch: RowsBatch) -> None:
    if batch.changes:
        kind = batch.changes[0].table.kind
        child = _ROWS_BY_KIND.get(kind)
        if child is None:
            child = _ROWS_BY_KIND[kind] = ROWS.labels(kind.value)
        child.inc(len(batch.changes))
        _read_up_to(batch.changes[-1].ts)
    else:
        _read_up_to(0)


def position(pos: Position, ts: int, rotate: bool = False) -> None:
    """A transaction ended at ``pos`` (binlog time ``ts``), or (``rotate``) the binlog moved on to
    ``pos.file``: then ``ts`` is when the previous file was closed (see cdc/source/retention.py)."""
    previous = _state.position
    if not rotate:
        SOURCE_TXNS.inc()
    elif ts and previous is not None and file_number(pos.file) == file_number(previous.file) + 1:
        _remember(_state.closed_at, previous.file, ts)
    if ts and ts > _state.newest_at.get(pos.file, 0):
        _remember(_state.newest_at, pos.file, ts)
    FILE.set(file_number(pos.file))
    POS.set(pos.pos)
    _state.position = pos
    logs.set_position(pos)
    _read_up_to(ts)


def _remember(times: dict[str, int], file: str, ts: int) -> None:
    times[file] = ts
    if len(times) > FILES_REMEMBERED:  # only the loop thread changes these; scrapes only look up
        for old in sorted(times, key=file_number)[:-FILES_REMEMBERED]:
            del times[old]


def idle(at: float = 0.0) -> None:
    """The server had nothing new for a heartbeat (received at wall time ``at``): caught up then."""
    _read_up_to(at or time.time())


def source_lost() -> None:
    """The binlog connection failed (the session ends next)."""
    _state.source_connected = False


def sink_connected() -> None:
    """The session's Kafka producer started."""
    _state.sink_connected = True


def forced_emits(changes: int) -> None:
    FORCED_EMITS.inc(changes)


def statement_write(table: TableKind) -> None:
    """A write of a captured table logged as a statement (called by the reader thread)."""
    STATEMENT_WRITES.labels(table.value).inc()


def flushed(events: list[PostEvent], seconds: float, truncated: int = 0) -> None:
    """``events`` were committed to Kafka in ``seconds``; ``truncated`` of them were cut to fit."""
    KAFKA_WRITE.observe(seconds)
    now = time.time()
    for e in events:
        EVENTS.labels(e.op).inc()
        if e.source.ts_ms and not e.source.snapshot:
            DELIVERY_AGE.observe(max(0.0, now - e.source.ts_ms / 1000))
    if truncated:
        TRUNCATED.inc(truncated)
    _state.sink_connected = True
    _progress()


def checkpointed(checkpoint: Checkpoint) -> None:
    CHECKPOINTS.inc()
    _checkpoint_gauges(checkpoint)


def _checkpoint_gauges(checkpoint: Checkpoint) -> None:
    ts = checkpoint.ts_ms / 1000 if checkpoint.ts_ms else time.time()
    _state.checkpoint_at = ts
    _state.resume = checkpoint.resume
    CHECKPOINT_TS.set(ts)
    CKPT_FILE.set(file_number(checkpoint.resume.file))
    CKPT_POS.set(checkpoint.resume.pos)


def write_started() -> None:
    _state.write_since = time.monotonic()


def write_finished() -> None:
    _state.write_since = None


def transaction(committed: bool) -> None:
    (TXN_COMMITTED if committed else TXN_ABORTED).inc()


def orphan_change() -> None:
    ORPHANS.inc()


def kafka_error(operation: str) -> None:
    KAFKA_ERRORS.labels(operation if operation in KAFKA_OPERATIONS else "write").inc()


def reconnect(exc: BaseException | None = None) -> None:
    """A session failed with ``exc`` and will be retried; ``exc`` is the not-ready reason meanwhile."""
    from cdc.errors import PreflightError, SinkError, SourceError

    cause = ("mysql" if isinstance(exc, (SourceError, PreflightError)) else
             "kafka" if isinstance(exc, SinkError) else "other")
    RECONNECTS.labels(cause).inc()
    if exc is not None:
        _state.reason = f"reconnecting after: {exc}"


def starting(step: str) -> None:
    """What the process does before its first session streams (the not-ready reason meanwhile)."""
    if not _state.connected:
        _state.reason = f"starting: {step}"


def ready(value: bool) -> None:
    """A session connected to MySQL and Kafka (True) or ended (False: both connections closed)."""
    _state.connected = value
    if value:
        _state.reason = ""
        _progress()
    else:
        _state.source_connected = _state.sink_connected = False
        if not _state.reason:
            _state.reason = "not connected"


def attach(session: Any) -> None:
    """The session whose pending state and checkpoint the gauges show (pipeline.Session)."""
    _state.session = session
    _checkpoint_gauges(session.checkpoint)
    _progress()


def detach(session: Any) -> None:
    if _state.session is session:
        _state.session = None


def heartbeat() -> None:
    _state.tick = time.monotonic()


def binlogs_polled(binlogs: ServerBinlogs) -> None:
    """A poll of the server's binlogs (called by cdc.source.retention's thread)."""
    _state.binlogs = binlogs


# ------------------------------------------------------------------------ snapshot hooks


def snapshot_started(posts: int) -> None:
    SNAPSHOT_RUNNING.set(1)
    SNAPSHOT_POSTS.set(posts)
    SNAPSHOT_DONE.set(0)


def snapshot_rows(table: str, rows: int) -> None:
    SNAPSHOT_ROWS.labels(table).inc(rows)


def snapshot_fallbacks(posts: int) -> None:
    SNAPSHOT_FALLBACKS.inc(posts)


def snapshot_progress(posts_done: int) -> None:
    SNAPSHOT_DONE.set(posts_done)


def snapshot_finished() -> None:
    SNAPSHOT_RUNNING.set(0)


def rows_filtered(batch: RowsBatch, folded: int) -> None:
    """Rows of a rows event that reached no pending change (noise keys, excluded types, skips).

    Term and taxonomy rows feed the term catalog and are never counted as filtered.
    """
    if not batch.changes:
        return
    kind = batch.changes[0].table.kind
    if kind not in (TableKind.TERMS, TableKind.TERM_TAXONOMY) and len(batch.changes) > folded:
        ROWS_FILTERED.labels(kind.value).inc(len(batch.changes) - folded)


# ---------------------------------------------------------------------- computed when scraped


def source_lag() -> float:
    """See the module doc. Binlog timestamps are whole seconds of the server's clock: a server
    clock ahead of ours reads as 0, not as a negative lag."""
    return max(0.0, time.time() - _state.current_at)


def retention() -> Retention | None:
    """The checkpoint against the last binlog poll (None before the first poll)."""
    binlogs = _state.binlogs
    if binlogs is None:
        return None
    resume = _state.resume
    closed = None
    if resume is not None:
        closed = _state.closed_at.get(resume.file) or _state.newest_at.get(resume.file)
    return assess(binlogs, resume, closed, time.time())


def _retention(attr: str) -> float:
    value = getattr(retention(), attr, None)
    return NAN if value is None else float(value)


def _queue(attr: str) -> float:
    source = getattr(_state.session, "source", None)
    queue = getattr(source, "queue", None)
    return float(getattr(queue, attr, 0) or 0)


def _pending(attr: str) -> float:
    session = _state.session
    assembler = getattr(session, "assembler", None)
    if assembler is None:
        return 0.0
    value = getattr(assembler, attr)
    return float(value)


def stalled_for() -> float:
    """Seconds without progress while connected (0 when not connected or moving)."""
    if not _state.connected:
        return 0.0
    quiet = time.monotonic() - _state.progress_at
    return quiet if quiet > _state.stall_timeout else 0.0


def readiness() -> tuple[bool, str]:
    """(ready, why not)."""
    if not _state.connected:
        return False, _state.reason or "not connected"
    quiet = stalled_for()
    if quiet:
        if _state.write_since is not None:
            waited = time.monotonic() - _state.write_since
            return False, (f"stalled: no progress for {quiet:.0f}s; a write to Kafka{_at(_state.kafka)} "
                           f"has been waiting for {waited:.0f}s")
        return False, (f"stalled: no binlog event or heartbeat from MySQL{_at(_state.mysql)} for "
                       f"{quiet:.0f}s (last position {_state.position or 'none yet'})")
    return True, "ready"


def liveness() -> tuple[bool, str]:
    since = time.monotonic() - _state.tick
    if since > LIVENESS_SECONDS:
        return False, f"event loop stuck: it has not run for {since:.0f}s"
    quiet = stalled_for()
    if quiet > max(STALL_LIVENESS_FACTOR * _state.stall_timeout, STALL_LIVENESS_FLOOR):
        return False, f"stream stalled for {quiet:.0f}s"
    return True, "ok"


def _at(where: str) -> str:
    return f" at {where}" if where else ""


SOURCE_LAG.set_function(source_lag)
BEHIND.set_function(source_lag)
SOURCE_CONNECTED.set_function(lambda: 1.0 if _state.source_connected else 0.0)
SINK_CONNECTED.set_function(lambda: 1.0 if _state.sink_connected else 0.0)
QUEUE_BYTES.set_function(lambda: _queue("weight"))
QUEUE_CAPACITY.set_function(lambda: _queue("maxsize"))
SERVER_FILES.set_function(lambda: _retention("server_files"))
SERVER_OLDEST.set_function(lambda: _retention("oldest_file"))
SERVER_CURRENT.set_function(lambda: _retention("current_file"))
FILES_BEHIND.set_function(lambda: _retention("files_behind"))
BYTES_BEHIND.set_function(lambda: _retention("bytes_behind_end"))
RETENTION_LEFT.set_function(lambda: _retention("seconds_left"))
EXPIRE.set_function(lambda: NAN if _state.binlogs is None or _state.binlogs.expire_seconds is None
                    else _state.binlogs.expire_seconds)
POLLED.set_function(lambda: NAN if _state.binlogs is None else _state.binlogs.polled_at)
CHECKPOINT_AGE.set_function(lambda: max(0.0, time.time() - _state.checkpoint_at))
PENDING_POSTS.set_function(lambda: _pending("pending_posts"))
PENDING_BYTES.set_function(lambda: _pending("pending_bytes"))
PENDING_LIMIT.set_function(lambda: _pending("max_pending_bytes"))
READY.set_function(lambda: 1.0 if readiness()[0] else 0.0)
STALLED.set_function(lambda: 1.0 if stalled_for() else 0.0)
