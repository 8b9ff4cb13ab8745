"""`wpcdc verify`'s pure parts: the consumer's fold, the digests both sides are brought to, the
differences named, and the repair's backfill of listed posts (deletes of posts that are gone)."""

from __future__ import annotations

import asyncio
import base64
import datetime as dt
import hashlib
from typing import Any

import orjson
import pytest

from cdc.assemble import Assembler
from cdc.backfill import Backfill, new_progress
from cdc.commands.verify import Report
from cdc.config import SnapshotSettings
from cdc.digest import (
    Scope,
    TopicFold,
    canonical,
    column_differences,
    content,
    difference,
    doc_state,
    is_cut,
    pack,
    post_key,
    seq_of,
    split_key,
    unpack,
)
from cdc.encode import encode
from cdc.fold import Fold, PostState
from cdc.model import PostChange, PostDoc
from cdc.position import Position
from cdc.repair import batches
from cdc.source.snapshot import SnapshotChunk, SnapshotProgress
from cdc.terms import TermCatalog
from cdc.wordpress import Capture

from .rows import FILE, Binlog, post_row
from .test_assemble import events, run

CAPTURE = Capture()


def meta(meta_id: int, post_id: int, key: str, value: Any) -> dict[str, Any]:
    return {"meta_id": meta_id, "post_id": post_id, "meta_key": key, "meta_value": value}


def doc(post_id: int, metas: tuple[dict[str, Any], ...] = (), terms: tuple[int, ...] = (), **fields: Any) -> PostDoc:
    return PostDoc(1, post_row(post_id, post_status="publish", **fields), metas, terms)


def records(changes: list[PostChange], max_bytes: int = 900_000) -> list[tuple[bytes, bytes | None]]:
    """The Kafka records the stream writes for these changes (events, tombstones)."""
    return [(r.topic_key, r.value) for e in events(changes) for r in encode(e, max_bytes)]


def fold(recs: list[tuple[bytes, bytes | None]], scope: Scope | None = None) -> TopicFold:
    f = TopicFold(scope or Scope(CAPTURE))
    for offset, (key, value) in enumerate(recs):
        f.add(key, value, 0, offset)
    return f


def document(d: PostDoc, position: Position) -> PostChange:
    change = Assembler(CAPTURE, TermCatalog()).on_snapshot(d, position)
    assert change is not None
    return change


# ------------------------------------------------------------------------------ the fold's rules


def test_a_document_sets_the_state_deltas_apply_by_id_and_a_delete_removes() -> None:
    rules = Fold()
    snap = {"op": "snapshot", "seq": 1, "after": {"ID": 1}, "meta": [
        {"meta_id": 1, "key": "a", "op": "add", "before": None, "after": "x"},
        {"meta_id": 2, "key": "b", "op": "add", "before": None, "after": "y"}],
        "terms": {"added": [{"term_taxonomy_id": 5}], "removed": []}}
    state = rules.apply(PostState(row={"stale": True}, meta={9: ("old", 1)}), snap)
    assert state is not None and state.meta == {1: ("a", "x"), 2: ("b", "y")} and state.terms == {5}
    update = {"op": "update", "seq": 2, "after": {"ID": 1, "t": 2}, "meta": [
        {"meta_id": 1, "key": "a", "op": "update", "before": "x", "after": "z"},
        {"meta_id": 2, "key": "b", "op": "delete", "before": "y", "after": None},
        {"meta_id": 3, "key": "c", "op": "add", "before": None, "after": None}],
        "terms": {"added": [{"term_taxonomy_id": 6}], "removed": [{"term_taxonomy_id": 5}]}}
    state = rules.apply(state, update)
    assert state is not None
    assert (state.row, state.meta, state.terms, state.seq) == ({"ID": 1, "t": 2}, {1: ("a", "z"), 3: ("c", None)}, {6}, 2)
    assert rules.apply(state, {"op": "delete", "seq": 3, "after": None}) is None
    assert rules.apply(state, None) is None  # a tombstone


def test_only_cuts_that_leave_state_out_make_a_post_incomparable() -> None:
    rules = Fold()
    base = {"op": "snapshot", "seq": 1, "after": {"ID": 1}, "meta": [], "terms": {"added": [], "removed": []}}
    for truncated, cut in ((["after.post_content", "meta[x].after", "before"], False), (["meta"], True),
                           (["terms.added"], True), (["after.*"], True)):
        state = rules.apply(None, {**base, "truncated": truncated})
        assert state is not None and state.cut is cut, truncated
    state = rules.apply(None, {**base, "truncated": ["meta"]})
    state = rules.apply(state, {**base, "op": "update"})
    assert state is not None and state.cut, "a cut stays until the next document"
    assert not rules.apply(state, base).cut  # type: ignore[union-attr]


