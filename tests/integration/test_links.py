"""Every event's ``link`` against WordPress's own get_permalink(), asked in PHP right after each change.

The structures run on a blog of the multisite made for these tests (``links``), so changing its
permalink settings disturbs no other test; every option changed is put back. Posts are edited in
rounds: in a round each post gets at most one action and no post depends on another one changed in
the same round (a page and its parent), then PHP is asked for the links of the round's posts and the
round settles, so each action is one event whose ``link.after`` must equal what PHP said.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any
from urllib.parse import urlsplit

import pytest

from tests.integration.harness import Connector, wait_until

pytestmark = pytest.mark.integration

WINDOW = 0.4
SETTLE = WINDOW + 0.9

STRUCTURES = [
    "",
    "/%year%/%monthnum%/%postname%/",
    "/%category%/%postname%/",
    "/%post_id%/",
    "/archives/%post_id%",
    "/%author%/%postname%/",
    "/index.php/%year%/%monthnum%/%day%/%hour%-%minute%-%second%/%postname%",
]
# Custom post types, registered in PHP by the permalinks action as a plugin would (without the
# structure's front); the connector knows two of them by --post-type-base, not the third.
POST_TYPES = {"wpcdc_book": {"slug": "books"}, "wpcdc_doc": {"slug": "docs", "hierarchical": True},
              "wpcdc_thing": {"slug": "things"}}
BASES = "wpcdc_book=books,wpcdc_doc=docs:hierarchical"


@pytest.fixture(scope="module")
def blog(wordpress) -> int:  # type: ignore[no-untyped-def]
    return wordpress.create_blog("links", "Links")


@pytest.fixture(scope="module")
def connector(cdc_env: dict[str, str], blog: int) -> Iterator[Connector]:
    c = Connector(cdc_env, window=WINDOW, extra=["--blogs", str(blog), "--post-type-base", BASES])
    c.start()
    yield c
    assert c.stop() == 0, c.log()[-3000:]


@contextmanager
def options(wordpress: Any, blog: int, **values: str) -> Iterator[None]:
    """Set options of ``blog`` and put the old values back, whatever happens."""
    old = {name: wordpress.run("get_option", blog, name=name)["value"] for name in values}
    try:
        for name, value in values.items():
            wordpress.run("update_option", blog, name=name, value=value)
        yield
    finally:
        for name, value in old.items():
            wordpress.run("update_option", blog, name=name, value="" if value is False else value)


class Expect:
    """What PHP said each post links to after each of its actions, in order."""

    def __init__(self, wordpress: Any, blog: int) -> None:
        self.wp, self.blog = wordpress, blog
        self.links: dict[int, list[str | None]] = {}

    def round(self, *actions: Callable[[], int], moved: tuple[int, ...] = ()) -> list[int]:
        """Run the actions (each returns the post it changed); ``moved``: posts whose URL moved with
        them, which get an event of their own too."""
        ids = [action() for action in actions]
        got = self.wp.permalinks([*ids, *moved], self.blog, POST_TYPES)
        for pid in [*ids, *moved]:
            self.links.setdefault(pid, []).append(got[pid])
        time.sleep(SETTLE)
        return ids

    def check(self, connector: Connector, chain: bool = True) -> list[dict[str, Any]]:
        """Each event's link.after is what PHP said; with ``chain``, each link.before is the previous
        event's link.after (the URL consumers were told last)."""
        count = sum(len(v) for v in self.links.values())
        events = connector.wait_events(*[(self.blog, pid) for pid in self.links], count=count, timeout=60,
                                       settle=SETTLE)
        by_post: dict[int, list[dict[str, Any]]] = {}
        for e in events:
            by_post.setdefault(e["post_id"], []).append(e)
        for pid, wanted in self.links.items():
            got = by_post.get(pid, [])
            assert [(e["link"]["after"] or {}).get("url") for e in got] == wanted, (
                f"post {pid}: {[(e['action'], e['link']) for e in got]}")
            for prev, e in zip(got, got[1:]) if chain else ():
                # before is the link of the row before the change: the previous event's after.
                assert e["link"]["before"] == prev["link"]["after"], f"post {pid}: {e['action']} {e['link']}"
            for e in got:
                for side in ("before", "after"):
                    link = e["link"][side]
                    if link is not None:
                        parts = urlsplit(link["url"])
                        assert link["path"] == parts.path + (f"?{parts.query}" if parts.query else ""), link
        return events


