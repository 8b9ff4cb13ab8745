"""A bad-input corpus: what real sites put into the captured tables never crashes the connector
and never passes silently.

Every case writes rows through the real MariaDB into an isolated database (``badinput``, tables
``bi_*`` cloned from the multisite's, so the golden cases, which compare whole post rows, never see
them) while a real ``wpcdc stream`` reads it, then checks what the event says against the contract
in docs/events.md ("Values"), exactly. After each case the connector still runs, logged nothing
at error level, and the events folded per post (harness ``fold``) agree with the database.

The corpus: columns plugins add (JSON, DECIMAL, BIT, ENUM, SET, DATETIME(6), TIME, YEAR, BLOB,
GEOMETRY), zero and invalid dates, legacy latin1/utf8mb3 tables and 4-byte characters, huge and
tiny values, NULL meta keys and values, 20,000 meta rows on one post, and a term on 100,000 posts
renamed and deleted. Rows a case reads back from the database instead of the binlog (a meta-only
change of a post the connector has not seen) must look the same as rows from the binlog.
"""

from __future__ import annotations

import asyncio
import base64
import datetime as dt
import decimal
import hashlib
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pymysql
import pymysql.cursors
import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition
from pymysql.constants import FIELD_TYPE

from tests.integration.harness import Connector, Message, admin_connection, fold, wait_until

import stack as local_stack

pytestmark = pytest.mark.integration

DB = "badinput"
PREFIX = "bi_"
KINDS = ("posts", "postmeta", "term_relationships", "terms", "term_taxonomy")
IGNORED_META = ("_edit_lock",)  # bookkeeping: never in events (the default ignore list)

# The term on 100,000 posts: ids far above the other cases' posts.
BULK_POSTS = 100_000
BULK_BASE = 10_000_000
BULK_TERM = 900_001
MAX_PENDING_MB = 16
RSS_BOUND_MB = 45 + 4 * MAX_PENDING_MB  # docs/design.md "Memory": the idle process plus 3-4 x the setting


# ------------------------------------------------------------------------------------ database


def admin(port: int, database: str | None = DB, charset: str = "utf8mb4") -> pymysql.connections.Connection:
    return admin_connection(port, database, charset=charset, cursorclass=pymysql.cursors.DictCursor)


def run_sql(port: int, *statements: str | tuple[str, Any], sql_mode: str | None = None, binlog: bool = True,
            charset: str = "utf8mb4") -> int:
    """Run statements on one admin session; returns the last insert id.

    ``sql_mode`` relaxes this session only (invalid dates, out-of-range values), ``binlog=False``
    keeps the writes out of the binlog (a row the connector never sees, read back on a lookup).
    """
    conn = admin(port, charset=charset)
    with conn, conn.cursor() as cur:
        if sql_mode is not None:
            cur.execute("SET SESSION sql_mode = %s", (sql_mode,))
        if not binlog:
            cur.execute("SET SESSION sql_log_bin = 0")
        for s in statements:
            statement, args = (s, None) if isinstance(s, str) else s
            cur.execute(statement, args)
        return int(cur.lastrowid or 0)


POST_DEFAULTS = {
    "post_author": 1, "post_date": "2024-05-01 10:00:00", "post_date_gmt": "2024-05-01 08:00:00",
    "post_content": "body", "post_title": "title", "post_excerpt": "", "post_status": "publish",
    "post_name": "", "to_ping": "", "pinged": "", "post_modified": "2024-05-01 10:00:00",
    "post_modified_gmt": "2024-05-01 08:00:00", "post_content_filtered": "", "post_type": "post",
}


def insert_post(**fields: Any) -> tuple[str, Any]:
    row = {**POST_DEFAULTS, **fields}
    raw = {k: v for k, v in row.items() if isinstance(v, Raw)}
    cols = ", ".join(row)
    marks = ", ".join(v.sql if isinstance(v, Raw) else "%s" for v in row.values())
    args = [v for v in row.values() if not isinstance(v, Raw)]
    del raw
    return f"INSERT INTO bi_posts ({cols}) VALUES ({marks})", args


class Raw:
    """An SQL expression written as is (a function call, a bit literal)."""

    def __init__(self, sql: str) -> None:
        self.sql = sql