# ------------------------------------------------------------------------------ digests


def test_a_document_in_the_topic_digests_like_the_database_row_it_was_made_of() -> None:
    """Through the real encoder: datetimes, zero dates, bytes, invalid UTF-8, NULL meta, ignored meta."""
    bad = b"caf\xe9".decode("utf-8", "surrogateescape")
    d = doc(7, (meta(1, 7, "price", "10"), meta(2, 7, "_edit_lock", "1:2"), meta(3, 7, "raw", bad),
                meta(4, 7, "none", None), meta(5, 7, "bin", b"\x00\xff")), (3, 9),
            post_date_gmt=None, post_title=bad, post_content_filtered=b"\x01\x02",
            post_modified=dt.datetime(2026, 1, 2, 3, 4, 5, 123456))
    f = fold(records([document(d, Position(FILE, 500))]))
    topic = f.states[post_key(1, 7)]
    assert content(topic) == content(doc_state(d, CAPTURE))
    assert seq_of(topic) == Position(FILE, 500).seq and unpack(topic).offset == 0
    assert 2 not in unpack(topic).state.meta  # the ignored key is left out on both sides
    other = doc(7, d.meta, (3,), post_date_gmt=None, post_title=bad, post_content_filtered=b"\x01\x02",
                post_modified=dt.datetime(2026, 1, 2, 3, 4, 5, 123456))
    assert content(topic) != content(doc_state(other, CAPTURE))


def test_stream_deltas_fold_to_the_database_state() -> None:
    b = Binlog()
    row = post_row(8, post_status="publish")
    catalog = TermCatalog()
    items = [*b.insert_post(row), *b.add_meta(1, 8, "a", "1"), *b.add_meta(2, 8, "b", "2"), *b.relate(8, 4),
             *b.relate(8, 5)]
    asm, first = run(items, window=0, asm=Assembler(CAPTURE, catalog, window=0, max_delay=30))
    changes, row2 = b.update_post(row, post_title="New")
    _, later = run([*changes, *b.update_meta(1, 8, "a", "1", "one"), *b.delete_meta(2, 8, "b", "2"),
                    *b.add_meta(3, 8, "c", "3"), *b.relate(8, 4, "delete")], asm=asm)
    f = fold(records(first + later))
    final = PostDoc(1, row2, (meta(1, 8, "a", "one"), meta(3, 8, "c", "3")), (5,))
    assert content(f.states[post_key(1, 8)]) == content(doc_state(final, CAPTURE))
    _, gone = run(b.delete_post(row2), asm=asm)
    f = fold(records(first + later + gone))
    assert post_key(1, 8) not in f.states


def test_values_the_size_policy_cut_still_compare_but_an_emptied_list_does_not() -> None:
    big = "x" * 5000
    d = doc(9, tuple(meta(i, 9, f"k{i}", big + str(i)) for i in range(1, 40)), post_content=big * 4)
    change = document(d, Position(FILE, 600))
    [(key, value)] = records([change], max_bytes=60_000)
    assert value is not None and b"$truncated" in value and b'"meta"' in value
    assert "meta" not in orjson.loads(value)["truncated"]  # values cut, the list kept
    f = fold([(key, value)])
    assert not is_cut(f.states[post_key(1, 9)])
    assert content(f.states[post_key(1, 9)]) == content(doc_state(d, CAPTURE))
    [(key, value)] = records([change], max_bytes=10_000)
    assert "meta" in orjson.loads(value or b"{}")["truncated"]
    assert is_cut(fold([(key, value)]).states[post_key(1, 9)])


