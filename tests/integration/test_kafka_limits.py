"""Kafka's size limits against wpcdc's: a topic that takes less than --max-message-bytes stops the
connector with the remedy (exit 32), instead of a retry loop that never gets further."""

from __future__ import annotations

import asyncio
import os

import pytest
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from cdc.errors import RecordTooLargeError
from tests.integration.harness import Connector, wait_until
from tests.integration.test_never_silent import admin, insert_post, scratch, titles, wait_exit

pytestmark = pytest.mark.integration
__all__ = ["scratch"]


async def create_topic(bootstrap: str, topic: str, configs: dict[str, str]) -> None:
    client = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await client.start()
    try:
        await client.create_topics([NewTopic(topic, 1, 1, topic_configs=configs)])
    finally:
        await client.close()


def test_a_topic_that_takes_less_than_max_message_bytes_stops_with_the_remedy(connectors, stack, scratch) -> None:  # type: ignore[no-untyped-def]
    c: Connector = connectors(database=scratch, prefix="ns_", extra=["--max-message-bytes", "200000"])
    asyncio.run(create_topic(c.bootstrap, c.topic, {"cleanup.policy": "compact", "max.message.bytes": "20000"}))
    c.start()
    conn = admin(stack.mysql, scratch)
    with conn, conn.cursor() as cur:
        insert_post(cur, "small")
        wait_until(lambda: "small" in titles(c), 30, what="a small event")
        insert_post(cur, "large", content=os.urandom(60_000).hex())  # ~120 KB, ~60 KB compressed
        assert wait_exit(c) == RecordTooLargeError.exit_code
    log = c.log()
    assert "max.message.bytes" in log and "--max-message-bytes" in log and "kafka-configs.sh" in log
    assert titles(c) == ["small"]
    assert c.checkpoint() is not None
