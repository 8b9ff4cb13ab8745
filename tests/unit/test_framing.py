"""cdc/source/framing.py reads the small binlog events' fields where the format puts them (no server).

The packets are built here byte by byte from the binlog format (v4 header, then the body), so each
field the module reads is pinned; tests/integration/test_framing.py compares it with the library
over a real binlog.
"""

from __future__ import annotations

import struct

from cdc.source import framing


def packet(kind: int, body: bytes, *, log_pos: int = 1000, ts: int = 1_700_000_000, server: int = 7,
           checksum: bool = True) -> bytes:
    """The OK byte, a v4 event header, the body, and a CRC32 trailer (not checked by anyone here)."""
    size = 19 + len(body) + (4 if checksum else 0)
    return b"\x00" + struct.pack("<IBIIIH", ts, kind, server, size, log_pos, 0) + body + (b"\xde\xad\xbe\xef" if checksum else b"")


def body_end(data: bytes, checksum: bool = True) -> int:
    _, _, _, size, _ = framing.header(data, 1)
    return 1 + size - (4 if checksum else 0)


def test_header_fields() -> None:
    data = packet(framing.XID, struct.pack("<Q", 99), log_pos=4242, ts=123, server=9)
    assert framing.header(data, 1) == (123, framing.XID, 9, 19 + 8 + 4, 4242)


def test_mariadb_gtid_is_domain_server_sequence() -> None:
    body = struct.pack("<QIB", 123456789012, 3, 0x0C) + b"\x00" * 6
    data = packet(framing.MARIADB_GTID, body, server=11)
    assert framing.mariadb_gtid(data, framing.header(data, 1)[2]) == "3-11-123456789012"


def query(statement: bytes, schema: bytes = b"wordpress", status: bytes = b"\x00\x00\x00\x00\x00") -> bytes:
    post = struct.pack("<IIBHH", 1, 0, len(schema), 0, len(status))
    return packet(framing.QUERY, post + status + schema + b"\x00" + statement)


def test_begin_is_told_from_other_statements() -> None:
    for checksum in (True, False):
        data = query(b"BEGIN")
        if not checksum:
            data = data[:-4]
            data = data[:10] + struct.pack("<I", len(data) - 1) + data[14:]
        assert framing.is_begin(data, body_end(data, checksum))
    assert not framing.is_begin(query(b"COMMIT"), body_end(query(b"COMMIT")))
    assert not framing.is_begin(query(b"BEGIN WORK"), body_end(query(b"BEGIN WORK")))
    assert not framing.is_begin(query(b"XA START 'x'"), body_end(query(b"XA START 'x'")))
    # The schema and status variables come first, whatever their length.
    odd = query(b"BEGIN", schema=b"", status=b"\x00" * 40)
    assert framing.is_begin(odd, body_end(odd))
    tricky = query(b"EGIN", schema=b"wordpressB")
    assert not framing.is_begin(tricky, body_end(tricky))


def table_map(tid: int, schema: bytes, table: bytes) -> bytes:
    body = tid.to_bytes(6, "little") + b"\x01\x00" + bytes([len(schema)]) + schema + b"\x00"
    body += bytes([len(table)]) + table + b"\x00" + b"\x02" + b"\x08\x0f" + b"\x02\x00\x01" + b"\x00"
    return packet(framing.TABLE_MAP, body)


def test_table_map_id_and_names() -> None:
    data = table_map(0x0000_1234_5678, b"wordpress", b"wp_3_posts")
    assert framing.table_id(data) == 0x0000_1234_5678
    assert framing.table_map_names(data) == ("wordpress", "wp_3_posts")
    assert framing.table_map_names(table_map(1, b"wordpress", b"\xff\xfe")) is None  # not UTF-8: the library's


def rows(kind: int, columns: int, present: bytes, present2: bytes | None, images: bytes, *, extra: int = 2) -> bytes:
    post = (7).to_bytes(6, "little") + b"\x01\x00"
    if kind in framing.ROWS_V2:
        post += struct.pack("<H", extra) + (b"\x00" * (extra - 2))
    body = post + bytes([columns]) + present + (present2 or b"") + images
    return packet(kind, body)


def test_rows_layout_v1_and_v2() -> None:
    write = rows(0x17, 3, b"\x07", None, b"\x00abc")
    assert framing.rows_layout(write, 8, body_end(write), False) == (3, b"\x07", None, 20 + 8 + 1 + 1)
    update = rows(0x1F, 10, b"\xff\x03", b"\xff\x03", b"\x00\x00xyz")
    assert framing.rows_layout(update, 10, body_end(update), True) == (10, b"\xff\x03", b"\xff\x03", 20 + 10 + 1 + 4)
    # v2 extra data (NDB, partitions) and 251+ columns are the library's to read.
    assert framing.rows_layout(rows(0x1E, 3, b"\x07", None, b"", extra=5), 10, 10**6, False) is None
    many = rows(0x17, 251, b"\xff" * 32, None, b"")
    assert framing.rows_layout(many, 8, body_end(many), False) is None


def test_post_header_lengths_are_the_formats() -> None:
    """What Framing compares with the format description's declared lengths (MariaDB 10.x and MySQL 8)."""
    assert framing.POST_HEADER[framing.TABLE_MAP] == 8
    assert framing.POST_HEADER[framing.QUERY] == 13
    assert all(framing.POST_HEADER[k] == 8 for k in framing.ROWS_V1)
    assert all(framing.POST_HEADER[k] == 10 for k in framing.ROWS_V2)
