"""The checkpoint is the connector's own: no other producer can hide it, and losing it is loud.

Against the real Kafka: a transaction another producer leaves open on a shared checkpoint topic
(what a connector killed mid-flush leaves for up to its transaction.timeout.ms) must not make a
restarted connector resume from an older checkpoint and repeat an event; a checkpoint in the
legacy shared topic moves to the connector's own; a lost checkpoint beside a topic that already
holds events stops the connector (exit 41) instead of starting at the end in silence.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
import uuid
from collections import Counter

import pytest

from cdc.config import LEGACY_CHECKPOINT_TOPIC
from cdc.errors import CheckpointMissingError
from tests.integration.harness import REPO, Connector, read_topic, wait_until
from tests.integration.test_never_silent import admin, cli, insert_post, scratch, titles, wait_exit

pytestmark = pytest.mark.integration
__all__ = ["scratch"]  # the fixture, imported so pytest finds it here


def leave_transaction_open(bootstrap: str, topic: str, timeout_ms: int) -> None:
    """A producer that begins a transaction on ``topic``, writes, and dies without ending it."""
    code = textwrap.dedent(f"""
        import asyncio, os
        from aiokafka import AIOKafkaProducer
        async def main():
            p = AIOKafkaProducer(bootstrap_servers={bootstrap!r}, transactional_id="killed-{uuid.uuid4().hex[:6]}",
                                 transaction_timeout_ms={timeout_ms})
            await p.start()
            await p.begin_transaction()
            await (await p.send({topic!r}, b"{{}}", key=b"another-connector"))
            os._exit(0)  # no commit, no abort: the broker keeps it open until the timeout
        asyncio.run(main())
    """)
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60, cwd=REPO)


def event_ids(c: Connector) -> Counter[str]:
    return Counter(e["event_id"] for e in c.events())


def test_open_transaction_on_a_shared_checkpoint_topic_repeats_nothing(connectors, stack, scratch) -> None:  # type: ignore[no-untyped-def]
    shared = f"wpcdc.shared-{uuid.uuid4().hex[:8]}.checkpoints"
    c: Connector = connectors(database=scratch, prefix="ns_", extra=["--checkpoint-topic", shared])
    c.start()
    leave_transaction_open(c.bootstrap, shared, timeout_ms=15_000)
    conn = admin(stack.mysql, scratch)
    with conn, conn.cursor() as cur:
        insert_post(cur, "emitted once")
        wait_until(lambda: "emitted once" in titles(c), 30, what="the event before the restart")
        assert c.stop() == 0
        # Behind the open transaction our newest checkpoint is invisible under read_committed: the
        # connector must wait for it to end, not resume from the checkpoint before the event.
        c.start(wait=False)
        insert_post(cur, "after the restart")
        wait_until(lambda: "after the restart" in titles(c), 120, 1.0, what="the event after the restart")
    repeated = {k: n for k, n in event_ids(c).items() if n > 1}
    assert not repeated, f"events written twice: {repeated}"
    assert titles(c) == ["emitted once", "after the restart"]


def test_checkpoint_in_the_legacy_shared_topic_moves_to_the_connectors_own(connectors, stack, scratch) -> None:  # type: ignore[no-untyped-def]
    old: Connector = connectors(database=scratch, prefix="ns_", extra=["--checkpoint-topic", LEGACY_CHECKPOINT_TOPIC])
    old.start()
    conn = admin(stack.mysql, scratch)
    with conn, conn.cursor() as cur:
        insert_post(cur, "under the old default")
        wait_until(lambda: "under the old default" in titles(old), 30, what="the event before the upgrade")
        assert old.stop() == 0
        # The same connector after the upgrade: no --checkpoint-topic, so its own topic.
        new: Connector = connectors(name=old.name, database=scratch, prefix="ns_")
        assert new.checkpoint_topic != LEGACY_CHECKPOINT_TOPIC
        new.start()
        insert_post(cur, "under the new default")
        wait_until(lambda: "under the new default" in titles(new), 30, what="the event after the upgrade")
    assert titles(new) == ["under the old default", "under the new default"], "an event lost or repeated"
    assert "moving it to the connector's own topic" in new.log()
    assert any(m.key == new.name for m in read_topic(new.bootstrap, new.checkpoint_topic))


def test_lost_checkpoint_beside_events_stops_until_told_how_to_start(connectors, stack, scratch) -> None:  # type: ignore[no-untyped-def]
    c: Connector = connectors(database=scratch, prefix="ns_")
    c.start()
    conn = admin(stack.mysql, scratch)
    with conn, conn.cursor() as cur:
        insert_post(cur, "before the loss")
        wait_until(lambda: "before the loss" in titles(c), 30, what="the first event")
        assert c.stop() == 0
        lost = ["--checkpoint-topic", f"wpcdc.empty-{uuid.uuid4().hex[:8]}.checkpoints"]
        checked = cli(c, "check", *lost)
        assert checked.returncode == CheckpointMissingError.exit_code, checked.stdout + checked.stderr
        assert "FAIL  checkpoint" in checked.stdout
        c.extra += lost
        c.checkpoint_topic = lost[1]
        c.start(wait=False)
        assert wait_exit(c) == CheckpointMissingError.exit_code
        message = c.log()
        assert "no checkpoint for connector" in message and "--start end" in message and "offsets set" in message
        insert_post(cur, "while stopped")
        # The deliberate fresh start skips what happened while it was down, as asked.
        c.start("--start", "end", wait=False)
        wait_until(lambda: c.checkpoint() is not None, 60, what="a checkpoint at the end")
        insert_post(cur, "after the fresh start")
        wait_until(lambda: "after the fresh start" in titles(c), 30, what="the event after the fresh start")
    assert titles(c) == ["before the loss", "after the fresh start"]
