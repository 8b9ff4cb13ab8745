"""What crosses the pipe from the reader process (cdc/source/reader_process.py) comes out equal.

The pipe's reducers send a rows event as its images and the fields its changes share; these tests
pin that every item the binlog source hands over is rebuilt equal, field types included, that a
batch of another shape still travels (field by field), and that a reader's failure arrives as the
exception it was: its class (what the runner decides retry or exit code by), message and attributes,
even when its ``__init__`` would not take its ``args`` back.
"""

from __future__ import annotations

import datetime
import multiprocessing
import os
import signal
import socket
import struct
import threading
import time
from typing import Any

import pymysql
import pytest
from pymysqlreplication.constants import FIELD_TYPE

from cdc.config import MysqlSettings
from cdc.errors import PreflightError, SourceError, UnsupportedChangeError
from cdc.model import Commit, Idle, RowsBatch, SettingsWritten, TxnRef
from cdc.position import Position
from cdc.source import fastpath
from cdc.source.binlog import RawRows, SourceFailed
from cdc.source.reader_process import (
    ProcessSource,
    RemoteTraceback,
    RowsNotDecoded,
    StatementWrites,
    decode_rows,
    dumps,
    loads,
)
from cdc.wordpress import TableKind, TableNames, WpTable

POSTS = WpTable(1, TableKind.POSTS)
META = WpTable(3, TableKind.POSTMETA)
TXN = TxnRef(Position("mariadb-bin.000007", 1200), "0-1-42", "0-1-41")


def _post(pid: int, title: str) -> dict[str, object]:
    return {"ID": pid, "post_title": title, "post_date": datetime.datetime(2026, 2, 28, 23, 59, 1),
            "post_modified": None, "post_content": "x" * 3 + "\udcff", "menu_order": -1, "comment_count": 2**63}


def _round_trip(items: list[object]) -> list[Any]:
    return loads(dumps(items))


@pytest.mark.parametrize("op", ["insert", "update", "delete"])
def test_a_rows_event_comes_back_equal(op: str) -> None:
    at = Position("mariadb-bin.000007", 2400)
    rows = [_post(1, "a"), _post(2, "b"), _post(3, "c"), _post(4, "d")]
    batch = fastpath.rows_batch(POSTS, op, rows, at, TXN, 1_796_000_000)
    [back] = _round_trip([batch])
    assert type(back) is RowsBatch
    assert back == batch
    assert back.received == batch.received
    for a, b in zip(batch.changes, back.changes):
        assert (a.table, a.op, a.before, a.after, a.position, a.txn, a.ts) == \
               (b.table, b.op, b.before, b.after, b.position, b.txn, b.ts)
        for image_a, image_b in ((a.before, b.before), (a.after, b.after)):
            if image_a is not None:
                assert image_b is not None
                assert {k: type(v) for k, v in image_a.items()} == {k: type(v) for k, v in image_b.items()}
    # shared fields stay shared, as the reader built them
    assert all(c.txn is back.txn and c.position is back.position for c in back.changes)


def test_a_batch_of_another_shape_travels_field_by_field() -> None:
    one = fastpath.rows_batch(META, "insert", [{"meta_id": 1, "post_id": 9, "meta_key": "k", "meta_value": None}],
                              Position("mariadb-bin.000007", 10), TXN, 5)
    two = fastpath.rows_batch(POSTS, "delete", [_post(9, "gone")], Position("mariadb-bin.000007", 20), TXN, 6)
    mixed = RowsBatch(one.changes + two.changes, two.position, TXN, 12.5)
    [back] = _round_trip([mixed])
    assert back == mixed and back.received == 12.5
    assert [c.table for c in back.changes] == [META, POSTS]


