"""The connector on the three-broker cluster: the topics it makes, what ``check`` says of them, and
what a broker dying under a live WordPress stream does to the events and the checkpoint.

tests/integration/test_kafka_cluster.py shows the cluster itself replicates and survives a broker;
this file runs the real ``wpcdc`` against it. The brokers default to ``default.replication.factor=3``
and ``min.insync.replicas=2`` (deploy/local/cluster.py), so a connector given no
``--replication-factor`` must create its topics with three replicas, and keep writing, exactly
once, while any one broker is gone. The guarantees checked are the published ones: the folded
topic equals the database, no event twice (every (post, seq) once), and per post the events cover
exactly the binlog rows an uninterrupted reference connector counts.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from aiokafka.admin import NewTopic
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType

from cdc.checkpoint import Checkpoint
from tests.integration.harness import (
    REPO,
    Connector,
    Workload,
    assert_folds_to_database,
    check_stream,
    database_state,
    fold,
    kafka_admin,
    unique,
    wait_until,
)

import cluster as local_cluster  # deploy/local/cluster.py, on sys.path through tests/conftest.py

pytestmark = [pytest.mark.integration, pytest.mark.cluster, pytest.mark.timeout(600)]

NODES = set(local_cluster.NODES)


async def _delete_topics(bootstrap: list[str], topics: list[str]) -> None:
    async with kafka_admin(bootstrap) as admin:
        existing = set(await admin.list_topics())
        if wanted := [t for t in topics if t in existing]:
            await admin.delete_topics(wanted)


@pytest.fixture
def cluster_env(cdc_env: dict[str, str], kafka_cluster: list[str]) -> dict[str, str]:
    """The stack's MariaDB with the cluster's brokers as the bootstrap list."""
    return {**cdc_env, "WPCDC_KAFKA_BOOTSTRAP": ",".join(kafka_cluster)}


@pytest.fixture
def on_cluster(cluster_env: dict[str, str], kafka_cluster: list[str]) -> Iterator[Callable[..., Connector]]:
    """Connectors writing to the cluster; killed and their topics deleted when the test ends, and
    every broker started again (a test that failed with one down must not leave it down)."""
    made: list[Connector] = []

    def make(**kw: Any) -> Connector:
        c = Connector(cluster_env, **kw)
        made.append(c)
        return c

    yield make
    for c in made:
        if c.running:
            c.kill()
    for n in sorted(NODES):
        local_cluster.broker_start(n)
    asyncio.run(_delete_topics(kafka_cluster, [t for c in made for t in (c.topic, c.checkpoint_topic)]))


def _wpcdc(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "cdc", "--log-format", "text", *args],
                          env={**os.environ, **env}, cwd=REPO, capture_output=True, text=True, timeout=180)


async def _layout(bootstrap: list[str], topics: list[str]) -> dict[str, tuple[set[int], str]]:
    """Per topic: the replica counts of its partitions and its effective min.insync.replicas."""
    async with kafka_admin(bootstrap) as admin:
        described = await admin.describe_topics(topics)
        responses = await admin.describe_configs(
            [ConfigResource(ConfigResourceType.TOPIC, t, configs={"min.insync.replicas": None}) for t in topics])
    min_isr = {r[3]: dict((e[0], e[1]) for e in r[4])["min.insync.replicas"]
               for resp in responses for r in resp.resources}
    return {t["topic"]: ({len(p["replicas"]) for p in t["partitions"]}, min_isr[t["topic"]]) for t in described}


# ------------------------------------------------------------------------------ topics and check


def test_topics_take_the_brokers_replication_and_check_passes(on_cluster, cluster_env, kafka_cluster) -> None:  # type: ignore[no-untyped-def]
    """No --replication-factor: the brokers' default.replication.factor (3) and min ISR (2);
    --replication-factor 2 overrides the first. ``check`` finds both pairs of topics fit."""
    default: Connector = on_cluster()
    two: Connector = on_cluster(extra=["--replication-factor", "2"])
    default.start()
    two.start()
    layout = asyncio.run(_layout(kafka_cluster, [default.topic, default.checkpoint_topic,
                                                 two.topic, two.checkpoint_topic]))
    assert layout == {default.topic: ({3}, "2"), default.checkpoint_topic: ({3}, "2"),
                      two.topic: ({2}, "2"), two.checkpoint_topic: ({2}, "2")}
    assert "with replication factor 3" in default.log() and "with replication factor 2" in two.log()
    assert default.stop() == 0 and two.stop() == 0
    for c in (default, two):
        checked = _wpcdc(cluster_env, "check", "--name", c.name)
        assert checked.returncode == 0, checked.stdout + checked.stderr
        assert "ok    topics:" in checked.stdout


@pytest.mark.parametrize(("replicas", "configs", "expected"), [
    (3, {"cleanup.policy": "delete"}, "has cleanup.policy=delete"),
    (3, {"cleanup.policy": "compact", "max.message.bytes": "500000"},
     "has max.message.bytes=500000, below --max-message-bytes 900000"),
    (1, {"cleanup.policy": "compact"}, "has 1 replica(s) but min.insync.replicas=2"),
], ids=["not-compacted", "max-message-bytes", "under-replicated"])
def test_check_fails_with_exit_18_for_an_unfit_event_topic(cluster_env, kafka_cluster, replicas: int,  # type: ignore[no-untyped-def]
                                                           configs: dict[str, str], expected: str) -> None:
    """An operator's event topic that contradicts what wpcdc needs: ``check`` names it and the fix."""
    name = unique("unfit")
    topic = f"wpcdc.{name}.posts"

    async def create() -> None:
        async with kafka_admin(kafka_cluster) as admin:
            resp = await admin.create_topics([NewTopic(topic, 1, replicas, topic_configs=configs)])
            assert [e for e in resp.topic_errors if e[1]] == []

    asyncio.run(create())
    try:
        checked = _wpcdc(cluster_env, "check", "--name", name, "--max-message-bytes", "900000")
    finally:
        asyncio.run(_delete_topics(kafka_cluster, [topic]))
    assert checked.returncode == 18, checked.stdout + checked.stderr
    [fail] = [line for line in checked.stdout.splitlines() if line.startswith("FAIL")]
    assert fail.startswith("FAIL  topics: events topic " + topic), fail
    assert expected in fail and "kafka-" in fail, fail  # the problem, and the command that fixes it


