"""The simulation's models, tested on their own: if a model lies, every seed lies with it."""

from __future__ import annotations

import asyncio
import random
from typing import Any

import orjson
import pytest

from cdc.checkpoint import Checkpoint
from cdc.encode import Record, dumps
from cdc.errors import (
    BinlogPurgedError,
    CheckpointBlockedError,
    FencedError,
    InvalidPositionError,
    RecordTooLargeError,
    SinkError,
    SourceError,
)
from cdc.model import Commit, Idle, RowsBatch
from cdc.position import Position
from cdc.source.binlog import SourceFailed
from cdc.wordpress import TableKind, TableNames
from tests.sim.fakes import (
    Crash,
    FakeChunkReader,
    FakeKafka,
    FakeSink,
    FakeSource,
    FakeStore,
    VirtualClock,
    load_checkpoint,
)
from tests.sim.model import Binlog, Rotation, Site, Transaction, expected_state, new_world
from tests.sim.oracle import check

SEEDS = [1, 2, 3]


def _tables(site: Site) -> dict[int, dict[str, Any]]:
    return {b: {k.value: t.table(k) for k in TableKind} for b, t in site.blogs.items()}


def _world(seed: int, steps: int = 300, posts: int = 6) -> tuple[Site, Binlog, Any]:
    site, binlog, workload = new_world(seed, blogs=(1, 2), posts=posts)
    workload.run(steps)
    return site, binlog, workload


def _drain(source: FakeSource, clock: VirtualClock | None = None) -> list[object]:
    """Everything the source has, until it idles."""
    async def run() -> list[object]:
        source.start()
        out: list[object] = []
        while True:
            items = await source.next_items(0.5)
            out += [i for i in items if not isinstance(i, Idle)]
            if not items or isinstance(items[-1], (Idle, SourceFailed)):
                if not source.backlog():
                    return out
    return asyncio.run(run())


# ----------------------------------------------------------------------------------- the binlog


@pytest.mark.parametrize("seed", SEEDS)
def test_positions_grow_and_transaction_boundaries_are_resumable(seed: int) -> None:
    _, binlog, workload = _world(seed)
    assert "rotate" in workload.actions and "flood" in workload.actions or seed != 1
    last = Position(binlog.files()[0], 0)
    gtids = []
    for entry in binlog.entries:
        if isinstance(entry, Rotation):
            assert entry.at >= last and binlog.is_boundary(entry.at) and binlog.is_boundary(entry.next)
            last = entry.next
            continue
        assert entry.start >= last and binlog.is_boundary(entry.start) and binlog.is_boundary(entry.end)
        for batch in entry.batches:
            assert batch.position > last and not binlog.is_boundary(batch.position)
            assert all(c.position == batch.position and c.txn == entry.txn for c in batch.changes)
            last = batch.position
        assert entry.end > last and entry.commit.gtid == entry.txn.gtid
        last = entry.end
        gtids.append(int(entry.txn.gtid.rsplit("-", 1)[1]))
    assert gtids == list(range(1, len(gtids) + 1))
    assert binlog.end() >= last and binlog.is_boundary(binlog.end())
    ts = [e.commit.ts for e in binlog.transactions()]
    assert ts == sorted(ts) and ts[-1] > ts[0]


def test_row_images_are_full_and_chain() -> None:
    """Every update's before image is the row as the previous change left it."""
    _, binlog, _ = _world(4)
    last: dict[tuple[int, str, Any], dict] = {}
    from tests.sim.model import row_key
    for t in binlog.transactions():
        for c in t.changes():
            key = (c.table.blog_id, c.table.kind.value, row_key(c.table.kind, c.row))
            if c.op in ("update", "delete") and key in last:
                assert c.before == last[key]
            if c.op == "update":
                assert set(c.before) == set(c.after)
            last[key] = c.after


