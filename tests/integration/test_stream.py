"""Streaming beyond the golden cases: bulk actions, any table prefix, blog filters, window 0."""

from __future__ import annotations

import time

import orjson
import pytest
from cloudevents.kafka import KafkaMessage, from_binary

from tests.integration.harness import Connector, wait_until

pytestmark = pytest.mark.integration


def test_bulk_edit_of_50_posts_is_one_event_each(connectors, wordpress) -> None:  # type: ignore[no-untyped-def]
    c: Connector = connectors()
    c.start()
    ids = wordpress.seed(50, with_terms=False, with_meta=False)
    keys = [(1, i) for i in ids]
    c.wait_events(*keys, count=50, timeout=60)
    result = wordpress.run("bulk_edit", post_ids=ids, status="draft", tags=["bulk-tag"])
    assert len(result["updated"]) == 50
    events = c.wait_events(*keys, count=100, timeout=90)
    updates = [e for e in events if e["op"] == "update"]
    assert sorted(e["post_id"] for e in updates) == sorted(ids)
    for e in updates:
        assert e["action"] == "unpublished" and e["status"] == {"before": "publish", "after": "draft"}
        assert [t["slug"] for t in e["terms"]["added"]] == ["bulk-tag"]
        assert [m["key"] for m in e["meta"]] == []  # bulk edit writes only _edit_last: bookkeeping
    # Every record read back from Kafka is a CloudEvent (binary mode) whose data is the event.
    for m in c.messages():
        assert m.value is not None
        ce = from_binary(KafkaMessage(headers=dict(m.headers), key=m.key.encode(), value=orjson.dumps(m.value)),
                         data_unmarshaller=orjson.loads)
        assert ce["id"] == m.value["event_id"] and ce["type"] == "org.wordpress.post." + m.value["action"]
        assert ce["source"] == f"/wpcdc/{c.name}/wordpress/blogs/{m.value['blog_id']}" and ce.data == m.value
        assert dict(m.headers)["wpcdc_post_type"] == (m.value["post_type"] or "").encode()


def test_any_table_prefix_single_site(connectors, wp_single) -> None:  # type: ignore[no-untyped-def]
    c: Connector = connectors(database="wpsingle", prefix="site_")
    c.start()
    pid = wp_single.create_post("On the single site", status="publish", tags=["single"])
    [event] = c.wait_events((1, pid), count=1)
    assert event["source"]["db"] == "wpsingle" and event["op"] == "create"
    assert "post_tag:single" in {f"{t['taxonomy']}:{t['slug']}" for t in event["terms"]["added"]}


def test_blog_filter_and_new_blogs_are_seen(connectors, wordpress) -> None:  # type: ignore[no-untyped-def]
    c: Connector = connectors(extra=["--blogs", "2"])
    c.start()
    p1 = wordpress.create_post("blog one, filtered out", status="publish")
    p2 = wordpress.create_post("blog two, kept", status="publish", blog=2)
    c.wait_events((2, p2), count=1)
    time.sleep(1.5)
    assert c.events((1, p1)) == []

    every: Connector = connectors()
    every.start()
    blog = wordpress.create_blog(f"b{int(time.time())}")  # a blog created while streaming
    pid = wordpress.create_post("on a brand-new blog", status="publish", blog=blog)
    [event] = every.wait_events((blog, pid), count=1, timeout=60)
    assert event["blog_id"] == blog and event["after"]["post_title"] == "on a brand-new blog"


def test_window_zero_is_one_event_per_transaction(connectors, wordpress, stack) -> None:  # type: ignore[no-untyped-def]
    c: Connector = connectors(window=0)
    c.start()
    pid = wordpress.create_post("w0", status="publish", meta={"a": "1"})
    wait_until(lambda: len(c.events((1, pid))) >= 3, 30, what="the transactions of one save")
    time.sleep(2)
    events = c.events((1, pid))
    # wp_insert_post writes the row, then updates it (guid), then meta: several transactions.
    assert len(events) >= 3
    assert events[0]["op"] == "create" and all(e["op"] == "update" for e in events[1:])
    seqs = [e["seq"] for e in events]
    assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs)
