"""The small fixed-format binlog events, read straight from the packet bytes.

WordPress autocommits nearly every query, so on a real site a relevant row arrives as five binlog
events: MariaDB's GTID (which opens the transaction), ANNOTATE_ROWS, TABLE_MAP, the rows event and
XID. mysql-replication builds a wrapper and an event object for each (a struct unpack of the header,
two constructors with seventeen keyword arguments), and that framing, not row decoding, was most
of wpcdc's CPU on such a binlog. This module reads what wpcdc needs of those events from the bytes
of the packet, before any library object exists:

* GTID (MariaDB), XID, a ``BEGIN`` query: their header fields and the GTID's numbers;
* ANNOTATE_ROWS: nothing (the library skips it too: wpcdc does not ask for it);
* TABLE_MAP: its table id and names (is the table one we capture?);
* rows events: their table id, column count and column bitmaps, and where the row images are.

It only parses bytes (the layouts of the MariaDB/MySQL binlog format, version 4) and returns None
for anything it is not sure of; cdc/source/library.py decides what to do with the result and hands
every other event to the library. The frames it returns are what cdc/source/binlog.py reads.
"""

from __future__ import annotations

import struct
from typing import Any

QUERY = 0x02
XID = 0x10
TABLE_MAP = 0x13
ROWS_V1 = {0x17: "insert", 0x18: "update", 0x19: "delete"}
ROWS_V2 = {0x1E: "insert", 0x1F: "update", 0x20: "delete"}
ANNOTATE_ROWS = 0xA0
MARIADB_GTID = 0xA2

HEADER = 20
"""The OK byte of the replication protocol and the 19-byte v4 event header, before an event's body."""

# Post-header lengths this module reads (the format description event declares them per type;
# a server declaring others goes through the library).
POST_HEADER = {QUERY: 13, XID: 0, TABLE_MAP: 8, MARIADB_GTID: 19, ANNOTATE_ROWS: 0,
               **dict.fromkeys(ROWS_V1, 8), **dict.fromkeys(ROWS_V2, 10)}


class Frame:
    """What wpcdc needs of one small event: its kind, where it ends (the header's log_pos), its size
    as written, its timestamp, and per kind the GTID text or the decoded rows of a rows event."""

    __slots__ = ("kind", "end", "size", "timestamp", "gtid", "op", "table", "rows", "raw")

    def __init__(self, kind: int, end: int, size: int, timestamp: int) -> None:
        self.kind = kind
        self.end = end
        self.size = size
        self.timestamp = timestamp
        self.gtid = ""  # GTID: domain-server-sequence
        self.op = ""  # rows: insert, update or delete
        self.table = ""  # rows: the table's name
        self.rows: list[Any] = []  # rows: as fastpath.decode returns them
        # rows, when decoding is left to the reader process's parent: (the decoder's layout
        # signature, the row images' bytes)
        self.raw: tuple[Any, bytes] | None = None

    def __repr__(self) -> str:
        return f"Frame({self.kind:#x}, end={self.end}, size={self.size}, gtid={self.gtid}, table={self.table})"


GTID_KIND = MARIADB_GTID
XID_KIND = XID
BEGIN_KIND = QUERY
ROWS_KIND = 0x100  # any rows event, its op in Frame.op


_HEADER = struct.Struct("<IBIII")
header = _HEADER.unpack_from
"""``header(data, 1)``: (timestamp, event type, server id, event size, log_pos) of a packet
carrying one binlog event (the v4 header after the OK byte; the flags are not read)."""


_GTID = struct.Struct("<QI")


def mariadb_gtid(data: bytes, server: int) -> str:
    """A MariaDB GTID event's ``domain-server-sequence`` (the server id is the header's)."""
    seq, domain = _GTID.unpack_from(data, HEADER)
    return f"{domain}-{server}-{seq}"


def is_begin(data: bytes, body_end: int) -> bool:
    """Whether a QUERY event's statement is exactly ``BEGIN`` (what a transaction's first event
    says when the server writes no GTID event, and what MySQL writes after its GTID event)."""
    if body_end - HEADER < 13:
        return False
    schema_len = data[28]
    status_len = int.from_bytes(data[31:33], "little")
    start = HEADER + 13 + status_len + schema_len + 1
    return data[start:body_end] == b"BEGIN"


def table_id(data: bytes) -> int:
    """The table id of a TABLE_MAP or rows event (6 bytes, little-endian, at the body's start)."""
    return int.from_bytes(data[20:26], "little")


def table_map_names(data: bytes) -> tuple[str, str] | None:
    """(schema, table) of a TABLE_MAP event, or None if they do not decode as UTF-8."""
    p = HEADER + 8
    n = data[p]
    schema = bytes(data[p + 1:p + 1 + n])
    p += 1 + n + 1
    m = data[p]
    table = bytes(data[p + 1:p + 1 + m])
    try:
        return schema.decode(), table.decode()
    except UnicodeDecodeError:
        return None


def rows_layout(data: bytes, post_header: int, body_end: int, update: bool) -> tuple[int, bytes, bytes | None, int] | None:
    """(column count, columns-present bitmap, the second one of an update, where the row images
    start) of a rows event, or None when the event carries anything this module does not read
    (v2 extra data beyond its length field, a column count of 251 or more)."""
    p = HEADER + post_header
    if post_header == 10:  # v2: flags, then extra data whose length includes its own 2 bytes
        extra = int.from_bytes(data[28:30], "little")
        if extra != 2:
            return None
    n = data[p]
    if n >= 251:
        return None
    p += 1
    nb = (n + 7) // 8
    present = bytes(data[p:p + nb])
    p += nb
    present2 = None
    if update:
        present2 = bytes(data[p:p + nb])
        p += nb
    if p > body_end:
        return None
    return n, present, present2, p
