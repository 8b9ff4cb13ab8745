"""``wpcdc check``: what the stream would find, checked before it runs.

They reuse the pipeline's pieces (preflight, checkpoint store, sink) so what ``check`` says is what
``stream`` will find.
"""

from __future__ import annotations

import asyncio

import click

from cdc.checkpoint import Checkpoint, CheckpointStore
from cdc.config import StreamSettings
from cdc.errors import CheckpointMissingError, Exit, PreflightError, SinkError
from cdc.kafka import check_topics, connector_topics, event_topics
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