def event_value(value: Any, type_code: int) -> Any:
    """What docs/events.md says a value read by pymysql becomes in an event: the test's oracle,
    written from the contract, independently of the connector's code."""
    if value is None:
        return None
    if type_code in (FIELD_TYPE.DATETIME, FIELD_TYPE.TIMESTAMP, FIELD_TYPE.DATE):
        if isinstance(value, (dt.datetime, dt.date)):
            return value.isoformat()
        text = str(value)  # pymysql gives up on zero and invalid dates: the server's own text
        if text.strip("0-: .") == "":
            return None  # a zero date
        text = text.replace(" ", "T")
        if text.endswith(".000000"):
            text = text[: -len(".000000")]
        return text
    if type_code in (FIELD_TYPE.TIME,):
        return value.total_seconds()
    if type_code in (FIELD_TYPE.DECIMAL, FIELD_TYPE.NEWDECIMAL):
        assert isinstance(value, decimal.Decimal)
        return str(value)
    if type_code == FIELD_TYPE.BIT:
        return int.from_bytes(value, "big")
    if isinstance(value, bytes):
        return {"$base64": base64.b64encode(value).decode()}
    return value


def db_rows(port: int, statement: str, args: Any = None) -> list[dict[str, Any]]:
    """Rows as events should show them (see event_value)."""
    conn = admin(port)
    with conn, conn.cursor() as cur:
        cur.execute(statement, args)
        types = {d[0]: d[1] for d in cur.description or ()}
        return [{k: event_value(v, types[k]) for k, v in r.items()} for r in cur.fetchall()]


def db_state(port: int, post_ids: list[int]) -> dict[tuple[int, int], dict[str, Any]]:
    """Per (blog, post): the row, meta by meta_id and term ids, as fold() builds them from events."""
    out: dict[tuple[int, int], dict[str, Any]] = {}
    if not post_ids:
        return out
    ids = ",".join(str(int(i)) for i in post_ids)
    for row in db_rows(port, f"SELECT * FROM bi_posts WHERE ID IN ({ids})"):
        out[(1, row["ID"])] = {"row": row, "meta": {}, "terms": set()}
    for m in db_rows(port, f"SELECT meta_id, post_id, meta_key, meta_value FROM bi_postmeta WHERE post_id IN ({ids})"):
        if (1, m["post_id"]) in out and m["meta_key"] not in IGNORED_META:
            out[(1, m["post_id"])]["meta"][m["meta_id"]] = (m["meta_key"], m["meta_value"])
    for t in db_rows(port, f"SELECT object_id, term_taxonomy_id FROM bi_term_relationships WHERE object_id IN ({ids})"):
        if (1, t["object_id"]) in out:
            out[(1, t["object_id"])]["terms"].add(t["term_taxonomy_id"])
    return out


def uncut(value: Any, stored: Any) -> Any:
    """A value the size policy replaced, taken as the stored one when its digest says it is."""
    if isinstance(value, dict) and value.get("$truncated") and isinstance(stored, str):
        raw = stored.encode()
        if value.get("bytes") == len(raw) and value.get("sha256") == hashlib.sha256(raw).hexdigest():
            return stored
    return value


def agrees_with_database(events: list[dict[str, Any]], port: int, post_ids: list[int]) -> None:
    folded = fold(events)
    state = db_state(port, post_ids)
    assert set(state) == {(1, p) for p in post_ids}, "a post of the case is missing from the database"
    for key, want in state.items():
        got = folded.get(key)
        assert got is not None, f"no event for post {key}"
        row = {k: uncut(v, want["row"].get(k)) for k, v in (got["row"] or {}).items()}
        assert row == want["row"], f"post {key}: folded row differs from the database"
        assert {k: tuple(v) for k, v in got["meta"].items()} == want["meta"], f"post {key}: meta differs"
        assert got["terms"] == want["terms"], f"post {key}: terms differ"


# ----------------------------------------------------------------------------------- connector


def log_errors(c: Connector) -> list[str]:
    """Log records at error level or above, and anything that is not a JSON record (a traceback)."""
    bad = []
    for line in c.log().splitlines():
        if not line.strip():
            continue
        try:
            record = orjson.loads(line)
        except orjson.JSONDecodeError:
            bad.append(line)
            continue
        if str(record.get("level", "")).upper() in ("ERROR", "CRITICAL"):
            bad.append(line)
    return bad


def healthy(c: Connector) -> None:
    assert c.running, f"the connector stopped:\n{c.log()[-4000:]}"
    errors = log_errors(c)
    assert not errors, "the connector logged errors:\n" + "\n".join(errors[:20])


