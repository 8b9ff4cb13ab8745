"""The generated row decoders (cdc/source/fastpath.py) read exactly the bytes of a rows event's
images: an image that would run past them is no row (the library then takes the event, or, with
the reader process, the session restarts with the library deciding). Decoded values against the
library's own decoder are checked on real binlogs in tests/integration/test_fastpath.py and
test_framing.py."""

from __future__ import annotations

import struct

from pymysqlreplication.constants import FIELD_TYPE

from cdc.source import fastpath

SIGNATURE = (("object_id", FIELD_TYPE.LONGLONG, True), ("term_taxonomy_id", FIELD_TYPE.LONGLONG, True),
             ("term_order", FIELD_TYPE.LONG, False))
CHECKSUM = b"CRC!"


def _image(*row: int) -> bytes:
    return b"\x00" + struct.pack("<QQi", *row)


def test_rows_that_end_at_the_end_decode() -> None:
    dec = fastpath.by_signature(SIGNATURE)
    data = _image(10, 5, 0) + _image(11, 5, -1) + CHECKSUM
    rows = fastpath.decode(dec, data, 0, len(data) - len(CHECKSUM), "insert")
    assert rows == [{"object_id": 10, "term_taxonomy_id": 5, "term_order": 0},
                    {"object_id": 11, "term_taxonomy_id": 5, "term_order": -1}]
    assert fastpath.decode(dec, data, 0, len(data) - len(CHECKSUM), "update") == rows  # one before/after pair


def test_an_image_running_past_the_rows_is_no_row() -> None:
    dec = fastpath.by_signature(SIGNATURE)
    data = _image(10, 5, 0) + CHECKSUM
    # The rows said to end 3 bytes early: the image would take 3 bytes of the checksum.
    assert fastpath.decode(dec, data, 0, len(data) - len(CHECKSUM) - 3, "insert") is None
    # An odd number of images for an update is no pair either.
    assert fastpath.decode(dec, data, 0, len(data) - len(CHECKSUM), "update") is None
