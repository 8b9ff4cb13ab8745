"""--topic as a template: each blog or post type to its own topic; a post that changes type moves."""

from __future__ import annotations

import dataclasses

import pytest

from cdc.encode import encode
from cdc.errors import ConfigError
from cdc.events import Origin, build
from cdc.routing import TopicRouter
from cdc.wordpress import Capture

from .rows import Binlog, post_row
from .test_assemble import run


def _event(*steps):  # type: ignore[no-untyped-def]
    changes = [c for step in steps for c in run(step)[0].close_all()]
    return [build(c, Capture(), Origin("site", "wordpress", 1), 1) for c in changes]


def test_a_plain_topic_is_static_and_keeps_records_as_they_are() -> None:
    router = TopicRouter("wpcdc.{name}.posts", "site")
    assert router.static and router.topic(3, "page") == "wpcdc.site.posts"
    assert router.pattern().fullmatch("wpcdc.site.posts")


def test_a_template_routes_by_blog_and_type() -> None:
    router = TopicRouter("wpcdc.{name}.{blog_id}.{post_type}", "site")
    assert not router.static
    assert router.topic(2, "product") == "wpcdc.site.2.product"
    assert router.topic(1, None) == "wpcdc.site.1.unknown"
    pattern = router.pattern()
    assert pattern.fullmatch("wpcdc.site.12.page") and not pattern.fullmatch("wpcdc.other.1.page")
    assert not pattern.fullmatch("wpcdc.site.x.page")


@pytest.mark.parametrize("template, words", [("wpcdc.{nope}", "unknown placeholder {nope}"),
                                              ("wpcdc posts", "letters, digits")])
def test_a_bad_template_names_the_fix(template: str, words: str) -> None:
    with pytest.raises(ConfigError, match=words):
        TopicRouter(template, "site")


def test_each_record_gets_its_topic_and_a_type_change_moves_the_post() -> None:
    router = TopicRouter("t.{post_type}", "site")
    b = Binlog()
    row = post_row(7, post_status="publish", post_type="post")
    [created] = _event(b.insert_post(row))
    [record] = router.route(created, encode(created))
    assert record.topic == "t.post"
    [moved] = _event(b.update_post(row, post_type="page")[0])
    tombstone, event = router.route(moved, encode(moved))
    assert (tombstone.topic, tombstone.value, tombstone.topic_key) == ("t.post", None, b"1:7")
    assert dict(tombstone.headers)["wpcdc_post_type"] == b"post"
    assert event.topic == "t.page" and event.value is not None


def test_a_delete_goes_to_the_types_topic_with_its_tombstone() -> None:
    router = TopicRouter("t.{blog_id}.{post_type}", "site")
    b = Binlog()
    row = post_row(9, post_status="publish", post_type="page")
    created, deleted = _event(b.insert_post(row), b.delete_post(row))
    records = router.route(deleted, encode(deleted))
    assert [(r.topic, r.value is None) for r in records] == [("t.1.page", False), ("t.1.page", True)]
    assert router.route(dataclasses.replace(created), encode(created))[0].topic == "t.1.page"
