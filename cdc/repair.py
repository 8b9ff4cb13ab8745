"""``wpcdc verify --repair``: documents for exactly the posts verify found different.

A repair is a backfill of listed posts (``SnapshotSettings.ids``), run by the connector's own
stream session (``run_stream``, as ``wpcdc backfill`` does): its documents go through the same
assembler as the stream, so the ordering rule between documents and changes holds
(``Assembler.on_snapshot``; a post the topic has and the database has not gets a delete and a
tombstone, ``Assembler.on_absent``), and its progress, the listed posts included, is in the
checkpoint, so an interrupted repair is finished by the next ``wpcdc stream``.

The price: the session writes with the connector's transactional id, so the connector must be
stopped, as for ``wpcdc backfill``; a running one would be fenced (exit 31). A running connector
rewrites its checkpoint at least every few seconds (``checkpoint_keepalive``), so a checkpoint
that does not change for three of those says the connector is stopped.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import replace

from cdc.checkpoint import Checkpoint, CheckpointStore
from cdc.config import StreamSettings
from cdc.errors import ConnectorRunningError

log = logging.getLogger(__name__)

BATCH = 10_000  # posts per repair session: their ids ride in every checkpoint record (~70 KB)
QUIET_KEEPALIVES = 3  # a checkpoint unchanged this many keepalives: the connector is not running


async def require_stopped(settings: StreamSettings) -> Checkpoint | None:
    """The connector's checkpoint, once sure the connector is not running and has no backfill to
    finish (ConnectorRunningError otherwise). Waits up to 15 s after a checkpoint just written."""
    store = CheckpointStore(settings.kafka, settings.checkpoint_topic, settings.name)
    first = await store.load()
    if first is None:
        return None
    if first.snapshot and not first.snapshot.get("finished_ms"):
        raise ConnectorRunningError(
            f"connector {settings.name} has a backfill in progress (id {first.snapshot.get('id')}): run "
            f"`wpcdc stream --name {settings.name}` until `wpcdc status` shows it finished, then stop it and repair")
    quiet = QUIET_KEEPALIVES * settings.checkpoint_keepalive
    age = time.time() - first.ts_ms / 1000
    if age < quiet:
        log.info("repair: checkpoint of %s written %.0fs ago; waiting %.0fs to be sure the connector is stopped",
                 settings.name, age, quiet - age)
        await asyncio.sleep(quiet - age)
        second = await store.load()
        if second is not None and second.ts_ms != first.ts_ms:
            raise ConnectorRunningError(
                f"connector {settings.name} is running (it rewrote its checkpoint just now): stop it first "
                "(SIGTERM, or scale its Deployment to 0). The repair writes with the connector's name, as "
                "`wpcdc backfill` does, and would fence it; start it again once the repair is done")
    return first


def batches(keys: list[tuple[int, int]], size: int = BATCH) -> Iterator[dict[int, tuple[int, ...]]]:
    """The posts per blog, at most ``size`` of them per batch."""
    batch: dict[int, list[int]] = defaultdict(list)
    n = 0
    for blog, post in sorted(set(keys)):
        batch[blog].append(post)
        n += 1
        if n == size:
            yield {b: tuple(ids) for b, ids in batch.items()}
            batch, n = defaultdict(list), 0
    if n:
        yield {b: tuple(ids) for b, ids in batch.items()}


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


__all__ = ["batches", "repair", "require_stopped"]