# ------------------------------------------------------------------------------ brokers dying


def _start_workload(wordpress: Any, seed: int) -> Workload:
    workload = Workload(wordpress, seed=seed, posts=6, deletes=True)
    workload.start()
    return workload


def _committed(c: Connector) -> int:
    return len(c.messages())


def _grows(c: Connector, more: int, timeout: float, what: str, workload: Workload) -> None:
    """Until ``more`` records beyond the current count are committed (the stream goes on)."""
    base = _committed(c)

    def grown() -> bool:
        assert workload.error is None, workload.error
        if not c.running:
            raise AssertionError(f"connector exited with {c.proc and c.proc.returncode}:\n{c.log()[-3000:]}")
        return _committed(c) >= base + more

    wait_until(grown, timeout, 0.5, what)


def _assert_exact(c: Connector, reference: Connector, start: Checkpoint, workload: Workload, mysql: int) -> None:
    """The guarantees, once ``c`` has stopped: checked against the database and against a
    reference connector that reads the same binlog range without interruption (into the cluster
    too), which must count the same binlog rows per post.

    One difference is allowed: a post whose whole life (create to delete) fell in one quiescence
    window has no event at all. Windows follow the wall clock live and the binlog's clock while
    catching up, so such a post may have events on one side only; there it must fold to deleted.
    """
    end = c.checkpoint()
    assert end is not None
    keys = {(1, pid) for pid in workload.post_ids}
    reference.start("--start", str(start.resume))
    wait_until(lambda: (cp := reference.checkpoint()) is not None and cp.resume >= end.resume, 90, 0.5,
               f"the reference to reach {end.resume}")
    assert reference.stop() == 0, reference.log()[-3000:]

    got, want = c.events(*keys), reference.events(*keys)
    check_stream(got)
    check_stream(want)
    seqs = Counter((e["blog_id"], e["post_id"], e["seq"]) for e in got)
    assert [k for k, n in seqs.items() if n > 1] == [], "an event twice"
    folded, folded_ref = fold(got), fold(want)
    db = database_state(mysql)
    both = folded.keys() & folded_ref.keys()
    assert {k: folded[k]["rows"] for k in both} == {k: folded_ref[k]["rows"] for k in both}
    for key, side in [(k, folded) for k in folded.keys() - both] + [(k, folded_ref) for k in folded_ref.keys() - both]:
        assert side[key]["row"] is None and key not in db, f"post {key} has events on one side only"
    assert_folds_to_database(folded, db, keys)
    tombstones = {m.post for m in c.messages() if m.value is None}
    assert {(1, pid) for pid in workload.deleted} & folded.keys() <= tombstones
    print(f"{workload.actions} actions on {len(keys)} posts ({len(workload.deleted)} deleted), {len(got)} events")


