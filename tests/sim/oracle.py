"""What every seed of the simulation must leave in the event topic, checked from the outside.

The checks read only what a consumer reads (the committed records, read_committed) and the
model's final database, never the session's internals: (a) no event twice, (b) each post's
events in strictly increasing ``seq``, (c) folding the events gives every post's final state,
and a deleted post ends on a tombstone, (d) every event is valid under the published schema.
They return violations as sentences instead of asserting, so the simulator can print them with
the seed that produced them.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from functools import cache
from pathlib import Path
from typing import Any

import jsonschema
import orjson

from cdc.encode import dumps
from cdc.model import PostKey, Row
from cdc.permalinks import BlogSettings, Permalinks
from cdc.wordpress import Capture
from tests.integration.harness import fold  # the consumer's fold, with `cut`
from tests.sim.fakes import SIM_OPTIONS, FakeKafka
from tests.sim.model import Site, expected_state

SCHEMA = Path(__file__).resolve().parents[2] / "docs" / "schema" / "post-event.v1.json"

Message = tuple[bytes | None, bytes | None]  # (key, value); a None value is a tombstone


@cache
def _validator() -> jsonschema.protocols.Validator:
    schema = json.loads(SCHEMA.read_text())
    cls = jsonschema.validators.validator_for(schema)
    return cls(schema)  # type: ignore[no-any-return]


_SCALARS = (str, int, float, bool, type(None))


def _plain_meta(m: Any) -> bool:
    """A meta entry the schema surely accepts (ints, strings, scalars: no $base64, no marker).
    Only the others go through jsonschema, which costs ~0.3 ms an entry: a flood has thousands."""
    return (isinstance(m, dict) and len(m) == 5 and type(m.get("meta_id")) is int
            and isinstance(m.get("key"), (str, type(None))) and m.get("op") in ("add", "update", "delete")
            and isinstance(m.get("before"), _SCALARS) and isinstance(m.get("after"), _SCALARS))


def _schema_errors(doc: dict[str, Any]) -> list[str]:
    meta = doc.get("meta")
    kept: list[int] = []  # index in the event of each meta entry validated
    if isinstance(meta, list):
        kept = [i for i, m in enumerate(meta) if not _plain_meta(m)]
        doc = {**doc, "meta": [meta[i] for i in kept]}
    out = []
    for e in _validator().iter_errors(doc):
        path = list(e.absolute_path)
        if len(path) > 1 and path[0] == "meta" and isinstance(path[1], int):
            path[1] = kept[path[1]]
        out.append(f"{e.message} at {'/'.join(map(str, path)) or 'top'}")
    return out


def _as_json(value: Any) -> Any:
    """A database value as it reads in an event (datetimes as ISO-8601, …)."""
    return orjson.loads(dumps(value))


def check_topic(kafka: FakeKafka, topic: str, site: Site, capture: Capture | None = None,
                validate_every: int = 1, unlinked: frozenset[int] = frozenset()) -> list[str]:
    """Every check, over the committed records of ``topic`` against the database ``site``.

    Each post's last event must link to its final URL, but for posts (not pages) of the ``unlinked``
    blogs, whose %category% a category rename may have moved without an event.
    """
    records = [(r.key, r.value) for r in kafka.read_committed(topic)]
    expected = expected_state(site, capture)
    for (blog, _), want in expected.items():
        if blog not in unlinked or want["row"]["post_type"] == "page":
            want["link"] = SiteFacts.permalinks(site, blog).url(want["row"])
    return check(records, expected, validate_every)


class SiteFacts:
    """cdc.permalinks.Facts read from the model's final database (tests/sim/fakes.py: SIM_OPTIONS):
    what each post's last event must link to."""

    def __init__(self, site: Site) -> None:
        self.site = site

    @classmethod
    def permalinks(cls, site: Site, blog: int) -> Permalinks:
        options = {k: v.format(blog=blog) for k, v in SIM_OPTIONS.items()}
        settings = BlogSettings.from_options(options)
        assert settings is not None
        return Permalinks(blog, settings, cls(site))

    def post(self, blog: int, post_id: int) -> Row | None:
        return self.site.blogs[blog].posts.get(post_id)

    def categories(self, blog: int, post_id: int) -> tuple[int, ...]:
        t = self.site.blogs[blog]
        return tuple(sorted(int(t.term_taxonomy[ttid]["term_id"]) for oid, ttid in t.term_relationships
                            if oid == post_id and t.term_taxonomy[ttid]["taxonomy"] == "category"))

    def category(self, blog: int, term_id: int) -> tuple[str, int] | None:
        t = self.site.blogs[blog]
        for tt in t.term_taxonomy.values():
            if tt["term_id"] == term_id and tt["taxonomy"] == "category":
                return str(t.terms[term_id]["slug"]), int(tt["parent"] or 0)
        return None

    def nicename(self, user_id: int) -> str | None:
        return f"user-{user_id}" if user_id > 0 else None


