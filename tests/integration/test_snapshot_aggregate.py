"""The aggregated snapshot read (the server folds each post's meta and terms into JSON,
cdc/source/snapshot.py) gives exactly the documents, and so the events, of the row-by-row read.

A site with the awkward meta of real WordPress databases, on the real MariaDB: NULL keys and
values, empty strings, NUL bytes and every ASCII control character, quotes and backslashes, text
that looks like JSON, 4-byte characters and U+2028, a value of 2 MB (over MariaDB's default
``group_concat_max_len`` of 1 MB), 600 meta rows on one post, posts without meta or terms. A
second blog keeps its meta in a LONGBLOB column holding invalid UTF-8 (a plugin's binary data),
a third in latin1: neither can go through JSON unchanged, so those are read row by row. Post rows
come as one JSON object each (their text is the tricky values too, dates include the zero date);
a fourth blog's posts table has a plugin's DECIMAL and TIMESTAMP columns, so its rows are parsed
by PyMySQL (its meta still aggregated). With the
aggregate limit made small, posts with large meta fall back row by row one by one (counted) and
still give the same documents. Each chunk is read twice, with and without aggregation, and every
document must be equal, value and Python type, and so must the encoded snapshot events.
"""

from __future__ import annotations

from typing import Any

import pymysql
import pytest

from cdc.assemble import Assembler
from cdc.config import MysqlSettings, SnapshotSettings
from cdc.encode import encode
from cdc.events import Origin, build
from cdc.position import Position
from cdc.source.snapshot import SnapshotChunk, SnapshotReader
from cdc.terms import TermCatalog
from cdc.wordpress import Capture, TableNames

pytestmark = pytest.mark.integration

DB = "wpcdc_snapshot_aggregate_test"
CONTROL = "".join(chr(c) for c in range(32)) + "\x7f"
TRICKY = [
    None, "", "0", " ", "\x00", "a\x00b", CONTROL, 'quote " and \\ backslash \\" \\\\u0041', "/slash/ <\\/script>",
    '{"json": [1, 2.50, "x"]}', "[1,2]", "null", "true", "1e400", "-0", "😀 🎉 emoji", "é ü ß 中文 ﷽",
    "\u2028\u2029 line separators", "\ufeffBOM", "a:2:{i:0;s:1:\"x\";i:1;N;}", "tab\tnew\nline\rcr",
    "\U0010ffff last code point", "0000-00-00", "0000-00-00 00:00:00", "x" * 70_000,
]


def _admin(port: int, db: str | None = None) -> pymysql.connections.Connection:
    return pymysql.connect(host="127.0.0.1", port=port, user="admin", password="admin-pw", database=db,
                           charset="utf8mb4", autocommit=True)


def _site(port: int) -> None:
    conn = _admin(port)
    with conn.cursor() as cur:
        cur.execute(f"DROP DATABASE IF EXISTS {DB}")
        cur.execute(f"CREATE DATABASE {DB} CHARACTER SET utf8mb4")
        for prefix in ("wp_", "wp_2_", "wp_3_", "wp_4_"):
            for table in ("posts", "postmeta", "term_relationships"):
                cur.execute(f"CREATE TABLE {DB}.{prefix}{table} LIKE wordpress.wp_{table}")
        cur.execute(f"ALTER TABLE {DB}.wp_2_postmeta MODIFY meta_value LONGBLOB")
        cur.execute(f"ALTER TABLE {DB}.wp_3_postmeta MODIFY meta_key VARCHAR(255) CHARACTER SET latin1, "
                    "MODIFY meta_value LONGTEXT CHARACTER SET latin1")
        cur.execute(f"ALTER TABLE {DB}.wp_4_posts ADD COLUMN x_price DECIMAL(10,2) DEFAULT 1.50, "
                    "ADD COLUMN x_when TIMESTAMP NULL DEFAULT '2024-01-02 03:04:05'")
    conn.close()
    db = _admin(port, DB)
    meta_id = 0
    with db.cursor() as cur:
        for prefix in ("wp_", "wp_2_", "wp_3_", "wp_4_"):
            for pid in range(1, 41):
                cur.execute(
                    f"INSERT INTO {prefix}posts (ID, post_author, post_date, post_date_gmt, post_content, post_title, "
                    "post_excerpt, post_status, comment_status, ping_status, post_password, post_name, to_ping, pinged, "
                    "post_modified, post_modified_gmt, post_content_filtered, post_parent, guid, menu_order, post_type, "
                    "post_mime_type, comment_count) VALUES (%s, 1, '2024-02-29 10:11:12', '0000-00-00 00:00:00', "
                    "%s, %s, '', 'publish', 'open', 'open', '', %s, '', '', '2024-02-29 10:11:12', "
                    "'2024-02-29 10:11:12', '', 0, '', 0, 'post', '', 0)",
                    (pid, TRICKY[pid % len(TRICKY)] or "", f"title {pid} {TRICKY[(pid + 3) % len(TRICKY)] or ''}"[:2000],
                     f"post-{pid}"))
                if pid % 5 == 0:
                    continue  # no meta, no terms
                values: list[Any] = list(TRICKY) if pid % 7 == 1 else [f"v{pid}-{k}" for k in range(3)]
                if pid == 2:
                    values = [f"many {k}" for k in range(600)]
                if pid == 3:
                    values = ["ü" * (2 << 20)]  # 2 MB of 2-byte characters: over the default 1 MB
                if prefix == "wp_3_":
                    values = [v for v in values if v is None or all(ord(c) < 256 for c in v)]
                rows = []
                for k, v in enumerate(values):
                    meta_id += 1
                    key = None if k == 1 and pid % 7 == 1 else ("_key é" if prefix != "wp_2_" else f"key{k}")
                    rows.append((meta_id, pid, key, v))
                if prefix == "wp_2_" and pid % 7 == 1:
                    meta_id += 1
                    rows.append((meta_id, pid, "binary", b"\xff\xfe\x00 not UTF-8 \xc3\x28 \xed\xa0\x80"))
                # Inserted in an order that is not meta_id's: both reads order by meta_id.
                cur.executemany(f"INSERT INTO {prefix}postmeta (meta_id, post_id, meta_key, meta_value) "
                                "VALUES (%s,%s,%s,%s)", list(reversed(rows)))
                cur.executemany(f"INSERT INTO {prefix}term_relationships (object_id, term_taxonomy_id, term_order) "
                                "VALUES (%s,%s,0)", [(pid, t) for t in (9, 3, 27) if pid % 3 or t != 27])
    db.close()


