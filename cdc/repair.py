"""``wpcdc verify --repair``: documents for exactly the posts verify found different.

A repair is a backfill of listed posts (``SnapshotSettings.ids`` / ``SnapshotProgress.ids``) run
inside a stream session: its documents go through the same assembler as the stream, so the
ordering rule between documents and changes holds (``Assembler.on_snapshot``; a post the topic has
and the database has not gets a delete and a tombstone, ``Assembler.on_absent``), and its progress,
the listed posts included, is in the checkpoint, so an interrupted repair is finished by whoever
resumes from it. Who runs that session depends on whether the connector runs
(:func:`connector_running`):

- **Running** (the usual case): the session is the connector's own. verify writes *repair
  requests* to the checkpoint topic (cdc/repair_requests.py); the running session picks each up
  once no backfill runs and tombstones it in the transaction of the checkpoint that records its
  backfill finished. verify waits for the tombstones (``--repair-timeout``), then verifies again.
- **Stopped**: :func:`repair` runs the session itself, under the connector's name (as ``wpcdc
  backfill`` does), and returns once it is committed: nothing to wait for, and a stopped connector
  could not pick up a request until it starts. A stopped connector with a backfill of its own to
  finish gets requests instead (its next start finishes that backfill, then repairs).

A running connector rewrites its checkpoint at least every few seconds (``checkpoint_keepalive``),
so a checkpoint that does not change for three of those says the connector is stopped.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import replace

from cdc.checkpoint import Checkpoint, CheckpointStore
from cdc.config import StreamSettings
from cdc.repair_requests import BATCH, batches

log = logging.getLogger(__name__)

QUIET_KEEPALIVES = 3  # a checkpoint unchanged this many keepalives: the connector is not running


async def connector_running(settings: StreamSettings) -> tuple[Checkpoint | None, bool]:
    """(the connector's checkpoint, whether the connector is running: it rewrote the checkpoint
    within the last three keepalives). Waits up to 15 s after a checkpoint just written, to see
    whether it is written again."""
    store = CheckpointStore(settings.kafka, settings.checkpoint_topic, settings.name)
    first = await store.load()
    if first is None:
        return None, False
    quiet = QUIET_KEEPALIVES * settings.checkpoint_keepalive
    age = time.time() - first.ts_ms / 1000
    if age >= quiet:
        return first, False
    log.info("repair: checkpoint of %s written %.0fs ago; watching it up to %.0fs to see whether the connector "
             "runs", settings.name, age, quiet - age)
    deadline = time.monotonic() + quiet - age
    while time.monotonic() < deadline:
        await asyncio.sleep(min(1.0, max(0.0, deadline - time.monotonic())))
        second = await store.load()
        if second is not None and second.ts_ms != first.ts_ms:
            return second, True
    return first, False


async def repair(settings: StreamSettings, keys: list[tuple[int, int]], stop: asyncio.Event) -> bool:
    """Re-emit the posts ``keys`` (blog, post) through the backfill; False when ``stop`` ended it
    first (the connector then finishes it: the checkpoint holds the posts still to read)."""
    from cdc.pipeline import run_stream

    for ids in batches(keys):
        snapshot = replace(settings.snapshot, ids=ids, blog_ids=None, post_types=None, id_min=0, id_max=None)
        # From the checkpoint whatever --start says, and without a metrics port: it is not the
        # connector's process.
        session = replace(settings, snapshot=snapshot, start="checkpoint", snapshot_mode="never", metrics_port=None)
        log.info("repair: re-emitting %d posts of blogs %s", sum(len(v) for v in ids.values()), sorted(ids))
        await run_stream(session, stop, backfill_now=True)
        if stop.is_set():
            return False
    return True


__all__ = ["BATCH", "batches", "connector_running", "repair"]
