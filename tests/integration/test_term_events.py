"""Term events against real WordPress: wp_insert_term, wp_update_term (name, slug, parent) and
wp_delete_term each give exactly one term event with the right before/after; assigning a term to
a post gives a post event and no term event; ``--term-fanout`` gives the posts of a renamed term
a ``term_changed`` event; and a connector killed with SIGKILL while terms are renamed loses and
repeats none."""

from __future__ import annotations

import json
import random
import time
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from tests.integration.harness import Connector, Message, check_stream, read_topic, unique, wait_until

pytestmark = pytest.mark.integration

SCHEMA = json.loads((Path(__file__).parents[2] / "docs" / "schema" / "term-event.v1.json").read_text())


def term_records(c: Connector) -> list[Message]:
    return read_topic(c.bootstrap, f"wpcdc.{c.name}.terms")


def term_events(c: Connector, ttid: int) -> list[dict[str, Any]]:
    return [m.value for m in term_records(c) if m.key == f"1:{ttid}" and m.value is not None]


def wait_term_events(c: Connector, ttid: int, count: int) -> list[dict[str, Any]]:
    """Wait for ``count`` term events of ``ttid``, then make sure no more arrive."""
    wait_until(lambda: len(term_events(c, ttid)) >= count, 60, what=f"{count} term events of {ttid}")
    time.sleep(c.window + 1.5)
    events = term_events(c, ttid)
    assert len(events) == count, [(e["op"], e["changed_fields"]) for e in events]
    for e in events:
        jsonschema.validate(e, SCHEMA)
    return events


def test_insert_rename_slug_parent_and_delete_each_give_one_term_event(connectors, wordpress) -> None:  # type: ignore[no-untyped-def]
    c: Connector = connectors()
    c.start()
    name = unique("Tag")
    tag = wordpress.run("insert_term", name=name, taxonomy="post_tag", description="first")
    ttid, term_id = tag["term_taxonomy_id"], tag["term_id"]
    [created] = wait_term_events(c, ttid, 1)
    assert (created["op"], created["term_id"], created["taxonomy"], created["before"]) == ("create", term_id,
                                                                                         "post_tag", None)
    assert created["after"] == {"name": name, "slug": name.lower(), "parent": 0, "description": "first"}

    wordpress.run("update_term", term_id=term_id, taxonomy="post_tag", name=name + " renamed")
    renamed = wait_term_events(c, ttid, 2)[-1]
    assert (renamed["op"], renamed["changed_fields"]) == ("update", ["name"])
    assert (renamed["before"]["name"], renamed["after"]["name"]) == (name, name + " renamed")
    assert renamed["after"]["slug"] == name.lower() and renamed["after"]["description"] == "first"

    wordpress.run("update_term", term_id=term_id, taxonomy="post_tag", slug=name.lower() + "-new",
                  description="second")
    moved = wait_term_events(c, ttid, 3)[-1]
    assert moved["changed_fields"] == ["slug", "description"]  # wp_terms, then wp_term_taxonomy: one event
    assert (moved["before"]["slug"], moved["after"]["slug"]) == (name.lower(), name.lower() + "-new")

    wordpress.run("delete_term", term_id=term_id, taxonomy="post_tag")
    deleted = wait_term_events(c, ttid, 4)[-1]
    assert (deleted["op"], deleted["after"], deleted["changed_fields"]) == ("delete", None, [])
    assert deleted["before"] == {"name": name + " renamed", "slug": name.lower() + "-new", "parent": 0,
                                 "description": "second"}
    records = [m for m in term_records(c) if m.key == f"1:{ttid}"]
    assert records[-1].value is None and records[-2].value == deleted  # the tombstone
    headers = dict(next(m for m in records if m.value == renamed).headers)
    assert headers["ce_type"] == b"org.wordpress.term.updated" and headers["ce_subject"] == f"terms/{ttid}".encode()
    assert [e["seq"] for e in term_events(c, ttid)] == sorted({e["seq"] for e in term_events(c, ttid)})


def test_a_category_moved_under_another_is_one_event_and_its_delete_moves_the_children(connectors, wordpress) -> None:  # type: ignore[no-untyped-def]
    parent = wordpress.run("insert_term", name=unique("Parent"), taxonomy="category")
    child = wordpress.run("insert_term", name=unique("Child"), taxonomy="category")
    c: Connector = connectors()
    c.start()
    wordpress.run("update_term", term_id=child["term_id"], taxonomy="category", parent=parent["term_id"])
    [moved] = wait_term_events(c, child["term_taxonomy_id"], 1)
    assert (moved["op"], moved["changed_fields"]) == ("update", ["parent"])
    assert (moved["before"]["parent"], moved["after"]["parent"]) == (0, parent["term_id"])
    assert moved["before"]["name"] == moved["after"]["name"]  # named from the catalog: no wp_terms row written

    wordpress.run("delete_term", term_id=parent["term_id"], taxonomy="category")
    [deleted] = wait_term_events(c, parent["term_taxonomy_id"], 1)
    assert deleted["op"] == "delete"
    up = wait_term_events(c, child["term_taxonomy_id"], 2)[-1]  # wp_delete_term moves its children up
    assert (up["changed_fields"], up["after"]["parent"]) == (["parent"], 0)


