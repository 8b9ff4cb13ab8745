"""Metrics and health without servers: names and labels, the values the pipeline hooks produce,
readiness and liveness transitions, and the HTTP endpoints."""

from __future__ import annotations

import asyncio
import math
import re
import time
import urllib.error
import urllib.request
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from prometheus_client import REGISTRY

from cdc import endpoints, metrics
from cdc.checkpoint import Checkpoint
from cdc.errors import SinkError, SourceError
from cdc.model import Commit, Idle
from cdc.pipeline import Session
from cdc.position import Position
from cdc.source.binlog import SourceFailed
from cdc.source.handoff import WeightedQueue
from cdc.source.retention import ServerBinlogs
from cdc.wordpress import TableKind

from .rows import FILE, Binlog, post_row

DOCS = Path(__file__).resolve().parents[2] / "docs" / "operations.md"
ALLOWED_LABELS = {"table", "op", "operation", "cause", "version", "connector", "le"}


def value(name: str, **labels: str) -> float:
    v = REGISTRY.get_sample_value(name, labels)
    return 0.0 if v is None else v


def value_or_nan(name: str) -> float:
    v = REGISTRY.get_sample_value(name, {})
    return math.nan if v is None else v


@pytest.fixture(autouse=True)
def fresh_state():  # type: ignore[no-untyped-def]
    metrics.reset()
    yield
    metrics.reset()


def wpcdc_families() -> list[Any]:
    return [f for f in REGISTRY.collect() if f.name.startswith("wpcdc")]


# ------------------------------------------------------------------------------------ naming


def test_every_metric_follows_the_conventions_and_is_documented() -> None:
    documented = set(re.findall(r"`(wpcdc_[a-z_]+)", DOCS.read_text()))
    families = wpcdc_families()
    assert len(families) >= 20
    for family in families:
        assert family.documentation, family.name
        for sample in family.samples:
            assert sample.name.startswith("wpcdc_"), sample.name
            assert set(sample.labels) <= ALLOWED_LABELS, (sample.name, sample.labels)
            assert not sample.name.endswith("_created"), sample.name
            if family.type == "counter":
                assert sample.name.endswith("_total"), sample.name
            # base units: seconds and bytes, never milliseconds or megabytes
            assert not re.search(r"_(ms|milliseconds|mb|kb|minutes)(_|$)", sample.name), sample.name
        exposed = {"counter": f"{family.name}_total", "info": f"{family.name}_info"}.get(family.type, family.name)
        assert exposed in documented, f"{exposed} is not in docs/operations.md"


def test_label_values_are_a_closed_set() -> None:
    for family in wpcdc_families():
        for sample in family.samples:
            for label, v in sample.labels.items():
                allowed = {"table": metrics.TABLES, "op": metrics.OPS, "operation": metrics.KAFKA_OPERATIONS,
                           "cause": metrics.CAUSES}.get(label)
                if allowed is not None:
                    assert v in allowed, (sample.name, label, v)


# ---------------------------------------------------------------------------- pipeline hooks


def session(emitted: dict[Any, Any] | None = None, **settings_: Any) -> Session:
    """A real session whose ports are never called by ``_on_item`` (no servers)."""
    from cdc.config import KafkaSettings, MysqlSettings, StreamSettings
    from cdc.ports import Ports

    def unused(*args: Any) -> Any:
        raise AssertionError("_on_item does no I/O")

    settings = StreamSettings(name="m", mysql=MysqlSettings(), kafka=KafkaSettings(), server_id=1, window=1.0,
                              **settings_)
    checkpoint = Checkpoint("m", Position("mariadb-bin.000001", 4), emitted=emitted or {})
    return Session(settings, checkpoint, Ports(source=unused, sink=unused, store=unused,  # type: ignore[arg-type]
                                               chunk_reader=unused, observe=False))


def feed(s: Session, items: list[Any]) -> None:
    """The pipeline's own handling of each item (pipeline.Session._on_item), metrics included."""
    for item in items:
        s._on_item(item)  # noqa: SLF001 - the hook under test


