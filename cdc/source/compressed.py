"""MariaDB's compressed binlog events (``log_bin_compress=ON``), inflated before the library parses them.

With ``log_bin_compress`` MariaDB writes a query or rows event whose statement (or row images)
exceed ``log_bin_compress_min_len`` as a *compressed* event type, which mysql-replication does not
know and would skip: a site that turns the setting on to save binlog space would lose every post
written meanwhile, silently. The format is small (MariaDB's ``binlog_buf_compress``): the
compressed part is one byte ``0x80 | n``, the uncompressed length in the next ``n`` bytes
(big-endian), then a zlib stream. Only the query text of a query event, and the row images of a
rows event, are compressed; the post-header, the schema, the column count and the column bitmaps
stay in clear.

:func:`inflate` turns such a packet into the packet of the ordinary event (same position, the
event type and size rewritten, the checksum trailer kept); cdc/source/library.py applies it to
every packet before the library reads it. Anything it cannot parse is left as it is: the reader then
meets an unknown event type that can carry rows and stops loudly (cdc/source/binlog.py).
"""

from __future__ import annotations

import struct
import zlib

QUERY_COMPRESSED = 0xA5
QUERY = 0x02
# MariaDB: WRITE/UPDATE/DELETE_ROWS_COMPRESSED_EVENT_V1 (v1 rows, what MariaDB writes), then the
# compressed forms of the v2 rows events; each with the ordinary event it inflates to.
ROWS = {0xA6: 0x17, 0xA7: 0x18, 0xA8: 0x19, 0xA9: 0x1E, 0xAA: 0x1F, 0xAB: 0x20}
TYPES = frozenset({QUERY_COMPRESSED, *ROWS})
"""Every compressed event type: the byte at offset 5 of a packet (after the OK byte) is the type."""
_HEADER = 20  # the OK byte and the 19-byte event header
_UPDATES = {0x18, 0x1F}


def _lenenc(buf: bytes, at: int) -> tuple[int, int]:
    """A length-encoded integer at ``at``: (value, position after it)."""
    first = buf[at]
    if first < 0xFB:
        return first, at + 1
    size = {0xFC: 2, 0xFD: 3, 0xFE: 8}[first]
    return int.from_bytes(buf[at + 1:at + 1 + size], "little"), at + 1 + size


def _uncompress(buf: bytes) -> tuple[bytes, bytes]:
    """(the inflated data, the bytes after the zlib stream: the checksum, if any)."""
    if not buf or not buf[0] & 0x80:
        raise ValueError("no compressed-data header")
    n = buf[0] & 0x07
    expected = int.from_bytes(buf[1:1 + n], "big")
    inflater = zlib.decompressobj()
    data = inflater.decompress(buf[1 + n:])
    if not inflater.eof or len(data) != expected:
        raise ValueError("truncated or inconsistent compressed data")
    return data, inflater.unused_data


def _clear_part(event_type: int, body: bytes) -> int:
    """How many bytes of a compressed event's body are in clear (before the compressed part)."""
    if event_type == QUERY_COMPRESSED:
        # thread id (4), exec time (4), schema length (1), error code (2), status vars length (2),
        # the status variables, the schema and its NUL.
        schema_len = body[8]
        status_len = int.from_bytes(body[11:13], "little")
        return 13 + status_len + schema_len + 1
    at = 8  # table id (6), flags (2)
    if event_type >= 0xA9:  # v2: extra data, its length counting its own two bytes
        at += int.from_bytes(body[at:at + 2], "little")
    columns, at = _lenenc(body, at)
    bitmaps = 2 if ROWS[event_type] in _UPDATES else 1
    return at + bitmaps * ((columns + 7) // 8)


def inflate(payload: bytes) -> bytes | None:
    """The packet of the ordinary event a compressed one stands for; None when ``payload`` is not
    a compressed event (or one this module cannot read: the reader then stops on it)."""
    if len(payload) < _HEADER:
        return None
    event_type = payload[5]
    if event_type != QUERY_COMPRESSED and event_type not in ROWS:
        return None
    size = int.from_bytes(payload[10:14], "little")
    body = payload[_HEADER:_HEADER - 19 + size]
    try:
        clear = _clear_part(event_type, body)
        data, trailer = _uncompress(body[clear:])
    except (ValueError, IndexError, KeyError, zlib.error):
        return None
    new_body = body[:clear] + data + trailer
    new_type = QUERY if event_type == QUERY_COMPRESSED else ROWS[event_type]
    header = bytearray(payload[:_HEADER])
    header[5] = new_type
    header[10:14] = struct.pack("<I", 19 + len(new_body))
    return bytes(header) + new_body
