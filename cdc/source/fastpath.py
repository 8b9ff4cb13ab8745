"""A fast row decoder for the tables wpcdc reads, on top of mysql-replication's protocol handling.

mysql-replication decodes every column of every row through a chain of generic Python calls
(a bitmap lookup, a type switch, a packet-wrapper read and a struct call per value): on WordPress
rows that is about 40k rows/s, and it was most of wpcdc's CPU time. The library still does all the
protocol work here - the connection, packets, event headers, table maps with their column names
and charsets, filtering by table - and hands us a RowsEvent whose header it has already parsed.
Only the row images are ours: for each table layout (the column list of a table map) this module
generates one straight-line Python function that decodes a whole rows event, so a value costs a
slice, a ``struct.unpack_from`` or a ``bytes.decode`` and nothing else.

It decodes exactly what the library would (same Python types and values, including ``None`` for
zero dates and lossless ``surrogateescape`` text; see cdc/source/decoding.py), and only what it is
sure of: a layout with a column type it does not know (DECIMAL, JSON, fractional seconds, non-UTF-8
text, …) has no decoder, and a row image that is not full (``binlog_row_image`` other than FULL)
or anything unexpected makes :func:`decode` return None; the caller then uses the library's
decoder for that event. WordPress's five tables never need it.

This module only parses bytes. Finding a rows event's bytes in the library's packet, and keeping
a table's decoder with the library's table object, is cdc/source/library.py's
(``library.fast_rows``), the one module that reaches into the library's internals.
"""

from __future__ import annotations

import dataclasses
import datetime
import struct
import time
from collections.abc import Callable
from typing import Any

from pymysqlreplication.constants import FIELD_TYPE

from cdc import slots
from cdc.model import RowChange, RowsBatch, TxnRef
from cdc.position import Position
from cdc.source import decoding
from cdc.wordpress import WpTable

# Charsets mysql-replication decodes as UTF-8 (cdc/source/decoding.py makes that lossless).
_UTF8 = frozenset({"utf8", "utf8mb3", "utf8mb4"})

_INTS = {
    # type: (size, signed format, unsigned format)
    FIELD_TYPE.TINY: (1, "b", "B"),
    FIELD_TYPE.SHORT: (2, "h", "H"),
    FIELD_TYPE.LONG: (4, "i", "I"),
    FIELD_TYPE.LONGLONG: (8, "q", "Q"),
}

Decoder = Callable[[bytes, int, int, int], list[Any] | None]

_cache: dict[tuple[Any, ...], Decoder] = {}
_CACHE_MAX = 4096