@pytest.fixture(scope="module")
def badinput(stack) -> Iterator[int]:  # type: ignore[no-untyped-def]
    """The isolated database, its tables cloned from the multisite's; yields the MySQL port."""
    conn = admin(stack.mysql, database=None)
    with conn, conn.cursor() as cur:
        cur.execute(f"DROP DATABASE IF EXISTS {DB}")
        cur.execute(f"CREATE DATABASE {DB} CHARACTER SET utf8mb4")
        for kind in KINDS:
            cur.execute(f"CREATE TABLE {DB}.{PREFIX}{kind} LIKE wordpress.wp_{kind}")
        # The least-privilege user (deploy/local/stack.py) reads it like any WordPress schema.
        cur.execute(f"GRANT SELECT ON {DB}.* TO '{local_stack.CDC_USER}'@'127.0.0.1'")
    yield stack.mysql
    conn = admin(stack.mysql, database=None)
    with conn, conn.cursor() as cur:
        cur.execute(f"DROP DATABASE IF EXISTS {DB}")


@pytest.fixture(scope="module")
def stream(badinput: int, cdc_env: dict[str, str]) -> Iterator[Connector]:
    """One connector on the isolated database for the value cases."""
    c = Connector(cdc_env, database=DB, prefix=PREFIX)
    c.start()
    yield c
    if c.running:
        c.kill()


def one_event(c: Connector, post_id: int, count: int = 1, timeout: float = 60.0) -> dict[str, Any]:
    return c.wait_events((1, post_id), count=count, timeout=timeout)[-1]


# ----------------------------------------------------------------------------------- the cases


PLUGIN_COLUMNS = {
    # column: (definition, value written (SQL), what the event says)
    "x_json": ("JSON", "'{\"a\": [1, 2.5, \"ü\"], \"b\": null}'", '{"a": [1, 2.5, "ü"], "b": null}'),
    "x_decimal": ("DECIMAL(12,4)", "-1234.5600", "-1234.5600"),
    "x_decimal0": ("DECIMAL(20,0) UNSIGNED", "18446744073709551615", "18446744073709551615"),
    "x_bit": ("BIT(10)", "b'1000000101'", 0b1000000101),
    "x_bit1": ("BIT(1)", "b'0'", 0),
    "x_enum": ("ENUM('draft','live','gone')", "'live'", "live"),
    "x_set": ("SET('a','b','c')", "'c,a'", "a,c"),
    "x_set_empty": ("SET('a','b','c')", "''", ""),
    "x_dt6": ("DATETIME(6)", "'2024-05-06 07:08:09.123456'", "2024-05-06T07:08:09.123456"),
    "x_time": ("TIME", "'-838:59:59'", -3020399.0),
    "x_time3": ("TIME(3)", "'12:34:56.789'", 45296.789),
    "x_year": ("YEAR", "2155", 2155),
    "x_year0": ("YEAR", "0", 0),
    "x_blob": ("BLOB", "X'00FF10'", {"$base64": "AP8Q"}),
    "x_geometry": ("GEOMETRY", "ST_GeomFromText('POINT(1 2)')",
                   {"$base64": base64.b64encode(bytes(4) + bytes.fromhex(
                       "0101000000000000000000F03F0000000000000040")).decode()}),
}
EXPECTED = {name: want for name, (_, _, want) in PLUGIN_COLUMNS.items()}


