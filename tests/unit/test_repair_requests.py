"""Repair requests (cdc/repair_requests.py): the record, the batching, and what a watcher makes of
the checkpoint topic's records (requests, tombstones, the checkpoint itself)."""

from __future__ import annotations

import orjson
import pytest

from cdc.checkpoint import Checkpoint
from cdc.config import KafkaSettings
from cdc.position import Position
from cdc.repair_requests import BATCH, RepairRequest, RepairWatcher, progress, request_id, split

FILE = "mariadb-bin.000001"


def watcher(connector: str = "blog") -> RepairWatcher:
    return RepairWatcher(KafkaSettings("127.0.0.1:1"), "wpcdc.blog.checkpoints", connector)


def test_a_request_round_trips_and_its_key_is_not_a_connector_name() -> None:
    r = RepairRequest("abc123", {2: (7, 9), 1: (5,)}, asked_ms=1700000000000)
    assert RepairRequest.decode(r.encode()) == r
    assert r.count == 3
    assert r.key("blog") == b"blog/repair/abc123"
    assert request_id("blog", r.key("blog")) == "abc123"
    assert request_id("blog", b"blog") is None, "the checkpoint's own key"
    assert request_id("blog", b"blog2/repair/x") is None and request_id("blo", b"blog/repair/x") is None
    assert request_id("blog", None) is None
    doc = orjson.loads(r.encode())
    assert doc["version"] == 1 and doc["posts"] == {"1": [5], "2": [7, 9]}


@pytest.mark.parametrize("value", [b"not json", b'{"version": 2, "id": "x", "posts": {}}', b'{"version": 1}',
                                   b'{"version": 1, "id": "x", "posts": {"a": [1]}}'])
def test_an_unreadable_request_is_a_value_error(value: bytes) -> None:
    with pytest.raises(ValueError):
        RepairRequest.decode(value)


def test_a_repair_of_more_posts_than_a_batch_is_split_into_requests() -> None:
    keys = [(1 + i % 2, i) for i in range(2 * BATCH + 5)]
    requests = split(keys, now_ms=42)
    assert [r.count for r in requests] == [BATCH, BATCH, 5]
    assert len({r.id for r in requests}) == 3, "an id per request"
    got = sorted((b, p) for r in requests for b, ids in r.posts.items() for p in ids)
    assert got == sorted(keys), "every post once"
    assert all(r.asked_ms == 42 for r in requests)
    assert split([]) == []


def test_a_request_becomes_a_backfill_of_its_posts_under_its_id() -> None:
    r = RepairRequest("abc123", {1: (9, 3, 3), 4: (1,), 2: (8,)})
    p = progress(r, [1, 2, 3], now_ms=7)
    assert (p.id, p.blogs, p.ids, p.total, p.started_ms) == ("abc123", [1, 2], {1: [3, 9], 2: [8]}, 3, 7)
    assert not p.done


def _checkpoint(connector: str, snapshot: dict | None = None) -> bytes:
    return Checkpoint(connector, Position(FILE, 4), snapshot=snapshot, ts_ms=1).encode()


def test_the_watcher_follows_requests_and_tombstones_and_ignores_other_keys() -> None:
    w = watcher()
    a, b = RepairRequest("aaa", {1: (1,)}, 1), RepairRequest("bbb", {1: (2, 3)}, 2)
    w.apply(a.key("blog"), a.encode())
    w.apply(b"blog", _checkpoint("blog"))
    w.apply(b.key("blog"), b.encode())
    w.apply(b"other", _checkpoint("other"))
    w.apply(RepairRequest("zzz", {1: (9,)}).key("other"), b"{}")  # another connector's request
    w.apply(b"blog/repair/bad", b"garbage")  # unreadable: skipped, logged
    assert list(w.pending) == ["aaa", "bbb"]
    assert w.checkpoint is not None and Checkpoint.decode(w.checkpoint).connector == "blog"
    assert w.next() == a, "the oldest first"
    assert w.next(finished="aaa") == b, "a request whose backfill finished waits only for its tombstone"
    w.apply(a.key("blog"), None)
    assert list(w.pending) == ["bbb"] and w.done == {"aaa"}
    w.apply(b.key("blog"), None)
    assert w.next() is None and w.done == {"aaa", "bbb"}


