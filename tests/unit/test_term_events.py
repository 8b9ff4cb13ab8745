"""Term events as built and encoded: the published schema, the key, CloudEvents headers, the
tombstone, and the ``--term-fanout`` post events (no servers)."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import jsonschema
import orjson
import pytest
from cloudevents.kafka import KafkaMessage, from_binary

from cdc.assemble import Assembler
from cdc.encode import dumps
from cdc.events import Origin
from cdc.model import Row
from cdc.position import Position
from cdc.term_events import TermEvent, build, encode
from cdc.term_fanout import TermFanout
from cdc.terms import TermChange
from cdc.wordpress import Capture, TableKind, TableNames

from .rows import FILE, Binlog, post_row
from .test_term_changes import NEWS, TAG, assembler, closed, feed, update

DOCS = Path(__file__).parents[2] / "docs" / "schema"
SCHEMA = json.loads((DOCS / "term-event.v1.json").read_text())
POST_SCHEMA = json.loads((DOCS / "post-event.v1.json").read_text())
ORIGIN = Origin("site-a", "wordpress", 1)


def changes() -> dict[str, TermChange]:
    """One create, one update (rename), one delete, as the assembler closes them."""
    b = Binlog()
    asm = assembler()
    feed(asm, b.new_term(6, 8, "category", "sport", "Sport"))
    [created] = closed(asm)
    feed(asm, update(b, TableKind.TERMS, NEWS, name="Headlines", slug="headlines"))
    [updated] = closed(asm, 200)
    tt = {**TAG, "count": 0}
    feed(asm, [b.rows(TableKind.TERM_TAXONOMY, "delete", [(tt, None)]), b.commit()])
    [deleted] = closed(asm, 300)
    return {"create": created, "update": updated, "delete": deleted}


def doc(event: TermEvent) -> dict[str, Any]:
    return orjson.loads(dumps(event.as_dict()))  # type: ignore[no-any-return]


@pytest.mark.parametrize("op", ["create", "update", "delete"])
def test_every_op_as_built_is_valid(op: str) -> None:
    event = build(changes()[op], ORIGIN, 1)
    jsonschema.validate(doc(event), SCHEMA)
    assert event.op == op


def test_a_rename_reads_as_documented() -> None:
    event = build(changes()["update"], ORIGIN, 1234)
    d = doc(event)
    assert d["event_id"] == f"1-term-7-{event.seq}" and event.key == "1:7"
    assert (d["term_id"], d["term_taxonomy_id"], d["taxonomy"], d["post_count"]) == (5, 7, "post_tag", 3)
    assert d["changed_fields"] == ["name", "slug"]
    assert d["before"]["name"] == "News" and d["after"] == {"name": "Headlines", "slug": "headlines", "parent": 0,
                                                             "description": ""}
    assert d["seq"] == Position(FILE, d["source"]["pos"]).seq and d["source"]["snapshot"] is False
    assert d["ts_ms"] == 1234


@pytest.mark.parametrize(("op", "patch"), [
    ("update", {"after": None}),
    ("update", {"changed_fields": []}),
    ("delete", {"after": {"name": "x", "slug": "x", "parent": 0, "description": ""}}),
    ("create", {"before": {"name": "x", "slug": "x", "parent": 0, "description": ""}}),
    ("update", {"changed_fields": ["count"]}),
    ("update", {"event_id": "1-7-5"}),
])
def test_the_schema_refuses_what_no_term_event_is(op: str, patch: dict[str, Any]) -> None:
    d = doc(build(changes()[op], ORIGIN, 1))
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({**d, **patch}, SCHEMA)


def test_records_go_to_the_term_topic_and_a_delete_is_followed_by_a_tombstone() -> None:
    made = changes()
    [record] = encode(build(made["update"], ORIGIN, 1), "wpcdc.t.terms")
    assert (record.topic, record.topic_key) == ("wpcdc.t.terms", b"1:7")
    event, tombstone = encode(build(made["delete"], ORIGIN, 1), "wpcdc.t.terms")
    assert orjson.loads(event.value)["op"] == "delete"  # type: ignore[arg-type]
    assert (tombstone.topic_key, tombstone.value, tombstone.topic) == (b"1:7", None, "wpcdc.t.terms")
    assert dict(tombstone.headers) == {"wpcdc_blog_id": b"1", "wpcdc_taxonomy": b"post_tag", "wpcdc_op": b"tombstone"}


@pytest.mark.parametrize(("op", "action"), [("create", "created"), ("update", "updated"), ("delete", "deleted")])
def test_the_cloudevents_sdk_reads_a_term_event(op: str, action: str) -> None:
    event = build(changes()[op], ORIGIN, 1)
    record = encode(event, "wpcdc.t.terms")[0]
    ce = from_binary(KafkaMessage(headers=dict(record.headers), key=record.topic_key, value=record.value),
                     data_unmarshaller=orjson.loads)
    assert ce["type"] == f"org.wordpress.term.{action}"
    assert (ce["id"], ce["subject"], ce["source"]) == (event.event_id, "terms/" + str(event.term_taxonomy_id),
                                                      "/wpcdc/site-a/wordpress/blogs/1")
    assert ce.data == doc(event)
    assert dict(record.headers)["wpcdc_action"] == action.encode()


def test_a_long_description_is_cut_and_still_valid() -> None:
    change = changes()["update"]
    long = {**change.after, "description": "x" * 50_000}  # type: ignore[dict-item]
    event = build(TermChange(**{**{f: getattr(change, f) for f in change.__slots__}, "after": long}), ORIGIN, 1)
    [record] = encode(event, "t", max_bytes=10_000)
    d = orjson.loads(record.value)  # type: ignore[arg-type]
    assert len(record.value) <= 10_000 and d["truncated"] == ["after.description"]  # type: ignore[arg-type]
    jsonschema.validate(d, SCHEMA)


# ------------------------------------------------------------------------------------ fan-out


class Store:
    """The two reads a fan-out makes, over a dict of posts and their term ids."""

    def __init__(self, posts: dict[int, tuple[Row, set[int]]]) -> None:
        self.posts = posts

    def term_posts(self, tables: TableNames, blog: int, ttid: int, limit: int) -> list[int]:
        return sorted(p for p, (_, terms) in self.posts.items() if ttid in terms)[:limit]

    def post_rows(self, tables: TableNames, blog: int, ids: list[int]) -> dict[int, Row]:
        return {p: self.posts[p][0] for p in ids if p in self.posts}


async def _inline(fn: Any, *args: Any) -> Any:
    return fn(*args)


def fan_out(limit: int, asm: Assembler, rename: TermChange, store: Store) -> list[Any]:
    fanout = TermFanout(limit, store, TableNames(), _inline)  # type: ignore[arg-type]
    posts = asyncio.run(fanout.read([rename]))
    return fanout.events([(rename, build(rename, ORIGIN, 1))], posts, asm, Capture(), ORIGIN, 1)


def renamed(asm: Assembler, b: Binlog) -> TermChange:
    feed(asm, update(b, TableKind.TERMS, NEWS, name="Headlines"), now=50.0)
    [rename] = closed(asm, 100)
    return rename


def test_fanout_gives_each_post_of_a_renamed_term_one_event_that_no_save_looks_like() -> None:
    b = Binlog()
    asm = assembler()
    store = Store({10: (post_row(10, post_status="publish"), {7}), 11: (post_row(11, post_status="publish"), {7, 9}),
                   12: (post_row(12, post_status="publish"), {9})})
    rename = renamed(asm, b)
    events = fan_out(5, asm, rename, store)
    assert [(e.post_id, e.op, e.action, e.seq, e.changed_fields) for e in events] == [
        (10, "update", "term_changed", rename.last_pos.seq, ()), (11, "update", "term_changed", rename.last_pos.seq, ())]
    d = orjson.loads(dumps(events[0].as_dict()))
    jsonschema.validate(d, POST_SCHEMA)
    assert d["terms"] == {"added": [], "removed": []} and d["meta"] == [] and d["before"] == d["after"]
    assert d["term_change"] == {"event_id": f"1-term-7-{rename.last_pos.seq}", "changed_fields": ["name"],
                                "term": {"term_taxonomy_id": 7, "taxonomy": "post_tag", "term_id": 5,
                                         "slug": "news", "name": "Headlines"}}
    assert d["source"]["rows"] == 0
    # Their marks moved: a backfill document of them read before the rename is stale now.
    assert asm.emitted_since((1, 10), Position(FILE, rename.last_pos.pos - 1))


def test_beyond_the_limit_only_the_term_event(caplog: pytest.LogCaptureFixture) -> None:
    b = Binlog()
    asm = assembler()
    store = Store({p: (post_row(p, post_status="publish"), {7}) for p in range(10, 14)})
    assert fan_out(3, asm, renamed(asm, b), store) == []
    assert "more than --term-fanout 3 posts" in caplog.text
    again = assembler()
    assert len(fan_out(4, again, renamed(again, Binlog()), store)) == 4


def test_a_post_with_its_own_change_pending_or_later_gets_no_fanout_event() -> None:
    b = Binlog()
    asm = assembler()
    store = Store({10: (post_row(10, post_status="publish"), {7}), 11: (post_row(11, post_status="publish"), {7}),
                   12: (post_row(12, post_status="publish", post_type="revision"), {7})})
    rename = renamed(asm, b)
    feed(asm, b.insert_post(post_row(10)), now=100.0)  # pending: its own event follows the rename
    asm.mark((1, 11), Position(FILE, rename.last_pos.pos + 1000))  # out already, past the rename
    assert fan_out(5, asm, rename, store) == []  # 12: a revision, left out by the capture policy


def test_only_renames_and_slug_changes_fan_out() -> None:
    b = Binlog()
    asm = assembler()
    feed(asm, update(b, TableKind.TERM_TAXONOMY, TAG, parent=3))
    [moved] = closed(asm)
    assert fan_out(5, asm, moved, Store({10: (post_row(10), {7})})) == []