def _chunks(reader: SnapshotReader, blog: int) -> list[SnapshotChunk]:
    out, cursor = [], 0
    while True:
        chunk = reader.read_chunk(blog, cursor)
        out.append(chunk)
        if chunk.exhausted:
            return out
        cursor = chunk.last_id


def _typed(value: Any) -> Any:
    """Values with their Python types, so that 1 == 1.0 or b"x" vs "x" cannot pass for equal."""
    if isinstance(value, dict):
        return {k: _typed(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_typed(v) for v in value]
    return (type(value).__name__, value)


def _events(chunks: list[SnapshotChunk], positions: list[Position]) -> list[bytes]:
    """The encoded snapshot events of the chunks' documents, each chunk at the given position
    (the two reads ran at different moments of a binlog other sessions write: their own
    positions differ, and are not what is compared)."""
    asm = Assembler(Capture(), TermCatalog(), window=0.5, max_delay=30)
    origin = Origin("test", DB, 1)
    out = []
    for chunk, position in zip(chunks, positions, strict=True):
        for doc in chunk.docs:
            change = asm.on_snapshot(doc, position, 1_700_000_000)
            assert change is not None
            event = build(change, Capture(), origin, 1_700_000_000_000)
            assert event is not None
            out += [r.value or b"" for r in encode(event)]
    return out


@pytest.mark.parametrize("limit", [None, 50_000], ids=["default-limit", "small-limit"])
def test_aggregated_read_equals_the_row_by_row_read(stack, limit: int | None,  # type: ignore[no-untyped-def]
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    _site(stack.mysql)
    if limit is not None:
        monkeypatch.setattr(SnapshotReader, "aggregate_max_bytes", limit)
    settings = MysqlSettings(host="127.0.0.1", port=stack.mysql, user="wpcdc", password="wpcdc-pw", database=DB)
    tables = TableNames("wp_")
    snap = SnapshotSettings(chunk_size=7)
    fast = SnapshotReader(settings, tables, snap, aggregate=True)
    plain = SnapshotReader(settings, tables, snap, aggregate=False)
    try:
        for blog in (1, 2, 3, 4):
            got, want = _chunks(fast, blog), _chunks(plain, blog)
            assert [c.last_id for c in got] == [c.last_id for c in want]
            assert [c.rows_read for c in got] == [c.rows_read for c in want]
            docs = [d for c in got for d in c.docs]
            assert len(docs) == 40
            for a, b in zip(docs, [d for c in want for d in c.docs]):
                assert _typed(a.row) == _typed(b.row), f"blog {blog} post {a.post_id}: row"
                assert _typed(a.meta) == _typed(b.meta), f"blog {blog} post {a.post_id}: meta"
                assert _typed(a.term_taxonomy_ids) == _typed(b.term_taxonomy_ids), f"blog {blog} post {a.post_id}"
            positions = [c.position for c in want]
            assert _events(got, positions) == _events(want, positions), f"blog {blog}: the snapshot events differ"
            by_id = {d.post_id: d for d in docs}
            assert len(by_id[2].meta) == 600 and by_id[5].meta == () and by_id[5].term_taxonomy_ids == ()
            assert any(m["meta_value"] is None for m in by_id[1].meta) and any(m["meta_key"] is None for m in by_id[1].meta)
            if blog == 2:
                assert any(m["meta_value"] == b"\xff\xfe\x00 not UTF-8 \xc3\x28 \xed\xa0\x80" for m in by_id[1].meta)
        assert fast._aggregates == {1: True, 2: False, 3: False, 4: True}, "BLOB and latin1 meta: row by row"
        assert fast._row_json[1] is not None and fast._row_json[4] is None, "blog 4's DECIMAL: rows by PyMySQL"
        # Blog 1 only is aggregated: with the default limit every post fits (the 2 MB value too,
        # the session's group_concat_max_len is raised); with 50,000 bytes the posts holding the
        # 2 MB value or the tricky values (with 70,000 x's) fall back, and only those.
        big = {3} | {p for p in range(1, 41) if p % 7 == 1 and p % 5}
        assert fast.fallbacks == (0 if limit is None else 2 * len(big)), (fast.fallbacks, sorted(big))
        assert plain.fallbacks == 0
    finally:
        fast.close()
        plain.close()
        conn = _admin(stack.mysql)
        with conn.cursor() as cur:
            cur.execute(f"DROP DATABASE IF EXISTS {DB}")
        conn.close()