def test_canonical_forms_agree_between_json_and_python_values() -> None:
    assert canonical(dt.datetime(2026, 1, 2, 3, 4, 5)) == canonical("2026-01-02T03:04:05")
    assert canonical(b"\x00") == canonical({"$base64": "AA=="})
    long = "é" * 129
    marker = {"$truncated": True, "bytes": 258, "sha256": hashlib.sha256(long.encode()).hexdigest()}
    assert canonical(long) == canonical(marker) != canonical(long[:-1] + "e")
    assert canonical("é" * 128) == "é" * 128, "text the size policy never cuts is itself"
    bad = b"caf\xe9".decode("utf-8", "surrogateescape")
    assert canonical(bad) == canonical({"$base64": base64.b64encode(b"caf\xe9").decode(), "$invalid_utf8": True})
    assert canonical(5) == 5 and canonical("5") != 5 and canonical(None) is None
    assert column_differences({"a": 1, "b": "x", "c": 3}, {"a": 1, "b": "y", "d": 4}) == ["b", "c", "d"]


def test_pack_round_trips() -> None:
    state = PostState(bytes(range(16)), {3: 2**64 - 1, 1: 7}, {9, 2}, 2**50, True)
    packed = unpack(pack(state, partition=3, offset=12345))
    assert (packed.partition, packed.offset) == (3, 12345)
    assert packed.state == state
    assert split_key(post_key(7, 2**32 - 1)) == (7, 2**32 - 1)


# ------------------------------------------------------------------------------ the topic, scoped


def test_the_fold_keeps_what_the_scope_wants_and_skips_what_it_cannot_read() -> None:
    docs = [doc(1), doc(2, post_type="page"), PostDoc(2, post_row(3, post_status="publish"), (), ())]
    recs = records([document(d, Position(FILE, 700)) for d in docs]) + [(b"junk", b"{}"), (b"1:5", b"not json")]
    everything = fold(recs)
    assert set(everything.states) == {post_key(1, 1), post_key(1, 2), post_key(2, 3)}
    assert everything.unreadable == 2 and everything.records == 5
    scoped = fold(recs, Scope(CAPTURE, blogs=frozenset({1, 2}), snapshot_blogs=frozenset({1}),
                              post_types=frozenset({"post"})))
    assert set(scoped.states) == {post_key(1, 1)}
    assert set(fold(recs, Scope(CAPTURE, id_min=2, id_max=2)).states) == {post_key(1, 2)}
    only = TopicFold(Scope(CAPTURE), only={post_key(1, 2)})
    for offset, (key, value) in enumerate(recs):
        only.add(key, value, 0, offset)
    assert set(only.states) == {post_key(1, 2)}


def test_rows_the_policy_leaves_out_are_compared_on_neither_side() -> None:
    scope = Scope(Capture(excluded_statuses=frozenset({"private"})))
    assert scope.wants_row(post_row(1, post_status="publish"))
    assert not scope.wants_row(post_row(1, post_status="private"))
    assert not scope.wants_row(post_row(1, post_status="auto-draft"))
    assert not scope.wants_row(post_row(1, post_type="revision"))


# ------------------------------------------------------------------------------ differences


def test_differences_name_what_differs() -> None:
    d = doc(4, (meta(1, 4, "a", "1"), meta(2, 4, "b", "2")), (5, 6))
    db = doc_state(d, CAPTURE)
    topic = doc_state(doc(4, (meta(1, 4, "a", "changed"), meta(3, 4, "c", "3")), (6, 7), post_title="other"), CAPTURE)
    assert difference(1, 4, db, db) is None and difference(1, 4, None, None) is None
    assert difference(1, 4, None, db).kind == "missing"  # type: ignore[union-attr]
    assert difference(1, 4, topic, None).kind == "extra"  # type: ignore[union-attr]
    diff = difference(1, 4, topic, db)
    assert diff is not None and diff.kind == "differs" and diff.row
    assert (diff.meta_changed, diff.meta_missing, diff.meta_extra) == ((1,), (2,), (3,))
    assert (diff.terms_missing, diff.terms_extra) == ((5,), (7,))
    diff.columns, diff.meta_keys = ("post_title",), {1: "a", 2: "b"}
    assert diff.describe() == ("post 1:4: differs in row (post_title); meta changed: a (meta_id 1); "
                               "meta missing: b (meta_id 2); meta extra: meta_id 3; terms missing: [5]; "
                               "terms extra: [7]")
    assert diff.as_dict()["meta"]["keys"] == {"1": "a", "2": "b"}
    report = Report("c", "t", differ=[diff, difference(1, 5, None, db)], compared=3, equal=1)  # type: ignore[list-item]
    text = report.render()
    assert "post 1:5: in the database, missing from the topic" in text
    assert text.splitlines()[-1].startswith("2 posts differ (1 missing from the topic, 0 only in the topic, 1 with")


