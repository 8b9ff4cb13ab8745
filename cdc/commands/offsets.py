"""``wpcdc offsets show|set|reset``: read or move a connector's saved position (connector stopped).

They write through the connector's own transactional id, so a running instance is fenced rather
than raced, and through the same checkpoint store the stream reads.
"""

from __future__ import annotations

import asyncio

import click
import orjson

from cdc.checkpoint import Checkpoint, CheckpointStore
from cdc.config import StreamSettings
from cdc.errors import Exit
from cdc.kafka import connector_topics, ensure_topics
from cdc.position import Position
from cdc.sink import KafkaSink
from cdc.source import preflight
from cdc.source.database import Database


def show_offsets(settings: StreamSettings) -> int:
    store = CheckpointStore(settings.kafka, settings.checkpoint_topic, settings.name)
    saved, found_in = asyncio.run(store.find())
    if saved is None:
        click.echo(f"no checkpoint for connector {settings.name!r} in {settings.checkpoint_topic}")
        return Exit.NO_CHECKPOINT
    if found_in != settings.checkpoint_topic:
        click.echo(f"# in the shared topic {found_in}; the next `wpcdc stream` moves it to {settings.checkpoint_topic}",
                   err=True)
    click.echo(orjson.dumps(orjson.loads(saved.encode()), option=orjson.OPT_INDENT_2).decode())
    return 0


def set_offsets(settings: StreamSettings, position: Position | None) -> int:
    """Write a checkpoint at ``position`` (None: the binlog's current end)."""
    db = Database(settings.mysql)
    try:
        gtid = None
        if position is None:
            position, gtid = db.current_position()
            preflight.check_position(db, position)
        else:
            position = preflight.transaction_start(db, position)
    finally:
        db.close()
    checkpoint = Checkpoint(settings.name, position, gtid=gtid, server_id=settings.server_id)

    async def write() -> None:
        await ensure_topics(settings.kafka, connector_topics(settings), settings.replication_factor)
        # The connector's own transactional id: a running instance is fenced rather than raced.
        sink = KafkaSink(settings.kafka, topic=settings.topic, checkpoint_topic=settings.checkpoint_topic,
                         connector=settings.name, transactional_id=settings.transactional_id)
        await sink.start()
        try:
            await sink.write([], checkpoint)
        finally:
            await sink.stop()

    asyncio.run(write())
    click.echo(f"connector {settings.name!r} will resume at {position}")
    return 0
