"""When a session writes what closed: at once at the live edge, every flush_interval while
catching up (cdc/pipeline.py, Session._maybe_flush)."""

from __future__ import annotations

import asyncio
import dataclasses
from typing import Any

import pytest

from cdc.checkpoint import Checkpoint
from cdc.config import KafkaSettings, MysqlSettings, StreamSettings
from cdc.pipeline import CATCHING_UP_LAG, Session
from cdc.ports import Ports
from cdc.position import Position

NOW_MONO = 100.0
NOW_WALL = 1_800_000_000.0


class QueuedSource:
    """A source with more already queued (what a live session sees while a flush is in Kafka)."""

    def backlog(self) -> bool:
        return True


def _session() -> tuple[Session, list[bool]]:
    def unused(*args: Any) -> Any:
        raise AssertionError("not called")

    settings = StreamSettings(name="f", mysql=MysqlSettings(), kafka=KafkaSettings(), server_id=1)
    ports = Ports(source=unused, sink=unused, store=unused, chunk_reader=unused,  # type: ignore[arg-type]
                  monotonic=lambda: NOW_MONO, wall=lambda: NOW_WALL, observe=False)
    s = Session(settings, Checkpoint("f", Position("mariadb-bin.000001", 4)), ports)
    flushes: list[bool] = []

    async def flush(force: bool = False) -> None:
        flushes.append(force)

    s._flush = flush  # type: ignore[method-assign]  # noqa: SLF001 - the decision is under test
    s.source = QueuedSource()  # type: ignore[assignment]
    s._closed = [object()]  # type: ignore[list-item]  # noqa: SLF001 - one closed change waits
    s._last_flush_at = NOW_MONO - settings.flush_interval / 10  # noqa: SLF001 - flushed just before
    return s, flushes


@pytest.mark.parametrize(("behind", "held"), [
    (0.0, False),  # the live edge: the closed change goes now
    (CATCHING_UP_LAG - 1, False),
    (CATCHING_UP_LAG, True),  # a backlog: spaced by flush_interval
    (3600.0, True),
])
def test_a_closed_change_waits_for_flush_interval_only_while_catching_up(behind: float, held: bool) -> None:
    s, flushes = _session()
    s._read_ts = int(NOW_WALL - behind)  # noqa: SLF001 - binlog time of the last transaction read
    asyncio.run(s._maybe_flush())  # noqa: SLF001
    assert flushes == ([] if held else [False])


def test_nothing_queued_flushes_at_once_even_far_behind() -> None:
    s, flushes = _session()
    s._read_ts = int(NOW_WALL - 3600)  # noqa: SLF001

    class Drained:
        def backlog(self) -> bool:
            return False

    s.source = Drained()  # type: ignore[assignment]
    asyncio.run(s._maybe_flush())  # noqa: SLF001
    assert flushes == [False]


def test_changes_closed_meanwhile_are_written_without_waiting_for_the_binlog() -> None:
    """A backfill chunk applied while the last flush was in Kafka: the loop's next wait for
    rows must not hold it (on a quiet binlog each chunk waited flush_interval, a third of the
    backfill's time)."""
    s, _ = _session()
    assert s._wait_time() == 0.0  # noqa: SLF001 - one closed change waits
    s._closed = []  # noqa: SLF001
    assert s._wait_time() == s.settings.flush_interval  # noqa: SLF001 - nothing pending, nothing due


def test_the_backfill_wakes_a_loop_waiting_for_rows() -> None:
    """Documents handed over while the loop waits for the binlog end that wait at once."""
    from cdc.source.handoff import HandedOff, Handoff

    s, _ = _session()
    s._closed = []  # noqa: SLF001

    class Waiting(HandedOff):  # what BinlogSource and ProcessSource are, without their reader
        def __init__(self) -> None:
            self.handoff = Handoff(1 << 20)

    s.source = Waiting()  # type: ignore[assignment]

    async def main() -> tuple[float, list[object]]:
        loop = asyncio.get_running_loop()
        t0 = loop.time()
        waiting = asyncio.ensure_future(s._next_items(s.source))  # type: ignore[arg-type]  # noqa: SLF001
        await asyncio.sleep(0.01)
        s._closed_extend([object()])  # type: ignore[list-item]  # noqa: SLF001 - what Backfill._apply emits
        items = await asyncio.wait_for(waiting, 5)
        return loop.time() - t0, items

    s.settings = dataclasses.replace(s.settings, flush_interval=10.0)
    took, items = asyncio.run(main())
    assert items == [] and took < 5


def test_a_wake_without_a_wait_is_forgotten() -> None:
    """Only a wait under way ends: the next one waits as usual (until a chunk or its timeout)."""
    from cdc.source.handoff import Handoff

    async def main() -> float:
        handoff = Handoff(1 << 20)
        handoff.wake()
        loop = asyncio.get_running_loop()
        t0 = loop.time()
        assert await handoff.next_items(0.05) == []
        return loop.time() - t0

    assert asyncio.run(main()) >= 0.04


def test_a_finished_backfill_is_checkpointed_at_once() -> None:
    """Its end goes with the next turn's flush, not after checkpoint_interval: `wpcdc backfill`
    exits on that checkpoint, and waited a second for it at the end of every run."""
    from types import SimpleNamespace

    s, flushes = _session()
    s._closed = []  # noqa: SLF001
    s._last_checkpoint_at = NOW_MONO  # noqa: SLF001 - a checkpoint was just written
    s.backfill = SimpleNamespace(progress=SimpleNamespace(done=False))  # type: ignore[assignment]
    s.backfill_committed = False
    asyncio.run(s._maybe_flush())  # noqa: SLF001
    assert flushes == []  # still running: nothing to write
    s.backfill.progress.done = True
    asyncio.run(s._maybe_flush())  # noqa: SLF001
    assert flushes == [True]
    s.backfill_committed = True
    asyncio.run(s._maybe_flush())  # noqa: SLF001
    assert flushes == [True]  # written: no flush per turn after it


def test_the_backfill_end_reaches_the_session_even_with_nothing_left_to_write() -> None:
    """A last chunk with no posts (the count a multiple of the chunk size, rereads that found
    nothing): the end is still handed over, so the loop's wait ends and the checkpoint goes."""
    from cdc.assemble import Assembler
    from cdc.backfill import Backfill
    from cdc.config import SnapshotSettings
    from cdc.source.snapshot import SnapshotChunk, SnapshotProgress
    from cdc.terms import TermCatalog
    from cdc.wordpress import Capture

    start = Position("mariadb-bin.000001", 4)

    class Reader:
        def read_chunk(self, blog: int, after_id: int, ids: list[int] | None = None) -> SnapshotChunk:
            return SnapshotChunk(blog, start, (), after_id, 0, exhausted=True)

        def close(self) -> None:
            pass

    async def blocking(fn: Any, *args: Any) -> Any:
        return fn(*args)

    emitted: list[list[object]] = []
    progress = SnapshotProgress(id="b", blogs=[1], total=0)
    backfill = Backfill(Reader(), SnapshotSettings(), progress, Assembler(Capture(), TermCatalog()),  # type: ignore[arg-type]
                        emitted.append, lambda: start, blocking=blocking)  # type: ignore[arg-type]
    asyncio.run(backfill.run())
    assert progress.done and emitted == [[], []]  # the empty chunk, then the end
