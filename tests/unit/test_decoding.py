"""Value decoding that mysql-replication gets wrong or raises on, decoded our way (no server)."""

from __future__ import annotations

import datetime as dt
from typing import Any

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


def test_the_fast_datetime_conversion_gives_what_pymysql_and_ours_give() -> None:
    """sql_conversions parses plain DATETIME text with the C parser first: for any text, the
    result (value and type, or the exception) is the one of the regular-expression path."""
    import random

    from pymysql import converters
    from pymysql.constants import FIELD_TYPE

    from cdc.source.decoding import _sql_temporal, sql_conversions

    fast = sql_conversions()[FIELD_TYPE.DATETIME]
    slow = _sql_temporal(converters.convert_datetime)

    def outcome(conv: Any, text: str) -> Any:
        try:
            value = conv(text)
        except Exception as exc:  # noqa: BLE001 - the exception is the outcome compared
            return ("raises", type(exc))
        return (type(value), value)

    rng = random.Random(17)
    texts = ["2024-02-29 10:11:12", "0000-00-00 00:00:00", "2024-02-30 10:11:12", "0999-01-01 00:00:00",
             "2024-00-00 00:00:00", "9999-12-31 23:59:59", "2024-02-29 10:11:12.5", "2024-02-29 24:00:00",
             "2024-12-31 23:59:60", "2024-1-01 00:00:000", "2024-02-29T10:11:12", ""]
    texts += [f"{rng.randint(0, 9999):04d}-{rng.randint(0, 13):02d}-{rng.randint(0, 32):02d} "
              f"{rng.randint(0, 25):02d}:{rng.randint(0, 61):02d}:{rng.randint(0, 61):02d}" for _ in range(20_000)]
    for text in texts:
        assert outcome(fast, text) == outcome(slow, text), text
