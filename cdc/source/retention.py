"""Binlog retention risk: how far the checkpoint stands from the server's next purge.

The one failure the connector cannot heal is a checkpoint whose binlog file the server deleted
(exit 21, then a backfill). Until now the only signal came afterwards. This module looks ahead:
a thread polls ``SHOW BINARY LOGS`` and the expiry settings on its own connection (never on the
stream's path), and :func:`assess` says, for the checkpoint's position, how many files are older
than its file, how many bytes lie between it and the server's end, and when its file may go.

When a file goes. MySQL and MariaDB delete, at a binlog rotation, a ``FLUSH BINARY LOGS`` or a
restart, every file from the oldest on whose *last modification* is older than the expiry
(``binlog_expire_logs_seconds`` / ``expire_logs_days``, :meth:`Flavor.binlog_expiry`), and never
the file being written. A file's last modification is when it was closed, which is the binlog
timestamp of the rotate event that ends it: the reader sees that event (cdc/source/binlog.py
marks it ``Commit.rotate``), so the metrics know when each file it read through was closed.
Until the reader has reached the end of the checkpoint's file, the newest binlog timestamp it
read in that file stands in: a file is closed no earlier than its newest event, so the estimate
errs on the short side. ``SHOW BINLOG EVENTS`` would not help: it shows no times. Hence:

* the checkpoint's file is the one being written: at least the whole expiry is left (it must
  first be closed, then age);
* it is closed: ``closed + expiry - now``, and 0 once that passed (gone at the next rotation);
* nothing read in that file yet in this process (the first seconds of a session): unknown.

A purge by size (MariaDB 11.4's ``max_binlog_total_size``) or by hand (``PURGE BINARY LOGS``)
is not predicted; ``files_behind`` (0: the checkpoint's file is the oldest, the next purge takes
it) covers every kind.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from cdc.config import MysqlSettings
from cdc.position import Position, file_number
from cdc.source.database import Database

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ServerBinlogs:
    """What one poll found: the files (name → size in bytes) and the expiry in seconds (None: the
    server never purges by age)."""

    files: dict[str, int]
    expire_seconds: float | None
    polled_at: float  # Unix time


@dataclass(frozen=True)
class Retention:
    """The checkpoint against the server's binlogs (None: not known)."""

    server_files: int
    oldest_file: int | None
    current_file: int | None
    files_behind: int | None  # files older than the checkpoint's; -1: the checkpoint's file is gone
    bytes_behind_end: int | None  # bytes from the checkpoint to the server's end
    seconds_left: float | None  # until the checkpoint's file may be purged by age


def assess(binlogs: ServerBinlogs, resume: Position | None, closed_at: float | None, now: float) -> Retention:
    """The retention risk of a checkpoint at ``resume`` whose file was closed at ``closed_at``
    (binlog time, or a lower bound of it; None: not known). See the module doc for the rules."""
    numbered = sorted((file_number(name), size) for name, size in binlogs.files.items())
    oldest = numbered[0][0] if numbered else None
    current = numbered[-1][0] if numbered else None
    base = Retention(len(numbered), oldest, current, None, None, None)
    if resume is None or current is None:
        return base
    mine = file_number(resume.file)
    if resume.file not in binlogs.files:
        # Purged (or a checkpoint of another server): the next session cannot resume.
        return Retention(len(numbered), oldest, current, -1, None, 0.0)
    behind = sum(1 for n, _ in numbered if n < mine)
    left = max(0, binlogs.files[resume.file] - resume.pos) + sum(size for n, size in numbered if n > mine)
    expire = binlogs.expire_seconds
    if expire is None:
        seconds = None
    elif mine == current:
        seconds = expire
    elif closed_at is None:
        seconds = None
    else:
        seconds = max(0.0, closed_at + expire - now)
    return Retention(len(numbered), oldest, current, behind, left, seconds)


def poll(db: Database) -> ServerBinlogs:
    """``SHOW BINARY LOGS`` and the expiry settings, read from ``db``."""
    files = db.binlogs()
    names = db.flavor.expiry_variables
    rows = db.query("SHOW GLOBAL VARIABLES WHERE Variable_name IN (" + ",".join(["%s"] * len(names)) + ")",
                    names)
    values = {str(r["Variable_name"]).lower(): str(r["Value"]) for r in rows}
    return ServerBinlogs(files, db.flavor.binlog_expiry(values), time.time())


class BinlogPoller:
    """Polls the server's binlogs every ``interval`` seconds in a daemon thread, on a connection
    of its own, and hands each result to ``report``. A failed poll (the server is down) keeps the
    last result; the stream reports the outage itself, so a failure is logged once, not per poll."""

    def __init__(self, settings: MysqlSettings, interval: float, report: Callable[[ServerBinlogs], None]) -> None:
        self.settings = settings
        self.interval = interval
        self.report = report
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="binlog-poller", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        self._thread.join(timeout)

    def _run(self) -> None:
        db = Database(self.settings)
        failing = False
        try:
            while not self._stop.is_set():
                try:
                    self.report(poll(db))
                    failing = False
                except Exception as exc:  # noqa: BLE001 - a metric must never end the thread, nor the stream
                    db.close()
                    if not failing:
                        log.warning("cannot read the server's binlog list for the retention metrics: %s "
                                    "(retrying every %.0fs)", exc, self.interval)
                    failing = True
                self._stop.wait(self.interval)
        finally:
            db.close()