def test_columns_plugins_add(stream: Connector, badinput: int) -> None:
    port = badinput
    adds = ", ".join(f"ADD COLUMN {name} {definition} NULL" for name, (definition, _, _) in PLUGIN_COLUMNS.items())
    meta_adds = ", ".join(f"ADD COLUMN m{name} {definition} NULL"
                          for name, (definition, _, _) in PLUGIN_COLUMNS.items())
    run_sql(port, f"ALTER TABLE bi_posts {adds}", f"ALTER TABLE bi_postmeta {meta_adds}")
    try:
        values = {name: Raw(sql) for name, (_, sql, _) in PLUGIN_COLUMNS.items()}
        full = run_sql(port, insert_post(post_title="plugin columns", **values))
        empty = run_sql(port, insert_post(post_title="plugin columns, all NULL"))
        meta_cols = ", ".join(f"m{name}" for name in PLUGIN_COLUMNS)
        meta_vals = ", ".join(sql for _, sql, _ in PLUGIN_COLUMNS.values())
        run_sql(port, (f"INSERT INTO bi_postmeta (post_id, meta_key, meta_value, {meta_cols}) "
                       f"VALUES (%s, 'with plugin columns', 'v', {meta_vals})", (full,)),
                ("INSERT INTO bi_postmeta (post_id, meta_key, meta_value) VALUES (%s, 'nulls', NULL)", (empty,)))
        first = one_event(stream, full)
        assert {k: first["after"][k] for k in PLUGIN_COLUMNS} == EXPECTED
        assert [(m["key"], m["after"], m["op"]) for m in first["meta"]] == [("with plugin columns", "v", "add")]
        nulls = one_event(stream, empty)
        assert all(nulls["after"][name] is None for name in PLUGIN_COLUMNS)
        assert [(m["key"], m["after"], m["op"]) for m in nulls["meta"]] == [("nulls", None, "add")]

        # An update: every value through the before and the after image, some to NULL, some back.
        run_sql(port, "UPDATE bi_posts SET x_decimal = 0.0001, x_bit = b'0', x_set = 'b', x_enum = NULL, "
                      "x_time = '00:00:00', x_year = 1901, x_json = '[]', x_blob = '', "
                      f"x_geometry = NULL WHERE ID = {full}",
                f"UPDATE bi_posts SET x_decimal = -0.5, x_set = 'a,b,c', x_bit1 = b'1' WHERE ID = {empty}")
        update = one_event(stream, full, count=2)
        assert update["before"]["x_decimal"] == "-1234.5600" and update["after"]["x_decimal"] == "0.0001"
        assert (update["after"]["x_bit"], update["after"]["x_set"], update["after"]["x_enum"]) == (0, "b", None)
        assert (update["after"]["x_time"], update["after"]["x_year"], update["after"]["x_json"]) == (0.0, 1901, "[]")
        assert update["after"]["x_blob"] == {"$base64": ""} and update["after"]["x_geometry"] is None
        assert set(update["changed_fields"]) == {"x_decimal", "x_bit", "x_set", "x_enum", "x_time", "x_year",
                                                 "x_json", "x_blob", "x_geometry"}
        other = one_event(stream, empty, count=2)
        assert (other["after"]["x_decimal"], other["after"]["x_set"], other["after"]["x_bit1"]) == ("-0.5000", "a,b,c", 1)

        # A post the connector never saw (written outside the binlog) gets a meta change: its row
        # is read from the database, and must look exactly as the binlog would have shown it.
        unseen = run_sql(port, insert_post(post_title="read back", **values), binlog=False)
        run_sql(port, ("INSERT INTO bi_postmeta (post_id, meta_key, meta_value) VALUES (%s, 'k', 'v')", (unseen,)))
        looked_up = one_event(stream, unseen)
        assert looked_up["changed_fields"] == [] and looked_up["meta"][0]["key"] == "k"
        assert {k: looked_up["after"][k] for k in PLUGIN_COLUMNS} == EXPECTED

        agrees_with_database(stream.events(), port, [full, empty, unseen])
        healthy(stream)
    finally:
        drops = ", ".join(f"DROP COLUMN {name}" for name in PLUGIN_COLUMNS)
        meta_drops = ", ".join(f"DROP COLUMN m{name}" for name in PLUGIN_COLUMNS)
        run_sql(port, f"ALTER TABLE bi_posts {drops}", f"ALTER TABLE bi_postmeta {meta_drops}")


PERMISSIVE = "ALLOW_INVALID_DATES"  # no NO_ZERO_DATE / NO_ZERO_IN_DATE / strict: what old sites ran with
ODD_DATES = {
    # column: (value written, what the event says)
    "post_date": ("0000-00-00 00:00:00", None),
    "post_date_gmt": ("2024-02-30 10:11:12", "2024-02-30T10:11:12"),
    "post_modified": ("9999-12-31 23:59:59", "9999-12-31T23:59:59"),
    "post_modified_gmt": ("1000-01-01 00:00:00", "1000-01-01T00:00:00"),
}
ODDER_DATES = {
    "post_date": ("2024-00-00 00:00:00", "2024-00-00T00:00:00"),
    "post_date_gmt": ("0000-01-01 00:00:00", "0000-01-01T00:00:00"),
    "post_modified": ("2023-04-31 23:59:59", "2023-04-31T23:59:59"),
    "post_modified_gmt": ("0000-00-00 00:00:00", None),
}
FRACTIONAL_DATES = {
    # plugin columns: DATETIME(6) and DATE, which the library decodes (not the fast path)
    "x_dt6_zero": ("DATETIME(6)", "0000-00-00 00:00:00.000000", None),
    "x_dt6_invalid": ("DATETIME(6)", "2024-02-30 10:11:12.5", "2024-02-30T10:11:12.500000"),
    "x_dt6_max": ("DATETIME(6)", "9999-12-31 23:59:59.999999", "9999-12-31T23:59:59.999999"),
    "x_dt6_min": ("DATETIME(6)", "1000-01-01 00:00:00.000001", "1000-01-01T00:00:00.000001"),
    "x_dt6_year0": ("DATETIME(6)", "0000-01-01 00:00:00", "0000-01-01T00:00:00"),
    "x_date_zero": ("DATE", "0000-00-00", None),
    "x_date_invalid": ("DATE", "2024-02-30", "2024-02-30"),
    "x_date_zero_day": ("DATE", "2024-02-00", "2024-02-00"),
    "x_date_max": ("DATE", "9999-12-31", "9999-12-31"),
}


