"""Encoding: every value the database can hold becomes JSON, losslessly, within the size policy."""

from __future__ import annotations

import base64
import copy
import datetime as dt
import decimal
import hashlib
import json
from pathlib import Path
from typing import Any

import jsonschema
import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cdc.assemble import Assembler
from cdc.config import KafkaSettings, MysqlSettings, StreamSettings, validate
from cdc.encode import ROW_KEYS, dumps, encode, encode_value
from cdc.errors import ConfigError
from cdc.events import Origin, build
from cdc.model import PostDoc
from cdc.position import Position
from cdc.source import decoding
from cdc.terms import TermCatalog
from cdc.wordpress import Capture

from .rows import FILE, Binlog, post_row
from .test_assemble import run

SCHEMA = json.loads((Path(__file__).parents[2] / "docs" / "schema" / "post-event.v1.json").read_text())


def _event(**fields: object):  # type: ignore[no-untyped-def]
    b = Binlog()
    row = post_row(7, post_status="publish", **fields)
    [change] = run(b.insert_post(row) + b.add_meta(1, 7, "color", "red"))[0].close_all()
    event = build(change, Capture(), Origin("t", "wordpress", 1), 1)
    assert event is not None
    return event


def test_event_matches_the_published_schema() -> None:
    event = _event(post_content="héllo 😀 — ☃", post_date_gmt=None)
    [record] = encode(event)
    doc = orjson.loads(record.value)  # type: ignore[arg-type]
    jsonschema.validate(doc, SCHEMA)
    assert record.topic_key == b"1:7"
    assert not record.truncated
    assert doc["after"]["post_content"] == "héllo 😀 — ☃"
    assert doc["after"]["post_date"] == "2026-11-27T10:00:00"
    assert doc["after"]["post_date_gmt"] is None  # a zero date


def test_delete_is_followed_by_a_tombstone() -> None:
    b = Binlog()
    [change] = run(b.delete_post(post_row(8, post_status="publish")))[0].close_all()
    event = build(change, Capture(), Origin("t", "wordpress", 1), 1)
    assert event is not None
    records = encode(event)
    assert [r.value is None for r in records] == [False, True]
    jsonschema.validate(orjson.loads(records[0].value), SCHEMA)  # type: ignore[arg-type]


def test_invalid_utf8_survives_as_exact_bytes() -> None:
    raw = b"ok \xff\xfe broken \xc3"
    text = raw.decode(decoding.CODEC)  # what the binlog reader hands us
    doc = orjson.loads(dumps({"v": text, "fine": "é", "n": decimal.Decimal("1.50"), "b": b"\x00\x01",
                              "d": dt.datetime(2020, 1, 2, 3, 4, 5)}))
    assert base64.b64decode(doc["v"]["$base64"]) == raw
    assert doc["fine"] == "é" and doc["n"] == "1.50" and doc["d"] == "2020-01-02T03:04:05"
    assert base64.b64decode(doc["b"]["$base64"]) == b"\x00\x01"


@given(st.binary(max_size=200))
def test_any_bytes_round_trip(raw: bytes) -> None:
    doc = orjson.loads(dumps({"v": raw.decode(decoding.CODEC)}))
    value = doc["v"]
    back = base64.b64decode(value["$base64"]) if isinstance(value, dict) else value.encode()
    assert back == raw


def test_oversized_event_truncates_largest_text_and_says_so() -> None:
    big = "x" * 3_000_000
    event = _event(post_content=big)
    [record] = encode(event, max_bytes=100_000)
    assert record.truncated  # counted by wpcdc_truncated_events_total
    assert record.value is not None and len(record.value) <= 100_000
    doc = orjson.loads(record.value)
    marker = doc["after"]["post_content"]
    assert marker["$truncated"] and marker["bytes"] == 3_000_000
    assert marker["sha256"] == hashlib.sha256(big.encode()).hexdigest()
    assert doc["truncated"] == ["after.post_content"]
    assert event.after is not None and event.after["post_content"] == big  # the row itself untouched
    jsonschema.validate(doc, SCHEMA)


def test_small_event_is_not_touched() -> None:
    event = _event()
    value = encode_value(event.as_dict(), 900_000)
    assert b"$truncated" not in value


# ------------------------------------------------------------------------------ the size policy

ORIGIN = Origin("t", "wordpress", 1)
TEXT_COLUMNS = [k for k, v in post_row(1).items() if isinstance(v, str)]