def test_rows_seen_and_filtered_by_table() -> None:
    s, b = session(), Binlog()
    asm = s.assembler
    before = {t: (value("wpcdc_binlog_rows_total", table=t), value("wpcdc_binlog_rows_filtered_total", table=t))
              for t in metrics.TABLES}
    feed(s, b.insert_post(post_row(10)))
    feed(s, b.add_meta(1, 10, "_edit_lock", "1:1"))         # ignored by default: filtered
    feed(s, b.add_meta(2, 10, "color", "blue"))             # kept
    feed(s, b.insert_post(post_row(11, post_type="oembed_cache")))  # excluded type: filtered
    feed(s, b.new_term(5, 5, "category", "news", "News"))   # terms feed the catalog: never filtered
    feed(s, b.relate(10, 5))

    def delta(metric: str, table: TableKind) -> float:
        i = 0 if metric == "wpcdc_binlog_rows_total" else 1
        return value(metric, table=table.value) - before[table.value][i]

    assert delta("wpcdc_binlog_rows_total", TableKind.POSTS) == 2
    assert delta("wpcdc_binlog_rows_filtered_total", TableKind.POSTS) == 1
    assert delta("wpcdc_binlog_rows_total", TableKind.POSTMETA) == 2
    assert delta("wpcdc_binlog_rows_filtered_total", TableKind.POSTMETA) == 1
    assert delta("wpcdc_binlog_rows_total", TableKind.TERMS) == 1
    assert delta("wpcdc_binlog_rows_filtered_total", TableKind.TERMS) == 0
    assert delta("wpcdc_binlog_rows_filtered_total", TableKind.TERM_RELATIONSHIPS) == 0
    assert asm.pending_posts == 1


def test_replayed_rows_already_in_kafka_count_as_filtered() -> None:
    b = Binlog()
    items = b.update_meta(3, 7, "color", "red", "blue")
    mark = items[0].position
    s = session(emitted={(1, 7): mark})
    before = value("wpcdc_binlog_rows_filtered_total", table="postmeta")
    feed(s, items)
    assert value("wpcdc_binlog_rows_filtered_total", table="postmeta") - before == 1


def lag() -> float:
    assert value("wpcdc_seconds_behind_source") == pytest.approx(value("wpcdc_source_lag_seconds"), abs=0.1)
    return value("wpcdc_source_lag_seconds")


def test_position_and_source_lag() -> None:
    b = Binlog(ts=int(time.time()) - 100)
    feed(session(), b.insert_post(post_row(1)))
    assert value("wpcdc_binlog_file_number") == 1
    assert value("wpcdc_binlog_position_bytes") == b.pos
    assert 99 <= lag() <= 110  # reading a backlog: now minus the last event's binlog time
    feed(session(), [Idle(Position("mariadb-bin.000001", b.pos), at=time.time())])  # a heartbeat: caught up
    assert lag() < 1
    metrics.rows_seen(b.rows(TableKind.POSTS, "update", [(post_row(1), post_row(1, post_title="x"))]))
    assert lag() >= 99


def test_lag_grows_from_the_last_heartbeat_when_the_source_goes_away() -> None:
    """The outage bug: a heartbeat used to mean "0 behind" until the next row, so an idle site that
    lost MySQL or Kafka read 0 throughout. Now only a live connection's heartbeat or event moves
    the reference, and nothing else (a failure, a reconnect, a new session's fake rotation)."""
    s = session()
    feed(s, [Idle(Position(FILE, 4), at=time.time() - 50)])  # the last heartbeat, 50 s ago
    assert 49 <= lag() <= 51
    metrics.source_lost()
    metrics.ready(False)
    metrics.reconnect(SourceError("lost the binlog connection"))
    feed(session(), [Commit(Position(FILE, 4), None, 0, rotate=True)])  # the next session's fake rotation
    assert 49 <= lag() <= 52
    feed(s, [Idle(Position(FILE, 4), at=time.time())])  # the new session's first heartbeat
    assert lag() < 1


def test_lag_counts_from_the_start_before_anything_was_read() -> None:
    first = lag()
    time.sleep(0.05)
    assert lag() >= first + 0.04