def check(records: Sequence[Message], expected: dict[PostKey, dict[str, Any]],
          validate_every: int = 1) -> list[str]:
    """Every check, over (key, value) records in topic order against ``expected_state``.

    ``validate_every``: validate one event in that many against the schema (JSON Schema
    validation costs more than the rest of a simulated run; a thousand seeds still validate
    thousands of events of every kind, and tests/unit/test_encode.py validates the encoder).
    """
    violations: list[str] = []
    by_key: dict[PostKey, list[dict[str, Any] | None]] = {}
    seen: dict[str, int] = {}
    events: list[dict[str, Any]] = []
    for offset, (raw_key, value) in enumerate(records):
        try:
            blog, _, post = (raw_key or b"").decode().partition(":")
            key = (int(blog), int(post))
        except ValueError:
            violations.append(f"record {offset}: key {raw_key!r} is not BLOG:POST")
            continue
        doc = None if value is None else orjson.loads(value)
        by_key.setdefault(key, []).append(doc)
        if doc is None:
            continue
        events.append(doc)
        for error in (_schema_errors(doc) if offset % validate_every == 0 or doc.get("truncated") else ()):
            violations.append(f"record {offset} ({doc.get('event_id')}): schema: {error}")
        event_id = doc.get("event_id")
        if event_id in seen:
            violations.append(f"record {offset}: event {event_id} twice (first at record {seen[event_id]})")
        else:
            seen[event_id] = offset
        if (doc.get("blog_id"), doc.get("post_id")) != key:
            violations.append(f"record {offset}: event of {doc.get('blog_id')}:{doc.get('post_id')} under key {key}")
    for key, docs in by_key.items():
        violations += _order(key, docs)
    violations += _state(fold(events), by_key, expected)
    return violations


def _order(key: PostKey, docs: list[dict[str, Any] | None]) -> list[str]:
    """Strictly increasing seq; a tombstone right after each delete event, and only there."""
    out: list[str] = []
    name = f"{key[0]}:{key[1]}"
    last_seq: int | None = None
    for i, doc in enumerate(docs):
        if doc is None:
            before = docs[i - 1] if i else None
            if before is None or before.get("op") != "delete":
                out.append(f"post {name}: a tombstone not right after a delete event")
            continue
        seq = doc.get("seq")
        if isinstance(seq, int) and last_seq is not None and seq <= last_seq:
            out.append(f"post {name}: seq {seq} ({doc.get('op')}) after seq {last_seq}: out of order")
        last_seq = seq if isinstance(seq, int) else last_seq
        if doc.get("op") == "delete" and (i + 1 >= len(docs) or docs[i + 1] is not None):
            out.append(f"post {name}: delete event seq {seq} not followed by a tombstone")
    return out


def _state(folded: dict[PostKey, dict[str, Any]], by_key: dict[PostKey, list[dict[str, Any] | None]],
           expected: dict[PostKey, dict[str, Any]]) -> list[str]:
    out: list[str] = []
    for key in sorted(expected.keys() | folded.keys()):
        name = f"{key[0]}:{key[1]}"
        got = folded.get(key)
        want = expected.get(key)
        if want is None:
            docs = by_key.get(key, [])
            if docs and docs[-1] is not None:
                out.append(f"post {name} is gone from the database (or not captured) but its last record is "
                           f"{docs[-1].get('op')} seq {docs[-1].get('seq')}, not a tombstone")
            continue
        if got is None or got["row"] is None:
            out.append(f"post {name} exists in the database but the events leave no state for it"
                       + ("" if got is None else " (the last event deleted it)"))
            continue
        if got["cut"]:
            continue  # the size policy cut an event: the consumer reads the post from WordPress
        row = _as_json(want["row"])
        if got["row"] != row:
            columns = sorted(c for c in row.keys() | got["row"].keys() if row.get(c) != got["row"].get(c))
            out.append(f"post {name}: row differs in {columns}: got "
                       f"{ {c: got['row'].get(c) for c in columns} }, want { {c: row.get(c) for c in columns} }")
        meta = {mid: (k, _as_json(v)) for mid, (k, v) in want["meta"].items()}
        if got["meta"] != meta:
            missing = sorted(meta.keys() - got["meta"].keys())
            extra = sorted(got["meta"].keys() - meta.keys())
            wrong = {m: (got["meta"][m], meta[m]) for m in meta.keys() & got["meta"].keys() if got["meta"][m] != meta[m]}
            out.append(f"post {name}: meta differs: missing {missing[:10]}, extra {extra[:10]}, "
                       f"wrong (got, want) {dict(list(wrong.items())[:5])}")
        if got["terms"] != want["terms"]:
            out.append(f"post {name}: terms {sorted(got['terms'])}, want {sorted(want['terms'])}")
        if "link" in want and (got.get("link") or {}).get("url") != want["link"]:
            out.append(f"post {name}: the last event links to {got.get('link')}, want {want['link']}")
    return out


__all__ = ["check", "check_topic", "fold"]
