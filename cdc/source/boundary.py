"""Where a transaction starts: positions given by hand are checked against the binlog itself.

wpcdc resumes only at transaction starts. A position inside a transaction (after its table map,
say) would make the reader meet rows whose table it has not seen, and the library drops those
rows without a word. ``--start FILE:POS`` and ``wpcdc offsets set`` take positions from people,
so they are checked here against ``SHOW BINLOG EVENTS``: a position inside a transaction moves to
that transaction's start (and says so), one that is not the start of an event is refused.

The walk over the event listing is a pure function (unit-tested on recorded listings); reading
the listing is the Database's job.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from cdc.errors import ConfigError
from cdc.position import Position
from cdc.source.statements import QueryKind, classify
from cdc.wordpress import TableNames

_STARTS = {"Gtid", "Anonymous_Gtid"}  # MariaDB's Gtid (BEGIN GTID / GTID), MySQL's Gtid, Anonymous_Gtid
_ENDS = {"Xid", "XA_prepare"}
# Events between transactions: a resume may sit right before any of them.
_OUTSIDE = {"Format_desc", "Gtid_list", "Binlog_checkpoint", "Rotate", "Previous_gtids", "Stop",
            "Start_encryption", "Incident", "Heartbeat"}
_USE = re.compile(r"^\s*use\s+`?[^`;]*`?\s*;\s*", re.IGNORECASE)
_NO_TABLES = TableNames("wpcdc_boundary_")  # classify() needs one; which tables does not matter here


@dataclass(frozen=True)
class Boundary:
    """The transaction start for a position (``moved`` when it is not the position given)."""

    position: Position
    moved: bool


def opens_transaction(events: Sequence[Mapping[str, Any]], position: Position) -> bool:
    """Whether ``SHOW BINLOG EVENTS IN file FROM position LIMIT 2`` shows a transaction's first
    event at ``position``: then it is a transaction start without walking the file from its
    beginning (a position deep in a 1 GB file took seconds of listing and CPU at every start).

    A GTID event opens every transaction, so nothing before it can belong to one. MariaDB refuses
    a position that is not an event's start ("Wrong offset"); as a second guard, against a
    server that parses whatever bytes it is pointed at, the first event must end where the
    second begins (its header's own end position against the length the server stepped over).
    Bytes inside an event would have to forge both a GTID header and a consistent end position
    to pass. Anything else (no second event yet, another kind of event) is for
    :func:`transaction_start`'s walk.
    """
    return (len(events) == 2 and int(events[0]["Pos"]) == position.pos
            and str(events[0]["Event_type"]) in _STARTS
            and int(events[0]["End_log_pos"]) == int(events[1]["Pos"]) > position.pos)


def transaction_start(events: Iterable[Mapping[str, Any]], position: Position) -> Boundary:
    """The start of the transaction that holds ``position``, from ``SHOW BINLOG EVENTS`` rows of
    ``position.file`` in order (keys Pos, Event_type, End_log_pos, Info)."""
    start: int | None = None  # where the open transaction began (None: between transactions)
    starts: list[int] = []  # event starts seen near the position, for the error message
    last_end = 4
    for e in events:
        pos, kind, end = int(e["Pos"]), str(e["Event_type"]), int(e["End_log_pos"])
        if pos > position.pos:
            break
        starts = (starts + [pos])[-3:]
        if kind in _STARTS:
            start = pos
        elif kind == "Query":
            meaning = classify(_USE.sub("", str(e.get("Info") or "")), None, "", _NO_TABLES).kind
            if meaning in (QueryKind.BEGIN, QueryKind.XA_START):
                start = pos if start is None else start
            elif meaning is QueryKind.INSIDE or (meaning is QueryKind.DML and start is not None):
                pass
            else:
                start = None if pos < position.pos else start
        elif kind in _OUTSIDE:
            start = None if pos < position.pos else start
        elif start is None and pos < position.pos:
            start = pos  # rows without a BEGIN: the reader starts their transaction there too
        if pos == position.pos:
            if start is None or start == pos:
                return Boundary(position, False)
            return Boundary(Position(position.file, start), True)
        if kind in _ENDS and pos < position.pos:
            start = None
        last_end = end
    if position.pos == last_end and start is None:
        return Boundary(position, False)  # the end of the file (or of what is written so far)
    near = ", ".join(str(p) for p in starts) or "(none)"
    raise ConfigError(
        f"binlog position {position} is not the start of an event (events near it start at {near}, "
        f"the file's events end at {last_end}): give a position that `SHOW BINLOG EVENTS IN "
        f"'{position.file}'` lists, e.g. one that `wpcdc offsets show` or an error message named"
    )