@pytest.mark.parametrize("seed", SEEDS)
def test_state_at_is_the_replay_of_the_transactions_up_to_there(seed: int) -> None:
    site, binlog, workload = new_world(seed)
    initial = site.copy()
    workload.run(200)
    transactions = binlog.transactions()
    for t in transactions[:: max(1, len(transactions) // 12)]:
        replay = initial.copy()
        for u in transactions:
            if u.end <= t.end:
                for change in u.changes():
                    replay.apply(change)
        assert _tables(binlog.state_at(t.end)) == _tables(replay)
        assert _tables(binlog.state_at(t.start)) == _tables(binlog.state_at(t.end)) or list(t.changes())
    assert _tables(binlog.state_at(transactions[0].start)) == _tables(initial)
    assert _tables(binlog.state_at(binlog.end())) == _tables(binlog.state_now())
    copy = binlog.state_at(binlog.end())
    copy.blogs[1].posts.clear()
    assert binlog.state_now().blogs[1].posts


# ----------------------------------------------------------------------------------- the source


@pytest.mark.parametrize("seed", SEEDS)
def test_source_from_a_boundary_yields_exactly_the_later_transactions(seed: int) -> None:
    _, binlog, _ = _world(seed, steps=150)
    entries = binlog.entries
    for i in range(0, len(entries), max(1, len(entries) // 15)):
        entry = entries[i]
        start = entry.start if isinstance(entry, Transaction) else entry.at
        gtid = binlog.gtid_at(start)
        items = _drain(FakeSource(binlog, start, gtid, random.Random(seed)))
        assert items[0] == Commit(start, gtid, 0)  # the server's fake Rotate
        want: list[object] = []
        for e in entries[i:]:
            if isinstance(e, Rotation):
                want.append(("commit", e.next))
            else:
                want += [("rows", b.position, b.changes[0].row) for b in e.batches] + [("commit", e.end)]
        got = [("rows", x.position, x.changes[0].row) if isinstance(x, RowsBatch) else ("commit", x.end)
               for x in items[1:]]
        assert got == want
        for x in items[1:]:
            if isinstance(x, RowsBatch):
                assert x.txn.prev_gtid == binlog.gtid_at(x.txn.start)


def test_source_start_at_a_commit_end_and_at_a_file_start() -> None:
    _, binlog, _ = _world(5, steps=200)
    t = binlog.transactions()[10]
    after = _drain(FakeSource(binlog, t.end, t.txn.gtid, random.Random(1)))
    assert [x for x in after if isinstance(x, RowsBatch)][0].txn.start == t.end
    rotation = next(e for e in binlog.entries if isinstance(e, Rotation))
    items = _drain(FakeSource(binlog, rotation.next, binlog.gtid_at(rotation.at), random.Random(1)))
    first = next(x for x in items if isinstance(x, RowsBatch))
    assert first.txn.start == Position(rotation.next.file, 256)


def test_source_refuses_a_position_that_is_not_a_boundary() -> None:
    _, binlog, _ = _world(6, steps=50)
    batch = binlog.transactions()[3].batches[0]
    items = _drain(FakeSource(binlog, batch.position, None, random.Random(1)))
    assert len(items) == 1 and isinstance(items[0], SourceFailed)
    assert isinstance(items[0].error, InvalidPositionError)
    gone = _drain(FakeSource(binlog, Position("mariadb-bin.000999", 4), None, random.Random(1)))
    assert isinstance(gone[0], SourceFailed) and isinstance(gone[0].error, BinlogPurgedError)
    with pytest.raises(InvalidPositionError):
        _drain(FakeSource(binlog, batch.position, None, random.Random(1), raise_errors=True))


def test_source_reads_what_is_written_after_it_started_and_idles_in_between() -> None:
    _, binlog, workload = _world(7, steps=20)
    clock = VirtualClock()
    source = FakeSource(binlog, binlog.end(), binlog.gtid(), random.Random(1), clock=clock)

    async def run() -> None:
        source.start()
        assert await source.next_items(0.5) == [Commit(binlog.end(), binlog.gtid(), 0)]
        assert not source.backlog()
        assert await source.next_items(0.5) == []
        assert await source.next_items(0.5) == [Idle(binlog.end(), binlog.gtid())]  # a heartbeat a second
        assert clock.monotonic() == 1001.0
        end = binlog.end()
        workload._save(1)  # noqa: SLF001
        assert source.backlog()
        items: list[object] = []
        while source.backlog():
            items += await source.next_items(0.5)
        assert isinstance(items[-1], Commit) and items[-1].end == binlog.end()
        assert [x for x in items if isinstance(x, RowsBatch)][0].txn.start == end

    asyncio.run(run())


def test_a_heartbeat_after_a_rotation_stands_past_the_new_file_header() -> None:
    _, binlog, _ = _world(13, steps=20)
    rotation = binlog.rotate()
    source = FakeSource(binlog, rotation.at, binlog.gtid(), random.Random(1), heartbeat=0.5)

    async def run() -> list[object]:
        source.start()
        out: list[object] = []
        while not out or not isinstance(out[-1], Idle):
            out += await source.next_items(0.5)
        return out

    items = asyncio.run(run())
    assert items[1] == Commit(rotation.next, binlog.gtid(), rotation.ts)
    assert items[-1] == Idle(Position(rotation.next.file, 256), binlog.gtid())


def test_source_drops_the_connection_where_told() -> None:
    _, binlog, _ = _world(8, steps=30)
    start = binlog.transactions()[0].start
    source = FakeSource(binlog, start, None, random.Random(2), drop_at=lambda n, item: n == 5)
    items = _drain(source)
    assert len(items) == 6 and isinstance(items[-1], SourceFailed) and type(items[-1].error) is SourceError
    assert items[-1].error.retriable and not source.backlog()


def test_source_hands_out_copies() -> None:
    site, binlog, _ = _world(9, steps=20)
    items = _drain(FakeSource(binlog, binlog.transactions()[0].start, None, random.Random(1)))
    batch = next(x for x in items if isinstance(x, RowsBatch) and x.changes[0].after is not None)
    batch.changes[0].after["post_title"] = "changed by the session"
    assert all("changed by the session" not in str(c.after) for t in binlog.transactions() for c in t.changes())


# ------------------------------------------------------------------------------------ database


def test_store_sees_the_database_now() -> None:
    site, binlog, _ = _world(10, steps=60)
    store = FakeStore(binlog)
    tables = TableNames("wp_")
    ids = list(site.blogs[1].posts)[:5]
    assert store.post_rows(tables, 1, [*ids, 10**6]) == {i: site.blogs[1].posts[i] for i in ids}
    assert store.blog_ids(tables) == [1, 2] and store.blog_ids(TableNames("wp_", [2])) == [2]
    terms = store.term_rows(tables, 1)
    assert {t["term_taxonomy_id"] for t in terms} == set(site.blogs[1].term_taxonomy)
    with pytest.raises(SourceError):
        store.post_rows(TableNames("site_"), 1, ids)


@pytest.mark.parametrize("seed", SEEDS)
def test_chunks_cover_every_captured_post_of_one_snapshot(seed: int) -> None:
    site, binlog, _ = _world(seed, steps=250)
    reader = FakeChunkReader(binlog, 7, random.Random(seed))
    docs, after = [], 0
    while True:
        chunk = reader.read_chunk(1, after)
        assert chunk.position == binlog.end() and len(chunk.docs) <= 7
        docs += chunk.docs
        after = chunk.last_id
        if chunk.exhausted:
            break
    expected = {pid for (blog, pid) in expected_state(site) if blog == 1}
    assert [d.post_id for d in docs] == sorted(expected)
    types = {site.blogs[1].posts[p]["post_type"] for p in site.blogs[1].posts}
    assert "revision" in types and all(d.row["post_type"] in ("post", "page") for d in docs)
    doc = max(docs, key=lambda d: len(d.meta))
    assert list(doc.meta) == site.blogs[1].meta_of(doc.post_id)
    assert list(doc.term_taxonomy_ids) == site.blogs[1].terms_of(doc.post_id)
    again = reader.reread(1, [docs[1].post_id, docs[0].post_id, 10**6])
    assert [d.post_id for d in again.docs] == [docs[0].post_id, docs[1].post_id]


def test_mysql_chunks_may_hold_transactions_after_their_position() -> None:
    site, binlog, workload = _world(11, steps=80)
    reader = FakeChunkReader(binlog, 500, random.Random(3), flavor="mysql",
                             between=lambda: workload._save(1))  # noqa: SLF001
    first = binlog.end()
    for _ in range(10):
        end = binlog.end()
        chunk = reader.read_chunk(1, 0)
        assert chunk.position == end and binlog.is_boundary(chunk.position)
        rows = {pid: s["row"] for (blog, pid), s in expected_state(site).items() if blog == 1}
        assert {d.post_id: d.row for d in chunk.docs} == rows  # the data of now, after the position
    assert binlog.end() > first


# --------------------------------------------------------------------------------------- Kafka


def test_kafka_transactions_commit_abort_and_markers() -> None:
    kafka = FakeKafka()
    p = kafka.producer("t")
    p.begin()
    p.send("e", b"1:1", b"a")
    assert kafka.read_committed("e") == [] and kafka.last_stable_offset("e") == 0
    p.commit()
    p.begin()
    p.send("e", b"1:1", b"b")
    p.abort()
    assert [r.value for r in kafka.read_committed("e")] == [b"a"]
    assert kafka.high_watermark("e") == 4  # a, its commit marker, b, its abort marker
    plain = kafka.producer(None)
    plain.send("e", b"1:2", b"c")
    assert [r.value for r in kafka.read_committed("e")] == [b"a", b"c"]


def test_kafka_a_new_producer_fences_the_old_and_aborts_its_transaction() -> None:
    kafka = FakeKafka()
    old = kafka.producer("wpcdc-x")
    old.begin()
    old.send("e", b"k", b"v")
    kafka.producer("wpcdc-x")
    assert kafka.read_committed("e") == [] and kafka.open_transactions() == []
    with pytest.raises(FencedError):
        old.send("e", b"k", b"v2")
    with pytest.raises(FencedError):
        old.commit()


def test_kafka_an_open_transaction_hides_everything_after_it_until_it_ends_or_expires() -> None:
    clock = VirtualClock()
    kafka = FakeKafka(clock=clock)
    kafka.open_foreign_transaction("c", timeout=10)
    p = kafka.producer("mine")
    p.begin()
    p.send("c", b"me", b"1")
    p.commit()
    assert kafka.read_committed("c") == [] and kafka.last_stable_offset("c") == 0
    kafka.end_foreign_transaction(commit=True)
    assert [r.value for r in kafka.read_committed("c")] == [b"{}", b"1"]
    foreign = kafka.open_foreign_transaction("c", timeout=10)
    p.begin()
    p.send("c", b"me", b"2")
    p.commit()
    assert [r.value for r in kafka.read_committed("c")] == [b"{}", b"1"]
    clock.advance(10)
    assert [r.value for r in kafka.read_committed("c")] == [b"{}", b"1", b"2"]
    with pytest.raises(SinkError):
        foreign.send("c", b"x", b"y")  # its transaction timed out


def test_kafka_refuses_a_record_over_the_request_size() -> None:
    kafka = FakeKafka(max_request_bytes=100)
    p = kafka.producer(None)
    p.send("e", b"k", b"x" * 90)
    with pytest.raises(RecordTooLargeError):
        p.send("e", b"k", b"x" * 100)
    with pytest.raises(SinkError):
        p.send("e", b"k", b"x")  # the refused batch's sequence number never reached the broker
    kafka.topic_max_bytes["e"] = 50
    with pytest.raises(RecordTooLargeError):
        kafka.producer(None).send("e", b"k", b"x" * 60)
    assert [len(r.value or b"") for r in kafka.read_committed("e")] == [90]


# ---------------------------------------------------------------------------------------- sink


def _checkpoint(pos: int) -> Checkpoint:
    return Checkpoint("sim", Position("mariadb-bin.000001", pos), gtid=f"0-1-{pos}", ts_ms=1)


def _sink(kafka: FakeKafka, **kw: Any) -> FakeSink:
    sink = FakeSink(kafka, "events", "checkpoints", "sim", kw.pop("tid", "wpcdc-sim"), rng=random.Random(1), **kw)
    sink.start()
    return sink


def test_sink_writes_events_and_checkpoint_in_one_transaction() -> None:
    kafka = FakeKafka()
    sink = _sink(kafka)
    asyncio.run(sink.write([Record(b"1:1", b"{}"), Record(b"1:1", None)], _checkpoint(300)))
    assert [(r.key, r.value) for r in kafka.read_committed("events")] == [(b"1:1", b"{}"), (b"1:1", None)]
    assert load_checkpoint(kafka, "checkpoints", "sim") == _checkpoint(300)
    assert load_checkpoint(kafka, "checkpoints", "other") is None


def test_a_crash_before_commit_leaves_the_transaction_open_until_the_next_producer() -> None:
    kafka = FakeKafka(transaction_timeout=600)
    first = _sink(kafka)
    asyncio.run(first.write([Record(b"1:1", b"{}")], _checkpoint(300)))

    def crash(*_: object) -> None:
        raise Crash

    first.before_commit = crash
    with pytest.raises(Crash):
        asyncio.run(first.write([Record(b"1:2", b"{}")], _checkpoint(400)))
    with pytest.raises(Crash):
        asyncio.run(first.write([], _checkpoint(500)))  # the process is dead
    with pytest.raises(CheckpointBlockedError):
        load_checkpoint(kafka, "checkpoints", "sim")  # its transaction hides the end
    _sink(kafka)  # the next process fences it and aborts its transaction
    assert load_checkpoint(kafka, "checkpoints", "sim") == _checkpoint(300)
    assert [r.key for r in kafka.read_committed("events")] == [b"1:1"]


def test_a_crash_after_commit_is_committed() -> None:
    kafka = FakeKafka()

    def crash(*_: object) -> None:
        raise Crash

    sink = _sink(kafka, after_commit=crash)
    with pytest.raises(Crash):
        asyncio.run(sink.write([Record(b"1:1", b"{}")], _checkpoint(300)))
    assert load_checkpoint(kafka, "checkpoints", "sim") == _checkpoint(300)


def test_a_failed_write_is_aborted_and_a_fenced_sink_fails() -> None:
    kafka = FakeKafka(max_request_bytes=100)
    sink = _sink(kafka)
    with pytest.raises(RecordTooLargeError):
        asyncio.run(sink.write([Record(b"1:1", b"{}"), Record(b"1:2", b"x" * 200)], _checkpoint(300)))
    assert kafka.open_transactions() == [] and kafka.read_committed("events") == []
    _sink(kafka)
    with pytest.raises(FencedError):
        asyncio.run(sink.write([], _checkpoint(400)))


def test_checkpoint_waits_for_a_foreign_transaction_to_time_out() -> None:
    clock = VirtualClock()
    kafka = FakeKafka(clock=clock)
    sink = _sink(kafka)
    kafka.open_foreign_transaction("checkpoints", timeout=20)
    asyncio.run(sink.write([], _checkpoint(300)))
    with pytest.raises(CheckpointBlockedError):
        load_checkpoint(kafka, "checkpoints", "sim", timeout=5)
    assert load_checkpoint(kafka, "checkpoints", "sim", timeout=30) == _checkpoint(300)
    assert clock.monotonic() >= 1020


def test_at_least_once_events_before_checkpoint() -> None:
    kafka = FakeKafka()

    def crash(*_: object) -> None:
        raise Crash

    sink = _sink(kafka, tid=None, before_commit=crash)
    with pytest.raises(Crash):
        asyncio.run(sink.write([Record(b"1:1", b"{}")], _checkpoint(300)))
    assert len(kafka.read_committed("events")) == 1 and load_checkpoint(kafka, "checkpoints", "sim") is None


def test_sink_interleaves_deterministically() -> None:
    async def run(seed: int) -> list[str]:
        order: list[str] = []
        kafka = FakeKafka()
        sinks = [FakeSink(kafka, "e", "c", f"s{i}", f"t{i}", rng=random.Random(seed + i)) for i in range(3)]
        for s in sinks:
            s.start()

        async def one(i: int) -> None:
            await sinks[i].write([Record(b"1:1", str(i).encode())], None)
            order.append(str(i))

        await asyncio.gather(*(one(i) for i in range(3)))
        return order

    runs = {seed: asyncio.run(run(seed)) for seed in range(8)}
    assert all(asyncio.run(run(seed)) == order for seed, order in runs.items())
    assert len({tuple(o) for o in runs.values()}) > 1


# -------------------------------------------------------------------------------------- oracle


def _event(key: tuple[int, int], seq: int, op: str, state: dict[str, Any] | None) -> bytes:
    blog, pid = key
    row = state["row"] if state else None
    doc = {
        "schema_version": 1, "event_id": f"{blog}-{pid}-{seq}", "op": op,
        "action": {"snapshot": "snapshot", "delete": "deleted", "update": "updated"}[op],
        "blog_id": blog, "post_id": pid, "post_type": "post", "seq": seq, "ts_ms": 0,
        "source": {"connector": "sim", "db": "wp", "server_id": 1, "file": "mariadb-bin.000001", "pos": seq,
                   "gtid": None, "ts_ms": 0, "first": {"file": "mariadb-bin.000001", "pos": seq}, "rows": 1,
                   "snapshot": op == "snapshot"},
        "status": {"before": None, "after": None}, "changed_fields": [],
        "before": row if op == "delete" else None, "after": None if op == "delete" else row,
        "meta": [{"meta_id": m, "key": k, "op": "add", "before": None, "after": v}
                 for m, (k, v) in (state["meta"].items() if state and op != "delete" else ())],
        "terms": {"added": [{"term_taxonomy_id": t, "taxonomy": "category", "term_id": t, "slug": "s", "name": "n"}
                            for t in (state["terms"] if state and op != "delete" else ())], "removed": []},
        "revisions": [],
    }
    return dumps(doc)


def _topic(expected: dict[tuple[int, int], dict[str, Any]]) -> list[tuple[bytes | None, bytes | None]]:
    return [(f"{b}:{p}".encode(), _event((b, p), 1000 + p, "snapshot", s)) for (b, p), s in expected.items()]


def test_oracle_accepts_a_faithful_topic_and_catches_each_fault() -> None:
    site, binlog, _ = _world(12, steps=80)
    expected = expected_state(site)
    topic = _topic(expected)
    assert check(topic, expected) == []

    assert any("twice" in v for v in check([*topic, topic[0]], expected))

    key = next(iter(expected))
    k = f"{key[0]}:{key[1]}".encode()
    older = [*topic, (k, _event(key, 999, "update", expected[key]))]
    assert any("out of order" in v for v in check(older, expected))

    gone = dict(expected)
    del gone[key]  # deleted in the database, no delete event
    assert any("not a tombstone" in v for v in check(topic, gone))
    deleted = [*topic, (k, _event(key, 5000, "delete", expected[key])), (k, None)]
    assert check(deleted, gone) == []
    assert any("not followed by a tombstone" in v for v in check(deleted[:-1], gone))

    with_meta = next(key for key, s in expected.items() if s["meta"])
    wrong = {**expected, with_meta: {**expected[with_meta], "meta": {
        m: (kv[0], "wrong") for m, kv in expected[with_meta]["meta"].items()}}}
    assert any("meta differs" in v for v in check(topic, wrong))

    missing = [r for r in topic if r[0] != k]
    assert any("no state" in v for v in check(missing, expected))

    bad = orjson.loads(topic[0][1])
    bad["op"] = "bogus"
    assert any("schema" in v for v in check([(topic[0][0], orjson.dumps(bad)), *topic[1:]], expected))
    flooded = next(i for i, r in enumerate(topic) if orjson.loads(r[1])["meta"])
    bad = orjson.loads(topic[flooded][1])
    bad["meta"][-1]["op"] = "replace"  # one bad entry among plain ones
    bad_topic = [*topic[:flooded], (topic[flooded][0], orjson.dumps(bad)), *topic[flooded + 1:]]
    at = f"meta/{len(bad['meta']) - 1}/op"
    assert any("schema" in v and v.endswith(at) for v in check(bad_topic, expected))


def test_term_actions_write_as_wordpress_does() -> None:
    site, binlog, w = new_world(5, posts=6)
    w._new_term(1)
    [(ttid, tt)] = [(k, v) for k, v in site.blogs[1].term_taxonomy.items() if k != 1]
    for pid in sorted(w.content(1))[:2]:
        w._relate(1, pid, ttid)
    before = len(binlog.transactions())
    w._delete_term(1)  # the only term but the default category
    written = [(c.table.kind, c.op) for t in binlog.transactions()[before:] for c in t.changes()]
    unrelate = [(TableKind.TERM_RELATIONSHIPS, "delete"), (TableKind.TERM_TAXONOMY, "update")]
    assert written == [*unrelate, *unrelate, (TableKind.TERM_TAXONOMY, "delete"), (TableKind.TERMS, "delete")]
    assert ttid not in site.blogs[1].term_taxonomy and tt["term_id"] not in site.blogs[1].terms

    before = len(binlog.transactions())
    w._rename_term(1)
    changes = [c for t in binlog.transactions()[before:] for c in t.changes()]
    assert changes[0].table.kind is TableKind.TERMS and changes[0].op == "update"
    assert changes[0].after["name"] != changes[0].before["name"]  # type: ignore[index]


def _term_doc(ttid: int, seq: int, op: str, before: Any, after: Any) -> bytes:
    from cdc.events import Origin
    from cdc.term_events import build
    from cdc.terms import TERM_FIELDS, TermChange

    changed = TERM_FIELDS if op == "create" else () if op == "delete" else tuple(
        f for f in TERM_FIELDS if before[f] != after[f])
    pos = Position("mariadb-bin.000001", seq)
    change = TermChange(1, ttid, ttid, "category", op, before, after, changed, 0, pos, pos, None, 0, 1)
    return dumps(build(change, Origin("sim", "wordpress", 1), 0).as_dict())


def test_term_oracle_accepts_a_faithful_topic_and_catches_each_fault() -> None:
    from tests.sim.term_oracle import check as check_terms

    a = {"name": "A", "slug": "a", "parent": 0, "description": ""}
    b, c = {**a, "name": "B"}, {**a, "name": "C", "slug": "c"}
    start, final = {(1, 1): a}, {(1, 1): c, (1, 2): b}
    k1, k2 = b"1:1", b"1:2"
    topic = [(k1, _term_doc(1, 100, "update", a, b)), (k2, _term_doc(2, 150, "create", None, b)),
             (k1, _term_doc(1, 200, "update", b, c))]
    assert check_terms(topic, start, final) == []
    assert any("twice" in v for v in check_terms([*topic, topic[0]], start, final))
    assert any("lost in between" in v for v in check_terms([topic[1], topic[2]], start, final))
    assert any("(got, want)" in v for v in check_terms(topic[:2], start, final))
    assert any("no create" in v for v in check_terms([topic[0], topic[2]], start, final))
    deleted = [*topic, (k2, _term_doc(2, 300, "delete", b, None)), (k2, None)]
    assert check_terms(deleted, start, {(1, 1): c}) == []
    assert any("not followed by a tombstone" in v for v in check_terms(deleted[:-1], start, {(1, 1): c}))
    assert any("leave it there" in v for v in check_terms(topic, start, {(1, 1): c}))
    assert any("overlaps" in v for v in check_terms([topic[0], (k1, _term_doc(1, 100, "update", b, c))], start,
                                                   final))