def test_assigning_a_term_to_a_post_is_a_post_event_and_no_term_event(connectors, wordpress) -> None:  # type: ignore[no-untyped-def]
    name = unique("Assigned")
    tag = wordpress.run("insert_term", name=name, taxonomy="post_tag")
    post = wordpress.create_post(unique("post"), status="publish")
    c: Connector = connectors()
    c.start()
    wordpress.run("set_tags", post_id=post, tags=[name], append=True)  # the relationship, then the count
    [event] = c.wait_events((1, post), count=1)
    assert [t["term_taxonomy_id"] for t in event["terms"]["added"]] == [tag["term_taxonomy_id"]]
    time.sleep(1.0)
    assert term_events(c, tag["term_taxonomy_id"]) == []


def test_fanout_gives_the_posts_of_a_renamed_term_a_term_changed_event(connectors, wordpress) -> None:  # type: ignore[no-untyped-def]
    small, big = unique("Small"), unique("Big")
    posts = [wordpress.create_post(unique("fan"), status="publish", tags=[small, big]) for _ in range(2)]
    lone = wordpress.create_post(unique("fan"), status="publish", tags=[big])
    small_tag = wordpress.get_post(posts[0])["terms"]
    ids = {t["name"]: (t["term_id"], t["term_taxonomy_id"]) for t in small_tag}
    c: Connector = connectors(extra=["--term-fanout", "2"])
    c.start()
    wordpress.run("update_term", term_id=ids[small][0], taxonomy="post_tag", name=small + " renamed")
    [term_event] = wait_term_events(c, ids[small][1], 1)
    fanned = [c.wait_events((1, p), count=1)[0] for p in posts]
    for post, e in zip(posts, fanned):
        assert (e["post_id"], e["op"], e["action"], e["changed_fields"]) == (post, "update", "term_changed", [])
        assert e["terms"] == {"added": [], "removed": []} and e["seq"] == term_event["seq"]
        assert e["term_change"]["event_id"] == term_event["event_id"]
        assert e["term_change"]["term"]["name"] == small + " renamed"

    wordpress.run("update_term", term_id=ids[big][0], taxonomy="post_tag", name=big + " renamed")  # on 3 posts
    wait_term_events(c, ids[big][1], 1)
    assert c.events((1, lone)) == [] and all(len(c.events((1, p))) == 1 for p in posts)
    assert "more than --term-fanout 2 posts" in c.log()


def test_kill_9_while_terms_are_renamed_loses_and_repeats_no_term_event(connectors, wordpress) -> None:  # type: ignore[no-untyped-def]
    """Renames inside a post's edit (the post's pending change keeps the resume point behind the
    rename, so the term event goes out with a mark) while the connector is killed right after such
    checkpoints and restarted: every term's events chain (each ``before`` is the last ``after``),
    none twice, and the last one names the term as the database does."""
    rng = random.Random(20261215)
    tags = [wordpress.run("insert_term", name=unique("Kill"), taxonomy="post_tag") for _ in range(3)]
    post = wordpress.create_post(unique("kill"), status="publish")
    c: Connector = connectors(window=1.0)
    c.start()
    names = {t["term_taxonomy_id"]: "" for t in tags}
    marked = 0
    for i in range(8):
        tag = rng.choice(tags)
        names[tag["term_taxonomy_id"]] = f"kill {i} {rng.random():.6f}"
        wordpress.update_post(post, title=f"a {i}")
        wordpress.run("update_term", term_id=tag["term_id"], taxonomy="post_tag", name=names[tag["term_taxonomy_id"]])
        deadline = time.monotonic() + 4
        while time.monotonic() < deadline:  # the post stays busy (pending) while the rename goes out
            wordpress.run("update_meta", post_id=post, key="k", value=f"{i} {time.monotonic()}")
            if i % 2 and term_marks(c):
                break
        if i % 2:
            marked += bool(term_marks(c))
            c.kill()
            c.start()
    time.sleep(3.0)
    assert c.stop() == 0, c.log()[-3000:]
    assert marked, "no kill landed while a term's event was in Kafka past the resume point"
    check_stream(c.events((1, post)))
    for ttid, name in names.items():
        events = term_events(c, ttid)
        ids = [e["event_id"] for e in events]
        assert len(ids) == len(set(ids)), f"term {ttid}: an event twice"
        for earlier, later in zip(events, events[1:]):
            assert later["seq"] > earlier["seq"] and later["before"]["name"] == earlier["after"]["name"], ttid
        if name:
            assert events and events[-1]["after"]["name"] == name, f"term {ttid}: its last rename is missing"


def term_marks(c: Connector) -> list[tuple[int, int]]:
    """Marks of terms (cdc/terms.py term_key) in the committed checkpoint."""
    checkpoint = c.checkpoint()
    return [k for k in (checkpoint.emitted if checkpoint else {}) if k[1] < 0]
