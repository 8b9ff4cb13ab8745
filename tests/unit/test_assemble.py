"""Assembly: WordPress-shaped row sequences in, post events out (no servers)."""

from __future__ import annotations

from typing import Any

import pytest

from cdc.assemble import Assembler
from cdc.events import Origin, PostEvent, build
from cdc.model import Commit, PostChange, RowsBatch
from cdc.position import Position
from cdc.terms import TermCatalog
from cdc.wordpress import Capture, TableKind

from .rows import FILE, Binlog, post_row

ORIGIN = Origin("test", "wordpress", 1)


def run(items: list[Any], *, window: float = 2.0, asm: Assembler | None = None, now: float = 0.0,
        capture: Capture | None = None) -> tuple[Assembler, list[PostChange]]:
    asm = asm or Assembler(capture or Capture(), TermCatalog(), window=window, max_delay=30)
    closed: list[PostChange] = []
    for item in items:
        if isinstance(item, RowsBatch):
            closed += asm.on_batch(item, now)
        elif isinstance(item, Commit):
            closed += asm.on_commit(item)
    return asm, closed


def events(changes: list[PostChange], capture: Capture | None = None) -> list[PostEvent]:
    out = [build(c, capture or Capture(), ORIGIN, 0) for c in changes]
    return [e for e in out if e is not None]


def test_one_save_of_many_transactions_is_one_event() -> None:
    b = Binlog()
    row = post_row(10, post_status="publish")
    items = b.new_term(5, 7, "post_tag", "news", "News") + b.insert_post(row) + b.relate(10, 7) + b.add_meta(1, 10, "color", "red")
    items += b.add_meta(2, 10, "_edit_lock", "123:1") + b.option_noise()
    items += b.add_meta(3, 10, "_pingme", "1")
    asm, closed = run(items)
    assert closed == []
    assert asm.due(1.9) == []
    [event] = events(asm.due(2.0))
    assert (event.op, event.action, event.post_id, event.post_type) == ("create", "published", 10, "post")
    assert event.before is None and event.after == row
    assert [m["key"] for m in event.meta] == ["color"]  # _edit_lock and _pingme are bookkeeping
    assert event.terms_added == ({"term_taxonomy_id": 7, "taxonomy": "post_tag", "term_id": 5,
                                  "slug": "news", "name": "News"},)
    assert event.seq == Position(FILE, event.source.pos).seq
    assert event.source.rows == 3


def test_changes_that_cancel_out_leave_no_trace() -> None:
    b = Binlog()
    row = post_row(11, post_status="publish")
    _, closed = run(b.insert_post(row), window=0)
    assert len(closed) == 1
    # Publishing from the block editor adds the default category, then removes it.
    items = b.relate(11, 1) + b.relate(11, 1, "delete") + b.add_meta(9, 11, "x", "1") + b.delete_meta(9, 11, "x", "1")
    items += b.update_meta(4, 11, "color", "red", "blue") + b.update_meta(4, 11, "color", "blue", "red")
    asm, closed = run(items)
    assert asm.close_all() == []


def test_net_field_changes_and_status_actions() -> None:
    b = Binlog()
    draft = post_row(12)
    items, v1 = b.update_post(draft, post_title="Hello")
    items2, v2 = b.update_post(v1, post_status="publish")
    [event] = events(run(items + items2)[0].close_all())
    assert event.op == "update"
    assert event.action == "published"
    assert set(event.changed_fields) == {"post_title", "post_status"}
    assert event.before == draft and event.after == v2


@pytest.mark.parametrize(
    ("before", "after", "action"),
    [("publish", "trash", "trashed"), ("trash", "draft", "untrashed"), ("draft", "future", "scheduled"),
     ("publish", "draft", "unpublished"), ("publish", "publish", "updated"), ("future", "publish", "published")],
)
def test_editor_actions(before: str, after: str, action: str) -> None:
    b = Binlog()
    row = post_row(20, post_status=before)
    items, _ = b.update_post(row, post_status=after, post_title="changed")
    [event] = events(run(items)[0].close_all())
    assert event.action == action


