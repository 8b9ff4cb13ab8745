"""Prometheus metrics and the health state behind /healthz and /readyz.

Names follow Prometheus conventions (base units, ``_total`` counters, ``wpcdc_`` prefix) and carry
no high-cardinality labels: table *kind* and op, never post ids. docs/operations.md lists them.
"""

from __future__ import annotations

import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING

from prometheus_client import CONTENT_TYPE_LATEST, Counter, Gauge, Histogram, generate_latest

from cdc.position import Position, file_number

if TYPE_CHECKING:
    from cdc.changes import RowsBatch
    from cdc.checkpoint import Checkpoint
    from cdc.events import PostEvent

ROWS = Counter("wpcdc_binlog_rows_total", "WordPress rows read from the binlog", ["table"])
EVENTS = Counter("wpcdc_events_total", "Post events written to Kafka", ["op"])
SEND_SECONDS = Histogram("wpcdc_kafka_write_seconds", "Time to write one flush (events + checkpoint)")
BEHIND = Gauge("wpcdc_seconds_behind_source", "Binlog timestamp of the last event vs now; 0 when caught up")
FILE = Gauge("wpcdc_binlog_file_number", "Number of the binlog file being read")
POS = Gauge("wpcdc_binlog_position_bytes", "Offset in the binlog file being read")
CHECKPOINT_TS = Gauge("wpcdc_checkpoint_timestamp_seconds", "When the last checkpoint was committed")
RECONNECTS = Counter("wpcdc_reconnects_total", "Sessions restarted from the checkpoint after a failure")
READY = Gauge("wpcdc_ready", "1 when connected to MySQL and Kafka and streaming")

_state = {"heartbeat": time.monotonic(), "ready": False, "last_ts": 0, "idle": False}


def rows_seen(batch: RowsBatch) -> None:
    if batch.changes:
        ROWS.labels(batch.changes[0].table.kind.value).inc(len(batch.changes))
        _state["last_ts"] = batch.changes[-1].ts
        _state["idle"] = False
        BEHIND.set(max(0.0, time.time() - batch.changes[-1].ts))


def position(pos: Position, ts: int) -> None:
    FILE.set(file_number(pos.file))
    POS.set(pos.pos)


def idle() -> None:
    _state["idle"] = True
    BEHIND.set(0)


def flushed(events: list[PostEvent], seconds: float) -> None:
    SEND_SECONDS.observe(seconds)
    for e in events:
        EVENTS.labels(e.op).inc()


def checkpointed(checkpoint: Checkpoint) -> None:
    CHECKPOINT_TS.set(checkpoint.ts_ms / 1000)


def reconnect() -> None:
    RECONNECTS.inc()


def ready(value: bool) -> None:
    _state["ready"] = value
    READY.set(1 if value else 0)


def heartbeat() -> None:
    _state["heartbeat"] = time.monotonic()


class _Handler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:  # noqa: N802 - http.server's name
        if self.path == "/metrics":
            body, status, ctype = generate_latest(), 200, CONTENT_TYPE_LATEST
        elif self.path == "/healthz":
            alive = time.monotonic() - float(_state["heartbeat"]) < 30
            body, status, ctype = (b"ok\n" if alive else b"loop stalled\n"), 200 if alive else 503, "text/plain"
        elif self.path == "/readyz":
            ok = bool(_state["ready"])
            body, status, ctype = (b"ready\n" if ok else b"not connected\n"), 200 if ok else 503, "text/plain"
        else:
            body, status, ctype = b"not found\n", 404, "text/plain"
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        return


def serve(port: int, host: str = "0.0.0.0") -> ThreadingHTTPServer:
    server = ThreadingHTTPServer((host, port), _Handler)
    threading.Thread(target=server.serve_forever, name="metrics", daemon=True).start()
    return server
