"""Reading the small binlog events from the bytes (cdc/source/framing.py, library.Framing) changes
nothing the binlog source hands over.

A real binlog range is written on the shared MariaDB: WordPress's own saves through deploy/local's
PHP driver (inserts, REST and meta-box saves, trash and delete: GTID, ANNOTATE_ROWS, TABLE_MAP,
rows, XID, option and user-meta writes on the way), and beside them noise the connector must skip
or stop on: tables it does not capture in the same schema and in another one, a MyISAM table (its
transaction ends with a COMMIT query, not an XID), a DDL, a transaction mixing captured and
uncaptured tables, a WordPress table name with a layout the fast decoder leaves to the library
(DECIMAL), a multi-row statement, and a rotation to a new binlog file in the middle. The range is
read four times: with the framing (the default), without it (every event through
mysql-replication's objects, the rows still through the fast decoder), with the library's
generic decoder, and through the reader process (cdc/source/reader_process.py); every item the source hands over - rows with their values and Python types,
positions, transaction refs, GTIDs, commits, rotations, notes of settings writes - must be equal.
"""

from __future__ import annotations

import queue
from collections import Counter
from typing import Any

import pytest

from cdc.config import MysqlSettings
from cdc.model import Commit, Idle, RowsBatch
from cdc.position import Position
from cdc.source import library as library_module
from cdc.source.binlog import BinlogSource, SourceFailed
from cdc.source.framing import BEGIN_KIND, GTID_KIND, ROWS_KIND, XID_KIND, Frame
from cdc.source.reader_process import ProcessSource
from cdc.wordpress import TableNames
from tests.integration.harness import admin_connection, binlog_end

import stack as local_stack
from wordpress import WordPress

pytestmark = pytest.mark.integration

NOISE = "wpcdc_framing_noise"


def _read(port: int, start: Position, end: Position, *, fastpath: bool, framing: bool,
          server_id: int, process: bool = False) -> list[Any]:
    """Every item the source hands over in [start, end), Idle (wall-clock) left out. ``process``:
    read in the reader process (cdc/source/reader_process.py), with the fast path and the framing."""
    settings = MysqlSettings(host="127.0.0.1", port=port, user="wpcdc", password="wpcdc-pw", database="wordpress")
    source: BinlogSource | ProcessSource
    if process:
        source = ProcessSource(settings, TableNames("wp_"), server_id=server_id, start=start, gtid=None)
    else:
        source = BinlogSource(settings, TableNames("wp_"), server_id=server_id, start=start, gtid=None)
        source.fastpath = fastpath
        source.framing = framing
    source.start()
    out: list[Any] = []
    try:
        while True:
            try:
                chunk = source.queue.get(timeout=30)
            except queue.Empty:
                pytest.fail("the binlog source went quiet before the end of the range")
            for item in chunk:
                if isinstance(item, SourceFailed):
                    raise item.error
                if isinstance(item, Idle):
                    continue
                out.append(item)
                if isinstance(item, Commit) and not item.end < end:
                    return out
    finally:
        source.stop()


def _types(batch: RowsBatch) -> list[Any]:
    return [tuple(None if r is None else {k: type(v) for k, v in r.items()} for r in (c.before, c.after))
            for c in batch.changes]