def test_every_other_item_comes_back_equal() -> None:
    items: list[object] = [
        TXN,
        Commit(Position("mariadb-bin.000007", 3000), "0-1-42", 1_796_000_001),
        Commit(Position("mariadb-bin.000008", 4), "0-1-42", 0, rotate=True),
        Idle(Position("mariadb-bin.000008", 385), "0-1-42", 1_796_000_002.5),
        Idle(None),
        SettingsWritten(frozenset({1, 3}), True),
        SettingsWritten(frozenset()),
    ]
    back = _round_trip(items)
    assert back == items
    assert [type(x) for x in back] == [type(x) for x in items]


def test_statement_counts_travel() -> None:
    [back] = _round_trip([StatementWrites([TableKind.POSTS, TableKind.POSTMETA])])
    assert back.kinds == [TableKind.POSTS, TableKind.POSTMETA]


class _Odd(Exception):
    def __init__(self, message: str, *, lock: object) -> None:
        super().__init__(message)
        self.lock = lock


@pytest.mark.parametrize("error", [
    UnsupportedChangeError("rows of wp_posts logged as a statement at mariadb-bin.000007:10",
                           position=Position("mariadb-bin.000007", 10), end=Position("mariadb-bin.000007", 99)),
    PreflightError("binlog_row_image is MINIMAL", check="binlog_row_image", retriable=False),
    SourceError("the server closed the binlog stream"),
    pymysql.err.OperationalError(2013, "Lost connection to server during query"),
])
def test_a_failure_arrives_as_the_exception_it_was(error: Exception) -> None:
    [back] = _round_trip([SourceFailed(error)])
    assert type(back) is SourceFailed
    assert type(back.error) is type(error)
    assert back.error.args == error.args and str(back.error) == str(error)
    assert vars(back.error) == vars(error)


def test_a_failure_that_cannot_travel_becomes_a_retriable_source_error() -> None:
    [back] = _round_trip([SourceFailed(_Odd("cannot pickle a lock", lock=threading.Lock()))])
    assert type(back.error) is SourceError
    assert "cannot pickle a lock" in str(back.error) and "_Odd" in str(back.error)


TERM_ROWS = WpTable(1, TableKind.TERM_RELATIONSHIPS)
# term_relationships as its table map describes it: what the child sends as the decoder's layout
TERM_SIGNATURE = (("object_id", FIELD_TYPE.LONGLONG, True), ("term_taxonomy_id", FIELD_TYPE.LONGLONG, True),
                  ("term_order", FIELD_TYPE.LONG, False))


def _term_images(*rows: tuple[int, int, int]) -> bytes:
    return b"".join(b"\x00" + struct.pack("<QQi", *row) for row in rows)  # no NULLs, then the values


def test_rows_sent_undecoded_are_decoded_by_the_connector() -> None:
    at, end = Position("mariadb-bin.000007", 500), Commit(Position("mariadb-bin.000007", 531), "0-1-42", 9)
    raw = RawRows(TERM_ROWS, "insert", TERM_SIGNATURE, _term_images((10, 5, 0), (11, 5, -1)), at, TXN, 9, 77.5, 90)
    [batch, commit], rows = decode_rows(loads(dumps([raw, end])))
    assert rows == 2 and commit == end
    expected = fastpath.rows_batch(TERM_ROWS, "insert", [{"object_id": 10, "term_taxonomy_id": 5, "term_order": 0},
                                                         {"object_id": 11, "term_taxonomy_id": 5, "term_order": -1}],
                                   at, TXN, 9)
    assert batch == expected and batch.received == 77.5


def test_rows_that_do_not_decode_stop_the_stream_there_naming_the_event() -> None:
    at = Position("mariadb-bin.000007", 500)
    raw = RawRows(TERM_ROWS, "insert", TERM_SIGNATURE, _term_images((10, 5, 0))[:-3], at, TXN, 9, 0.0, 90)
    after = Commit(Position("mariadb-bin.000007", 531), "0-1-42", 9)
    items, _ = decode_rows([raw, after])
    [failed] = items  # nothing after it is handed over
    assert type(failed) is SourceFailed and type(failed.error) is RowsNotDecoded
    assert isinstance(failed.error, SourceError) and failed.error.retriable  # the session restarts ...
    assert "mariadb-bin.000007:500" in str(failed.error) and "decoded in the reader process" in str(failed.error)


