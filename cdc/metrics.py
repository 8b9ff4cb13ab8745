"""Prometheus metrics and the health state behind /healthz and /readyz.

Names follow Prometheus conventions (base units, ``_total`` counters, ``wpcdc_`` prefix) and carry
no high-cardinality labels: table *kind*, op, Kafka operation, reconnect cause, never post ids,
file names or hosts. docs/operations.md lists every metric; tests/unit/test_metrics.py checks the
list against this module.

The pipeline calls the small functions below (``rows_seen``, ``position``, ``flushed`` ...); gauges
that describe a live session (pending posts, seconds behind source, readiness) are computed when
scraped, from the session :func:`attach` registered, so they are current even when nothing calls
in (a stuck Kafka write, a silent binlog connection).

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

import asyncio
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, Any

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    Counter,
    Gauge,
    Histogram,
    Info,
    disable_created_metrics,
    generate_latest,
)

from cdc import __version__, logs
from cdc.position import Position, file_number
from cdc.wordpress import TableKind

if TYPE_CHECKING:
    from cdc.changes import RowsBatch
    from cdc.checkpoint import Checkpoint
    from cdc.events import PostEvent

disable_created_metrics()  # no *_created series: they double the output and nobody alerts on them

LIVENESS_SECONDS = 30.0
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
BEHIND = Gauge("wpcdc_seconds_behind_source",
               "Now minus the binlog timestamp of the last event read; 0 when caught up")
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
READY = Gauge("wpcdc_ready", "1 when connected to MySQL and Kafka and not stalled")
STALLED = Gauge("wpcdc_stalled", "1 when connected but no progress for --stall-timeout seconds")
SNAPSHOT_RUNNING = Gauge("wpcdc_snapshot_running", "1 while a snapshot (backfill) runs")
SNAPSHOT_ROWS = Counter("wpcdc_snapshot_rows_scanned_total", "Rows read by snapshots", ["table"])
SNAPSHOT_POSTS = Gauge("wpcdc_snapshot_posts", "Posts the running (or last) snapshot covers")
SNAPSHOT_DONE = Gauge("wpcdc_snapshot_posts_done", "Posts of that snapshot written to Kafka")

# Every label value exists from the start, so rate() and absent() work before the first event.
for _t in TABLES:
    ROWS.labels(_t)
    ROWS_FILTERED.labels(_t)
    SNAPSHOT_ROWS.labels(_t)
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
    last_ts: float = 0.0
    caught_up: bool = False
    position: Position | None = None
    checkpoint_at: float = 0.0  # wall clock
    mysql: str = ""
    kafka: str = ""


def _fresh_state() -> _State:
    now = time.monotonic()
    return _State(started=now, tick=now, progress_at=now, checkpoint_at=time.time())


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


def rows_seen(batch: RowsBatch) -> None:
    if batch.changes:
        ROWS.labels(batch.changes[0].table.kind.value).inc(len(batch.changes))
        _state.last_ts = batch.changes[-1].ts
        _state.caught_up = False
    _progress()


def position(pos: Position, ts: int) -> None:
    """A transaction ended at ``pos`` (binlog time ``ts``)."""
    FILE.set(file_number(pos.file))
    POS.set(pos.pos)
    _state.position = pos
    if ts:
        _state.last_ts = ts
    _state.caught_up = False
    logs.set_position(pos)
    _progress()


def idle() -> None:
    """The server had nothing new for a heartbeat: caught up."""
    _state.caught_up = True
    _progress()


def flushed(events: list[PostEvent], seconds: float) -> None:
    KAFKA_WRITE.observe(seconds)
    for e in events:
        EVENTS.labels(e.op).inc()
    _progress()


def checkpointed(checkpoint: Checkpoint) -> None:
    CHECKPOINTS.inc()
    _checkpoint_gauges(checkpoint)


def _checkpoint_gauges(checkpoint: Checkpoint) -> None:
    ts = checkpoint.ts_ms / 1000 if checkpoint.ts_ms else time.time()
    _state.checkpoint_at = ts
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
    from cdc.errors import SinkError, SourceError

    cause = "mysql" if isinstance(exc, SourceError) else "kafka" if isinstance(exc, SinkError) else "other"
    RECONNECTS.labels(cause).inc()
    if exc is not None:
        _state.reason = f"reconnecting after: {exc}"


def ready(value: bool) -> None:
    """A session connected to MySQL and Kafka (True) or ended (False)."""
    _state.connected = value
    if value:
        _state.reason = ""
        _progress()
    elif not _state.reason:
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


# ------------------------------------------------------------------------ snapshot hooks


def snapshot_started(posts: int) -> None:
    SNAPSHOT_RUNNING.set(1)
    SNAPSHOT_POSTS.set(posts)
    SNAPSHOT_DONE.set(0)


def snapshot_rows(table: str, rows: int) -> None:
    SNAPSHOT_ROWS.labels(table).inc(rows)


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


def seconds_behind() -> float:
    if _state.caught_up or not _state.last_ts:
        return 0.0
    return max(0.0, time.time() - _state.last_ts)


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


BEHIND.set_function(seconds_behind)
CHECKPOINT_AGE.set_function(lambda: max(0.0, time.time() - _state.checkpoint_at))
PENDING_POSTS.set_function(lambda: _pending("pending_posts"))
PENDING_BYTES.set_function(lambda: _pending("pending_bytes"))
PENDING_LIMIT.set_function(lambda: _pending("max_pending_bytes"))
READY.set_function(lambda: 1.0 if readiness()[0] else 0.0)
STALLED.set_function(lambda: 1.0 if stalled_for() else 0.0)


# -------------------------------------------------------------------------------- HTTP


class _Handler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:  # noqa: N802 - http.server's name
        path = self.path.split("?", 1)[0]
        if path == "/metrics":
            body, status, ctype = generate_latest(), 200, CONTENT_TYPE_LATEST
        elif path in ("/healthz", "/readyz"):
            ok, why = liveness() if path == "/healthz" else readiness()
            body, status, ctype = f"{why}\n".encode(), 200 if ok else 503, "text/plain; charset=utf-8"
        else:
            body, status, ctype = b"not found: try /metrics, /healthz or /readyz\n", 404, "text/plain"
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        return


def _tick_on(loop: asyncio.AbstractEventLoop) -> None:
    """Liveness: a callback on the event loop, every second, for as long as the loop runs."""

    def tick() -> None:
        heartbeat()
        loop.call_later(1.0, tick)

    loop.call_soon_threadsafe(tick)


def serve(port: int, host: str = "0.0.0.0") -> ThreadingHTTPServer:
    """Serve /metrics, /healthz and /readyz from a daemon thread; call from the event loop."""
    server = ThreadingHTTPServer((host, port), _Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, name="metrics", daemon=True).start()
    try:
        _tick_on(asyncio.get_running_loop())
    except RuntimeError:  # no loop (tests): liveness then follows heartbeat() calls only
        pass
    return server
