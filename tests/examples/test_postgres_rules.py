"""The PostgreSQL recipe's rules (examples/postgres/upsert.py) record by record, against the real
PostgreSQL: the cases a random workload may not hit in a given run (a stale event, a snapshot
replacing meta and terms, a delete then its tombstone, a term renamed before or after a post event
that shows its old name, an event the size policy cut).

Events are made by hand in the documented format (docs/events.md), like a consumer's own tests.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import psycopg
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "examples" / "postgres"))

from upsert import apply_post_record, apply_term_record  # noqa: E402

pytestmark = pytest.mark.integration
SCHEMA = Path(__file__).resolve().parents[2] / "examples" / "postgres" / "schema.sql"
TAG = {"term_taxonomy_id": 7, "taxonomy": "post_tag", "term_id": 5, "slug": "news", "name": "News"}


def row(post_id: int, title: str, status: str = "publish") -> dict[str, Any]:
    return {"ID": post_id, "post_type": "post", "post_status": status, "post_title": title,
            "post_name": title.lower(), "post_content": f"{title} body", "post_excerpt": "", "post_author": 1,
            "post_parent": 0, "menu_order": 0, "post_date": "2026-01-02T03:04:05",
            "post_modified": "2026-01-02T03:04:05"}


def event(post_id: int, seq: int, op: str, after: dict[str, Any] | None, *, meta: list[Any] | None = None,
          added: list[Any] | None = None, removed: list[Any] | None = None, **more: Any) -> dict[str, Any]:
    return {"schema_version": 1, "event_id": f"1-{post_id}-{seq}", "op": op, "action": op, "blog_id": 1,
            "post_id": post_id, "post_type": "post", "seq": seq, "before": None, "after": after,
            "link": {"before": None, "after": {"url": f"http://x/{post_id}/", "path": f"/{post_id}/"}},
            "meta": meta or [], "terms": {"added": added or [], "removed": removed or []}, "revisions": [],
            **more}


def term_event(seq: int, op: str, name: str | None) -> dict[str, Any]:
    after = None if name is None else {"name": name, "slug": "news", "parent": 0, "description": ""}
    return {"schema_version": 1, "op": op, "blog_id": 1, "term_id": 5, "term_taxonomy_id": 7,
            "taxonomy": "post_tag", "seq": seq, "after": after}


async def apply(dsn: str, *records: tuple[str, Any]) -> None:
    """Each (topic kind, value) in its own transaction, as the consumer would across batches."""
    async with await psycopg.AsyncConnection.connect(dsn, autocommit=True) as conn:
        for offset, (kind, value) in enumerate(records):
            async with conn.transaction(), conn.cursor() as cur:
                if kind == "term":
                    await apply_term_record(cur, b"1:7", value)
                else:
                    post = value["post_id"] if value else int(kind.split(":")[1])
                    await apply_post_record(cur, f"1:{post}".encode(), value, ("t", 0, offset))


def query(dsn: str, sql: str) -> list[tuple[Any, ...]]:
    with psycopg.connect(dsn) as conn:
        return conn.execute(sql).fetchall()


@pytest.fixture
def dsn(pg_database: str) -> str:
    with psycopg.connect(pg_database, autocommit=True) as conn:
        conn.execute(SCHEMA.read_text())
    return pg_database


async def test_stale_event_changes_nothing_and_is_recorded(dsn: str) -> None:
    await apply(dsn, ("post", event(1, 200, "create", row(1, "New"))),
                ("post", event(1, 100, "update", row(1, "Old"))))
    assert query(dsn, "SELECT post_title, seq FROM posts") == [("New", 200)]
    assert query(dsn, "SELECT post_id, seq, stored_seq FROM skipped") == [(1, 100, 200)]
    assert query(dsn, "SELECT seq FROM applied") == [(200,)]


async def test_snapshot_replaces_meta_and_terms_changes_patch_them(dsn: str) -> None:
    other = {**TAG, "term_taxonomy_id": 8, "term_id": 6, "slug": "old", "name": "Old"}
    await apply(dsn,
                ("post", event(1, 10, "create", row(1, "A"), added=[TAG, other],
                               meta=[{"meta_id": 1, "key": "a", "op": "add", "before": None, "after": "1"},
                                     {"meta_id": 2, "key": "b", "op": "add", "before": None, "after": "2"}])),
                ("post", event(1, 20, "update", row(1, "A"), removed=[other],
                               meta=[{"meta_id": 1, "key": "a", "op": "update", "before": "1", "after": "one"},
                                     {"meta_id": 3, "key": "c", "op": "add", "before": None, "after": None}])))
    assert query(dsn, "SELECT meta_id, meta_key, meta_value FROM post_meta ORDER BY meta_id") == [
        (1, "a", "one"), (2, "b", "2"), (3, "c", None)]
    assert query(dsn, "SELECT term_taxonomy_id FROM post_terms") == [(7,)]
    # A backfill document is the whole post: what it does not list is gone.
    await apply(dsn, ("post", event(1, 30, "snapshot", row(1, "A"), added=[other],
                                    meta=[{"meta_id": 2, "key": "b", "op": "add", "before": None, "after": "2"}])))
    assert query(dsn, "SELECT meta_id FROM post_meta") == [(2,)]
    assert query(dsn, "SELECT term_taxonomy_id FROM post_terms") == [(8,)]


async def test_delete_keeps_the_seq_until_the_tombstone(dsn: str) -> None:
    await apply(dsn, ("post", event(1, 10, "create", row(1, "A"), added=[TAG],
                                    meta=[{"meta_id": 1, "key": "a", "op": "add", "before": None, "after": "1"}])),
                ("post", event(1, 20, "delete", None)),
                ("post", event(1, 15, "update", row(1, "Resurrected"))))  # older than the delete
    assert query(dsn, "SELECT count(*) FROM posts") == [(0,)]
    assert query(dsn, "SELECT count(*) FROM post_meta") == [(0,)]
    assert query(dsn, "SELECT count(*) FROM post_terms") == [(0,)]
    assert query(dsn, "SELECT seq FROM post_versions") == [(20,)]
    await apply(dsn, ("post:1", None))
    assert query(dsn, "SELECT count(*) FROM post_versions") == [(0,)]


@pytest.mark.parametrize("rename_first", [True, False])
async def test_the_newer_seq_names_a_term_whichever_topic_is_read_first(dsn: str, rename_first: bool) -> None:
    post = ("post", event(1, 10, "create", row(1, "A"), added=[TAG]))  # shows the old name
    rename = ("term", term_event(20, "update", "Headlines"))
    await apply(dsn, *([rename, post] if rename_first else [post, rename]))
    assert query(dsn, "SELECT name FROM post_terms_named") == [("Headlines",)]
    await apply(dsn, ("term", term_event(30, "delete", None)))
    assert query(dsn, "SELECT name FROM post_terms_named") == [(None,)]


async def test_an_event_the_size_policy_cut_flags_the_post_until_a_snapshot(dsn: str) -> None:
    cut = {**row(1, "Big"), "post_content": {"$truncated": True, "bytes": 2_000_000, "sha256": "ab", "head": "x"}}
    await apply(dsn, ("post", event(1, 10, "create", cut, truncated=["after.post_content"])))
    assert query(dsn, "SELECT post_content, incomplete FROM posts") == [(None, True)]
    await apply(dsn, ("post", event(1, 20, "update", row(1, "Big"))))
    assert query(dsn, "SELECT incomplete FROM posts") == [(True,)]  # sticky: meta may have been cut too
    await apply(dsn, ("post", event(1, 30, "snapshot", row(1, "Big"))))
    assert query(dsn, "SELECT post_content, incomplete FROM posts") == [("Big body", False)]
