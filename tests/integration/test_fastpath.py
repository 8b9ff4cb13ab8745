"""The binlog fast path (cdc/source/fastpath.py) decodes exactly what mysql-replication decodes.

Rows with the awkward values of real WordPress databases go through the real server's binlog:
NULLs, zero dates, NUL bytes and 4-byte characters in text, the largest unsigned ids, negative
ints, empty strings, long text (invalid UTF-8 cannot be stored in utf8mb4 columns in strict
mode; tests/unit/test_encode.py covers it). The same range is read twice, with the fast path and
with the library's generic decoder, and every row must be equal, value and Python type. A table
with a column type the fast path leaves alone (DECIMAL) must still arrive, through the library.
"""

from __future__ import annotations

import queue

import pytest

from cdc.config import MysqlSettings
from cdc.model import Commit, RowsBatch
from cdc.position import Position
from cdc.source.binlog import BinlogSource, SourceFailed
from cdc.wordpress import TableNames
from tests.integration.harness import admin_connection, binlog_end

pytestmark = pytest.mark.integration

DB = "wpcdc_fastpath_test"


def _read(port: int, start: Position, end: Position, fastpath: bool, server_id: int) -> list[RowsBatch]:
    settings = MysqlSettings(host="127.0.0.1", port=port, user="wpcdc", password="wpcdc-pw", database=DB)
    source = BinlogSource(settings, TableNames("wp_"), server_id=server_id, start=start, gtid=None)
    source.fastpath = fastpath
    source.start()
    out: list[RowsBatch] = []
    try:
        while True:
            try:
                chunk = source.queue.get(timeout=30)
            except queue.Empty:
                pytest.fail("the binlog source went quiet before the end of the range")
            for item in chunk:
                if isinstance(item, SourceFailed):
                    raise item.error
                if isinstance(item, RowsBatch):
                    out.append(item)
                if isinstance(item, Commit) and not item.end < end:
                    return out
    finally:
        source.stop()


def test_fastpath_decodes_what_the_library_decodes(stack) -> None:  # type: ignore[no-untyped-def]
    port = stack.mysql
    conn = admin_connection(port)
    with conn.cursor() as cur:
        cur.execute(f"DROP DATABASE IF EXISTS {DB}")
        cur.execute(f"CREATE DATABASE {DB} CHARACTER SET utf8mb4")
        for table in ("wp_posts", "wp_postmeta", "wp_term_relationships"):
            cur.execute(f"CREATE TABLE {DB}.{table} LIKE wordpress.{table}")
        # A WordPress table name with a layout the fast path does not take (DECIMAL).
        cur.execute(f"CREATE TABLE {DB}.wp_terms (term_id BIGINT UNSIGNED PRIMARY KEY, name VARCHAR(200), "
                    "slug VARCHAR(200), term_group DECIMAL(10,2))")
    start = binlog_end(conn)
    db = admin_connection(port, DB)
    with db.cursor() as cur:
        long_text = "ünïcödé 🎉 " * 5000
        cur.execute(
            "INSERT INTO wp_posts (ID, post_author, post_date, post_date_gmt, post_content, post_title, post_excerpt, "
            "post_status, post_name, to_ping, pinged, post_modified, post_modified_gmt, post_content_filtered, "
            "post_parent, guid, menu_order, post_type, post_mime_type, comment_count) VALUES "
            "(18446744073709551615, 1, '2024-02-29 23:59:59', '0000-00-00 00:00:00', %s, '', 'x', 'draft', 'n', "
            "'', '', '2024-01-01 00:00:00', '2024-01-01 00:00:00', '', 0, '', -2147483648, 'post', '', -5),"
            "(2, 0, '1000-01-01 00:00:00', '9999-12-31 23:59:59', '', '🎉 emoji title', '', 'publish', '', '', '', "
            "'2024-01-01 00:00:00', '2024-01-01 00:00:00', '', 18446744073709551615, 'g', 7, 'page', 'text/x', 0)",
            (long_text,),
        )
        cur.execute("INSERT INTO wp_postmeta (meta_id, post_id, meta_key, meta_value) VALUES "
                    "(1, 2, NULL, NULL), (2, 2, '', ''), (3, 2, 'k', %s), (4, 2, 'bytes', %s)",
                    ("a:1:{i:0;s:3:\"abc\";}", "nul \x00, tab \t, 4-byte 𝄞🎉, 2-byte ß"))
        cur.execute("UPDATE wp_postmeta SET meta_value = CONCAT(COALESCE(meta_value, 'was null'), '!')")
        cur.execute("UPDATE wp_posts SET post_title = 'edited', post_date_gmt = '2024-03-01 10:00:00' WHERE ID = 2")
        cur.execute("INSERT INTO wp_term_relationships (object_id, term_taxonomy_id, term_order) VALUES (2, 7, -1)")
        cur.execute("INSERT INTO wp_terms VALUES (5, 'Name', 'slug', 12.50)")
        cur.execute("DELETE FROM wp_postmeta WHERE meta_id IN (1, 4)")
        cur.execute("DELETE FROM wp_posts WHERE ID = 18446744073709551615")
    end = binlog_end(conn)
    try:
        fast = _read(port, start, end, True, 3_900_001)
        slow = _read(port, start, end, False, 3_900_002)
        assert sum(len(b.changes) for b in slow) == 2 + 4 + 4 + 1 + 1 + 1 + 2 + 1
        assert len(fast) == len(slow)
        for a, b in zip(fast, slow):
            assert len(a.changes) == len(b.changes)
            for x, y in zip(a.changes, b.changes):
                assert (x.table, x.op, x.position, x.txn, x.ts) == (y.table, y.op, y.position, y.txn, y.ts)
                for side in ("before", "after"):
                    u, v = getattr(x, side), getattr(y, side)
                    assert u == v
                    if u is not None:
                        assert {k: type(val) for k, val in u.items()} == {k: type(val) for k, val in v.items()}
        posts = [c for b in fast for c in b.changes if c.table.kind.value == "posts"]
        assert posts[0].after["post_date_gmt"] is None  # a zero date, as the library says
        assert posts[0].after["ID"] == 18446744073709551615
        meta = {c.after["meta_id"]: c.after for b in fast for c in b.changes
                if c.table.kind.value == "postmeta" and c.op == "insert"}
        assert meta[1]["meta_key"] is None and meta[1]["meta_value"] is None
        assert meta[4]["meta_value"] == "nul \x00, tab \t, 4-byte 𝄞🎉, 2-byte ß"
        terms = [c for b in fast for c in b.changes if c.table.kind.value == "terms"]
        assert len(terms) == 1 and str(terms[0].after["term_group"]) == "12.50"  # through the library
    finally:
        with conn.cursor() as cur:
            cur.execute(f"DROP DATABASE IF EXISTS {DB}")
        conn.close()
        db.close()