def test_connected_gauges() -> None:
    assert (value("wpcdc_source_connected"), value("wpcdc_sink_connected")) == (0, 0)
    metrics.sink_connected()
    feed(session(), [Idle(Position(FILE, 4))])
    assert (value("wpcdc_source_connected"), value("wpcdc_sink_connected")) == (1, 1)
    with pytest.raises(SourceError):
        feed(session(), [SourceFailed(SourceError("lost the binlog connection"))])
    assert (value("wpcdc_source_connected"), value("wpcdc_sink_connected")) == (0, 1)
    feed(session(), [Idle(Position(FILE, 4))])
    metrics.ready(False)  # the session ended: both connections are closed
    assert (value("wpcdc_source_connected"), value("wpcdc_sink_connected")) == (0, 0)


def test_transactions_count_commits_not_rotations() -> None:
    n = value("wpcdc_source_transactions_total")
    feed(session(), [Commit(Position(FILE, 400), None, 1),
                     Commit(Position("mariadb-bin.000002", 4), None, 2, rotate=True),
                     Commit(Position("mariadb-bin.000002", 500), None, 3)])
    assert value("wpcdc_source_transactions_total") == n + 2


def test_forced_emits_count_what_the_memory_bound_closes() -> None:
    s, b = session(max_pending_bytes=1), Binlog()
    n = value("wpcdc_forced_emits_total")
    feed(s, b.insert_post(post_row(10)))
    assert value("wpcdc_forced_emits_total") == n + 1
    assert s.assembler.pending_posts == 0


def test_statement_writes_by_table() -> None:
    n = value("wpcdc_statement_writes_total", table="posts")
    metrics.statement_write(TableKind.POSTS)
    assert value("wpcdc_statement_writes_total", table="posts") == n + 1


def test_reader_queue_follows_the_attached_session() -> None:
    queue = WeightedQueue(4 << 20)
    queue.put(["chunk"], weight=1500)
    s = SimpleNamespace(assembler=None, source=SimpleNamespace(queue=queue), checkpoint=Checkpoint("c", Position(FILE, 4)))
    metrics.attach(s)
    assert (value("wpcdc_reader_queue_bytes"), value("wpcdc_reader_queue_capacity_bytes")) == (1500, 4 << 20)
    metrics.detach(s)
    assert (value("wpcdc_reader_queue_bytes"), value("wpcdc_reader_queue_capacity_bytes")) == (0, 0)


def test_binlog_retention_gauges_from_the_poll_the_checkpoint_and_the_rotations() -> None:
    assert math.isnan(value_or_nan("wpcdc_binlog_server_files"))  # no poll yet
    now = time.time()
    files = {"mariadb-bin.000001": 1000, "mariadb-bin.000002": 2000, "mariadb-bin.000003": 300}
    metrics.binlogs_polled(ServerBinlogs(files, 86_400.0, now))
    metrics.checkpointed(Checkpoint("c", Position("mariadb-bin.000002", 1500)))
    assert value("wpcdc_binlog_server_files") == 3
    assert (value("wpcdc_binlog_server_oldest_file_number"), value("wpcdc_binlog_server_current_file_number")) == (1, 3)
    assert value("wpcdc_binlog_checkpoint_files_behind") == 1
    assert value("wpcdc_binlog_checkpoint_bytes_behind_end") == 500 + 300
    assert value("wpcdc_binlog_expire_seconds") == 86_400
    assert value("wpcdc_binlog_poll_timestamp_seconds") == pytest.approx(now)
    assert math.isnan(value_or_nan("wpcdc_binlog_retention_seconds_left"))  # file 2's close time unknown
    s = session()
    feed(s, [Commit(Position("mariadb-bin.000002", 1200), None, int(now) - 4000)])  # read in file 2
    assert value("wpcdc_binlog_retention_seconds_left") == pytest.approx(86_400 - 4000, abs=2)  # a lower bound
    feed(s, [Commit(Position("mariadb-bin.000003", 4), None, int(now) - 3000, rotate=True)])  # file 2 closed
    assert value("wpcdc_binlog_retention_seconds_left") == pytest.approx(86_400 - 3000, abs=2)
    metrics.checkpointed(Checkpoint("c", Position("mariadb-bin.000003", 4)))  # in the file being written
    assert value("wpcdc_binlog_retention_seconds_left") == 86_400


