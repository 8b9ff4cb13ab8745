"""Builders for binlog-shaped row changes, so pure-logic tests read like what WordPress writes."""

from __future__ import annotations

import datetime as dt
from typing import Any

from cdc.model import Commit, RowChange, RowsBatch, TxnRef
from cdc.position import Position
from cdc.wordpress import TableKind, WpTable

FILE = "mariadb-bin.000001"


def post_row(post_id: int, **fields: Any) -> dict[str, Any]:
    row: dict[str, Any] = {
        "ID": post_id,
        "post_author": 1,
        "post_date": dt.datetime(2026, 11, 27, 10, 0, 0),
        "post_date_gmt": dt.datetime(2026, 11, 27, 10, 0, 0),
        "post_content": "",
        "post_title": f"Post {post_id}",
        "post_excerpt": "",
        "post_status": "draft",
        "comment_status": "open",
        "ping_status": "open",
        "post_password": "",
        "post_name": f"post-{post_id}",
        "to_ping": "",
        "pinged": "",
        "post_modified": dt.datetime(2026, 11, 27, 10, 0, 0),
        "post_modified_gmt": dt.datetime(2026, 11, 27, 10, 0, 0),
        "post_content_filtered": "",
        "post_parent": 0,
        "guid": f"http://localhost/?p={post_id}",
        "menu_order": 0,
        "post_type": "post",
        "post_mime_type": "",
        "comment_count": 0,
    }
    row.update(fields)
    return row


class Binlog:
    """A fake binlog writer: each call is one autocommit transaction, like WordPress's writes."""

    def __init__(self, blog_id: int = 1, start: int = 1000, ts: int = 1_800_000_000) -> None:
        self.blog_id = blog_id
        self.pos = start
        self.ts = ts
        self.gtid = 0
        self._txn: TxnRef | None = None

    def _table(self, kind: TableKind) -> WpTable:
        return WpTable(self.blog_id, kind)

    def begin(self) -> TxnRef:
        self.gtid += 1
        txn = TxnRef(Position(FILE, self.pos), f"0-1-{self.gtid}", f"0-1-{self.gtid - 1}" if self.gtid > 1 else None)
        self.pos += 100
        self._txn = txn
        return txn

    def rows(self, kind: TableKind, op: str, pairs: list[tuple[dict | None, dict | None]]) -> RowsBatch:
        txn = self._txn or self.begin()
        self.pos += 200
        position = Position(FILE, self.pos)
        changes = tuple(RowChange(self._table(kind), op, b, a, position, txn, self.ts) for b, a in pairs)
        return RowsBatch(changes, position, txn)

    def commit(self) -> Commit:
        self.pos += 31
        self._txn = None
        return Commit(Position(FILE, self.pos), f"0-1-{self.gtid}", self.ts)

    # WordPress-shaped single statements -------------------------------------------------------

    def insert_post(self, row: dict) -> list[Any]:
        return [self.rows(TableKind.POSTS, "insert", [(None, row)]), self.commit()]

    def update_post(self, before: dict, **changes: Any) -> tuple[list[Any], dict]:
        after = {**before, **changes}
        return [self.rows(TableKind.POSTS, "update", [(before, after)]), self.commit()], after

    def delete_post(self, row: dict) -> list[Any]:
        return [self.rows(TableKind.POSTS, "delete", [(row, None)]), self.commit()]

    def add_meta(self, meta_id: int, post_id: int, key: str, value: Any) -> list[Any]:
        row = {"meta_id": meta_id, "post_id": post_id, "meta_key": key, "meta_value": value}
        return [self.rows(TableKind.POSTMETA, "insert", [(None, row)]), self.commit()]

    def update_meta(self, meta_id: int, post_id: int, key: str, old: Any, new: Any) -> list[Any]:
        b = {"meta_id": meta_id, "post_id": post_id, "meta_key": key, "meta_value": old}
        return [self.rows(TableKind.POSTMETA, "update", [(b, {**b, "meta_value": new})]), self.commit()]

    def delete_meta(self, meta_id: int, post_id: int, key: str, value: Any) -> list[Any]:
        row = {"meta_id": meta_id, "post_id": post_id, "meta_key": key, "meta_value": value}
        return [self.rows(TableKind.POSTMETA, "delete", [(row, None)]), self.commit()]

    def relate(self, post_id: int, ttid: int, op: str = "insert") -> list[Any]:
        row = {"object_id": post_id, "term_taxonomy_id": ttid, "term_order": 0}
        pair = (None, row) if op == "insert" else (row, None)
        return [self.rows(TableKind.TERM_RELATIONSHIPS, op, [pair]), self.commit()]

    def new_term(self, term_id: int, ttid: int, taxonomy: str, slug: str, name: str) -> list[Any]:
        t = {"term_id": term_id, "name": name, "slug": slug, "term_group": 0}
        tt = {"term_taxonomy_id": ttid, "term_id": term_id, "taxonomy": taxonomy, "description": "",
              "parent": 0, "count": 0}
        return [self.rows(TableKind.TERMS, "insert", [(None, t)]), self.commit(),
                self.rows(TableKind.TERM_TAXONOMY, "insert", [(None, tt)]), self.commit()]

    def option_noise(self) -> list[Any]:
        """A wp_options write: not a table wpcdc reads, so only the commit reaches us."""
        self.begin()
        return [self.commit()]
