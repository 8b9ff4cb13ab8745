"""Progress of a long task: a tqdm bar on a terminal, a log line every ten seconds otherwise.

A backfill or a verify of a large site takes minutes; an operator at a terminal wants to see it
move, and a log collector wants lines, not carriage returns.
"""

from __future__ import annotations

import logging
import sys
import time
from typing import Any

log = logging.getLogger(__name__)


class ProgressBar:
    def __init__(self, desc: str, total: int, initial: int = 0, unit: str = "post") -> None:
        self.desc = desc
        self.total = total
        self.unit = unit
        self._bar: Any = None
        self._last_log = 0.0
        self._started = time.monotonic()
        self._start_done = initial
        if sys.stderr.isatty():
            from tqdm import tqdm  # type: ignore[import-untyped]

            self._bar = tqdm(total=total, initial=initial, unit=unit, desc=desc)

    def update(self, done: int) -> None:
        if self._bar is not None:
            self._bar.update(done - self._bar.n)
            return
        now = time.monotonic()
        if now - self._last_log >= 10:
            self._last_log = now
            rate = (done - self._start_done) / max(now - self._started, 1e-6)
            eta = (self.total - done) / rate if rate > 0 else float("nan")
            log.info("%s: %d/%d %ss, %.0f %ss/s, ETA %.0fs", self.desc, done, self.total, self.unit, rate,
                     self.unit, eta)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