def _built(op: str, **fields: Any) -> dict[str, Any]:
    """A real event of ``op`` (through the assembler and ``build``), as the dict encode_value gets."""
    b = Binlog()
    row = post_row(7, post_status="publish", **fields)
    if op == "create":
        return _event(**fields).as_dict()  # type: ignore[no-any-return]
    if op == "update":
        asm, _ = run(b.insert_post(row), window=0)
        items, _ = b.update_post(row, post_title="edited")
        [change] = run(items, asm=asm, window=0)[1]
    elif op == "delete":
        [change] = run(b.delete_post(row))[0].close_all()
    else:
        doc = PostDoc(1, row, ({"meta_id": 1, "post_id": 7, "meta_key": "color", "meta_value": "red"},), ())
        snap = Assembler(Capture(), TermCatalog()).on_snapshot(doc, Position(FILE, 5000))
        assert snap is not None
        change = snap
    event = build(change, Capture(), ORIGIN, 1)
    assert event is not None and event.op == op
    return event.as_dict()


def _fit(doc: dict[str, Any], max_bytes: int) -> dict[str, Any]:
    """encode_value under the policy's promises: never raises, fits, valid, input untouched."""
    before = copy.deepcopy(doc)
    value = encode_value(doc, max_bytes)
    assert len(value) <= max_bytes
    assert doc == before
    out = orjson.loads(value)
    jsonschema.validate(out, SCHEMA)
    assert set(SCHEMA["required"]) <= set(out)
    assert all(isinstance(p, str) for p in out.get("truncated", []))
    return out  # type: ignore[no-any-return]


def _sha(items: list[Any]) -> str:
    """What omitted.*.sha256 holds: sha256 of the list's compact JSON as orjson writes it."""
    return hashlib.sha256(orjson.dumps(items)).hexdigest()


def _meta(n: int, value: str = "value") -> list[dict[str, Any]]:
    return [{"meta_id": i, "key": f"key_{i}", "op": "add", "before": None, "after": f"{value} {i}"}
            for i in range(1, n + 1)]


def _terms(n: int, start: int = 1) -> list[dict[str, Any]]:
    return [{"term_taxonomy_id": i, "taxonomy": "post_tag", "term_id": i, "slug": f"tag-{i}", "name": f"Tag {i}"}
            for i in range(start, start + n)]


def test_20000_meta_rows_are_omitted_not_fatal() -> None:
    doc = _built("update")
    doc["meta"] = _meta(20_000)
    assert len(dumps(doc)) > 900_000
    out = _fit(doc, 900_000)
    assert out["meta"] == [] and out["truncated"] == ["meta"]
    assert out["omitted"] == {"meta": {"count": 20_000, "sha256": _sha(doc["meta"])}}
    assert out["after"]["post_title"] == "edited" and out["before"]["post_title"] == "Post 7"  # rows whole
    assert out["terms"] == doc["terms"] and out["revisions"] == doc["revisions"]


def test_the_meta_digest_is_of_the_list_before_any_cut() -> None:
    """Big meta values are cut first (step 1); the digest still covers the list as it was."""
    doc = _built("create")
    doc["meta"] = _meta(2_000, value="v" * 2_000)
    out = _fit(doc, 200_000)
    assert out["truncated"] == ["meta"]  # the step-1 paths into the list went with it
    assert out["omitted"]["meta"]["sha256"] == _sha(doc["meta"])
    assert b'"meta":' + dumps(doc["meta"]) + b',' in dumps(doc)  # the hashed bytes: the field's in the uncut event


def test_meta_values_are_cut_before_the_list_goes() -> None:
    doc = _built("create")
    doc["meta"] = _meta(100, value="v" * 5_000)
    out = _fit(doc, 100_000)
    assert len(out["meta"]) == 100 and "omitted" not in out
    cut = [m for m in out["meta"] if isinstance(m["after"], dict)]
    assert cut and all(m["after"]["$truncated"] for m in cut)
    assert sorted(out["truncated"]) == sorted(f"meta[{m['key']}].after" for m in cut)


def test_5000_terms_go_after_the_meta() -> None:
    doc = _built("update")
    doc["meta"] = _meta(1)
    doc["terms"] = {"added": _terms(5_000), "removed": _terms(10, start=10_000)}
    out = _fit(doc, 100_000)
    assert out["terms"] == {"added": [], "removed": []}
    assert out["truncated"] == ["meta", "terms.added", "terms.removed"]  # in the policy's order
    assert out["omitted"]["terms_added"] == {"count": 5_000, "sha256": _sha(doc["terms"]["added"])}
    assert out["omitted"]["terms_removed"] == {"count": 10, "sha256": _sha(doc["terms"]["removed"])}
    assert out["omitted"]["meta"]["count"] == 1
    assert isinstance(out["before"], dict)  # it fitted before step 4


def test_revisions_go_last_of_the_lists() -> None:
    doc = _built("update")
    doc["meta"] = []
    doc["revisions"] = [{"revision_id": i, "autosave": False} for i in range(1, 5_001)]
    out = _fit(doc, 20_000)
    assert out["revisions"] == [] and out["truncated"] == ["revisions"]
    assert out["omitted"] == {"revisions": {"count": 5_000, "sha256": _sha(doc["revisions"])}}