def test_delete_has_no_after_and_cancels_with_create() -> None:
    b = Binlog()
    row = post_row(30, post_status="publish")
    [event] = events(run(b.delete_post(row))[0].close_all())
    assert (event.op, event.action, event.after) == ("delete", "deleted", None)
    b2 = Binlog()
    asm, _ = run(b2.insert_post(row) + b2.add_meta(1, 30, "k", "v") + b2.delete_meta(1, 30, "k", "v")
                 + b2.delete_post(row))
    assert asm.close_all() == []


def test_auto_draft_is_skipped_and_its_first_save_is_a_create() -> None:
    b = Binlog()
    auto = post_row(40, post_status="auto-draft", post_title="Auto Draft")
    asm, _ = run(b.insert_post(auto))
    assert events(asm.close_all()) == []
    items, saved = b.update_post(auto, post_status="publish", post_title="Real")
    [event] = events(run(items, asm=asm)[0].close_all())
    assert (event.op, event.action, event.before) == ("create", "published", None)


def test_revision_is_noted_on_its_parent() -> None:
    b = Binlog()
    parent = post_row(50, post_status="publish")
    items, _ = b.update_post(parent, post_content="v2")
    rev = post_row(51, post_type="revision", post_parent=50, post_status="inherit", post_name="50-revision-v1")
    items += b.insert_post(rev)
    [event] = events(run(items)[0].close_all())
    assert event.post_id == 50
    assert event.revisions == ({"revision_id": 51, "autosave": False},)


def test_autosave_alone_is_an_autosaved_event() -> None:
    b = Binlog()
    parent = post_row(55, post_status="publish")
    asm, _ = run(b.insert_post(parent), window=0)  # row now in the cache
    auto = post_row(56, post_type="revision", post_parent=55, post_status="inherit", post_name="55-autosave-v1")
    [event] = events(run(b.insert_post(auto), asm=Assembler(Capture(), TermCatalog(), row_cache=asm.cache))[0]
                     .close_all())
    assert (event.post_id, event.action, event.changed_fields) == (55, "autosaved", ())


def test_meta_only_change_uses_cached_row_or_asks_for_lookup() -> None:
    b = Binlog()
    row = post_row(60, post_status="publish")
    asm, _ = run(b.insert_post(row), window=0)
    [change] = run(b.add_meta(1, 60, "_thumbnail_id", "99"), asm=asm, window=0)[1]
    assert change.row_known and change.after == row
    fresh = Assembler(Capture(), TermCatalog(), window=0)
    [unknown] = run(b.add_meta(2, 61, "_thumbnail_id", "99"), asm=fresh, window=0)[1]
    assert not unknown.row_known
    event = build(unknown, Capture(), ORIGIN, 0, looked_up=post_row(61, post_type="page"))
    assert event is not None and event.post_type == "page" and event.op == "update"


def test_excluded_types_and_their_meta_produce_nothing() -> None:
    b = Binlog()
    cache_row = post_row(70, post_type="oembed_cache", post_status="publish")
    asm, closed = run(b.insert_post(cache_row) + b.add_meta(1, 70, "x", "y"), window=0)
    assert closed == [] and asm.close_all() == []


def test_window_zero_gives_one_event_per_transaction() -> None:
    b = Binlog()
    row = post_row(80, post_status="publish")
    items, v1 = b.update_post(row, post_title="a")
    items2, _ = b.update_post(v1, post_title="b")
    _, closed = run(items + items2, window=0)
    evs = events(closed)
    assert [e.after["post_title"] for e in evs] == ["a", "b"]  # type: ignore[index]
    assert evs[0].seq < evs[1].seq


def test_quiescence_and_max_delay() -> None:
    b = Binlog()
    asm = Assembler(Capture(), TermCatalog(), window=2.0, max_delay=5.0)
    row = post_row(90, post_status="publish")
    t = 0.0
    for i in range(10):  # an edit every second: never quiet for 2 s
        items, row = b.update_post(row, post_title=f"t{i}")
        run(items, asm=asm, now=t)
        closed = asm.due(t)
        if closed:
            break
        t += 1.0
    assert t == 5.0 and len(closed) == 1 and closed[0].rows == 6


