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

import asyncio
import queue
from collections import deque
from collections.abc import Callable
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


class Handoff:
    """The event loop's side of a binlog reader: chunks in a :class:`WeightedQueue`, put by one
    producer thread (the reader in this process, or the thread receiving from the reader process of
    cdc/source/reader_process.py) and taken by :meth:`next_items` in the event loop.

    The wait is the event loop's own: the producer wakes it (``call_soon_threadsafe``) when it hands
    a chunk over while the loop waits. Waiting through ``asyncio.to_thread`` cost a thread-pool
    submit and two thread switches per chunk, and while catching up a binlog of autocommitted rows
    there is a chunk per transaction: a few percent of the CPU.
    """

    def __init__(self, max_bytes: int) -> None:
        self.queue = WeightedQueue(max_bytes)
        # While next_items waits: [loop, future, woken]. Only next_items sets and clears it; the
        # producer thread marks it woken, so a burst of chunks wakes the loop once, and a wait
        # that ended (by its timer or by wake()) is never confused with the next one.
        self._waiter: list[Any] | None = None

    async def next_items(self, timeout: float, limit: int = 20_000) -> list[Any]:
        """Wait up to ``timeout`` for a chunk, then take whatever else is queued."""
        items = self._take(limit)
        if items:
            return items
        loop = asyncio.get_running_loop()
        waiter: asyncio.Future[None] = loop.create_future()
        self._waiter = [loop, waiter, False]
        items = self._take(limit)  # handed over between the first look and the waiter being set
        if items:
            self._waiter = None
            return items
        timer = loop.call_later(timeout, _wake, waiter)
        try:
            await waiter
        finally:
            self._waiter = None
            timer.cancel()
        return self._take(limit)

    def wake(self) -> None:
        """From the event loop: end a :meth:`next_items` wait now, with what is queued (maybe
        nothing). The session calls it when it has work of its own, a backfill chunk to write."""
        waiter = self._waiter
        if waiter is not None:
            _wake(waiter[1])

    def _take(self, limit: int) -> list[Any]:
        items: list[Any] = []
        while len(items) < limit:
            try:
                items.extend(self.queue.get_nowait())
            except queue.Empty:
                break
        return items

    def backlog(self) -> bool:
        return bool(self.queue.qsize())

    def put(self, chunk: list[Any], weight: int, stopped: Callable[[], bool]) -> None:
        """From the producer thread: queue ``chunk`` (waiting for room until ``stopped()``), then
        wake the event loop if it waits."""
        while not stopped():
            try:
                self.queue.put(chunk, timeout=0.2, weight=weight)
                break
            except queue.Full:
                continue
        waiter = self._waiter
        if waiter is not None and not waiter[2]:  # the event loop waits in next_items: wake it
            waiter[2] = True
            try:
                waiter[0].call_soon_threadsafe(_wake, waiter[1])
            except RuntimeError:  # the loop is closed: nobody waits any more
                pass


class HandedOff:
    """The event loop's side of a reader that hands its chunks over through ``self.handoff``:
    what ``ChangeSource`` (cdc/ports.py) asks beyond start and stop."""

    handoff: Handoff

    async def next_items(self, timeout: float, limit: int = 20_000) -> list[Any]:
        """Wait up to ``timeout`` for a chunk, then take whatever else is queued."""
        return await self.handoff.next_items(timeout, limit)

    def backlog(self) -> bool:
        return self.handoff.backlog()

    def wake(self) -> None:
        self.handoff.wake()


def _wake(waiter: asyncio.Future[None]) -> None:
    """In the event loop: end next_items' wait (a chunk came, or the timeout)."""
    if not waiter.done():
        waiter.set_result(None)