def _long_row(size: int, every_column: bool = False) -> dict[str, Any]:
    """A wp_posts row (default columns) whose text columns, or every column, hold ``size`` characters."""
    row = post_row(7, post_status="publish")
    for k in row if every_column else TEXT_COLUMNS:
        row[k] = ((k + "é") * (size // len(k) + 1))[:size]
    return row


@pytest.mark.parametrize("op", ["create", "update", "delete", "snapshot"])
def test_a_row_full_of_2kb_strings_fits_10000_bytes(op: str) -> None:
    doc = _built(op)
    for side in ("before", "after"):
        if doc[side] is not None:
            doc[side] = _long_row(2_000)
    out = _fit(doc, 10_000)
    truncated = out["truncated"]
    if op == "update":  # step 4: both rows do not fit, the old one goes
        assert out["before"] is None and "before" in truncated
        assert not any(p.startswith("before.") for p in truncated)
    row = out["after"] if op != "delete" else out["before"]
    assert row["ID"] == 7 and row["post_status"]["$truncated"]
    side = "before" if op == "delete" else "after"
    assert f"{side}.post_content" in truncated
    assert set(row) == set(post_row(7)) or f"{side}.*" in truncated


def test_step_5_cuts_shorter_text_of_the_row_left() -> None:
    """Text under 1 KB is left alone by step 1; the rows left lose it (no head) only if they must."""
    doc = _built("create")
    doc["after"] = _long_row(1_000)
    out = _fit(doc, 10_000)
    assert set(out["after"]) == set(doc["after"])  # every column kept
    content = out["after"]["post_content"]
    assert content["$truncated"] and "head" not in content
    assert content["sha256"] == hashlib.sha256(doc["after"]["post_content"].encode()).hexdigest()
    assert "after.post_content" in out["truncated"] and "after.*" not in out["truncated"]
    assert out["after"]["ID"] == 7 and out["after"]["post_author"] == 1


@pytest.mark.parametrize("op", ["create", "update", "delete", "snapshot"])
def test_the_minimal_event_always_fits_the_lowest_max_message_bytes(op: str) -> None:
    """--max-message-bytes is at least 10,000: the smallest event the policy makes is under it."""
    doc = _built(op)
    for side in ("before", "after"):
        if doc[side] is not None:
            doc[side] = _long_row(50_000, every_column=True)
    doc["meta"] = _meta(20_000, value="m" * 3_000)
    doc["terms"] = {"added": _terms(5_000), "removed": _terms(5_000, start=10_000)}
    doc["revisions"] = [{"revision_id": i, "autosave": i % 2 == 0} for i in range(1, 1_001)]
    doc["changed_fields"] = list(post_row(7))
    doc["source"]["connector"] = "c" * 100  # --name's longest
    out = _fit(doc, 10_000)
    side = "before" if op == "delete" else "after"
    assert set(out[side]) == set(post_row(7))  # 23 markers fit (some lose their head): no column goes
    assert all(v["$truncated"] for v in out[side].values())
    assert set(out["omitted"]) == {"meta", "terms_added", "terms_removed", "revisions"}


def test_a_row_of_many_columns_keeps_only_its_identity() -> None:
    """Step 5b: a plugin's 300 extra columns do not fit even as markers; the row keeps ROW_KEYS."""
    doc = _built("create")
    doc["after"] = {**_long_row(500, every_column=True), **{f"plugin_{i}": "p" * 500 for i in range(300)}}
    out = _fit(doc, 10_000)
    assert set(out["after"]) == set(ROW_KEYS) and out["truncated"][-1] == "after.*"
    assert all(p == "after.*" or p[len("after."):] in ROW_KEYS for p in out["truncated"] if p.startswith("after."))


def test_a_tiny_limit_gets_the_minimal_event_and_no_exception() -> None:
    doc = _built("update")
    doc["after"] = _long_row(5_000)
    value = encode_value(doc, 100)
    out = orjson.loads(value)
    jsonschema.validate(out, SCHEMA)
    assert out["before"] is None and set(out["after"]) == set(ROW_KEYS)
    assert len(value) > 100  # the producer reports it; encoding does not stop the stream


@settings(max_examples=25, deadline=None)
@given(op=st.sampled_from(["create", "update", "delete", "snapshot"]),
       meta=st.integers(0, 3_000), meta_size=st.sampled_from([5, 500, 3_000]),
       terms=st.integers(0, 2_000), text=st.integers(0, 30_000),
       max_bytes=st.integers(10_000, 300_000))
def test_whatever_the_shape_the_event_fits(op: str, meta: int, meta_size: int, terms: int, text: int,
                                           max_bytes: int) -> None:
    doc = _built(op)
    for side in ("before", "after"):
        if doc[side] is not None:
            doc[side] = _long_row(text) if text else doc[side]
    doc["meta"] = _meta(meta, value="é" * meta_size)
    doc["terms"]["added"] = _terms(terms)
    out = _fit(doc, max_bytes)
    for name, original in (("meta", doc["meta"]), ("terms_added", doc["terms"]["added"])):
        if name in out.get("omitted", {}):
            assert out["omitted"][name] == {"count": len(original), "sha256": _sha(original)}


def test_invalid_utf8_is_hashed_as_its_bytes() -> None:
    raw = b"\xff" + b"a" * 3_000
    doc = _built("create")
    doc["after"]["post_content"] = raw.decode(decoding.CODEC)
    out = _fit(doc, 5_000)
    marker = out["after"]["post_content"]
    assert marker["bytes"] == 3_001 and marker["sha256"] == hashlib.sha256(raw).hexdigest()


# ------------------------------------------------------------------ the schema: what each op carries


def _invalid(doc: dict[str, Any]) -> None:
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(orjson.loads(dumps(doc)), SCHEMA)


@pytest.mark.parametrize("op", ["create", "update", "delete", "snapshot"])
def test_every_op_as_built_is_valid(op: str) -> None:
    jsonschema.validate(orjson.loads(dumps(_built(op))), SCHEMA)


def test_schema_rejects_an_update_without_after() -> None:
    doc = _built("update")
    _invalid({**doc, "after": None})
    _invalid({**doc, "before": None, "after": None})
    _invalid({**doc, "action": "created"})
    jsonschema.validate(orjson.loads(dumps({**doc, "before": None})), SCHEMA)  # step 4's update


def test_schema_rejects_a_delete_with_after() -> None:
    doc = _built("delete")
    _invalid({**doc, "after": doc["before"]})
    _invalid({**doc, "action": "updated"})


def test_schema_rejects_a_create_with_before() -> None:
    doc = _built("create")
    _invalid({**doc, "before": doc["after"]})
    _invalid({**doc, "after": None})
    _invalid({**doc, "action": "deleted"})


def test_schema_rejects_a_snapshot_without_after_or_not_from_a_snapshot() -> None:
    doc = _built("snapshot")
    _invalid({**doc, "after": None})
    _invalid({**doc, "before": doc["after"]})
    _invalid({**doc, "source": {**doc["source"], "snapshot": False}})
    _invalid({**_built("update"), "source": {**doc["source"], "snapshot": True}})


def test_schema_describes_omitted() -> None:
    doc = _built("create")
    _invalid({**doc, "omitted": {"meta": {"count": 3}}})
    _invalid({**doc, "omitted": {"meta": {"count": 3, "sha256": "not hex"}}})
    jsonschema.validate(orjson.loads(dumps({**doc, "omitted": {"meta": {"count": 3, "sha256": "0" * 64}}})), SCHEMA)


# ---------------------------------------------------------------------- --max-message-bytes bounds


@pytest.mark.parametrize("n, ok", [(9_999, False), (10_000, True), (900_000, True), (100 << 20, True),
                                   ((100 << 20) + 1, False)])
def test_max_message_bytes_is_bounded(n: int, ok: bool) -> None:
    s = StreamSettings(name="t", mysql=MysqlSettings(), kafka=KafkaSettings(), server_id=1, max_message_bytes=n)
    if ok:
        assert validate(s) is s
    else:
        with pytest.raises(ConfigError, match="--max-message-bytes"):
            validate(s)


def test_a_meta_key_of_invalid_utf8_gives_a_string_path() -> None:
    doc = _built("create")
    doc["meta"] = [{"meta_id": 1, "key": b"k\xff".decode(decoding.CODEC), "op": "add", "before": None,
                    "after": "v" * 20_000}]
    out = _fit(doc, 12_000)
    assert out["truncated"] == ["meta[k\ufffd].after"]


def test_links_are_in_the_schema_and_a_create_has_no_link_before() -> None:
    from dataclasses import replace

    from cdc.permalinks import Link

    event = replace(_event(), link_after=Link.of("http://h/blog/hello/"))
    doc = orjson.loads(encode(event)[0].value)  # type: ignore[arg-type]
    assert doc["link"] == {"before": None, "after": {"url": "http://h/blog/hello/", "path": "/blog/hello/"}}
    jsonschema.validate(doc, SCHEMA)
    jsonschema.validate({k: v for k, v in doc.items() if k != "link"}, SCHEMA)  # events written before it
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({**doc, "link": {"before": doc["link"]["after"], "after": None}}, SCHEMA)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({**doc, "link": {"before": None, "after": {"url": "x"}}}, SCHEMA)