def test_events_transactions_errors_reconnects() -> None:
    now_ms = int(time.time() * 1000)

    def ev(op: str, age: float, snapshot: bool = False) -> Any:
        return SimpleNamespace(op=op, source=SimpleNamespace(ts_ms=now_ms - int(age * 1000), snapshot=snapshot))

    before = {op: value("wpcdc_events_total", op=op) for op in metrics.OPS}
    count = value("wpcdc_kafka_write_seconds_count")
    ages, age_sum = value("wpcdc_delivery_age_seconds_count"), value("wpcdc_delivery_age_seconds_sum")
    truncated = value("wpcdc_truncated_events_total")
    metrics.flushed([ev("create", 2.5), ev("update", 4), ev("update", 0.5), ev("snapshot", 900, snapshot=True)],
                    0.02, truncated=1)
    assert value("wpcdc_events_total", op="create") - before["create"] == 1
    assert value("wpcdc_events_total", op="update") - before["update"] == 2
    assert value("wpcdc_kafka_write_seconds_count") == count + 1
    assert value("wpcdc_delivery_age_seconds_count") == ages + 3  # snapshot events are not observed
    assert value("wpcdc_delivery_age_seconds_sum") - age_sum == pytest.approx(7, abs=0.1)
    assert value("wpcdc_delivery_age_seconds_bucket", le="3.0") - value("wpcdc_delivery_age_seconds_bucket", le="2.0") >= 1
    assert value("wpcdc_truncated_events_total") == truncated + 1

    committed, aborted = value("wpcdc_kafka_transactions_committed_total"), value("wpcdc_kafka_transactions_aborted_total")
    metrics.transaction(committed=True)
    metrics.transaction(committed=False)
    assert value("wpcdc_kafka_transactions_committed_total") == committed + 1
    assert value("wpcdc_kafka_transactions_aborted_total") == aborted + 1

    errors = value("wpcdc_kafka_errors_total", operation="write")
    metrics.kafka_error("write")
    assert value("wpcdc_kafka_errors_total", operation="write") == errors + 1

    mysql, kafka = value("wpcdc_reconnects_total", cause="mysql"), value("wpcdc_reconnects_total", cause="kafka")
    metrics.reconnect(SourceError("lost the binlog connection"))
    metrics.reconnect(SinkError("Kafka at k:9092 failed"))
    assert value("wpcdc_reconnects_total", cause="mysql") == mysql + 1
    assert value("wpcdc_reconnects_total", cause="kafka") == kafka + 1


def test_checkpoint_gauges_and_age() -> None:
    cp = Checkpoint("c", Position(FILE, 4567), ts_ms=int((time.time() - 30) * 1000))
    n = value("wpcdc_checkpoints_total")
    metrics.checkpointed(cp)
    assert value("wpcdc_checkpoints_total") == n + 1
    assert value("wpcdc_checkpoint_binlog_file_number") == 1
    assert value("wpcdc_checkpoint_binlog_position_bytes") == 4567
    assert value("wpcdc_checkpoint_timestamp_seconds") == pytest.approx(cp.ts_ms / 1000)
    assert 29 <= value("wpcdc_checkpoint_age_seconds") <= 35


def test_pending_gauges_follow_the_attached_session() -> None:
    session = SimpleNamespace(assembler=SimpleNamespace(pending_posts=3, pending_bytes=4096, max_pending_bytes=8192),
                              checkpoint=Checkpoint("c", Position(FILE, 4)))
    metrics.attach(session)
    assert value("wpcdc_assembler_pending_posts") == 3
    assert value("wpcdc_assembler_pending_bytes") == 4096
    assert value("wpcdc_assembler_pending_limit_bytes") == 8192
    metrics.detach(session)
    assert value("wpcdc_assembler_pending_posts") == 0


def test_snapshot_progress() -> None:
    rows = value("wpcdc_snapshot_rows_scanned_total", table="posts")
    metrics.snapshot_started(posts=40)
    metrics.snapshot_rows("posts", 25)
    metrics.snapshot_progress(posts_done=10)
    assert value("wpcdc_snapshot_running") == 1
    assert value("wpcdc_snapshot_posts") == 40
    assert value("wpcdc_snapshot_posts_done") == 10
    assert value("wpcdc_snapshot_rows_scanned_total", table="posts") == rows + 25
    metrics.snapshot_finished()
    assert value("wpcdc_snapshot_running") == 0


