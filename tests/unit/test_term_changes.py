"""Term rows in, term changes out: what WordPress writes for wp_insert_term, wp_update_term and
wp_delete_term folds into one change per term_taxonomy row, and holds the resume point while it waits."""

from __future__ import annotations

from typing import Any

from cdc.assemble import Assembler
from cdc.model import Commit, RowsBatch
from cdc.position import Position
from cdc.terms import TermCatalog, TermChange, term_key
from cdc.wordpress import Capture, TableKind

from .rows import FILE, Binlog, post_row

TAG = {"term_taxonomy_id": 7, "term_id": 5, "taxonomy": "post_tag", "description": "", "parent": 0, "count": 3}
NEWS = {"term_id": 5, "name": "News", "slug": "news", "term_group": 0}


def catalog(*extra: dict[str, Any]) -> TermCatalog:
    c = TermCatalog()
    c.load(1, [{**TAG, "slug": NEWS["slug"], "name": NEWS["name"]}, *extra])
    return c


def assembler(window: float = 2.0, **kw: Any) -> Assembler:
    kw.setdefault("max_delay", 30.0)
    return Assembler(Capture(), kw.pop("terms", None) or catalog(), window=window, term_events=True, **kw)


def feed(asm: Assembler, items: list[Any], now: float = 0.0) -> None:
    for item in items:
        if isinstance(item, RowsBatch):
            asm.on_batch(item, now)
        elif isinstance(item, Commit):
            asm.on_commit(item)


def update(b: Binlog, kind: TableKind, before: dict[str, Any], **changes: Any) -> list[Any]:
    return [b.rows(kind, "update", [(before, {**before, **changes})]), b.commit()]


def delete(b: Binlog, kind: TableKind, row: dict[str, Any]) -> list[Any]:
    return [b.rows(kind, "delete", [(row, None)]), b.commit()]


def closed(asm: Assembler, now: float = 100.0) -> list[TermChange]:
    asm.due(now)
    return asm.take_terms()


def test_a_rename_is_one_update_with_the_fields_the_rows_did_not_write_from_the_catalog() -> None:
    b = Binlog()
    asm = assembler()
    feed(asm, update(b, TableKind.TERMS, NEWS, name="Headlines"))
    [change] = closed(asm)
    assert (change.op, change.term_taxonomy_id, change.term_id, change.taxonomy) == ("update", 7, 5, "post_tag")
    assert change.before == {"name": "News", "slug": "news", "parent": 0, "description": ""}
    assert change.after == {"name": "Headlines", "slug": "news", "parent": 0, "description": ""}
    assert change.changed_fields == ("name",) and change.post_count == 3


def test_wp_update_term_writes_terms_then_term_taxonomy_and_gives_one_event() -> None:
    b = Binlog()
    asm = assembler()
    items = update(b, TableKind.TERMS, NEWS, name="World", slug="world")
    items += update(b, TableKind.TERM_TAXONOMY, TAG, description="All of it", parent=2)
    feed(asm, items[:2], now=0.0)
    feed(asm, items[2:], now=0.5)
    assert asm.due(2.4) == [] and asm.take_terms() == []
    [change] = closed(asm, 2.5)
    assert change.changed_fields == ("name", "slug", "parent", "description")
    assert change.after == {"name": "World", "slug": "world", "parent": 2, "description": "All of it"}
    assert change.first_pos < change.last_pos and change.rows == 2


def test_a_parent_change_names_the_term_from_the_catalog() -> None:
    b = Binlog()
    asm = assembler()
    feed(asm, update(b, TableKind.TERM_TAXONOMY, TAG, parent=9))
    [change] = closed(asm)
    assert change.changed_fields == ("parent",)
    assert (change.before["name"], change.after["name"], change.after["parent"]) == ("News", "News", 9)  # type: ignore[index]


