"""Binlog rows → WordPress row changes.

mysql-replication hands us rows as ``{"values": …}`` (insert, delete) or
``{"before_values": …, "after_values": …}`` (update). This module names the table (blog id,
kind), the operation and the transaction, and drops what wpcdc does not read. No I/O.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping
from typing import Any

from cdc.model import RowChange, RowsBatch, TxnRef
from cdc.position import Position
from cdc.wordpress import TableNames

OPS = ("insert", "update", "delete")


def normalize_rows(
    tables: TableNames,
    table: str,
    op: str,
    rows: Iterable[Mapping[str, Any]],
    position: Position,
    txn: TxnRef,
    ts: int,
) -> RowsBatch | None:
    """One rows event as a batch of RowChanges, or None when the table is not WordPress's."""
    wp_table = tables.parse(table)
    if wp_table is None:
        return None
    if op not in OPS:
        raise ValueError(f"unknown row operation {op!r}")
    changes = []
    for row in rows:
        if op == "update":
            before, after = dict(row["before_values"]), dict(row["after_values"])
        elif op == "insert":
            before, after = None, dict(row["values"])
        else:
            before, after = dict(row["values"]), None
        changes.append(RowChange(wp_table, op, before, after, position, txn, ts))
    return RowsBatch(tuple(changes), position, txn, time.monotonic())