# ----------------------------------------------------------------------------------- health


def test_readiness_transitions_with_reasons() -> None:
    metrics.configure(connector="c", stall_timeout=0.2, mysql="db:3306", kafka="k:9092")
    assert metrics.readiness() == (False, "starting")
    metrics.ready(True)
    assert metrics.readiness() == (True, "ready")
    assert value("wpcdc_ready") == 1

    time.sleep(0.3)  # no event, no heartbeat: the binlog side is stuck
    ok, why = metrics.readiness()
    assert not ok and why.startswith("stalled") and "MySQL at db:3306" in why
    assert value("wpcdc_ready") == 0 and value("wpcdc_stalled") == 1

    metrics.idle()  # a heartbeat arrives: moving again
    assert metrics.readiness() == (True, "ready")

    metrics.write_started()
    time.sleep(0.3)  # a Kafka write that does not return
    ok, why = metrics.readiness()
    assert not ok and "write to Kafka at k:9092" in why
    metrics.write_finished()
    metrics.flushed([], 0.3)
    assert metrics.readiness()[0]

    metrics.ready(False)
    metrics.reconnect(SinkError("Kafka at k:9092 failed to accept events: KafkaTimeoutError()"))
    ok, why = metrics.readiness()
    assert not ok and why.startswith("reconnecting after: Kafka at k:9092")
    assert value("wpcdc_stalled") == 0  # not connected is not stalled


def test_liveness_follows_the_loop_and_long_stalls(monkeypatch: pytest.MonkeyPatch) -> None:
    metrics.configure(connector="c", stall_timeout=0.05)
    metrics.heartbeat()
    assert metrics.liveness() == (True, "ok")
    metrics.ready(True)
    time.sleep(0.06)
    assert metrics.liveness()[0]  # stalled, but not for long: still alive
    monkeypatch.setattr(metrics, "STALL_LIVENESS_FACTOR", 1)
    assert metrics.liveness()[0]  # the floor: our own timeouts heal shorter stalls first
    monkeypatch.setattr(metrics, "STALL_LIVENESS_FLOOR", 0.0)
    time.sleep(0.06)
    assert not metrics.liveness()[0]
    monkeypatch.setattr(metrics, "LIVENESS_SECONDS", 0.01)
    metrics.idle()
    time.sleep(0.02)
    ok, why = metrics.liveness()
    assert not ok and "event loop" in why


def get(url: str) -> tuple[int, str, str]:
    try:
        with urllib.request.urlopen(url, timeout=5) as r:
            return r.status, r.headers["Content-Type"], r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.headers["Content-Type"], e.read().decode()


def test_http_endpoints() -> None:
    async def main() -> None:
        metrics.configure(connector="http-test", stall_timeout=60)
        server = endpoints.serve(0, "127.0.0.1")
        base = f"http://127.0.0.1:{server.server_address[1]}"
        try:
            await asyncio.sleep(0.05)
            status, ctype, body = await asyncio.to_thread(get, f"{base}/metrics")
            assert status == 200 and ctype.startswith("text/plain")
            assert 'wpcdc_info{connector="http-test",version=' in body
            assert "wpcdc_ready 0.0" in body
            assert await asyncio.to_thread(get, f"{base}/readyz") == (503, "text/plain; charset=utf-8", "starting\n")
            assert (await asyncio.to_thread(get, f"{base}/healthz"))[0] == 200
            metrics.ready(True)
            assert (await asyncio.to_thread(get, f"{base}/readyz"))[::2] == (200, "ready\n")
            assert (await asyncio.to_thread(get, f"{base}/nope"))[0] == 404
        finally:
            server.shutdown()
            server.server_close()

    asyncio.run(main())


def test_liveness_ticks_on_the_event_loop(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(metrics, "LIVENESS_SECONDS", 0.5)

    async def main() -> None:
        server = endpoints.serve(0, "127.0.0.1")
        try:
            await asyncio.sleep(1.2)  # the loop turns: the tick keeps liveness fresh
            assert metrics.liveness()[0]
            time.sleep(0.8)  # the loop is blocked: no tick
            assert not metrics.liveness()[0]
        finally:
            server.shutdown()
            server.server_close()

    asyncio.run(main())