def _raise_in_reader(error: Exception) -> Exception:
    try:
        raise error
    except Exception as exc:  # noqa: BLE001 - what the reader thread's _run catches
        return exc


def test_a_bug_in_the_reader_keeps_its_message_and_where_it_happened() -> None:
    """A failure the runner treats as a bug (exit 1, its traceback in the log) says what and where
    as in-process: a UnicodeError's text is built from fields pickling by ``__new__`` would lose."""
    error = _raise_in_reader(_unicode_error())
    [back] = _round_trip([SourceFailed(error)])
    assert type(back.error) is UnicodeDecodeError and str(back.error) == str(error)
    cause = back.error.__cause__
    assert isinstance(cause, RemoteTraceback) and "_raise_in_reader" in str(cause)
    # an exception rebuilt without its __init__ gets it too
    preflight = _raise_in_reader(PreflightError("binlog_row_image is MINIMAL", check="binlog_row_image"))
    [back] = _round_trip([SourceFailed(preflight)])
    assert vars(back.error) == vars(preflight) and "_raise_in_reader" in str(back.error.__cause__)


def _unicode_error() -> UnicodeDecodeError:
    try:
        b"\xff".decode("utf-8")
    except UnicodeDecodeError as exc:
        return exc
    raise AssertionError("decoded")


def test_the_reader_process_outlives_a_sigterm_to_its_group() -> None:
    """``timeout``, a service manager or ``kill -TERM -PGID`` signal the child with the connector:
    the child must not end first (the session would fail before its last flush and checkpoint);
    the connector stops it. The child waits on a local socket that never answers (no server)."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    listener.settimeout(30)
    try:
        settings = MysqlSettings(host="127.0.0.1", port=listener.getsockname()[1], user="u", password="secret-pw",
                                 database="wp", connect_timeout=30)
        source = ProcessSource(settings, TableNames("wp_"), server_id=3_999_001, start=Position("b.000001", 4),
                               gtid=None)
        source.start()
        try:
            conn, _ = listener.accept()  # the child connects: it is past its start-up
            listener.close()
            os.kill(source._proc.pid, signal.SIGTERM)  # noqa: SLF001
            time.sleep(0.5)
            assert source._proc.poll() is None  # noqa: SLF001
            assert source.queue.qsize() == 0  # no failure handed over
        finally:
            source.stop()
        assert source._proc.poll() is not None  # noqa: SLF001
        conn.close()
    finally:
        listener.close()


def test_rows_that_do_not_decode_make_the_next_readers_decode_them_themselves(monkeypatch: pytest.MonkeyPatch) -> None:
    """After a RowsNotDecoded the session restarts, and its reader process decodes rows itself:
    there the library takes an event the fast decoder does not, as in-process."""
    monkeypatch.setattr(ProcessSource, "decode_in_child", False)
    source = ProcessSource(MysqlSettings(), TableNames("wp_"), server_id=3_999_002, start=Position("b.000001", 4),
                           gtid=None)
    receiving, sending = multiprocessing.Pipe(duplex=False)
    source._conn = receiving  # noqa: SLF001 - the receiving side alone, fed by hand
    at = Position("mariadb-bin.000007", 500)
    broken = RawRows(TERM_ROWS, "insert", TERM_SIGNATURE, _term_images((10, 5, 0))[:-3], at, TXN, 9, 0.0, 90)
    sending.send_bytes(dumps([broken]))
    source._receive()  # noqa: SLF001
    [[failed]] = [source.queue.get_nowait()]
    assert type(failed.error) is RowsNotDecoded
    assert ProcessSource.decode_in_child
    receiving.close()
    sending.close()
