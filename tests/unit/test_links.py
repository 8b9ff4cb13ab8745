"""What feeds the links (cdc/links.py): settings read once and again after a write, batched rounds
of facts, categories before a change, and the table names a binlog reader notices."""

from __future__ import annotations

import logging
from typing import Any

import pytest

from cdc.links import Linker, LinkRequest
from cdc.model import SettingsWritten
from cdc.source.binlog import TableFilter
from cdc.terms import TermCatalog
from cdc.wordpress import SettingsKind, TableNames
from tests.unit.rows import post_row

TABLES = TableNames("wp_")


class Store:
    """A PostStore that counts its reads."""

    def __init__(self, posts: dict[int, dict[str, Any]] | None = None, cats: dict[int, list[int]] | None = None,
                 structure: str = "/%category%/%author%/%postname%/") -> None:
        self.posts = posts or {}
        self.cats = cats or {}
        self.structure = structure
        self.reads: list[tuple[str, Any]] = []

    def post_stubs(self, tables: TableNames, blog: int, ids: list[int]) -> dict[int, dict[str, Any]]:
        self.reads.append(("posts", tuple(ids)))
        return {i: self.posts[i] for i in ids if i in self.posts}

    def post_categories(self, tables: TableNames, blog: int, ids: list[int]) -> dict[int, list[int]]:
        self.reads.append(("categories", tuple(ids)))
        return {i: self.cats[i] for i in ids if i in self.cats}

    def options(self, tables: TableNames, blog: int, names: Any) -> dict[str, Any]:
        self.reads.append(("options", blog))
        return {} if blog == 9 else {"home": f"http://b{blog}", "permalink_structure": self.structure,
                                     "default_category": "1"}

    def user_nicenames(self, tables: TableNames, ids: list[int]) -> dict[int, str]:
        self.reads.append(("users", tuple(ids)))
        return {i: f"u{i}" for i in ids}


def catalog() -> TermCatalog:
    c = TermCatalog()
    c.load(1, [{"term_taxonomy_id": 1, "term_id": 1, "taxonomy": "category", "slug": "uncategorized", "name": "U",
                "parent": 0},
               {"term_taxonomy_id": 5, "term_id": 5, "taxonomy": "category", "slug": "news", "name": "N",
                "parent": 0},
               {"term_taxonomy_id": 6, "term_id": 6, "taxonomy": "post_tag", "slug": "tag", "name": "T",
                "parent": 0}])
    return c


def resolve(linker: Linker, store: Store, requests: list[LinkRequest]) -> list[Any]:
    """Session._link without the event loop."""
    blogs = linker.to_read(r.blog for r in requests)
    if blogs:
        linker.read_settings(store, blogs)  # type: ignore[arg-type]
    facts = linker.facts()
    done: list[Any] = [None] * len(requests)
    for _ in range(32):
        if linker.attempt(requests, facts, done):
            break
        facts.read(store, TABLES)  # type: ignore[arg-type]
    return [(b and b.url, a and a.url) for b, a in done]


def page(pid: int, parent: int = 0, **fields: Any) -> dict[str, Any]:
    return post_row(pid, **{"post_type": "page", "post_status": "publish", "post_parent": parent,
                            "post_name": f"p{pid}", **fields})


def test_facts_are_read_in_one_batch_per_kind_and_level() -> None:
    store = Store(posts={3: page(3, 2), 2: page(2, 1), 1: page(1)}, cats={10: [5]})
    linker = Linker(TABLES, catalog(), lambda key: None)
    post = post_row(10, post_status="publish", post_name="hello", post_author=7)
    requests = [LinkRequest(1, 10, None, post), LinkRequest(1, 4, None, page(4, 3)),
                LinkRequest(1, 11, None, post_row(11, post_status="publish", post_name="other", post_author=7))]
    assert resolve(linker, store, requests) == [
        (None, "http://b1/news/u7/hello/"), (None, "http://b1/p1/p2/p3/p4/"),
        (None, "http://b1/uncategorized/u7/other/")]
    assert store.reads == [("options", 1), ("posts", (3,)), ("categories", (10, 11)), ("users", (7,)),
                           ("posts", (2,)), ("posts", (1,))]
    store.reads.clear()
    assert resolve(linker, store, requests[:1]) == [(None, "http://b1/news/u7/hello/")]
    assert store.reads == [("categories", (10,))], "settings and nicenames are kept; categories are per flush"


def test_the_row_cache_answers_first() -> None:
    cached = {(1, 3): page(3)}
    store = Store()
    linker = Linker(TABLES, catalog(), cached.get, {})
    assert resolve(linker, store, [LinkRequest(1, 4, None, page(4, 3))]) == [(None, "http://b1/p3/p4/")]
    assert store.reads == [("options", 1)]


