"""Binlog positions and the sequence number derived from them.

A position is (binlog file, byte offset). WordPress's consumers want one integer that orders a
post's events, so ``seq`` packs the file's number and the offset: ``file_number << 32 | pos``.
Binlog offsets fit in 32 bits (files rotate at max_binlog_size ≤ 1 GiB) and file numbers stay
below 2**20 in practice, so seq stays below 2**53 and survives JavaScript's ``Number``.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass

_FILE_NUMBER = re.compile(r"\.(\d+)$")


@functools.lru_cache(maxsize=256)
def file_number(file: str) -> int:
    """The numeric suffix of a binlog file name (``mariadb-bin.000042`` → 42). Cached: positions
    compare by it, a few times per row, and a server has few binlog files at a time."""
    m = _FILE_NUMBER.search(file)
    if not m:
        raise ValueError(f"not a binlog file name: {file!r}")
    return int(m.group(1))


@dataclass(frozen=True, slots=True, order=False)
class Position:
    """A place in the binlog. Ordered by (file number, offset), which is binlog order."""

    file: str
    pos: int

    @property
    def seq(self) -> int:
        return file_number(self.file) << 32 | self.pos

    def _key(self) -> tuple[int, int]:
        return (file_number(self.file), self.pos)

    def __lt__(self, other: Position) -> bool:
        return self._key() < other._key()

    def __le__(self, other: Position) -> bool:
        return self._key() <= other._key()

    def __gt__(self, other: Position) -> bool:
        return self._key() > other._key()

    def __ge__(self, other: Position) -> bool:
        return self._key() >= other._key()

    def __str__(self) -> str:
        return f"{self.file}:{self.pos}"

    @classmethod
    def parse(cls, text: str) -> Position:
        """Parse ``file:pos`` as printed by ``str(position)`` and accepted by the CLI."""
        file, sep, pos = text.rpartition(":")
        if not sep or not file or not pos.isdigit():
            raise ValueError(f"expected FILE:POS (e.g. mariadb-bin.000003:1234), got {text!r}")
        file_number(file)
        return cls(file, int(pos))