def test_the_finished_repair_tombstones_its_request_once() -> None:
    w = watcher()
    r = RepairRequest("aaa", {1: (1,)})
    w.apply(r.key("blog"), r.encode())
    assert w.finished(None) == []
    assert w.finished({"id": "aaa", "finished_ms": None}) == [], "still running"
    assert w.finished({"id": "other", "finished_ms": 5}) == [], "a backfill that is not a pending request"
    [tomb] = w.finished({"id": "aaa", "finished_ms": 5})
    assert (tomb.topic, tomb.topic_key, tomb.value) == ("wpcdc.blog.checkpoints", b"blog/repair/aaa", None)
    assert w.finished({"id": "aaa", "finished_ms": 5}) == [], "once"
    assert w.next() is None, "not started again while its tombstone is on the way"
    w.apply(r.key("blog"), None)  # read back
    assert w.pending == {} and w.finished({"id": "aaa", "finished_ms": 5}) == []



def test_verify_repairs_only_once_the_binlog_moved_past_the_posts_last_events(monkeypatch: pytest.MonkeyPatch) -> None:
    """A document read at the position of the post's last document would repeat its seq: verify
    waits for a commit first, and gives up (exit 52, nothing requested) after --repair-timeout."""
    import asyncio
    from dataclasses import replace

    from cdc.commands import verify
    from cdc.config import MysqlSettings, StreamSettings
    from cdc.errors import Exit, RepairPendingError

    ends = iter([Position(FILE, 500), Position(FILE, 500), Position(FILE, 900)])
    seen: list[Position] = []

    def binlog_end(settings: StreamSettings) -> Position:
        seen.append(next(ends))
        return seen[-1]

    async def no_sleep(seconds: float) -> None:
        pass

    monkeypatch.setattr(verify, "_binlog_end", binlog_end)
    monkeypatch.setattr(verify.asyncio, "sleep", no_sleep)
    settings = StreamSettings(name="blog", mysql=MysqlSettings(), kafka=KafkaSettings("127.0.0.1:1"))
    last = Position(FILE, 500).seq  # the posts' newest event: a document read at the binlog's end
    asyncio.run(verify._wait_for_binlog(settings, last, asyncio.Event()))
    assert seen == [Position(FILE, 500), Position(FILE, 500), Position(FILE, 900)]

    seen.clear()
    ends = iter([Position(FILE, 500)] * 3)
    with pytest.raises(RepairPendingError, match="nothing was committed on the server") as caught:
        asyncio.run(verify._wait_for_binlog(replace(settings, repair_timeout=0.0), last, asyncio.Event()))
    assert caught.value.exit_code == Exit.REPAIR_PENDING
    ends = iter([Position(FILE, 501)])
    asyncio.run(verify._wait_for_binlog(replace(settings, repair_timeout=0.0), last, asyncio.Event()))


def test_status_lists_the_pending_requests() -> None:
    from cdc.commands.status import render

    report = {"connector": "blog", "checkpoint_topic": "wpcdc.blog.checkpoints", "checkpoint": None,
              "server": {"reachable": False, "error": "x"}, "events": {"topic": "t", "exists": False},
              "repair_requests": [RepairRequest("abc", {1: tuple(range(2, 14))}, 1796285888765).as_dict()]}
    lines = render(report).splitlines()
    assert "repairs      1 pending (`verify --repair`" in lines[2]
    assert lines[3] == "  request    abc: 12 posts (1:2, 1:3, 1:4, 1:5, 1:6, 1:7, 1:8, 1:9, 1:10, 1:11, …), asked 2026-12-03T08:18:08Z"
    assert "repairs" not in render(report | {"repair_requests": []})
