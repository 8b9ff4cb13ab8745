"""The hand-off between the binlog thread and the event loop: a queue bounded in bytes.

A queue bounded in chunks bounds nothing once the reader is fast: a chunk is whatever arrived
between two hand-offs (one row event or five hundred, a few hundred bytes or megabytes), and with
the fast decoder the reader runs ahead until the queue is full - 64 chunks of WordPress import
transactions held a few hundred megabytes. Weighting each chunk by the binlog bytes of its rows
events bounds what sits between the threads to ``max_bytes`` (plus one chunk), whatever the
transactions look like, while still letting the reader work ahead of the event loop.

It is a ``queue.Queue`` (``get``/``get_nowait``/``put`` as usual, ``put`` takes a ``weight``):
``Queue`` blocks ``put`` while ``_qsize() >= maxsize`` and ``get`` while ``_qsize()`` is 0, so
reporting the total weight (at least 1 per chunk) as the size is all it needs.
"""

from __future__ import annotations

import queue
from collections import deque
from typing import Any


class WeightedQueue(queue.Queue):  # type: ignore[type-arg]
    """``queue.Queue`` whose ``maxsize`` is a total weight (bytes), not a number of items."""

    def __init__(self, max_weight: int) -> None:
        super().__init__(maxsize=max(1, max_weight))

    def _init(self, maxsize: int) -> None:
        super()._init(maxsize)
        self.weight = 0
        self._weights: deque[int] = deque()
        self._incoming = 1

    def put(self, item: Any, block: bool = True, timeout: float | None = None, weight: int = 1) -> None:
        self._incoming = max(1, int(weight))  # one producer thread: read back in _put, under the lock
        super().put(item, block, timeout)

    def _qsize(self) -> int:
        return self.weight

    def _put(self, item: Any) -> None:
        self.queue.append(item)
        self._weights.append(self._incoming)
        self.weight += self._incoming

    def _get(self) -> Any:
        self.weight -= self._weights.popleft()
        return self.queue.popleft()
