"""Encoding: every value the database can hold becomes JSON, losslessly, within the size policy."""

from __future__ import annotations

import base64
import datetime as dt
import decimal
import hashlib
import json
from pathlib import Path

import jsonschema
import orjson
from hypothesis import given
from hypothesis import strategies as st

from cdc.encode import dumps, encode, encode_value
from cdc.events import Origin, build
from cdc.source import decoding
from cdc.wordpress import Capture

from .rows import Binlog, post_row
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
    decoding.install()
    raw = b"ok \xff\xfe broken \xc3"
    text = raw.decode(decoding.CODEC)  # what the binlog reader hands us
    doc = orjson.loads(dumps({"v": text, "fine": "é", "n": decimal.Decimal("1.50"), "b": b"\x00\x01",
                              "d": dt.datetime(2020, 1, 2, 3, 4, 5)}))
    assert base64.b64decode(doc["v"]["$base64"]) == raw
    assert doc["fine"] == "é" and doc["n"] == "1.50" and doc["d"] == "2020-01-02T03:04:05"
    assert base64.b64decode(doc["b"]["$base64"]) == b"\x00\x01"


@given(st.binary(max_size=200))
def test_any_bytes_round_trip(raw: bytes) -> None:
    decoding.install()
    doc = orjson.loads(dumps({"v": raw.decode(decoding.CODEC)}))
    value = doc["v"]
    back = base64.b64decode(value["$base64"]) if isinstance(value, dict) else value.encode()
    assert back == raw


def test_oversized_event_truncates_largest_text_and_says_so() -> None:
    big = "x" * 3_000_000
    event = _event(post_content=big)
    [record] = encode(event, max_bytes=100_000)
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
