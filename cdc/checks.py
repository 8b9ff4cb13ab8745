"""The operator commands around the stream: ``check`` and ``offsets``.

They reuse the pipeline's pieces (preflight, checkpoint store, sink) so what ``check`` says is what
``stream`` will find.
"""

from __future__ import annotations

import asyncio

import click
import orjson

from cdc.checkpoint import Checkpoint, CheckpointStore
from cdc.config import StreamSettings
from cdc.errors import CheckpointMissingError, Exit, PreflightError, SinkError
from cdc.kafka import check_topics, connector_topics, ensure_topics, event_topics
from cdc.position import Position
from cdc.sink import KafkaSink
from cdc.source import preflight
from cdc.source.database import Database
from cdc.wordpress import TableNames


def run_checks(settings: StreamSettings) -> int:
    """Every preflight check, printed one per line; the first failure sets the exit code."""
    db = Database(settings.mysql)
    tables = TableNames(settings.table_prefix, settings.blog_ids)
    try:
        results = [preflight.check_connect(db)]
        results += preflight.check_binlog_settings(db)
        results.append(preflight.check_privileges(db, tables))
        results.append(preflight.check_tables(db, tables))
        for r in results:
            click.echo(f"ok    {r.name}: {r.detail}")
        saved, found_in = asyncio.run(_check_kafka(settings))
        click.echo(f"ok    checkpoint: {describe(saved, found_in)}")
        r = preflight.check_position(db, saved.resume if saved else None)
        click.echo(f"ok    {r.name}: {r.detail}")
    except PreflightError as exc:
        click.echo(f"FAIL  {exc.check}: {exc}")
        return exc.exit_code
    finally:
        db.close()
    return 0


async def _check_kafka(settings: StreamSettings) -> tuple[Checkpoint | None, str]:
    """Kafka reachable, its topics fit for the connector, the checkpoint there (or not lost)."""
    store = CheckpointStore(settings.kafka, settings.checkpoint_topic, settings.name)
    try:
        saved, found_in = await store.find()
        topics = await event_topics(settings)
        problems = await check_topics(settings.kafka, connector_topics(settings, topics))
        click.echo(f"ok    kafka: {settings.kafka.bootstrap}")
        if problems:
            raise PreflightError("; ".join(problems), check="topics", exit_code=Exit.KAFKA)
        click.echo("ok    topics: missing ones are created by `wpcdc stream`; existing ones fit")
        if saved is None:
            await store.require_not_lost(topics)
    except CheckpointMissingError as exc:
        raise PreflightError(str(exc), check="checkpoint", exit_code=Exit.CHECKPOINT_MISSING) from None
    except SinkError as exc:
        raise PreflightError(f"Kafka: {exc}", check="kafka", exit_code=Exit.KAFKA) from None
    return saved, found_in


def describe(saved: Checkpoint | None, found_in: str) -> str:
    if saved is None:
        return "none yet (a new connector starts at the binlog's end)"
    return f"resumes at {saved.resume} (in {found_in})"


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