def test_low_watermark_and_marks_make_replay_exact() -> None:
    """Replaying from the checkpoint re-forms exactly the changes not yet emitted."""
    b = Binlog()
    a, c = post_row(100, post_status="publish"), post_row(101, post_status="publish")
    items_a1, a1 = b.update_post(a, post_title="A1")
    items_c1, c1 = b.update_post(c, post_title="C1")
    items_a2, _ = b.update_post(a1, post_title="A2")
    items_c2, _ = b.update_post(c1, post_title="C2")
    asm = Assembler(Capture(), TermCatalog(), window=2.0, max_delay=30)
    run(items_a1, asm=asm, now=0.0)
    [closed_a1] = asm.due(2.0)
    run(items_c1, asm=asm, now=2.1)
    run(items_a2, asm=asm, now=2.5)
    run(items_c2, asm=asm, now=3.0)
    [closed_a2] = asm.due(4.6)  # A quiet for 2.1 s: emitted; C (last row at 3.0) still pending
    assert (closed_a1.post_id, closed_a2.post_id) == (100, 100)
    resume, _ = asm.resume_point()  # type: ignore[misc]
    marks = asm.marks(resume)
    assert resume == items_c1[0].txn.start  # C's first transaction: the oldest still pending
    assert marks == {(1, 100): closed_a2.last_pos}  # A1 is before the resume point: pruned
    # Crash here. A restart replays from the resume point with the marks: A2 is skipped, C re-forms.
    replay = Assembler(Capture(), TermCatalog(), window=2.0, max_delay=30, emitted=marks)
    run(items_c1 + items_a2 + items_c2, asm=replay)
    [c_again] = replay.close_all()
    assert (c_again.post_id, c_again.rows, c_again.after["post_title"]) == (101, 2, "C2")  # type: ignore[index]
    assert replay.rows_skipped == 1


def test_memory_bound_closes_oldest_changes_between_batches() -> None:
    b = Binlog()
    asm = Assembler(Capture(), TermCatalog(), window=2.0, max_delay=30, max_pending_bytes=20_000)
    closed: list[PostChange] = []
    for i in range(50):
        closed += run(b.add_meta(i, 200 + i, "blob", "x" * 1000), asm=asm)[1]
    assert closed and asm.pending_bytes <= 20_000
    assert {c.post_id for c in closed}.isdisjoint({c.post_id for c in asm.close_all()})


def test_multisite_keys_by_blog() -> None:
    b1, b2 = Binlog(blog_id=1), Binlog(blog_id=2, start=50_000)
    row = post_row(5, post_status="publish")
    _, c1 = run(b1.insert_post(row), window=0)
    _, c2 = run(b2.insert_post(row), window=0)
    [e1], [e2] = events(c1), events(c2)
    assert (e1.key, e2.key) == ("1:5", "2:5")


def test_a_meta_row_with_a_null_value_is_still_a_row() -> None:
    b = Binlog()
    row = post_row(300, post_status="publish")
    asm, _ = run(b.insert_post(row), window=0)
    [added] = events(run(b.add_meta(1, 300, "nul", None), asm=asm, window=0)[1])
    [deleted] = events(run(b.delete_meta(1, 300, "nul", None), asm=asm, window=0)[1])
    assert added.meta == ({"meta_id": 1, "key": "nul", "op": "add", "before": None, "after": None},)
    assert deleted.meta == ({"meta_id": 1, "key": "nul", "op": "delete", "before": None, "after": None},)
    # Added and deleted within one window: nothing happened.
    assert run(b.add_meta(2, 300, "nul", None) + b.delete_meta(2, 300, "nul", None), asm=asm)[0].close_all() == []


