"""Backfill documents against the stream: a post's events never go back in time."""

from __future__ import annotations

from cdc.assemble import Assembler
from cdc.events import Origin, build
from cdc.model import PostDoc
from cdc.position import Position
from cdc.terms import TermCatalog
from cdc.wordpress import Capture

from .rows import FILE, Binlog, post_row
from .test_assemble import run

ORIGIN = Origin("t", "wordpress", 1)


def doc(post_id: int, **fields: object) -> PostDoc:
    meta = ({"meta_id": 1, "post_id": post_id, "meta_key": "color", "meta_value": "red"},
            {"meta_id": 2, "post_id": post_id, "meta_key": "_edit_lock", "meta_value": "1:1"})
    return PostDoc(1, post_row(post_id, post_status="publish", **fields), meta, (7,))


def test_a_document_is_a_complete_snapshot_event() -> None:
    catalog = TermCatalog()
    catalog.load(1, [{"term_taxonomy_id": 7, "term_id": 3, "taxonomy": "post_tag", "slug": "news", "name": "News"}])
    asm = Assembler(Capture(), catalog)
    change = asm.on_snapshot(doc(5), Position(FILE, 5000), ts=1_800_000_000)
    assert change is not None
    event = build(change, Capture(), ORIGIN, 0)
    assert event is not None
    assert (event.op, event.action, event.seq, event.before) == ("snapshot", "snapshot", Position(FILE, 5000).seq, None)
    assert [m["key"] for m in event.meta] == ["color"]  # bookkeeping meta left out
    assert [t["slug"] for t in event.terms_added] == ["news"]
    assert event.source.snapshot and event.source.ts_ms == 1_800_000_000_000
    assert asm.emitted[(1, 5)] == Position(FILE, 5000)


def test_stale_document_is_refused_when_a_newer_change_was_emitted() -> None:
    b = Binlog(start=6000)
    asm, closed = run(b.update_post(post_row(5, post_status="publish"), post_title="new")[0], window=0)
    assert closed and asm.emitted[(1, 5)] > Position(FILE, 5000)
    assert asm.on_snapshot(doc(5), Position(FILE, 5000)) is None


def test_document_replaces_a_pending_change_it_contains() -> None:
    b = Binlog(start=1000)
    asm, _ = run(b.update_post(post_row(5, post_status="publish"), post_title="pending")[0])
    assert asm.pending_posts == 1
    change = asm.on_snapshot(doc(5, post_title="pending"), Position(FILE, 5000))
    assert change is not None and asm.pending_posts == 0 and asm.close_all() == []


def test_pending_change_newer_than_the_document_follows_it() -> None:
    b = Binlog(start=9000)
    asm, _ = run(b.update_post(post_row(5, post_status="publish"), post_title="newer")[0])
    snap = asm.on_snapshot(doc(5), Position(FILE, 5000))
    [later] = asm.close_all()
    assert snap is not None and later.last_pos > snap.last_pos


def test_stream_behind_the_document_skips_rows_it_contains() -> None:
    asm = Assembler(Capture(), TermCatalog(), window=0)
    assert asm.on_snapshot(doc(5), Position(FILE, 5000)) is not None
    old = Binlog(start=1000)  # the stream is still reading rows from before the snapshot
    _, closed = run(old.update_post(post_row(5, post_status="publish"), post_title="old")[0], asm=asm, window=0)
    assert closed == [] and asm.rows_skipped == 1
    new = Binlog(start=8000)
    _, closed = run(new.update_post(post_row(5, post_status="publish"), post_title="newest")[0], asm=asm, window=0)
    assert [c.after["post_title"] for c in closed] == ["newest"]  # type: ignore[index]
