"""What every seed with term events must leave in the term topic, checked from the outside.

Like tests/sim/oracle.py for posts, these read only the committed records and the model's
database, and return violations as sentences:

(a) no event twice, each event under its term's key, each term's ``seq`` strictly increasing and
    its events' binlog ranges disjoint (no row folded twice), a tombstone right after each
    delete and only there, every event valid under docs/schema/term-event.v1.json;
(b) the chain: each changed field's ``before`` is what the start state and the term's earlier
    events left (an event lost in between breaks it), a create only for a term that is not there;
(c) the end: the start state folded with the events equals the model's terms: a term deleted
    since the start ends on a tombstone, one created since has its create, every rename, move or
    re-description reached its final value.

Fields an event did not change are not compared: they come from the connector's catalog, which
after a restart reads a newer database (docs/events.md says so).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from functools import cache
from typing import Any

import jsonschema
import orjson

from cdc.encode import dumps
from cdc.position import Position
from tests.sim.fakes import FakeKafka
from tests.sim.model import Site
from tests.sim.oracle import SCHEMA

TERM_SCHEMA = SCHEMA.parent / "term-event.v1.json"
FIELDS = ("name", "slug", "parent", "description")
Key = tuple[int, int]  # (blog_id, term_taxonomy_id)


@cache
def _validator() -> jsonschema.protocols.Validator:
    schema = json.loads(TERM_SCHEMA.read_text())
    return jsonschema.validators.validator_for(schema)(schema)  # type: ignore[no-any-return]


def terms_of(site: Site) -> dict[Key, dict[str, Any]]:
    """Each term_taxonomy row of the model as a term event shows it, values as JSON reads them."""
    out: dict[Key, dict[str, Any]] = {}
    for blog, t in site.blogs.items():
        for ttid, tt in t.term_taxonomy.items():
            term = t.terms.get(tt["term_id"], {})
            shown = {"name": term.get("name"), "slug": term.get("slug"), "parent": tt["parent"],
                     "description": tt["description"]}
            out[(blog, ttid)] = orjson.loads(dumps(shown))
    return out


def check_topic(kafka: FakeKafka, topic: str, start: Site, final: Site) -> list[str]:
    records = [(r.key, r.value) for r in kafka.read_committed(topic)]
    return check(records, terms_of(start), terms_of(final))


def check(records: Sequence[tuple[bytes | None, bytes | None]], start: dict[Key, dict[str, Any]],
          final: dict[Key, dict[str, Any]]) -> list[str]:
    out: list[str] = []
    seen: dict[str, int] = {}
    docs: dict[Key, list[dict[str, Any] | None]] = {}
    for offset, (raw_key, value) in enumerate(records):
        blog, _, ttid = (raw_key or b"").decode().partition(":")
        key = (int(blog), int(ttid))
        doc = None if value is None else orjson.loads(value)
        docs.setdefault(key, []).append(doc)
        if doc is None:
            continue
        out += [f"term record {offset}: schema: {e.message}" for e in _validator().iter_errors(doc)]
        if doc["event_id"] in seen:
            out.append(f"term record {offset}: event {doc['event_id']} twice (first at {seen[doc['event_id']]})")
        seen.setdefault(doc["event_id"], offset)
        if (doc["blog_id"], doc["term_taxonomy_id"]) != key:
            out.append(f"term record {offset}: event of {doc['blog_id']}:{doc['term_taxonomy_id']} under key {key}")
    state: dict[Key, dict[str, Any] | None] = {k: dict(v) for k, v in start.items()}
    for key, events in docs.items():
        out += _chain(key, events, state)
    for key in sorted(start.keys() | final.keys() | docs.keys()):
        out += _end(key, state.get(key), key in start, final.get(key))
    return out


def _chain(key: Key, events: list[dict[str, Any] | None], state: dict[Key, dict[str, Any] | None]) -> list[str]:
    out: list[str] = []
    name = f"term {key[0]}:{key[1]}"
    last_seq: int | None = None
    for i, doc in enumerate(events):
        if doc is None:
            if i == 0 or events[i - 1] is None or events[i - 1]["op"] != "delete":  # type: ignore[index]
                out.append(f"{name}: a tombstone not right after a delete event")
            continue
        first = Position(doc["source"]["first"]["file"], doc["source"]["first"]["pos"]).seq
        if last_seq is not None and first <= last_seq:
            out.append(f"{name}: event seq {doc['seq']} (rows from {first}) overlaps or precedes seq {last_seq}")
        last_seq = doc["seq"]
        if doc["op"] == "delete" and (i + 1 >= len(events) or events[i + 1] is not None):
            out.append(f"{name}: delete event seq {doc['seq']} not followed by a tombstone")
        current = state.get(key)
        if doc["op"] == "create":
            if current is not None:
                out.append(f"{name}: create seq {doc['seq']} of a term that is there")
            state[key] = dict(doc["after"])
        elif doc["op"] == "delete":
            if current is None:
                out.append(f"{name}: delete seq {doc['seq']} of a term that is not there")
            state[key] = None
        elif current is None:
            out.append(f"{name}: update seq {doc['seq']} of a term that is not there")
        else:
            for f in doc["changed_fields"]:
                if doc["before"][f] != current[f]:
                    out.append(f"{name}: update seq {doc['seq']} has {f} before {doc['before'][f]!r}, but the "
                               f"events before it left {current[f]!r} (a change lost in between)")
                current[f] = doc["after"][f]
    return out


def _end(key: Key, got: dict[str, Any] | None, at_start: bool, want: dict[str, Any] | None) -> list[str]:
    name = f"term {key[0]}:{key[1]}"
    if want is None:
        return [f"{name} is gone from the database but its events leave it there"] if got is not None else []
    if got is None:
        return [f"{name} is in the database but its events leave none (" +
                ("no create" if not at_start else "they end on a delete") + ")"]
    wrong = {f: (got[f], want[f]) for f in FIELDS if got[f] != want[f]}
    return [f"{name}: (got, want) {wrong}"] if wrong else []


__all__ = ["check", "check_topic", "terms_of"]