def test_before_has_the_categories_the_change_did_not_add_yet() -> None:
    store = Store(cats={10: [5]})
    linker = Linker(TABLES, catalog(), lambda key: None)
    row = post_row(10, post_status="publish", post_name="hello")
    news = {"term_taxonomy_id": 5, "taxonomy": "category", "term_id": 5, "slug": "news", "name": "N"}
    uncategorized = {"term_taxonomy_id": 1, "taxonomy": "category", "term_id": 1, "slug": "uncategorized", "name": "U"}
    tag = {"term_taxonomy_id": 6, "taxonomy": "post_tag", "term_id": 6, "slug": "tag", "name": "T"}
    got = resolve(linker, store, [LinkRequest(1, 10, row, row, [news, tag], [uncategorized])])
    assert got == [("http://b1/uncategorized/u1/hello/", "http://b1/news/u1/hello/")]


def test_a_snapshot_names_its_own_categories() -> None:
    store = Store(cats={10: [1]})  # the database moved on since the document was read
    linker = Linker(TABLES, catalog(), lambda key: None)
    news = {"term_taxonomy_id": 5, "taxonomy": "category", "term_id": 5, "slug": "news", "name": "N"}
    row = post_row(10, post_status="publish", post_name="hello")
    assert resolve(linker, store, [LinkRequest(1, 10, None, row, [news], snapshot=True)]) == [
        (None, "http://b1/news/u1/hello/")]
    assert ("categories", (10,)) not in store.reads


def test_settings_are_read_again_after_a_write_and_nicenames_after_a_users_write() -> None:
    store = Store()
    linker = Linker(TABLES, catalog(), lambda key: None)
    row = post_row(10, post_status="publish", post_name="hello")
    resolve(linker, store, [LinkRequest(1, 10, None, row)])
    assert linker.to_read([1]) == []
    linker.on_written(SettingsWritten(frozenset({1, 2}), users=False))  # blog 2 never read: nothing to redo
    assert linker.to_read([1, 2]) == [1, 2] and linker.stale == {1}
    store.structure = "/%post_id%/"
    assert resolve(linker, store, [LinkRequest(1, 10, None, row)]) == [(None, "http://b1/10/")]
    assert linker.nicenames
    linker.on_written(SettingsWritten(frozenset(), users=True))
    assert not linker.nicenames


def test_a_blog_without_home_has_no_links_and_says_so_once(caplog: pytest.LogCaptureFixture) -> None:
    store = Store()
    linker = Linker(TABLES, catalog(), lambda key: None)
    row = post_row(10, post_status="publish", post_name="hello")
    with caplog.at_level(logging.WARNING):
        assert resolve(linker, store, [LinkRequest(9, 10, row, row)]) == [(None, None)]
        linker.on_written(SettingsWritten(frozenset({9})))
        assert resolve(linker, store, [LinkRequest(9, 10, row, row)]) == [(None, None)]
    assert [r.getMessage() for r in caplog.records] == [
        "blog 9 has no 'home' option in wp_9_options: its events carry no link"]


def test_an_unknown_custom_type_is_warned_about_once(caplog: pytest.LogCaptureFixture) -> None:
    linker = Linker(TABLES, catalog(), lambda key: None)
    row = post_row(10, post_type="product", post_status="publish")
    with caplog.at_level(logging.WARNING):
        for _ in range(2):
            assert resolve(linker, Store(), [LinkRequest(1, 10, None, row)]) == [
                (None, "http://b1/?post_type=product&p=10")]
    assert len(caplog.records) == 1 and "--post-type-base product=BASE" in caplog.records[0].getMessage()


def test_a_hierarchy_deeper_than_the_rounds_is_cut() -> None:
    posts = {i: page(i, i - 1) for i in range(1, 60)}
    store = Store(posts=posts)
    linker = Linker(TABLES, catalog(), lambda key: None)
    requests = [LinkRequest(1, 60, None, page(60, 59))]
    facts = linker.facts()
    linker.read_settings(store, [1])  # type: ignore[arg-type]
    done: list[Any] = [None]
    for _ in range(5):
        assert not linker.attempt(requests, facts, done)
        facts.read(store, TABLES)  # type: ignore[arg-type]
    facts.final = True
    assert linker.attempt(requests, facts, done)
    assert done[0][1].url == "http://b1/p55/p56/p57/p58/p59/p60/"  # five levels read, the rest unknown


# ------------------------------------------------------------------------------ table names