def test_the_event_topics_leader_killed_mid_stream(on_cluster, wordpress, stack) -> None:  # type: ignore[no-untyped-def]
    """kill -9 of the event partition's leader while WordPress edits stream exactly-once: the
    connector goes on through the new leader, the old one rejoins, nothing is lost or repeated."""
    c: Connector = on_cluster(window=0.5)
    c.start()
    start = c.checkpoint()
    assert start is not None
    workload = _start_workload(wordpress, seed=31)
    victim = -1
    try:
        _grows(c, 10, 60, "the first events", workload)
        victim = local_cluster.leader(c.topic)
        assert victim in NODES
        local_cluster.broker_stop(victim, hard=True)
        _grows(c, 15, 120, "events through the new leader", workload)
        assert local_cluster.leader(c.topic) in NODES - {victim}
        local_cluster.broker_start(victim)
        local_cluster.wait_in_sync(c.topic)
        local_cluster.wait_in_sync(c.checkpoint_topic)
        _grows(c, 10, 60, "events after the old leader rejoined", workload)
    finally:
        workload.stop.set()
        workload.join(30)
        if victim in NODES:
            local_cluster.broker_start(victim)
    assert workload.error is None, workload.error
    time.sleep(2.0)
    assert c.stop() == 0, c.log()[-3000:]
    # Whether the sink rode through the election or a session failed and healed from its
    # checkpoint, both are allowed; which one happened is worth seeing in the test's output.
    print(f"sessions: {len(c.streamed_from())}, retries: {c.log().count('retrying in')}")
    _assert_exact(c, on_cluster(window=0.5), start, workload, stack.mysql)


def test_the_checkpoint_survives_the_loss_of_any_one_broker(on_cluster, wordpress, stack) -> None:  # type: ignore[no-untyped-def]
    """Each broker in turn is killed, then the connector is killed and restarted without it: the
    restart resumes exactly at the checkpoint committed before (read with that broker gone)."""
    c: Connector = on_cluster(window=0.5)
    c.start()
    start = c.checkpoint()
    assert start is not None
    workload = _start_workload(wordpress, seed=37)
    try:
        _grows(c, 5, 60, "the first events", workload)
        for n in sorted(NODES):
            leaders = (local_cluster.leader(c.topic), local_cluster.leader(c.checkpoint_topic))
            local_cluster.broker_stop(n, hard=True)
            time.sleep(1.0)  # the connector meets the broker's loss mid-stream, then dies itself
            c.kill()
            # what the restart must resume from, read without broker n; a kill mid-flush leaves a
            # transaction open until the broker times it out
            saved = c.checkpoint(timeout=120)
            assert saved is not None
            sessions = len(c.streamed_from())
            c.start(wait=False)
            wait_until(lambda s=sessions: len(c.streamed_from()) > s or not c.running, 90, 0.3,
                       f"the restart without broker {n} (leaders were {leaders})")
            assert c.running, c.log()[-3000:]
            assert c.streamed_from()[-1] == str(saved.resume), f"broker {n} down: resumed elsewhere"
            _grows(c, 5, 90, f"events without broker {n}", workload)
            local_cluster.broker_start(n)
            local_cluster.wait_in_sync(c.topic)
            local_cluster.wait_in_sync(c.checkpoint_topic)
    finally:
        workload.stop.set()
        workload.join(30)
    assert workload.error is None, workload.error
    time.sleep(2.0)
    assert c.stop() == 0, c.log()[-3000:]
    assert len(c.streamed_from()) == 1 + len(NODES)
    _assert_exact(c, on_cluster(window=0.5), start, workload, stack.mysql)