def test_memory_bound_inside_one_huge_transaction_needs_one_mark() -> None:
    """A statement changing a million meta rows: the memory bound closes everything at a rows
    event; the checkpoint then says "all done up to here" instead of naming every post."""
    b = Binlog()
    txn = b.begin()
    batches = []
    for i in range(40):  # one transaction, forty rows events of 5 posts each
        pairs = [(None, {"meta_id": i * 5 + k, "post_id": 1000 + i * 5 + k, "meta_key": "flag", "meta_value": "x" * 900})
                 for k in range(5)]
        batches.append(b.rows(TableKind.POSTMETA, "insert", pairs))
    asm = Assembler(Capture(), TermCatalog(), window=2.0, max_delay=30, max_pending_bytes=20_000)
    emitted_posts: list[int] = []
    cut_at = None
    for batch in batches[:25]:
        closed = asm.on_batch(batch, 0.0)
        emitted_posts += [c.post_id for c in closed]
        if closed:
            cut_at = batch.position
    assert cut_at is not None and asm.done_upto == cut_at
    resume, _ = asm.resume_point()  # type: ignore[misc]
    assert resume == txn.start and asm.marks(resume) == {}  # no per-post marks: one position
    # Crash. Replay the whole transaction from its start with the checkpoint's done_upto.
    replay = Assembler(Capture(), TermCatalog(), window=2.0, max_delay=30, max_pending_bytes=20_000,
                       done_upto=asm.done_upto)
    again: list[int] = []
    for batch in batches:
        again += [c.post_id for c in replay.on_batch(batch, 0.0)]
    again += [c.post_id for c in replay.close_all()]
    assert sorted(emitted_posts + again) == [1000 + n for n in range(200)]  # each post exactly once


def test_marks_of_one_open_transaction_fold_into_done_upto() -> None:
    """Windows close posts while a huge transaction is still being read: their marks pile up
    (the resume point cannot move); past max_marks they fold into one position."""
    b = Binlog()
    b.begin()
    asm = Assembler(Capture(), TermCatalog(), window=0.5, max_delay=30, max_marks=10)
    t = 0.0
    for i in range(30):
        pair = (None, {"meta_id": i, "post_id": 2000 + i, "meta_key": "flag", "meta_value": "x"})
        batch = b.rows(TableKind.POSTMETA, "insert", [pair])
        asm.on_batch(batch, t)
        asm.due(t)
        t += 1.0  # each post goes quiet before the next row arrives
        assert len(asm.emitted) <= 11
    assert asm.done_upto is not None


# ---------------------------------------------------------------- a post deleted under its meta


def test_meta_of_a_post_deleted_meanwhile_folds_into_its_delete() -> None:
    """wp_delete_post with window 0, read after WordPress finished (a connector catching up): the
    meta deletions close first, the pipeline finds no post row and hands them back; they fold into
    the post's delete, so the post's last event is one delete covering every row."""
    b = Binlog()
    row = post_row(40, post_status="publish")
    asm = Assembler(Capture(), TermCatalog(), window=0, max_delay=30)
    _, closed = run(b.delete_meta(1, 40, "color", "red") + b.delete_meta(2, 40, "size", "xl"), asm=asm, now=1.0)
    assert [c.row_known for c in closed] == [False, False]  # not in the row cache
    for key in {c.key for c in closed}:
        assert asm.reopen(key, now=1.0)  # the pipeline's lookup found no post row
    asm.settle()
    resume, _ = asm.resume_point()  # type: ignore[misc]
    assert resume == Position(FILE, 1000), "the checkpoint must keep the taken-back rows"
    assert asm.emitted == {}, "no mark may say those rows are in Kafka"
    # A commit with window 0, a clean stop: the held change waits for its delete row.
    _, more = run(b.relate(40, 7, op="delete"), asm=asm, now=2.0)
    assert more == [] and asm.close_all() == [] and asm.due(5.0) == []
    _, final = run(b.delete_post(row), asm=asm, now=3.0)
    [event] = events(final)
    assert (event.op, event.action, event.before, event.after) == ("delete", "deleted", row, None)
    assert sorted(m["key"] for m in event.meta) == ["color", "size"]
    assert event.source.rows == 4 and event.source.first_pos == 1300