# ------------------------------------------------------------------------------ the repair


def test_repair_batches_group_posts_by_blog() -> None:
    keys = [(1, 5), (2, 1), (1, 3), (1, 5), (1, 9)]
    assert list(batches(keys, 2)) == [{1: (3, 5)}, {1: (9,), 2: (1,)}]
    assert list(batches([], 2)) == []


def test_a_repair_progress_rides_in_the_checkpoint() -> None:
    progress = SnapshotProgress(id="r", blogs=[1], ids={1: [3, 5]})
    assert SnapshotProgress.from_dict(orjson.loads(orjson.dumps(progress.as_dict()))).ids == {1: [3, 5]}
    assert "ids" not in SnapshotProgress(id="b", blogs=[1]).as_dict()
    assert SnapshotProgress.from_dict(SnapshotProgress(id="b", blogs=[1]).as_dict()).ids is None


class ListedReader:
    """Posts 2 and 4 of blog 1 exist; reads are recorded."""

    def __init__(self) -> None:
        self.reads: list[tuple[int, int, list[int] | None]] = []
        self.pos = 2000

    def blogs(self) -> list[int]:
        return [1, 2]

    def count(self, blogs: list[int]) -> int:
        raise AssertionError("a repair does not count")

    def read_chunk(self, blog: int, after_id: int, ids: list[int] | None = None) -> SnapshotChunk:
        self.reads.append((blog, after_id, ids))
        self.pos += 100
        docs = tuple(doc(i) for i in (ids or []) if i in (2, 4) and i > after_id)
        return SnapshotChunk(blog, Position(FILE, self.pos), docs, max(ids or [after_id]), len(docs), True)

    def reread(self, blog: int, ids: list[int]) -> SnapshotChunk:
        return self.read_chunk(blog, 0, ids)

    def close(self) -> None:
        pass


def test_a_repair_reads_exactly_the_listed_posts_and_deletes_those_gone() -> None:
    reader = ListedReader()
    progress = new_progress(reader, {1: (4, 3, 2), 3: (1,)})  # type: ignore[arg-type]
    assert (progress.blogs, progress.ids, progress.total) == ([1], {1: [2, 3, 4]}, 3)
    emitted: list[PostChange] = []
    asm = Assembler(CAPTURE, TermCatalog())
    backfill = Backfill(reader, SnapshotSettings(chunk_size=2), progress, asm, emitted.extend,
                        lambda: Position(FILE, 10**6))
    asyncio.run(backfill.run())
    assert reader.reads == [(1, 0, [2, 3]), (1, 3, [4])]
    got = [(e.post_id, e.op) for e in events(emitted)]
    assert got == [(2, "snapshot"), (3, "delete"), (4, "snapshot")]
    [delete] = [e for e in events(emitted) if e.op == "delete"]
    assert (delete.before, delete.after, delete.action) == (None, None, "deleted")
    assert [r.value is None for r in encode(delete)] == [False, True], "a delete, then its tombstone"
    assert progress.done and progress.posts_done == 3


def test_a_delete_of_a_post_gone_follows_the_document_rule() -> None:
    b = Binlog()
    row = post_row(11, post_status="publish")
    asm, _ = run(b.insert_post(row), window=2)
    _, [] = run(b.delete_post(row), asm=asm)  # pending: born and gone in one window
    at = Position(FILE, b.pos + 10)
    assert asm.on_absent(1, 11, at) is not None  # the pending rows are contained: dropped
    assert asm.pending_posts == 0 and asm.emitted[(1, 11)] == at
    assert asm.on_absent(1, 11, Position(FILE, b.pos)) is None, "older than what was emitted: stale"
    later = Assembler(CAPTURE, TermCatalog(), window=2)
    run(b.insert_post(post_row(12)), asm=later)
    assert later.on_absent(1, 12, Position(FILE, 100)) is not None  # rows after it stay pending
    assert later.pending_posts == 1


@pytest.mark.parametrize("exact", [True, False])
def test_a_pending_change_on_both_sides_makes_the_delete_stale(exact: bool) -> None:
    b = Binlog()
    asm, _ = run(b.insert_post(post_row(13)), window=2)
    middle = Position(FILE, b.pos)
    run(b.add_meta(1, 13, "k", "v"), asm=asm)
    assert asm.on_absent(1, 13, middle, exact=exact) is None
