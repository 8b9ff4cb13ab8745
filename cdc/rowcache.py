"""The newest wp_posts row of recently changed posts: what a meta-only change's event shows.

It is exact, not a guess: the assembler sees every change of a cached row after it was cached,
because it reads the binlog continuously from before the row was cached.
"""

from __future__ import annotations

from collections import OrderedDict

from cdc.model import PostKey, Row


def row_size(row: Row | None) -> int:
    """Bytes a row image holds in CPython, roughly: what the memory bounds count.

    A dict of ~23 columns costs about 1.2 KB before its values, and each str about 50 bytes
    beyond its characters; counting only the characters would let the bounds be exceeded
    twofold (measured with the backfill benchmark).
    """
    if not row:
        return 0
    n = 240 + 74 * len(row)  # 42 a column, and 32 a value: a str or bytes value 50 + its length
    for v in row.values():
        t = type(v)  # the decoders return exact str and bytes; isinstance() costs twice as much here
        if t is str or t is bytes:
            n += 18 + len(v)
    return n


class RowCache:
    """The newest wp_posts row of recently changed posts, bounded in bytes (LRU).

    Also remembers each seen post's type and parent in a cheaper map, so meta rows of a revision
    or of an excluded post type are recognised even after the full row was evicted.
    """

    def __init__(self, max_bytes: int = 32 << 20, max_types: int = 500_000) -> None:
        self.max_bytes = max_bytes
        self.max_types = max_types
        self._rows: OrderedDict[PostKey, tuple[Row, int]] = OrderedDict()
        self._types: OrderedDict[PostKey, tuple[str, int]] = OrderedDict()
        self.nbytes = 0

    def put(self, key: PostKey, row: Row) -> None:
        old = self._rows.pop(key, None)
        if old:
            self.nbytes -= old[1]
        size = row_size(row)
        self._rows[key] = (row, size)
        self.nbytes += size
        while self.nbytes > self.max_bytes and self._rows:
            _, (_, s) = self._rows.popitem(last=False)
            self.nbytes -= s
        self._types[key] = (str(row.get("post_type")), int(row.get("post_parent") or 0))
        self._types.move_to_end(key)
        if len(self._types) > self.max_types:
            self._types.popitem(last=False)

    def forget(self, key: PostKey) -> None:
        old = self._rows.pop(key, None)
        if old:
            self.nbytes -= old[1]

    def get(self, key: PostKey) -> Row | None:
        hit = self._rows.get(key)
        return hit[0] if hit else None

    def type_of(self, key: PostKey) -> tuple[str, int] | None:
        return self._types.get(key)