def test_a_change_of_a_post_that_never_comes_back_is_an_orphan_after_max_delay() -> None:
    b = Binlog()
    asm = Assembler(Capture(), TermCatalog(), window=2, max_delay=30)
    run(b.add_meta(1, 41, "color", "red"), asm=asm, now=0.0)
    [change] = asm.due(2.0)
    assert not change.row_known
    assert asm.reopen(change.key, now=2.0)
    asm.settle()
    assert asm.due(31.9) == [] and asm.next_due() == 32.0
    [again] = asm.due(32.0)  # held for max_delay after being taken back: closes once more
    assert again.key == (1, 41) and again.rows == 1
    assert not asm.reopen(again.key, now=32.0), "taken back once: the caller drops it loudly"
    asm.settle()
    assert asm.pending_posts == 0 and asm.emitted == {(1, 41): again.last_pos}


def test_rows_after_a_close_fold_into_the_change_taken_back() -> None:
    """Closed twice before the lookup (window 0 while catching up), then more rows: one change."""
    b = Binlog()
    row = post_row(42, post_status="publish")
    asm = Assembler(Capture(), TermCatalog(), window=0, max_delay=30)
    _, closed = run(b.delete_meta(1, 42, "a", "1") + b.delete_meta(2, 42, "b", "2"), asm=asm, now=0.0)
    _, pending = run([b.rows(TableKind.POSTS, "delete", [(row, None)])], asm=asm, now=0.5)  # not committed yet
    assert len(closed) == 2 and pending == []
    assert asm.reopen((1, 42), now=1.0)
    asm.settle()
    [event] = events(asm.on_commit(b.commit()))
    assert event.op == "delete" and sorted(m["key"] for m in event.meta) == ["a", "b"] and event.source.rows == 3


def test_a_change_whose_post_is_gone_folds_into_the_delete_closed_in_the_same_flush() -> None:
    """window 0, both closed before one lookup: the taken-back meta change and the delete become one."""
    from cdc.model import fold_into

    b = Binlog()
    row = post_row(43, post_status="publish")
    asm = Assembler(Capture(), TermCatalog(), window=0, max_delay=30)
    _, closed = run(b.delete_meta(1, 43, "color", "red") + b.relate(43, 7, op="delete") + b.delete_post(row),
                    asm=asm, now=0.0)
    meta_only, terms_only, deleted = closed
    assert not meta_only.row_known and not terms_only.row_known and deleted.deleted
    [event] = events([fold_into(fold_into(meta_only, terms_only), deleted)])
    assert (event.op, event.before, event.after) == ("delete", row, None)
    assert [(m["key"], m["op"]) for m in event.meta] == [("color", "delete")]
    assert [t["term_taxonomy_id"] for t in event.terms_removed] == [7]
    assert event.source.rows == 3 and event.source.first_pos == 1300


def test_a_change_that_cannot_wait_for_its_delete_row_is_the_posts_delete() -> None:
    from cdc.model import gone

    b = Binlog()
    asm = Assembler(Capture(), TermCatalog(), window=0, max_delay=30)
    _, [change] = run(b.delete_meta(1, 44, "color", "red"), asm=asm, now=0.0)
    [event] = events([gone(change)])
    assert (event.op, event.action, event.before, event.after) == ("delete", "deleted", None, None)
    assert [m["key"] for m in event.meta] == ["color"]


def test_meta_of_a_revision_held_for_its_delete_row_goes_quietly() -> None:
    b = Binlog()
    revision = post_row(45, post_type="revision", post_parent=10, post_status="inherit")
    asm = Assembler(Capture(), TermCatalog(), window=0, max_delay=30)
    _, [change] = run(b.delete_meta(1, 45, "_wp_old_thing", "x"), asm=asm, now=0.0)
    assert asm.reopen(change.key, now=0.0)
    asm.settle({change.key})
    _, closed = run(b.delete_post(revision), asm=asm, now=1.0)
    assert closed == [] and asm.pending_posts == 0 and asm.emitted[(1, 45)] > change.last_pos