def _datetime2(v: int) -> datetime.datetime | str | None:
    """DATETIME2 without fractional seconds, as the library reads it with cdc/source/decoding.py:
    None for the zero date, the text of a date Python cannot hold (2024-02-30, year 0)."""
    ym = (v >> 22) & 0x1FFFF
    try:
        return datetime.datetime(ym // 13, ym % 13, (v >> 17) & 31, (v >> 12) & 31, (v >> 6) & 63, v & 63)
    except ValueError:
        return decoding.odd_datetime(ym // 13, ym % 13, (v >> 17) & 31, (v >> 12) & 31, (v >> 6) & 63, v & 63)


def _signature(columns: list[Any]) -> tuple[Any, ...] | None:
    """A hashable description of a table layout, or None when a column is out of our scope."""
    sig: list[tuple[str, int, Any]] = []
    for c in columns:
        t = c.type
        name = c.name
        if not name:
            return None
        if t in _INTS:
            sig.append((name, t, bool(c.unsigned)))
        elif t == FIELD_TYPE.INT24:
            sig.append((name, t, bool(c.unsigned)))
        elif t in (FIELD_TYPE.VARCHAR, FIELD_TYPE.STRING):
            if c.character_set_name not in _UTF8:
                return None
            sig.append((name, t, 2 if c.max_length > 255 else 1))
        elif t == FIELD_TYPE.BLOB:
            if c.character_set_name not in _UTF8 or c.length_size not in (1, 2, 3, 4):
                return None
            sig.append((name, t, c.length_size))
        elif t == FIELD_TYPE.DATETIME2:
            if c.fsp:
                return None
            sig.append((name, t, 0))
        elif t == FIELD_TYPE.DOUBLE:
            sig.append((name, t, 0))
        else:
            return None
    return tuple(sig)


def _value_code(i: int, t: int, arg: Any, out: list[str], indent: str) -> None:
    """Lines that read column ``i`` at ``p`` into ``v{i}`` and advance ``p``."""
    v = f"v{i}"
    if t in _INTS:
        size, signed, unsigned = _INTS[t]
        fmt = unsigned if arg else signed
        out.append(f"{indent}{v} = _unpack_from('<{fmt}', b, p)[0]; p += {size}")
    elif t == FIELD_TYPE.INT24:
        out.append(f"{indent}{v} = _from_bytes(b[p:p + 3], 'little', signed={not arg}); p += 3")
    elif t == FIELD_TYPE.DOUBLE:
        out.append(f"{indent}{v} = _unpack_from('<d', b, p)[0]; p += 8")
    elif t in (FIELD_TYPE.VARCHAR, FIELD_TYPE.STRING, FIELD_TYPE.BLOB):
        size = arg
        if size == 1:
            out.append(f"{indent}n = b[p]; p += 1")
        elif size == 2:
            out.append(f"{indent}n = b[p] | b[p + 1] << 8; p += 2")
        else:
            out.append(f"{indent}n = _from_bytes(b[p:p + {size}], 'little'); p += {size}")
        out.append(f"{indent}{v} = b[p:p + n].decode('utf-8', 'surrogateescape'); p += n")
    elif t == FIELD_TYPE.DATETIME2:
        out.append(f"{indent}{v} = _datetime2(_from_bytes(b[p:p + 5], 'big')); p += 5")
    else:  # pragma: no cover - _signature admits only the types above
        raise AssertionError(t)


def _compile(sig: tuple[Any, ...]) -> Decoder:
    """One function decoding every row image of a rows event of this layout.

    ``decode(b, p, end, images)`` reads row images from ``b[p:end]``: ``images`` is 1 for
    write/delete events (returns a list of dicts) and 2 for updates (a flat list, before and after
    alternating), or None when the last image does not end exactly at ``end``. Every column is
    present (full row image): each image is a null bitmap of ``ceil(n/8)`` bytes, then the non-null
    values in column order.
    """
    n = len(sig)
    nb = (n + 7) // 8
    lines = [
        "def decode(b, p, end, images):",
        "    out = []",
        "    append = out.append",
        "    while p < end:",
        # Bits past the last column are padding (MariaDB sets them): masked off.
        (f"        nulls = b[p] & {(1 << n) - 1}; p += 1" if nb == 1 else
         f"        nulls = _from_bytes(b[p:p + {nb}], 'little') & {(1 << n) - 1}; p += {nb}"),
        "        if nulls:",
    ]
    for i, (_, t, arg) in enumerate(sig):
        lines.append(f"            if nulls & {1 << i}:")
        lines.append(f"                v{i} = None")
        lines.append("            else:")
        _value_code(i, t, arg, lines, "                ")
    lines.append("        else:")
    # The common case, no NULL at all: straight-line code, fixed-size neighbours in one unpack.
    i = 0
    while i < n:
        _, t, arg = sig[i]
        if t in _INTS or t == FIELD_TYPE.DOUBLE:
            j, fmt, size = i, "<", 0
            while j < n and (sig[j][1] in _INTS or sig[j][1] == FIELD_TYPE.DOUBLE):
                tj, aj = sig[j][1], sig[j][2]
                if tj == FIELD_TYPE.DOUBLE:
                    fmt, size = fmt + "d", size + 8
                else:
                    s, signed, unsigned = _INTS[tj]
                    fmt, size = fmt + (unsigned if aj else signed), size + s
                j += 1
            names = ", ".join(f"v{k}" for k in range(i, j))
            lines.append(f"            {names}, = _unpack_from('{fmt}', b, p); p += {size}")
            i = j
        else:
            _value_code(i, t, arg, lines, "            ")
            i += 1
    row = ", ".join(f"{name!r}: v{k}" for k, (name, _, _) in enumerate(sig))
    lines.append(f"        append({{{row}}})")
    # The last image must end exactly where the rows do: one that ran past them read bytes that are
    # not row data (the checksum, or beyond), and such an event is left to the library.
    lines.append("    return out if p == end else None")
    src = "\n".join(lines)
    env: dict[str, Any] = {"_unpack_from": struct.unpack_from, "_from_bytes": int.from_bytes,
                           "_datetime2": _datetime2}
    exec(compile(src, f"<wpcdc fastpath {','.join(s[0] for s in sig)}>", "exec"), env)  # noqa: S102
    env["decode"].source = src  # for a reader of tracebacks and profiles
    env["decode"].signature = sig  # what another process builds the same decoder from (by_signature)
    return env["decode"]  # type: ignore[no-any-return]


def decoder(columns: list[Any]) -> Decoder | None:
    """The compiled decoder of a table layout (the library's column objects of a table map), or
    None when a column is out of our scope. Cached by layout across table maps."""
    sig = _signature(columns)
    if sig is None:
        return None
    return by_signature(sig)


def by_signature(sig: tuple[Any, ...]) -> Decoder:
    """The compiled decoder of a layout's signature (``decoder(...).signature``): how the connector
    decodes the rows the reader process sends undecoded (cdc/source/reader_process.py)."""
    dec = _cache.get(sig)
    if dec is None:
        dec = _compile(sig)
        if len(_cache) >= _CACHE_MAX:
            _cache.clear()
        _cache[sig] = dec
    return dec


def decode(dec: Decoder, data: bytes, start: int, end: int, op: str) -> list[Any] | None:
    """The row images in ``data[start:end]`` (a rows event's rows, full images), or None.

    Returns dicts (insert/delete) or before/after dicts alternating (update). None when the bytes
    do not parse as this layout: the library then decodes the event (and raises if it is bad).
    """
    try:
        rows = dec(data, start, end, 2 if op == "update" else 1)
    except (IndexError, struct.error, OverflowError):
        return None
    if rows is None or (op == "update" and len(rows) % 2):
        return None
    return rows


def maker(cls: Any, names: tuple[str, ...]) -> Callable[..., Any]:
    """``cls(*values)`` through :func:`cdc.slots.constructor` (a frozen dataclass's ``__init__``
    is about half of the cost of a decoded row). All fields are passed, in order; refuses
    (TypeError) a class whose fields are not ``names``: a caller that lists them by hand must
    not silently pass them to the wrong slots."""
    declared = tuple(f.name for f in dataclasses.fields(cls))
    if declared != names:
        raise TypeError(f"{cls.__name__} has the fields {declared}, its caller passes {names}: update the caller")
    return slots.constructor(cls)


def _row_change_factory() -> Callable[..., RowChange]:
    """RowChange(...) through :func:`maker`."""
    return maker(RowChange, ("table", "op", "before", "after", "position", "txn", "ts"))


row_change = _row_change_factory()


def rows_batch(wp_table: WpTable, op: str, rows: list[Any], position: Position, txn: TxnRef,
               ts: int, received: float | None = None) -> RowsBatch:
    """normalize.normalize_rows for one rows event's images as :func:`decode` returns them."""
    make = row_change
    if op == "insert":
        changes = tuple([make(wp_table, op, None, r, position, txn, ts) for r in rows])
    elif op == "delete":
        changes = tuple([make(wp_table, op, r, None, position, txn, ts) for r in rows])
    else:
        it = iter(rows)
        changes = tuple([make(wp_table, op, b, a, position, txn, ts) for b, a in zip(it, it)])
    return RowsBatch(changes, position, txn, time.monotonic() if received is None else received)
