"""The operator commands around the stream: ``check`` and ``offsets``.

They reuse the pipeline's pieces (preflight, checkpoint store, sink) so what ``check`` says is what
``stream`` will find.
"""

from __future__ import annotations

import asyncio

import click
import orjson

from cdc.checkpoint import Checkpoint
from cdc.config import StreamSettings
from cdc.errors import PreflightError, SinkError
from cdc.position import Position
from cdc.sink import KafkaSink, ensure_topics, find_checkpoint, topic_offsets
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
        try:
            saved, found_in = asyncio.run(find_checkpoint(settings.kafka, settings.checkpoint_topic, settings.name))
            held = 0 if saved else asyncio.run(topic_offsets(settings.kafka, settings.topic))
        except SinkError as exc:
            raise PreflightError(f"Kafka: {exc}", check="kafka", exit_code=18) from None
        click.echo(f"ok    kafka: {settings.kafka.bootstrap}")
        if saved is None and held:
            raise PreflightError(
                f"no checkpoint in {settings.checkpoint_topic}, but {settings.topic} holds {held} offsets: "
                "`wpcdc stream` would stop (exit 41); see docs/operations.md, \"A lost checkpoint\"",
                check="checkpoint", exit_code=41)
        click.echo(f"ok    checkpoint: {describe(saved, found_in)}")
        r = preflight.check_position(db, saved.resume if saved else None)
        click.echo(f"ok    {r.name}: {r.detail}")
    except PreflightError as exc:
        click.echo(f"FAIL  {exc.check}: {exc}")
        return exc.exit_code
    finally:
        db.close()
    return 0


def describe(saved: Checkpoint | None, found_in: str) -> str:
    if saved is None:
        return "none yet (a new connector starts at the binlog's end)"
    return f"resumes at {saved.resume} (in {found_in})"


def show_offsets(settings: StreamSettings) -> int:
    saved, found_in = asyncio.run(find_checkpoint(settings.kafka, settings.checkpoint_topic, settings.name))
    if saved is None:
        click.echo(f"no checkpoint for connector {settings.name!r} in {settings.checkpoint_topic}")
        return 3
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
        await ensure_topics(settings.kafka, settings.topic, settings.checkpoint_topic, settings.partitions)
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
