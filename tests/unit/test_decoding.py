"""Value decoding that mysql-replication gets wrong or raises on, decoded our way (no server)."""

from __future__ import annotations

import datetime as dt

import orjson

from cdc.encode import encode_value
from cdc.source import decoding


def test_mysql_binary_json_becomes_its_text() -> None:
    """The library parses MySQL's binary JSON into dicts with bytes keys, which no JSON encoder
    takes; the event carries the JSON text instead, as MariaDB (where JSON is text) does."""
    parsed = {b"a": [1, 2.5, b"\xc3\xbc"], b"b": None, b"nested": {b"k": True}}
    text = decoding.json_text(parsed)
    assert orjson.loads(text) == {"a": [1, 2.5, "ü"], "b": None, "nested": {"k": True}}
    assert decoding.json_text(None) is None and decoding.json_text('{"x": 1}') == '{"x": 1}'
    encode_value({"after": {"x_json": text}})  # a plain string: never raises


def test_dates_python_cannot_hold_keep_their_text() -> None:
    assert decoding.datetime_value(2024, 2, 30, 10, 11, 12) == "2024-02-30T10:11:12"
    assert decoding.datetime_value(0, 0, 0) is None
    assert decoding.datetime_value(2024, 5, 6, 7, 8, 9, 120000) == dt.datetime(2024, 5, 6, 7, 8, 9, 120000)
    assert decoding.date_value(2024, 0, 0) == "2024-00-00" and decoding.date_value(0, 0, 0) is None


def test_text_in_any_charset_decodes_or_stays_bytes() -> None:
    assert decoding.decode_text("Zoë".encode("cp1252"), "latin1") == "Zoë"
    assert decoding.decode_text(bytes([0x81]), "latin1") == "\x81"  # MariaDB's latin1 has no holes
    assert decoding.decode_text(b"\xff\xfe", "binary") == b"\xff\xfe"
    assert decoding.decode_text(b"\xff", "ascii") == b"\xff"  # undecodable: the bytes, not an error