def test_zero_and_odd_dates(stream: Connector, badinput: int) -> None:
    port = badinput
    # WordPress's own DATETIME columns (the fast path decodes these).
    a = run_sql(port, insert_post(post_title="odd dates", **{k: v for k, (v, _) in ODD_DATES.items()}),
                sql_mode=PERMISSIVE)
    b = run_sql(port, insert_post(post_title="odder dates", **{k: v for k, (v, _) in ODDER_DATES.items()}),
                sql_mode=PERMISSIVE)
    for pid, expected in ((a, ODD_DATES), (b, ODDER_DATES)):
        event = one_event(stream, pid)
        assert {k: event["after"][k] for k in expected} == {k: want for k, (_, want) in expected.items()}
    # The same dates read back from the database (a meta-only change of a post never seen).
    c = run_sql(port, insert_post(post_title="odd dates, read back", **{k: v for k, (v, _) in ODDER_DATES.items()}),
                sql_mode=PERMISSIVE, binlog=False)
    run_sql(port, ("INSERT INTO bi_postmeta (post_id, meta_key, meta_value) VALUES (%s, 'k', 'v')", (c,)))
    event = one_event(stream, c)
    assert {k: event["after"][k] for k in ODDER_DATES} == {k: want for k, (_, want) in ODDER_DATES.items()}
    agrees_with_database(stream.events(), port, [a, b, c])  # before the ALTER: rows of this layout

    adds = ", ".join(f"ADD COLUMN {name} {definition} NULL" for name, (definition, _, _) in FRACTIONAL_DATES.items())
    run_sql(port, f"ALTER TABLE bi_posts {adds}")
    try:
        values = {name: value for name, (_, value, _) in FRACTIONAL_DATES.items()}
        d = run_sql(port, insert_post(post_title="fractional dates", **values), sql_mode=PERMISSIVE)
        event = one_event(stream, d)
        assert {k: event["after"][k] for k in FRACTIONAL_DATES} == {
            k: want for k, (_, _, want) in FRACTIONAL_DATES.items()}
        run_sql(port, f"UPDATE bi_posts SET x_dt6_invalid = '2024-02-29 00:00:00', x_date_zero = '2024-02-31' "
                      f"WHERE ID = {d}", sql_mode=PERMISSIVE)
        event = one_event(stream, d, count=2)
        assert event["before"]["x_dt6_invalid"] == "2024-02-30T10:11:12.500000"
        assert (event["after"]["x_dt6_invalid"], event["after"]["x_date_zero"]) == ("2024-02-29T00:00:00", "2024-02-31")
        e = run_sql(port, insert_post(post_title="fractional, read back", **values), sql_mode=PERMISSIVE, binlog=False)
        run_sql(port, ("INSERT INTO bi_postmeta (post_id, meta_key, meta_value) VALUES (%s, 'k', 'v')", (e,)))
        event = one_event(stream, e)
        assert {k: event["after"][k] for k in FRACTIONAL_DATES} == {
            k: want for k, (_, _, want) in FRACTIONAL_DATES.items()}
        agrees_with_database(stream.events(), port, [d, e])
        healthy(stream)
    finally:
        run_sql(port, "ALTER TABLE bi_posts " + ", ".join(f"DROP COLUMN {name}" for name in FRACTIONAL_DATES))