def test_options_and_users_tables_are_recognised() -> None:
    tables = TableNames("wp_", [1, 3])
    assert tables.settings("wp_options") == (SettingsKind.OPTIONS, 1)
    assert tables.settings("wp_3_options") == (SettingsKind.OPTIONS, 3)
    assert tables.settings("wp_2_options") is None, "a blog not captured"
    assert tables.settings("wp_users") == (SettingsKind.USERS, 0)
    assert tables.settings("wp_3_users") is None and tables.settings("wp_usermeta") is None
    assert tables.settings("wp_posts") is None and tables.parse("wp_options") is None
    assert tables.settings_name(SettingsKind.OPTIONS, 3) == "wp_3_options"
    assert tables.settings_name(SettingsKind.USERS, 3) == "wp_users"


def test_the_readers_table_filter_lets_posts_tables_through_and_notes_settings_writes() -> None:
    f = TableFilter(TableNames("wp_"))
    assert "wp_posts" in f and "wp_2_postmeta" in f
    assert f.take() is None
    assert "wp_options" not in f and "wp_2_options" not in f and "wp_users" not in f and "wp_links" not in f
    assert f.take() == SettingsWritten(frozenset({1, 2}), users=True)
    assert f.take() is None


# ------------------------------------------------------------------------------ descendants


class Children(Store):
    def post_children(self, tables: TableNames, blog: int, parent_ids: list[int], limit: int) -> list[dict[str, Any]]:
        self.reads.append(("children", tuple(parent_ids), limit))
        rows = [r for i, r in sorted(self.posts.items()) if r["post_parent"] in parent_ids]
        return rows[:limit]


async def _inline(fn: Any, *args: Any) -> Any:
    return fn(*args)


def test_descendants_breadth_first_bounded_and_loop_safe() -> None:
    import asyncio

    posts = {2: page(2, 1), 3: page(3, 1), 4: page(4, 2), 5: page(5, 4), 9: page(9, 8), 8: page(8, 9)}
    store = Children(posts=posts)
    linker = Linker(TABLES, catalog(), lambda key: None)
    ancestors = [LinkRequest(1, 1, page(1), page(1)), LinkRequest(1, 1, page(1), page(1)),
                 LinkRequest(1, 8, page(8, 9), page(8, 9))]
    found, cut = asyncio.run(linker.descendants(ancestors, store, _inline, 10))  # type: ignore[arg-type]
    assert [(n, r["ID"]) for n, r in found] == [(0, 2), (0, 3), (2, 9), (0, 4), (0, 5)], "the first change of a post owns"
    assert cut == set()
    found, cut = asyncio.run(linker.descendants(ancestors[:1], store, _inline, 2))  # type: ignore[arg-type]
    assert [r["ID"] for _, r in found] == [2, 3] and cut == {0}


def test_a_moved_descendant_links_from_its_ancestor_before_the_change() -> None:
    store = Store(posts={})
    old_top, new_top = page(1, post_name="old"), page(1, post_name="new")
    linker = Linker(TABLES, catalog(), {(1, 1): new_top}.get)
    ancestor = LinkRequest(1, 1, old_top, new_top)
    child = page(2, 1)
    assert resolve(linker, store, [LinkRequest.moved(child, 1, ancestor)]) == [
        ("http://b1/old/p2/", "http://b1/new/p2/")]


def test_a_moved_event_keeps_its_row_and_takes_its_ancestors_place() -> None:
    import json
    from pathlib import Path

    import jsonschema

    from cdc.encode import encode
    from cdc.events import PostEvent, SourceInfo, moved_event
    from cdc.permalinks import Link

    source = SourceInfo("c", "wordpress", 1, "mariadb-bin.000001", 900, "0-1-5", 1000, "mariadb-bin.000001", 400, 7)
    top = PostEvent("update", "updated", 1, 1, "page", 900, source, 5, page(1), page(1), ("post_name",),
                    "publish", "publish", link_before=Link.of("http://h/old/"), link_after=Link.of("http://h/new/"),
                    link_descendants=(1, False))
    child = moved_event(top, page(2, 1), Link.of("http://h/old/p2/"), Link.of("http://h/new/p2/"))
    assert (child.op, child.action, child.post_id, child.seq, child.changed_fields) == ("update", "moved", 2, 900, ())
    assert child.source.rows == 0 and child.before == child.after and child.status_before == "publish"
    schema = json.loads((Path(__file__).parents[2] / "docs" / "schema" / "post-event.v1.json").read_text())
    for event in (top, child):
        import orjson

        jsonschema.validate(orjson.loads(encode(event)[0].value), schema)  # type: ignore[arg-type]
    assert top.as_dict()["link"]["descendants"] == {"moved": 1, "cut": False}
    assert "descendants" not in child.as_dict()["link"]