@pytest.mark.parametrize("structure", STRUCTURES, ids=lambda s: s or "plain")
def test_links_equal_get_permalink(structure: str, connector: Connector, wordpress, blog: int) -> None:  # type: ignore[no-untyped-def]
    wp, tag = wordpress, uuid.uuid4().hex[:6]
    parent_cat = wp.run("insert_term", blog, name=f"Topics {tag}", taxonomy="category", slug=f"topics-{tag}")["term_id"]
    wp.run("insert_term", blog, name=f"Child {tag}", taxonomy="category", slug=f"child-{tag}", parent=parent_cat)
    with options(wp, blog, permalink_structure=structure):
        expect = Expect(wp, blog)
        ids: dict[str, int] = {}

        def create(name: str, **args: Any) -> Callable[[], int]:
            def run() -> int:
                ids[name] = int(wp.run("create_post", blog, title=f"{name} {tag}", **args)["post_id"])
                return ids[name]
            return run

        def act(name: str, action: str, **args: Any) -> Callable[[], int]:
            def run() -> int:
                wp.run(action, blog, post_id=ids[name], **args)
                return ids[name]
            return run

        def upload(name: str, parent: str) -> Callable[[], int]:
            def run() -> int:
                ids[name] = int(wp.run("upload_attachment", blog, filename=f"{name}-{tag}.png",
                                       parent_id=ids[parent])["attachment_id"])
                return ids[name]
            return run

        expect.round(
            create("post", status="draft", categories=[f"Child {tag}"]),
            create("parent1", type="page", status="publish", slug=f"parent-one-{tag}"),
            create("parent2", type="page", status="publish", slug=f"parent-two-{tag}"),
            create("later", status="draft"),
            create("private", status="private"),
            create("unattached", type="attachment", status="inherit", slug=f"loose-{tag}"),
        )
        expect.round(
            act("post", "publish", via="update"),
            create("child", type="page", status="publish", slug=f"child-{tag}", parent_id=ids["parent1"]),
            act("later", "schedule"),
        )
        expect.round(
            act("post", "update_post", slug=f"renamed-{tag}"),
            act("child", "update_post", slug=f"child-renamed-{tag}"),
            upload("file", "parent2"),
        )
        expect.round(
            act("post", "update_post", date="2021-03-04 05:06:07"),
            act("child", "update_post", parent_id=ids["parent2"]),
            upload("attached", "post"),
            act("parent1", "update_post", title="Parent one, retitled"),
        )
        expect.round(  # the trashed post's attachment links by id now: a moved event says so
            act("post", "trash"),
            create("draft_page", type="page", status="draft", parent_id=ids["parent2"]),
            moved=(ids["attached"],) if structure else (),
        )
        if not structure.startswith("/index.php"):  # a base is the path as URLs show it: index.php/books
            expect.round(
                create("book", type="wpcdc_book", status="publish", slug=f"book-{tag}"),
                create("manual", type="wpcdc_doc", status="publish", slug=f"manual-{tag}"),
            )
            expect.round(
                act("book", "update_post", slug=f"book-renamed-{tag}"),
                create("chapter", type="wpcdc_doc", status="publish", slug=f"chapter-{tag}",
                       parent_id=ids["manual"]),
            )
            expect.round(act("book", "update_post", status="draft"))
        events = expect.check(connector)
    home = wp.run("info", blog)["home"]
    assert all(e["link"]["after"]["url"].startswith(home + "/") for e in events if e["link"]["after"]), home


def test_front_page_posts_page_and_author(connector: Connector, wordpress, blog: int) -> None:  # type: ignore[no-untyped-def]
    """The front page links to home/ whatever its slug; the posts page has its own page link;
    %author% follows a renamed user (the users table written: the nicename is read again)."""
    wp, tag = wordpress, uuid.uuid4().hex[:6]
    user = int(wp.run("create_user", blog, login=f"links-{tag}", nicename=f"writer-{tag}")["user_id"])
    expect = Expect(wp, blog)
    front, posts = expect.round(lambda: wp.create_post(f"Front {tag}", type="page", status="publish", blog=blog),
                                lambda: wp.create_post(f"News {tag}", type="page", status="publish", blog=blog))
    with options(wp, blog, permalink_structure="/%author%/%postname%/", show_on_front="page",
                 page_on_front=str(front), page_for_posts=str(posts)):
        ids: dict[str, int] = {}

        def edit(pid: int, **fields: Any) -> Callable[[], int]:
            return lambda: (wp.update_post(pid, blog=blog, **fields), pid)[1]

        def create() -> int:
            ids["by"] = int(wp.run("create_post", blog, title=f"By {tag}", status="publish", author=user)["post_id"])
            return ids["by"]

        expect.round(edit(front, title="Front, retitled"), edit(posts, title="News, retitled"), create)
        wp.run("update_user", blog, user_id=user, nicename=f"renamed-{tag}")
        expect.round(edit(ids["by"], title="By, retitled"))
        events = expect.check(connector)
    home = wp.run("info", blog)["home"]
    assert expect.links[front][-1] == home + "/"
    last_front = [e for e in events if e["post_id"] == front][-1]
    assert last_front["link"]["before"]["path"].endswith(f"/front-{tag}/"), "the URL the last event said"
    assert f"/renamed-{tag}/" in (expect.links[ids["by"]][-1] or "")