def test_legacy_charsets_and_four_byte_characters(stream: Connector, badinput: int) -> None:
    """Tables converted to latin1 / utf8mb3, as sites from before utf8mb4 are. MariaDB's latin1
    gives every byte a character (0x81 too, which Python's cp1252 refuses); text is written as raw
    bytes (a binary string, as a client with SET NAMES binary writes it). MariaDB checks what goes
    into a utf8mb3/utf8mb4 column whatever the client's charset (invalid sequences become '?'), so
    invalid UTF-8 reaches the binlog only from BLOB columns (tests/integration/test_faults.py) and
    older servers; the lossless decoding of it is tests/unit/test_encode.py's and test_decoding.py's."""
    port = badinput
    run_sql(port, "ALTER TABLE bi_postmeta CONVERT TO CHARACTER SET latin1",
            "ALTER TABLE bi_posts CONVERT TO CHARACTER SET utf8mb3",
            "ALTER TABLE bi_posts ADD COLUMN x_latin1 TEXT CHARACTER SET latin1 NULL, "
            "ADD COLUMN x_utf16 TEXT CHARACTER SET utf16 NULL")
    latin1 = {  # bytes written: what the event says
        b"caf\xe9": "café",
        b"\x80 \x81\x8d\x8f\x90\x9d \x9f\xff": "€ \x81\x8d\x8f\x90\x9d Ÿÿ",
        b"\xc3\xa9t\xc3\xa9": "Ã©tÃ©",  # UTF-8 stored in a latin1 table: the mojibake MariaDB shows too
        b"": "",
    }
    try:
        mb3_title = "€ ☃ 中文 — ß"
        # sql_mode '' as legacy sites run: strict mode refuses the five bytes cp1252 leaves undefined.
        pid = run_sql(port, insert_post(post_title=mb3_title, x_latin1=b"\x81 \xe9", x_utf16="Ünï € ☃ 😀"),
                      sql_mode="")
        for raw in latin1:
            run_sql(port, ("INSERT INTO bi_postmeta (post_id, meta_key, meta_value) VALUES (%s, %s, %s)",
                           (pid, b"k\xe9y", raw)), sql_mode="")
        event = one_event(stream, pid)
        assert (event["after"]["post_title"], event["after"]["x_latin1"], event["after"]["x_utf16"]) == (
            mb3_title, "\x81 é", "Ünï € ☃ 😀")
        assert [(m["key"], m["after"]) for m in event["meta"]] == [("kéy", want) for want in latin1.values()]
        unseen = run_sql(port, insert_post(post_title=mb3_title, x_latin1=b"\x81 \xe9", x_utf16="😀"),
                         sql_mode="", binlog=False)
        run_sql(port, ("INSERT INTO bi_postmeta (post_id, meta_key, meta_value) VALUES (%s, 'k', %s)",
                       (unseen, b"\x9d")), sql_mode="")
        event = one_event(stream, unseen)
        assert (event["after"]["x_latin1"], event["after"]["x_utf16"], event["meta"][0]["after"]) == (
            "\x81 é", "😀", "\x9d")
        agrees_with_database(stream.events(), port, [pid, unseen])
        healthy(stream)
    finally:
        run_sql(port, "ALTER TABLE bi_postmeta CONVERT TO CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_520_ci",
                "ALTER TABLE bi_posts DROP COLUMN x_latin1, DROP COLUMN x_utf16, "
                "CONVERT TO CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_520_ci")

    emoji = "😀 𝔘 🦄 👩‍👩‍👧 \U0010ffff"
    pid = run_sql(port, insert_post(post_title=emoji, post_content=emoji * 100))
    run_sql(port, ("INSERT INTO bi_postmeta (post_id, meta_key, meta_value) VALUES (%s, %s, %s)", (pid, "🔑", emoji)))
    event = one_event(stream, pid)
    assert event["after"]["post_title"] == emoji and event["after"]["post_content"] == emoji * 100
    assert [(m["key"], m["after"]) for m in event["meta"]] == [("🔑", emoji)]
    agrees_with_database(stream.events(), port, [pid])
    healthy(stream)


def test_huge_and_tiny_values(stream: Connector, badinput: int) -> None:
    port = badinput
    huge = "<p>" + "x" * (16 << 20) + "</p>"  # 16 MB, under the default --max-message-bytes 900,000
    pid = run_sql(port, insert_post(post_title="huge", post_content=huge))
    event = one_event(stream, pid, timeout=90)
    assert event["after"]["post_content"]["$truncated"] is True
    assert event["after"]["post_content"]["bytes"] == len(huge)
    assert "after.post_content" in event["truncated"]
    run_sql(port, f"UPDATE bi_posts SET post_title = 'huge, retitled' WHERE ID = {pid}")
    event = one_event(stream, pid, count=2, timeout=90)
    assert event["after"]["post_title"] == "huge, retitled" and event["changed_fields"] == ["post_title"]
    assert {"before.post_content", "after.post_content"} <= set(event["truncated"])
    agrees_with_database(stream.events(), port, [pid])

    tiny = {"post_author": 0, "post_content": "", "post_title": "", "post_excerpt": "", "post_status": "",
            "post_name": "", "post_type": "", "post_mime_type": "", "guid": "", "menu_order": -2147483648,
            "comment_count": -9223372036854775808, "post_parent": 18446744073709551615}
    small = run_sql(port, insert_post(**tiny))
    run_sql(port, ("INSERT INTO bi_postmeta (post_id, meta_key, meta_value) VALUES (%s, '', ''), (%s, '0', '0'), "
                   "(%s, ' ', '-1')", (small, small, small)))
    event = one_event(stream, small)
    assert {k: event["after"][k] for k in tiny} == tiny
    assert [(m["key"], m["after"]) for m in event["meta"]] == [("", ""), ("0", "0"), (" ", "-1")]
    run_sql(port, f"UPDATE bi_posts SET post_content = 'small now', menu_order = 0 WHERE ID = {pid}")
    event = one_event(stream, pid, count=3, timeout=90)
    assert event["after"]["post_content"] == "small now" and event["before"]["post_content"]["$truncated"] is True
    agrees_with_database(stream.events(), port, [pid, small])
    healthy(stream)


