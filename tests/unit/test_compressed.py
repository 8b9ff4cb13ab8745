"""MariaDB's compressed binlog events (log_bin_compress=ON) inflate to the ordinary events.

The two recorded events were written by MariaDB 10.11 (binlog_checksum=CRC32): an UPDATE of a
row holding 3,000 characters, and an ALTER TABLE with a 300-character comment.
"""

from __future__ import annotations

import struct
import zlib

from cdc.source.compressed import QUERY, QUERY_COMPRESSED, ROWS, inflate

UPDATE_ROWS_COMPRESSED_V1 = bytes.fromhex(
    "4bb90f6ba701000000590000006f57000000007a0000000000010003070782178b789cedd6310d00201004c1a3c630411938"
    "a324ef0292996235ec6949564f060000f0bcfaf753d9261e0000be306be02fd32b011b3b673121")
QUERY_COMPRESSED_EVENT = bytes.fromhex(
    "4bb90f6ba50100000076000000215900000000d500000000000000070000230000000000010100002054000000000603737464"
    "042d002d00e00081e80f0000000000007a73616d706c6500820144789c73f409710d52087174f27155285170f6f7f575f50b51"
    "504f1e054403750017477a3ab673f94b")


def packet(event: bytes) -> bytes:
    return b"\x00" + event  # the OK byte the server sends before each binlog event


def header(p: bytes) -> tuple[int, int, int]:
    _, _, event_type, _, size, log_pos, _ = struct.unpack("<cIBIIIH", p[:20])
    return event_type, size, log_pos


def test_recorded_update_rows_inflates_to_update_rows_v1() -> None:
    out = inflate(packet(UPDATE_ROWS_COMPRESSED_V1))
    assert out is not None
    event_type, size, log_pos = header(out)
    assert (event_type, log_pos) == (0x18, header(packet(UPDATE_ROWS_COMPRESSED_V1))[2])  # same place
    assert size == len(out) - 1
    assert out[-4:] == UPDATE_ROWS_COMPRESSED_V1[-4:]  # the checksum trailer is kept
    assert b"x" * 3000 + b"z" in out  # the after image, whole


def test_recorded_query_inflates_to_query() -> None:
    out = inflate(packet(QUERY_COMPRESSED_EVENT))
    assert out is not None
    assert header(out)[0] == QUERY
    assert b"zsample\x00ALTER TABLE t COMMENT '" + b"c" * 300 + b"'" in out


def compress(data: bytes) -> bytes:
    """What MariaDB's binlog_buf_compress writes: 0x80 | n, the length in n bytes, zlib."""
    return bytes([0x80 | 4]) + len(data).to_bytes(4, "big") + zlib.compress(data)


def event(event_type: int, body: bytes) -> bytes:
    return packet(struct.pack("<IBIIIH", 1, event_type, 1, 19 + len(body), 1000, 0) + body)


def test_v2_rows_with_extra_data_round_trip() -> None:
    clear = b"\x2a\x00\x00\x00\x00\x00" + b"\x01\x00" + b"\x04\x00\xff\xee" + b"\x03" + b"\x07\x07"  # update: 2 bitmaps
    rows = b"\x00" + b"row images" * 50
    for compressed_type, plain_type in ROWS.items():
        if plain_type not in (0x1F,):
            continue
        out = inflate(event(compressed_type, clear + compress(rows) + b"CRC!"))
        assert out == event(plain_type, clear + rows + b"CRC!")


def test_other_and_unreadable_events_are_left_alone() -> None:
    assert inflate(event(0x17, b"\x2a" * 30)) is None  # not compressed
    assert inflate(event(QUERY_COMPRESSED, b"\x00" * 13 + b"db\x00" + b"\x85garbage")) is None
    truncated = packet(UPDATE_ROWS_COMPRESSED_V1)[:-20]
    assert inflate(truncated) is None