def test_single_site_links(connectors, wp_single) -> None:  # type: ignore[no-untyped-def]
    """The single site (prefix site_, its own home) with whatever structure it has: not changed here."""
    c: Connector = connectors(database="wpsingle", prefix="site_", window=WINDOW)
    c.start()
    expect = Expect(wp_single, 1)
    pid = expect.round(lambda: wp_single.create_post(f"Single {uuid.uuid4().hex[:6]}", status="draft"))[0]
    expect.round(lambda: (wp_single.publish(pid, via="update"), pid)[1])
    expect.check(c)
    assert (expect.links[pid][-1] or "").startswith(wp_single.info()["home"] + "/")


def test_a_custom_type_without_base_links_by_query_and_is_warned_about(connector: Connector, wordpress,  # type: ignore[no-untyped-def]
                                                                       blog: int) -> None:
    """WordPress gives it its pretty URL (its rewrite slug is in PHP); wpcdc gives the query form,
    which WordPress resolves to the same post, and says once why."""
    pid = wordpress.create_post(f"Thing {uuid.uuid4().hex[:6]}", type="wpcdc_thing", status="publish", blog=blog)
    [event] = connector.wait_events((blog, pid), count=1, timeout=60, settle=SETTLE)
    home = wordpress.run("info", blog)["home"]
    assert event["link"]["after"]["url"] == f"{home}/?post_type=wpcdc_thing&p={pid}"
    assert "post type 'wpcdc_thing' has no --post-type-base" in connector.log()


def test_descendants_whose_url_moved_get_a_moved_event(cdc_env, connector: Connector, wordpress, blog: int) -> None:  # type: ignore[no-untyped-def]
    """A parent page re-slugged moves its child, grandchild and attachment: each gets a ``moved``
    event with its old and new URL, right after the parent's; --link-fanout bounds them, and the
    parent's event says so."""
    wp, tag = wordpress, uuid.uuid4().hex[:6]
    bounded = Connector(cdc_env, window=WINDOW, extra=["--blogs", str(blog), "--link-fanout", "1"])
    bounded.start()
    try:
        with options(wp, blog, permalink_structure="/%postname%/"):
            expect = Expect(wp, blog)
            [top] = expect.round(lambda: wp.create_post(f"Top {tag}", type="page", status="publish", blog=blog))
            ids = expect.round(
                lambda: int(wp.run("create_post", blog, title=f"Sub {tag}", type="page", status="publish",
                                   parent_id=top)["post_id"]),
                lambda: wp.upload_attachment(f"top-{tag}.png", parent_id=top, blog=blog))
            sub, photo = ids
            [leaf] = expect.round(lambda: int(wp.run("create_post", blog, title=f"Leaf {tag}", type="page",
                                                     status="publish", parent_id=sub)["post_id"]))
            expect.round(lambda: (wp.update_post(top, blog=blog, slug=f"top-renamed-{tag}"), top)[1],
                         moved=(sub, leaf, photo))
            events = expect.check(connector)
            last = {e["post_id"]: e for e in events}
            assert last[top]["link"]["descendants"] == {"moved": 3, "cut": False}
            assert [e["post_id"] for e in events if e["action"] == "moved"] == [sub, photo, leaf], "breadth first"
            for pid in (sub, leaf, photo):
                e = last[pid]
                assert (e["action"], e["seq"], e["changed_fields"], e["source"]["rows"]) == (
                    "moved", last[top]["seq"], [], 0), e
                assert f"/top-{tag}/" in e["link"]["before"]["path"] and f"/top-renamed-{tag}/" in e["link"]["after"]["path"]
            keys = [(blog, pid) for pid in (top, sub, leaf, photo)]
            wait_until(lambda: any(e["link"].get("descendants") for e in bounded.events(*keys)), 30,
                       what="the bounded connector's event of the re-slugged page")
            cut = bounded.events(*keys)
            assert [e["link"].get("descendants") for e in cut if e["post_id"] == top][-1] == {"moved": 1, "cut": True}
            assert len([e for e in cut if e["action"] == "moved"]) == 1
            assert "more descendants' URLs than --link-fanout 1" in bounded.log()
    finally:
        assert bounded.stop() == 0, bounded.log()[-3000:]