def test_null_meta_key_and_value(stream: Connector, badinput: int) -> None:
    port = badinput
    pid = run_sql(port, insert_post(post_title="null meta"))
    one_event(stream, pid)
    conn = admin(port)
    with conn, conn.cursor() as cur:
        cur.execute("INSERT INTO bi_postmeta (post_id, meta_key, meta_value) VALUES (%s, NULL, NULL)", (pid,))
        both = cur.lastrowid
        cur.execute("INSERT INTO bi_postmeta (post_id, meta_key, meta_value) VALUES (%s, 'k', NULL)", (pid,))
        value = cur.lastrowid
        cur.execute("INSERT INTO bi_postmeta (post_id, meta_key, meta_value) VALUES (%s, NULL, 'v')", (pid,))
        key = cur.lastrowid
    event = one_event(stream, pid, count=2)
    assert [(m["meta_id"], m["key"], m["op"], m["before"], m["after"]) for m in event["meta"]] == [
        (both, None, "add", None, None), (value, "k", "add", None, None), (key, None, "add", None, "v")]
    run_sql(port, f"UPDATE bi_postmeta SET meta_value = 'now set' WHERE meta_id = {value}",
            f"UPDATE bi_postmeta SET meta_value = NULL WHERE meta_id = {key}",
            f"DELETE FROM bi_postmeta WHERE meta_id = {both}")
    event = one_event(stream, pid, count=3)
    assert sorted((m["meta_id"], m["key"], m["op"], m["before"], m["after"]) for m in event["meta"]) == sorted([
        (both, None, "delete", None, None), (value, "k", "update", None, "now set"), (key, None, "update", "v", None)])
    agrees_with_database(stream.events(), port, [pid])
    healthy(stream)


def test_20000_meta_rows_on_one_post(connectors, badinput: int) -> None:  # type: ignore[no-untyped-def]
    port = badinput
    stream: Connector = connectors(database=DB, prefix=PREFIX)  # its own: a crash here stops no other case
    stream.start()
    pid = run_sql(port, insert_post(post_title="many meta"))
    one_event(stream, pid)
    run_sql(port, ("INSERT INTO bi_postmeta (post_id, meta_key, meta_value) "
                   "SELECT %s, CONCAT('key_', seq), CONCAT('value ', seq) FROM seq_1_to_20000", (pid,)))
    event = one_event(stream, pid, count=2, timeout=90)
    # One event, cut to fit --max-message-bytes by the size policy, and saying so.
    # docs/events.md, "Size policy": the meta list gives way to a marker with its count and digest.
    assert "meta" in event["truncated"] and event["meta"] == [], event["truncated"]
    assert event["omitted"]["meta"]["count"] == 20_000
    assert len(orjson.dumps(event)) <= 900_000
    healthy(stream)
    run_sql(port, f"UPDATE bi_posts SET post_title = 'many meta, then an edit' WHERE ID = {pid}")
    event = one_event(stream, pid, count=3)
    assert event["after"]["post_title"] == "many meta, then an edit" and event["meta"] == []
    healthy(stream)


# ------------------------------------------------------------------------- 100,000 posts, one term


