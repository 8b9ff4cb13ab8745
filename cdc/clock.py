"""The assembler's clock: what "quiet for two seconds" means while live and while catching up."""

from __future__ import annotations

import time
from collections.abc import Callable


class Clock:
    """Assembler time: wall time while live, binlog time while catching up on a backlog.

    Windows measured in binlog time cut a replayed backlog the way they would have cut it live
    (an hour of edits read in a second still makes an hour of separate events). Binlog
    timestamps have one-second resolution and are not monotonic across sessions (a statement's
    start time, written in commit order), so the clock only jumps to a binlog timestamp that is
    more than a second ahead of it; otherwise it runs on the monotonic wall clock. It never
    goes backwards.
    """

    GRANULARITY = 1.0

    def __init__(self, monotonic: Callable[[], float] = time.monotonic) -> None:
        self._monotonic = monotonic
        self._base = 0.0
        self._mono = monotonic()

    def advance(self, binlog_ts: int) -> bool:
        """Move to a binlog timestamp if it is ahead; True when the clock jumped."""
        if not self._base:
            self._base, self._mono = float(binlog_ts), self._monotonic()
            return False
        if binlog_ts > self.now() + self.GRANULARITY:
            self._base, self._mono = float(binlog_ts), self._monotonic()
            return True
        return False

    def now(self) -> float:
        return self._base + (self._monotonic() - self._mono)
