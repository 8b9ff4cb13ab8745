#!/usr/bin/env python3
"""Keep PostgreSQL tables equal to a WordPress site from wpcdc's topics, exactly once.

    python examples/postgres/consumer.py --bootstrap 127.0.0.1:9092 \\
        --topic wpcdc.blog.posts --term-topic wpcdc.blog.terms \\
        --dsn 'host=127.0.0.1 port=5432 user=postgres dbname=site'

Exactly once, whatever kills it and when:

1. Records are read ``read_committed``: what an aborted connector transaction wrote is never seen.
2. Each batch is applied in ONE PostgreSQL transaction that also stores, per topic-partition, the
   offset after the batch's last record (table ``kafka_offsets``). Either the rows and the offsets
   are committed together, or neither is.
3. At start the consumer assigns itself every partition and seeks to the stored offsets (the
   beginning where none is stored). Kafka's consumer-group offsets are never read nor committed:
   PostgreSQL is the only place that says what was done.
4. An event whose ``seq`` is not newer than the post's stored one changes nothing (upsert.py).

It uses only the documented event contract (docs/events.md, docs/schema/*.json): any language
with a Kafka client and a PostgreSQL driver can do the same.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import signal
import sys
from pathlib import Path
from typing import Any

import psycopg
from aiokafka import AIOKafkaConsumer, TopicPartition
from upsert import apply_post_record, apply_term_record

SCHEMA = Path(__file__).resolve().parent / "schema.sql"
log = logging.getLogger("pg-consumer")


class OffsetWentBackError(RuntimeError):
    """The stored offset is already past this batch: another consumer is writing the same tables."""


async def wait_for_partitions(consumer: AIOKafkaConsumer, topic: str, timeout: float) -> list[TopicPartition]:
    """The topic's partitions, waiting for the connector to create it (it does at its start)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        await consumer._client.force_metadata_update()  # noqa: SLF001 - aiokafka has no public call for it
        parts = consumer.partitions_for_topic(topic)
        if parts:
            return [TopicPartition(topic, p) for p in sorted(parts)]
        if loop.time() > deadline:
            raise SystemExit(f"topic {topic!r} does not exist after {timeout:.0f}s: is `wpcdc stream` running "
                             "with this --name (topics wpcdc.<name>.posts and wpcdc.<name>.terms)?")
        await asyncio.sleep(0.5)


async def stored_offsets(conn: psycopg.AsyncConnection[Any]) -> dict[tuple[str, int], int]:
    async with conn.cursor() as cur:
        await cur.execute("SELECT topic, partition, next_offset FROM kafka_offsets")
        return {(t, p): o for t, p, o in await cur.fetchall()}


async def store_offset(cur: psycopg.AsyncCursor[Any], tp: TopicPartition, next_offset: int) -> None:
    """Record that everything before ``next_offset`` is applied; refuses to go backwards."""
    await cur.execute(
        "INSERT INTO kafka_offsets (topic, partition, next_offset) VALUES (%s, %s, %s) "
        "ON CONFLICT (topic, partition) DO UPDATE SET next_offset = EXCLUDED.next_offset "
        "WHERE kafka_offsets.next_offset < EXCLUDED.next_offset", (tp.topic, tp.partition, next_offset))
    if cur.rowcount != 1:
        raise OffsetWentBackError(f"{tp.topic}[{tp.partition}] is already stored at or past {next_offset}: is "
                                  "another consumer writing to this database? Run one per database.")


async def run(args: argparse.Namespace) -> None:
    # autocommit: every transaction is an explicit `async with conn.transaction()`, none is left
    # open by a lone SELECT.
    conn = await psycopg.AsyncConnection.connect(args.dsn, autocommit=True)
    await conn.execute(SCHEMA.read_text())
    # No group: this process owns every partition, and PostgreSQL (not Kafka) keeps the offsets.
    # "earliest": a partition with no stored offset is read from its first record (the fetcher may
    # reset a position before our seek lands; with "latest" it would skip what the topic holds).
    consumer = AIOKafkaConsumer(bootstrap_servers=args.bootstrap, isolation_level="read_committed",
                                enable_auto_commit=False, group_id=None, auto_offset_reset="earliest",
                                client_id="wpcdc-pg-recipe")
    await consumer.start()
    try:
        tps = await wait_for_partitions(consumer, args.topic, args.wait)
        if args.term_topic:
            tps += await wait_for_partitions(consumer, args.term_topic, args.wait)
        consumer.assign(tps)
        offsets = await stored_offsets(conn)
        for tp in tps:
            if (tp.topic, tp.partition) in offsets:
                consumer.seek(tp, offsets[(tp.topic, tp.partition)])
            else:
                await consumer.seek_to_beginning(tp)
        positions = {f"{tp.topic}[{tp.partition}]": await consumer.position(tp) for tp in tps}
        log.info("resuming at %s (stored: %d partitions)", positions, len(offsets))
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        while not stop.is_set():
            batch = await consumer.getmany(timeout_ms=500, max_records=args.batch)
            if batch:
                await apply_batch(conn, batch, args.term_topic)
        log.info("stopped: every record read so far is applied and its offset stored")
    finally:
        await consumer.stop()
        await conn.close()


async def apply_batch(conn: psycopg.AsyncConnection[Any], batch: dict[TopicPartition, list[Any]],
                      term_topic: str | None) -> None:
    """One transaction: every record of the batch, then the offsets after it."""
    stale = 0
    async with conn.transaction(), conn.cursor() as cur:
        for tp, records in batch.items():
            for r in records:
                value = json.loads(r.value) if r.value is not None else None
                if tp.topic == term_topic:
                    await apply_term_record(cur, r.key, value)
                elif not await apply_post_record(cur, r.key, value, (tp.topic, tp.partition, r.offset)):
                    stale += 1
            await store_offset(cur, tp, records[-1].offset + 1)
    log.info("committed %d records (%d stale) up to %s", sum(len(v) for v in batch.values()), stale,
             {f"{tp.topic}[{tp.partition}]": v[-1].offset + 1 for tp, v in batch.items()})


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--bootstrap", default=os.environ.get("WPCDC_KAFKA_BOOTSTRAP", "127.0.0.1:9092"),
                   help="Kafka bootstrap servers [env WPCDC_KAFKA_BOOTSTRAP]")
    p.add_argument("--topic", required=True, help="the post topic, e.g. wpcdc.blog.posts")
    p.add_argument("--term-topic", help="the term topic, e.g. wpcdc.blog.terms (term renames and deletes)")
    p.add_argument("--dsn", default=os.environ.get("PG_DSN", ""), help="libpq connection string [env PG_DSN]")
    p.add_argument("--batch", type=int, default=500, help="records per transaction at most")
    p.add_argument("--wait", type=float, default=60.0, help="seconds to wait for the topics to exist")
    args = p.parse_args()
    logging.basicConfig(level=logging.INFO, stream=sys.stderr,
                        format="%(asctime)s %(name)s %(levelname)s %(message)s")
    asyncio.run(run(args))


if __name__ == "__main__":
    main()