async def _count(bootstrap: str, topic: str, start: int) -> tuple[list[Message], int]:
    """Records of a one-partition topic from offset ``start`` to its end, and the end offset."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, isolation_level="read_committed",
                                enable_auto_commit=False, max_partition_fetch_bytes=16 << 20)
    await consumer.start()
    try:
        tp = TopicPartition(topic, 0)
        consumer.assign([tp])
        consumer.seek(tp, start)
        end = (await consumer.end_offsets([tp]))[tp]
        out: list[Message] = []
        while await consumer.position(tp) < end:
            batch = await consumer.getmany(tp, timeout_ms=1000)
            for m in batch.get(tp, []):
                if m.offset < end:  # a fetch may run past the end read above: the next poll reads those
                    out.append(Message(m.key.decode(), orjson.loads(m.value) if m.value is not None else None,
                                       m.offset))
        return out, end
    finally:
        await consumer.stop()


class Tail:
    """Reads a topic as it grows, each record once (a 100,000-event topic is not re-read per poll)."""

    def __init__(self, c: Connector) -> None:
        self.c = c
        self.offset = 0
        self.events: list[dict[str, Any]] = []

    def poll(self) -> list[dict[str, Any]]:
        messages, end = asyncio.run(_count(self.c.bootstrap, self.c.topic, self.offset))
        self.events.extend(m.value for m in messages if m.value is not None)
        self.offset = max(self.offset, end)
        return self.events


def peak_rss_mb(c: Connector) -> float:
    """The kernel's high-water mark of the connector's resident memory (VmHWM), in MB."""
    assert c.proc is not None
    for line in Path(f"/proc/{c.proc.pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmHWM in /proc status")


def test_term_on_100000_posts_renamed_and_deleted(connectors, badinput: int) -> None:  # type: ignore[no-untyped-def]
    """An editor renames, then deletes a tag that 100,000 posts carry (set-based SQL, as WordPress's
    wp_delete_term ends up doing): the stream goes on, memory stays within the documented bound,
    and every post gets exactly one event saying the term was removed, under its new name."""
    port = badinput
    ids = range(BULK_BASE + 1, BULK_BASE + BULK_POSTS + 1)
    started = time.monotonic()
    run_sql(port,
            f"INSERT INTO bi_terms (term_id, name, slug) VALUES ({BULK_TERM}, 'Everywhere', 'everywhere')",
            f"INSERT INTO bi_term_taxonomy (term_taxonomy_id, term_id, taxonomy, description, count) "
            f"VALUES ({BULK_TERM}, {BULK_TERM}, 'post_tag', '', {BULK_POSTS})",
            f"INSERT INTO bi_posts (ID, post_author, post_date, post_date_gmt, post_content, post_title, post_excerpt, "
            f"post_status, post_name, to_ping, pinged, post_modified, post_modified_gmt, post_content_filtered, guid, "
            f"post_type) SELECT {BULK_BASE} + seq, 1, '2024-05-01 10:00:00', '2024-05-01 08:00:00', "
            f"CONCAT('body ', seq), CONCAT('bulk ', seq), '', 'publish', CONCAT('bulk-', seq), '', '', "
            f"'2024-05-01 10:00:00', '2024-05-01 08:00:00', '', CONCAT('http://example.test/?p=', seq), 'post' "
            f"FROM seq_1_to_{BULK_POSTS}",
            f"INSERT INTO bi_term_relationships (object_id, term_taxonomy_id) "
            f"SELECT {BULK_BASE} + seq, {BULK_TERM} FROM seq_1_to_{BULK_POSTS}")
    setup_s = time.monotonic() - started

    # A connector that starts after the posts exist: none of them is in its row cache.
    c: Connector = connectors(database=DB, prefix=PREFIX, extra=["--max-pending-mb", str(MAX_PENDING_MB)])
    c.start()
    tail = Tail(c)
    run_sql(port, f"UPDATE bi_terms SET name = 'Renamed everywhere', slug = 'renamed-everywhere' "
                  f"WHERE term_id = {BULK_TERM}")
    run_sql(port, f"DELETE FROM bi_term_relationships WHERE term_taxonomy_id = {BULK_TERM}",
            f"DELETE FROM bi_term_taxonomy WHERE term_taxonomy_id = {BULK_TERM}",
            f"DELETE FROM bi_terms WHERE term_id = {BULK_TERM}")
    later = run_sql(port, insert_post(post_title="written after the term went"))
    wait_until(lambda: any(e["post_id"] == later for e in tail.poll()), 120, 1.0,
               "the event of a post written after the term was deleted")
    time.sleep(c.window + 1.0)
    events = tail.poll()
    peak = peak_rss_mb(c)
    healthy(c)

    bulk = [e for e in events if BULK_BASE < e["post_id"] <= BULK_BASE + BULK_POSTS]
    assert len(bulk) == BULK_POSTS, f"{len(bulk)} events for {BULK_POSTS} posts"
    assert {e["post_id"] for e in bulk} == set(ids), "a post without its event, or one with two"
    removed = {"term_taxonomy_id": BULK_TERM, "taxonomy": "post_tag", "term_id": BULK_TERM,
               "slug": "renamed-everywhere", "name": "Renamed everywhere"}
    for e in bulk:
        assert (e["op"], e["changed_fields"], e["meta"]) == ("update", [], [])
        assert e["terms"] == {"added": [], "removed": [removed]}, e["terms"]
    assert peak < RSS_BOUND_MB, f"peak RSS {peak:.0f} MB over the bound {RSS_BOUND_MB} MB"
    agrees_with_database(events, port, [*ids, later])
    print(f"setup {setup_s:.1f}s, peak RSS {peak:.0f} MB (bound {RSS_BOUND_MB} MB)")
