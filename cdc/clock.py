"""The assembler's clock: what "quiet for two seconds" means while live and while catching up."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager


class Clock:
    """Assembler time: wall time while live, binlog time while catching up on a backlog.

    Windows measured in binlog time cut a replayed backlog the way they would have cut it live
    (an hour of edits read in a second still makes an hour of separate events). Binlog
    timestamps have one-second resolution and are not monotonic across sessions (a statement's
    start time, written in commit order), so the clock only jumps to a binlog timestamp that is
    more than a second ahead of it; otherwise it runs on the monotonic wall clock. It never
    goes backwards.

    Wall time the session spent blocked (a Kafka write that hangs through a broker outage) is
    not time in which the binlog was watched: the rows written meanwhile wait in the reader's
    queue, and without :meth:`stopped` they would all be folded at one late instant, so two
    saves made twenty seconds apart during the hang became one event. A long block is left
    out of the clock instead, and the saves queued behind it are cut by their binlog times.
    """

    GRANULARITY = 1.0

    def __init__(self, monotonic: Callable[[], float] = time.monotonic) -> None:
        self._monotonic = monotonic
        self._base = 0.0
        self._mono = monotonic()
        self._last = 0.0  # the latest time handed out: nothing later may be given an earlier one

    def advance(self, binlog_ts: int) -> bool:
        """Move to a binlog timestamp if it is ahead; True when the clock jumped."""
        if not self._base:
            self._base, self._mono = float(binlog_ts), self._monotonic()
            return False
        if binlog_ts > self._current() + self.GRANULARITY:
            self._base, self._mono = float(binlog_ts), self._monotonic()
            self._last = max(self._last, self._base)  # rows read before the jump fold after it
            return True
        return False

    def now(self) -> float:
        self._last = now = max(self._last, self._current())
        return now

    def at(self, monotonic: float) -> float:
        """Assembler time of a moment already past (a monotonic reading taken when the binlog
        reader read a row): what the window of the row's post counts from.

        Live, a row waits in the hand-off while the session writes the last flush to Kafka
        (milliseconds); folded at :meth:`now`, its event would leave that much later than its
        window. Never later than now and never earlier than a time already handed out, so the
        clock still never goes backwards: rows read during a long :meth:`stopped` block, or
        before a jump to binlog time, take the time the clock stood at.
        """
        then = self._base + (monotonic - self._mono)
        self._last = at = max(self._last, min(self._current(), then))
        return at

    def _current(self) -> float:
        return self._base + (self._monotonic() - self._mono)

    @contextmanager
    def stopped(self, longer_than: float = GRANULARITY) -> Iterator[None]:
        """Leave the time spent in the block out of the clock when it exceeds ``longer_than``.

        Only for blocks in which nothing reads the clock (the session's Kafka write): the clock
        then resumes at the value it had when the block began, so no reader sees it go back.
        A short block (a normal write, milliseconds) is kept: it is time the session was live.
        """
        started = self._monotonic()
        try:
            yield
        finally:
            spent = self._monotonic() - started
            if spent > longer_than:
                self._mono += spent