def test_count_rewrites_alone_are_no_change_and_hold_nothing_back() -> None:
    b = Binlog()
    asm = assembler()
    items = update(b, TableKind.TERM_TAXONOMY, TAG, count=4) + update(b, TableKind.TERMS, NEWS, term_group=1)
    feed(asm, items)
    assert asm.pending_terms == 0 and closed(asm) == []
    assert asm.resume_point() == (items[-1].end, items[-1].gtid)


def test_a_count_rewrite_folds_into_a_pending_term() -> None:
    b = Binlog()
    asm = assembler()
    feed(asm, update(b, TableKind.TERMS, NEWS, name="Headlines") + update(b, TableKind.TERM_TAXONOMY, TAG, count=9))
    [change] = closed(asm)
    assert change.post_count == 9 and change.changed_fields == ("name",) and change.rows == 2


def test_wp_delete_term_is_one_delete_named_as_it_was() -> None:
    b = Binlog()
    asm = assembler()
    # wp_delete_term: the relationships go first (each post's own event), the count, then the rows.
    items = b.relate(10, 7, "delete") + update(b, TableKind.TERM_TAXONOMY, TAG, count=2)
    items += delete(b, TableKind.TERM_TAXONOMY, {**TAG, "count": 2}) + delete(b, TableKind.TERMS, NEWS)
    feed(asm, items)
    [change] = closed(asm)
    assert (change.op, change.after, change.changed_fields, change.post_count) == ("delete", None, (), 2)
    assert change.before == {"name": "News", "slug": "news", "parent": 0, "description": ""}
    assert asm.catalog.lookup(1, 7).name == "News"  # a post event removing it still names it


def test_wp_insert_term_is_one_create() -> None:
    b = Binlog()
    asm = assembler()
    feed(asm, b.new_term(6, 8, "category", "sport", "Sport"))
    [change] = closed(asm)
    assert (change.op, change.term_taxonomy_id, change.term_id, change.taxonomy) == ("create", 8, 6, "category")
    assert change.before is None and change.after == {"name": "Sport", "slug": "sport", "parent": 0, "description": ""}
    assert change.changed_fields == ("name", "slug", "parent", "description")


def test_a_term_born_and_gone_within_the_window_leaves_no_trace() -> None:
    b = Binlog()
    asm = assembler()
    t = {"term_id": 6, "name": "X", "slug": "x", "term_group": 0}
    tt = {"term_taxonomy_id": 8, "term_id": 6, "taxonomy": "post_tag", "description": "", "parent": 0, "count": 0}
    feed(asm, b.new_term(6, 8, "post_tag", "x", "X") + delete(b, TableKind.TERM_TAXONOMY, tt)
         + delete(b, TableKind.TERMS, t))
    assert closed(asm) == []


def test_a_rename_and_back_within_the_window_leaves_no_trace() -> None:
    b = Binlog()
    asm = assembler()
    feed(asm, update(b, TableKind.TERMS, NEWS, name="Oops") + update(b, TableKind.TERMS, {**NEWS, "name": "Oops"},
                                                                       name="News"))
    assert closed(asm) == []


def test_a_shared_term_renamed_changes_each_taxonomy_row_that_uses_it() -> None:
    b = Binlog()
    asm = assembler(terms=catalog({**TAG, "term_taxonomy_id": 8, "taxonomy": "category", "slug": "news",
                                   "name": "News"}))
    feed(asm, update(b, TableKind.TERMS, NEWS, name="Headlines"))
    changes = closed(asm)
    assert [(c.term_taxonomy_id, c.taxonomy, c.after["name"]) for c in changes] == [  # type: ignore[index]
        (7, "post_tag", "Headlines"), (8, "category", "Headlines")]


def test_with_window_0_each_transaction_is_its_own_change() -> None:
    b = Binlog()
    asm = assembler(window=0)
    feed(asm, update(b, TableKind.TERMS, NEWS, name="World"))
    assert [c.changed_fields for c in asm.take_terms()] == [("name",)]
    feed(asm, update(b, TableKind.TERM_TAXONOMY, TAG, description="d"))
    assert [c.changed_fields for c in asm.take_terms()] == [("description",)]