def test_framing_hands_over_what_the_library_does(stack: local_stack.Ports, monkeypatch: pytest.MonkeyPatch) -> None:
    port = stack.mysql
    taken: Counter[Any] = Counter()
    fetch = library_module.Framing.fetch

    def counting(self: Any) -> Any:
        event = fetch(self)
        taken[event.kind if isinstance(event, Frame) else type(event).__name__] += 1
        return event

    monkeypatch.setattr(library_module.Framing, "fetch", counting)
    fast_rows = library_module.fast_rows
    decoded: Counter[bool] = Counter()  # rows events of the library's objects, by the fast decoder or not

    def counting_rows(event: Any, op: str) -> Any:
        rows = fast_rows(event, op)
        decoded[rows is not None] += 1
        return rows

    monkeypatch.setattr(library_module, "fast_rows", counting_rows)
    conn = admin_connection(port)
    wp = WordPress.multisite()
    with conn.cursor() as cur:
        cur.execute(f"DROP DATABASE IF EXISTS {NOISE}")
        cur.execute(f"CREATE DATABASE {NOISE} CHARACTER SET utf8mb4")
        cur.execute("DROP TABLE IF EXISTS wordpress.wpcdc_framing_plugin")
        cur.execute("DROP TABLE IF EXISTS wordpress.wp_999_terms")
    start = binlog_end(conn)
    ids = wp.seed(4)
    wp.rest_save(ids[0], title="Framing, edited", content="<!-- wp:paragraph --><p>x</p><!-- /wp:paragraph -->")
    wp.metabox_save(ids[1])
    with conn.cursor() as cur:
        # Noise: a plugin's own table in WordPress's schema, tables in another schema, MyISAM, DDL.
        cur.execute("CREATE TABLE wordpress.wpcdc_framing_plugin (id INT PRIMARY KEY, v DECIMAL(10,2), t TEXT)")
        cur.execute("INSERT INTO wordpress.wpcdc_framing_plugin VALUES (1, 1.50, 'a'), (2, 2.25, 'b')")
        cur.execute(f"CREATE TABLE {NOISE}.wp_posts LIKE wordpress.wp_posts")
        cur.execute(f"CREATE TABLE {NOISE}.wp_terms (term_id BIGINT UNSIGNED PRIMARY KEY, name VARCHAR(200), "
                    "slug VARCHAR(200), term_group DECIMAL(10,2))")
        # A WordPress table name (blog 999's terms) with a layout the fast decoder leaves to the library.
        cur.execute("CREATE TABLE wordpress.wp_999_terms (term_id BIGINT UNSIGNED PRIMARY KEY, name VARCHAR(200), "
                    "slug VARCHAR(200), term_group DECIMAL(10,2))")
        cur.execute("INSERT INTO wordpress.wp_999_terms VALUES (1, 'a', 'a', 1.25), (2, 'b', 'b', NULL)")
        cur.execute("UPDATE wordpress.wp_999_terms SET term_group = COALESCE(term_group, 0) + 1")
        cur.execute(f"CREATE TABLE {NOISE}.log (id INT PRIMARY KEY, m TEXT) ENGINE=MyISAM")
        cur.execute(f"INSERT INTO {NOISE}.log VALUES (1, 'myisam'), (2, 'ends with a COMMIT query')")
        cur.execute(f"INSERT INTO {NOISE}.wp_posts SELECT * FROM wordpress.wp_posts WHERE ID IN ({ids[0]}, {ids[1]})")
        cur.execute("UPDATE wordpress.wp_options SET option_value = option_value WHERE option_name = 'blogname'")
        cur.execute("INSERT INTO wordpress.wp_options (option_name, option_value, autoload) VALUES "
                    "('_transient_wpcdc_framing', REPEAT('x', 3000), 'no') "
                    "ON DUPLICATE KEY UPDATE option_value = CONCAT(option_value, 'y')")
        # One transaction mixing captured and uncaptured tables, and a multi-row statement.
        cur.execute("BEGIN")
        cur.execute(f"UPDATE wordpress.wp_posts SET menu_order = menu_order + 1 WHERE ID IN ({', '.join(map(str, ids))})")
        cur.execute("UPDATE wordpress.wpcdc_framing_plugin SET v = v + 1")
        cur.execute(f"INSERT INTO wordpress.wp_postmeta (post_id, meta_key, meta_value) VALUES "
                    f"({ids[2]}, 'framing', 'a'), ({ids[2]}, 'framing', NULL), ({ids[3]}, 'framing', '🎉')")
        cur.execute(f"UPDATE {NOISE}.wp_posts SET post_title = 'noise'")
        cur.execute("COMMIT")
        cur.execute("FLUSH BINARY LOGS")  # a rotation in the middle of the range
    wp.trash(ids[2])
    wp.delete(ids[3])
    with conn.cursor() as cur:
        cur.execute("DELETE FROM wordpress.wpcdc_framing_plugin")
        cur.execute("DELETE FROM wordpress.wp_postmeta WHERE meta_key = 'framing'")
        cur.execute("DROP TABLE wordpress.wpcdc_framing_plugin")
        cur.execute(f"DROP DATABASE {NOISE}")
    end = binlog_end(conn)
    with conn.cursor() as cur:  # after the range: dropping a captured table stops the stream
        cur.execute("DROP TABLE wordpress.wp_999_terms")
    framed = _read(port, start, end, fastpath=True, framing=True, server_id=3_910_001)
    # The bytes were read (MariaDB writes no BEGIN query: its GTID event opens the transaction),
    # and the rest went through the library (the DDL, MyISAM's COMMIT, the rotation, DECIMAL rows).
    assert taken[GTID_KIND] and taken[XID_KIND] and taken[ROWS_KIND] and not taken[BEGIN_KIND], taken
    assert taken["QueryEvent"] and taken["RotateEvent"] and taken["WriteRowsEvent"], taken
    decoded.clear()
    library = _read(port, start, end, fastpath=True, framing=False, server_id=3_910_002)
    # Through the library's objects the fast decoder still took WordPress's rows (the DECIMAL
    # table's went to the library's decoder).
    assert decoded[True] and decoded[False], decoded
    generic = _read(port, start, end, fastpath=False, framing=False, server_id=3_910_003)
    # The same through the pipe from the reader process: pickled with its own reducers, rebuilt.
    piped = _read(port, start, end, fastpath=True, framing=True, server_id=3_910_004, process=True)

    assert len(framed) == len(library) == len(generic) == len(piped)
    for a, b, c, d in zip(framed, library, generic, piped):
        assert type(a) is type(b) is type(c) is type(d)
        assert a == b == c == d, (a, b, d)
        if isinstance(a, RowsBatch):
            assert _types(a) == _types(b) == _types(c) == _types(d)
            assert [type(ch) for ch in a.changes] == [type(ch) for ch in d.changes]
    rows = [ch for item in framed if isinstance(item, RowsBatch) for ch in item.changes]
    kinds = {(ch.table.kind.value, ch.op) for ch in rows}
    assert {("posts", "insert"), ("posts", "update"), ("posts", "delete"), ("postmeta", "insert"),
            ("postmeta", "delete"), ("term_relationships", "insert")} <= kinds
    commits = [item for item in framed if isinstance(item, Commit)]
    assert any(cm.rotate for cm in commits), "the range's rotation reached the source"
    assert len({cm.end.file for cm in commits}) == 2
    posts = {ch.after["ID"] for ch in rows if ch.table.kind.value == "posts" and ch.after}
    assert set(ids) <= posts
    odd = [ch for ch in rows if ch.table.kind.value == "terms" and ch.table.blog_id == 999]
    assert [ch.op for ch in odd] == ["insert", "insert", "update", "update"]
