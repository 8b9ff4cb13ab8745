"""What a stream session needs from the world, as interfaces: the seams of the pipeline.

A :class:`~cdc.pipeline.Session` decides (what to fold, when to close, what a flush writes, where
the checkpoint stands); everything it reads or writes goes through one of these ports. The runner
(``run_stream``) wires the real ones: the binlog reader, the Kafka sink, the database, the
snapshot reader, wall time and a thread pool. The deterministic simulation (tests/sim) wires
models of the servers instead and runs the very same session code through thousands of seeded
interleavings, crashes included.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

from cdc.checkpoint import Checkpoint
from cdc.encode import Record
from cdc.model import Row
from cdc.position import Position
from cdc.source.snapshot import SnapshotChunk
from cdc.wordpress import TableNames

if TYPE_CHECKING:
    from cdc.repair_requests import RepairRequest

T = TypeVar("T")


class ChangeSource(Protocol):
    """The binlog from a position on, as chunks of RowsBatch / Commit / Idle / SourceFailed."""

    def start(self) -> None: ...

    def stop(self) -> None: ...

    async def next_items(self, timeout: float) -> list[object]:
        """What arrived, waiting up to ``timeout`` seconds for the first of it ([] if nothing)."""
        ...

    def backlog(self) -> bool:
        """More is already waiting (the session is catching up)."""
        ...

    def wake(self) -> None:
        """End a ``next_items`` wait now (from the event loop): the session has work of its own,
        a backfill chunk to write, that must not wait for the binlog's next row or the timeout."""
        ...


class EventSink(Protocol):
    """Kafka: a flush's records and the checkpoint that covers them, with the configured guarantee."""

    async def write(self, records: Sequence[Record], checkpoint: Checkpoint | None) -> None: ...


class PostStore(Protocol):
    """Reads from the source database a session needs beside the binlog."""

    def post_rows(self, tables: TableNames, blog: int, ids: list[int]) -> dict[int, Row]: ...

    def term_rows(self, tables: TableNames, blog: int) -> list[Row]: ...

    def term_posts(self, tables: TableNames, blog: int, term_taxonomy_id: int, limit: int) -> list[int]: ...

    def blog_ids(self, tables: TableNames) -> list[int]: ...

    # For links (cdc/links.py): other posts' link columns, categories, options, user nicenames.

    def post_stubs(self, tables: TableNames, blog: int, ids: list[int]) -> dict[int, Row]: ...

    def post_categories(self, tables: TableNames, blog: int, ids: list[int]) -> dict[int, list[int]]: ...

    def post_children(self, tables: TableNames, blog: int, parent_ids: list[int], limit: int) -> list[Row]: ...

    def options(self, tables: TableNames, blog: int, names: Iterable[str]) -> dict[str, Any]: ...

    def user_nicenames(self, tables: TableNames, ids: list[int]) -> dict[int, str]: ...


class ChunkReader(Protocol):
    """Consistent backfill chunks (cdc.source.snapshot.SnapshotReader)."""

    def read_chunk(self, blog: int, after_id: int, ids: list[int] | None = None) -> SnapshotChunk: ...

    def reread(self, blog: int, ids: list[int]) -> SnapshotChunk: ...

    def close(self) -> None: ...


class RepairQueue(Protocol):
    """``verify --repair``'s requests to a running connector (cdc.repair_requests.RepairWatcher)."""

    async def watch(self) -> None:
        """Keep the pending requests current, until cancelled."""
        ...

    def next(self, finished: str | None = None) -> RepairRequest | None: ...

    def finished(self, snapshot: dict[str, Any] | None) -> list[Record]:
        """The records (a tombstone) to write with a checkpoint whose backfill finished a request."""
        ...


async def _to_thread(fn: Callable[..., T], *args: Any) -> T:
    return await asyncio.to_thread(fn, *args)


@dataclass
class Ports:
    """The collaborators of one session."""

    source: Callable[[Position, str | None], ChangeSource]  # a source reading from (position, GTID state)
    sink: EventSink
    store: PostStore
    chunk_reader: Callable[[], ChunkReader]
    monotonic: Callable[[], float] = time.monotonic
    wall: Callable[[], float] = time.time  # the wall clock binlog timestamps are compared with
    # How blocking I/O runs (a thread; inline in the simulation) and how a task waits.
    blocking: Callable[..., Awaitable[Any]] = _to_thread
    pause: Callable[[float], Awaitable[None]] = asyncio.sleep
    observe: bool = True  # report to the process's metrics (off for sessions that are not the process's)
    repairs: RepairQueue | None = None  # repair requests to pick up while streaming (None: none)
    extra: dict[str, Any] = field(default_factory=dict)