def test_a_pending_term_holds_the_resume_point_and_its_mark_skips_a_replay() -> None:
    b = Binlog()
    asm = assembler()
    post = b.insert_post(post_row(10))
    rename = update(b, TableKind.TERMS, NEWS, name="Headlines")
    feed(asm, post, now=0.0)
    feed(asm, rename, now=1.0)
    asm.due(2.0)  # the post closes; the term is still pending
    assert asm.resume_point() == (rename[0].txn.start, rename[0].txn.prev_gtid)
    assert asm.take_terms() == []
    [change] = closed(asm, 3.0)
    assert asm.resume_point() == (rename[-1].end, rename[-1].gtid)
    marks = asm.marks(Position(FILE, 0))
    assert marks[term_key(1, 5)] == change.last_pos

    # A crash before the flush that carried it: the checkpoint still says "resume at the post",
    # without the term's mark, and the replay forms the same change again.
    again = assembler(emitted={(1, 10): post[0].position})
    feed(again, post + rename)
    assert [c.last_pos for c in closed(again)] == [change.last_pos]
    # After that flush: its mark in the checkpoint skips the rename's rows.
    replay = assembler(emitted={(1, 10): post[0].position, term_key(1, 5): change.last_pos})
    feed(replay, post + rename)
    assert closed(replay) == [] and replay.rows_skipped == 2


def test_the_memory_bound_closes_pending_terms_too() -> None:
    b = Binlog()
    asm = assembler(max_pending_bytes=1_000)
    feed(asm, update(b, TableKind.TERMS, NEWS, name="Headlines") + b.insert_post(post_row(10, post_content="x" * 5000)))
    [change] = asm.take_terms()
    assert change.after["name"] == "Headlines"  # type: ignore[index]
    assert asm.done_upto is not None and asm.pending_terms == 0


def test_without_term_events_term_rows_only_feed_the_catalog() -> None:
    b = Binlog()
    asm = Assembler(Capture(), catalog(), window=2.0, max_delay=30)
    feed(asm, update(b, TableKind.TERMS, NEWS, name="Headlines"))
    assert asm.pending_terms == 0 and closed(asm) == [] and asm.catalog.lookup(1, 7).name == "Headlines"


def test_pending_terms_are_not_counted_as_posts() -> None:
    b = Binlog()
    asm = assembler()
    feed(asm, update(b, TableKind.TERMS, NEWS, name="Headlines") + b.insert_post(post_row(10)))
    assert (asm.pending_posts, asm.pending_terms) == (1, 1)


def test_a_new_term_waits_for_its_taxonomy_row_even_with_window_0() -> None:
    """Named from its own rows, not from the catalog (which a restart reads from a newer database)."""
    b = Binlog()
    asm = assembler(window=0, terms=TermCatalog())
    items = b.new_term(6, 8, "category", "sport", "Sport")
    feed(asm, items[:2])
    assert asm.take_terms() == [] and asm.resume_point() == (items[0].txn.start, items[0].txn.prev_gtid)
    asm.catalog.apply(b.rows(TableKind.TERMS, "update", [({"term_id": 6, "name": "Sport", "slug": "sport"},
                                                           {"term_id": 6, "name": "Later", "slug": "later"})]).changes[0])
    feed(asm, items[2:])
    [change] = asm.take_terms()
    assert change.op == "create" and change.after["name"] == "Sport"  # type: ignore[index]


def test_a_term_row_without_its_taxonomy_row_gives_up_after_max_delay() -> None:
    b = Binlog()
    asm = assembler(window=0, max_delay=5.0)
    feed(asm, [b.rows(TableKind.TERMS, "insert", [(None, {"term_id": 6, "name": "X", "slug": "x"})]), b.commit()])
    assert asm.pending_terms == 1 and asm.close_all() == [] and asm.pending_terms == 1
    assert asm.next_due() == 5.0 and asm.due(5.0) == [] and asm.pending_terms == 0 and asm.take_terms() == []
