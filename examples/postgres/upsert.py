"""What one wpcdc record does to the tables of schema.sql: the rules a consumer in any language needs.

Everything here runs inside the caller's transaction, the one that also stores the Kafka offset,
so a record's rows and "this record is done" are committed together or not at all. The rules,
from the event contract (docs/events.md):

- A post's events come in strictly increasing ``seq``: one not newer than the post's stored
  ``seq`` is not applied (recorded in ``skipped``).
- ``snapshot`` (a backfill document) is the whole post: its meta and terms replace the stored ones.
  Other events carry only the meta rows and terms that changed.
- ``delete`` removes the post, its meta and its terms; the tombstone that follows (a null value)
  forgets the post's ``seq`` as well.
- Term events rename, re-slug or delete a term; the newer ``seq`` wins between them and the
  names post events carry.
"""

from __future__ import annotations

import json
from typing import Any

from psycopg import AsyncCursor

Event = dict[str, Any]

POST_COLUMNS = ("post_type", "post_status", "post_title", "post_name", "post_content", "post_excerpt",
                "post_author", "post_parent", "menu_order", "post_date", "post_modified")


def parse_key(key: bytes | None) -> tuple[int, int]:
    """``b"2:17"`` -> (2, 17): the blog and the post (or term_taxonomy_id) a record is about."""
    if key is None:
        raise ValueError("a wpcdc record without a key: is this a wpcdc topic?")
    blog, _, ident = key.decode().partition(":")
    return int(blog), int(ident)


def _plain(value: Any) -> tuple[Any, bool]:
    """A column value as stored, and whether it is one (False: a $truncated or $base64 marker)."""
    if isinstance(value, dict):
        return None, False
    return value, True


async def apply_post_record(cur: AsyncCursor[Any], key: bytes | None, value: Event | None,
                            where: tuple[str, int, int]) -> bool:
    """Apply one record of the post topic; False when it was stale and left the tables alone."""
    blog_id, post_id = parse_key(key)
    if value is None:  # tombstone: the post is gone for good
        await _delete_post(cur, blog_id, post_id)
        await cur.execute("DELETE FROM post_versions WHERE blog_id = %s AND post_id = %s", (blog_id, post_id))
        return True
    seq = int(value["seq"])
    await cur.execute("SELECT seq FROM post_versions WHERE blog_id = %s AND post_id = %s FOR UPDATE",
                      (blog_id, post_id))
    row = await cur.fetchone()
    if row is not None and row[0] >= seq:
        await cur.execute("INSERT INTO skipped (topic, partition, \"offset\", blog_id, post_id, seq, stored_seq) "
                          "VALUES (%s, %s, %s, %s, %s, %s, %s)", (*where, blog_id, post_id, seq, row[0]))
        return False
    await cur.execute("INSERT INTO post_versions (blog_id, post_id, seq) VALUES (%s, %s, %s) "
                      "ON CONFLICT (blog_id, post_id) DO UPDATE SET seq = EXCLUDED.seq", (blog_id, post_id, seq))
    await cur.execute("INSERT INTO applied (blog_id, post_id, seq, event_id, op) VALUES (%s, %s, %s, %s, %s)",
                      (blog_id, post_id, seq, value["event_id"], value["op"]))
    if value["op"] == "delete" or value.get("after") is None:
        await _delete_post(cur, blog_id, post_id)
        return True
    incomplete = bool(value.get("truncated")) or bool(value.get("omitted"))
    snapshot = value["op"] == "snapshot"
    await _upsert_post(cur, blog_id, post_id, value, incomplete, snapshot)
    await _apply_meta(cur, blog_id, post_id, value.get("meta") or [], replace=snapshot)
    terms = value.get("terms") or {}
    await _apply_terms(cur, blog_id, post_id, terms.get("added") or [], terms.get("removed") or [], seq,
                       replace=snapshot)
    if value.get("term_change"):  # a --term-fanout event names the term as it is now
        await _upsert_term(cur, blog_id, value["term_change"]["term"], seq)
    return True


async def _delete_post(cur: AsyncCursor[Any], blog_id: int, post_id: int) -> None:
    for table in ("posts", "post_meta", "post_terms"):
        await cur.execute(f"DELETE FROM {table} WHERE blog_id = %s AND post_id = %s", (blog_id, post_id))


async def _upsert_post(cur: AsyncCursor[Any], blog_id: int, post_id: int, e: Event, incomplete: bool,
                       snapshot: bool) -> None:
    """The post's row. ``incomplete`` sticks until a snapshot: a list the size policy emptied (meta,
    terms) stays unknown until the whole post is read again."""
    after = e["after"]
    values = []
    for column in POST_COLUMNS:
        value, plain = _plain(after.get(column))
        incomplete = incomplete or not plain
        values.append(value)
    link = (e.get("link") or {}).get("after") or {}
    names = ", ".join(POST_COLUMNS)
    updates = ", ".join(f"{c} = EXCLUDED.{c}" for c in (*POST_COLUMNS, "url", "path", "row", "seq"))
    sticky = "EXCLUDED.incomplete" if snapshot else "posts.incomplete OR EXCLUDED.incomplete"
    await cur.execute(
        f"INSERT INTO posts (blog_id, post_id, {names}, url, path, row, incomplete, seq) "
        f"VALUES (%s, %s, {', '.join(['%s'] * len(POST_COLUMNS))}, %s, %s, %s, %s, %s) "
        f"ON CONFLICT (blog_id, post_id) DO UPDATE SET {updates}, incomplete = {sticky}",
        (blog_id, post_id, *values, link.get("url"), link.get("path"), json.dumps(after), incomplete, e["seq"]))


async def _apply_meta(cur: AsyncCursor[Any], blog_id: int, post_id: int, meta: list[Event], *,
                      replace: bool) -> None:
    if replace:
        await cur.execute("DELETE FROM post_meta WHERE blog_id = %s AND post_id = %s", (blog_id, post_id))
    for m in meta:
        if m["op"] == "delete":
            await cur.execute("DELETE FROM post_meta WHERE blog_id = %s AND meta_id = %s", (blog_id, m["meta_id"]))
            continue
        value, _ = _plain(m["after"])  # a marker: the post is flagged incomplete already
        await cur.execute(
            "INSERT INTO post_meta (blog_id, meta_id, post_id, meta_key, meta_value) VALUES (%s, %s, %s, %s, %s) "
            "ON CONFLICT (blog_id, meta_id) DO UPDATE SET post_id = EXCLUDED.post_id, "
            "meta_key = EXCLUDED.meta_key, meta_value = EXCLUDED.meta_value",
            (blog_id, m["meta_id"], post_id, m["key"], value))


async def _apply_terms(cur: AsyncCursor[Any], blog_id: int, post_id: int, added: list[Event],
                       removed: list[Event], seq: int, *, replace: bool) -> None:
    if replace:
        await cur.execute("DELETE FROM post_terms WHERE blog_id = %s AND post_id = %s", (blog_id, post_id))
    for t in removed:
        await cur.execute("DELETE FROM post_terms WHERE blog_id = %s AND post_id = %s AND term_taxonomy_id = %s",
                          (blog_id, post_id, t["term_taxonomy_id"]))
    for t in added:
        await cur.execute("INSERT INTO post_terms (blog_id, post_id, term_taxonomy_id) VALUES (%s, %s, %s) "
                          "ON CONFLICT DO NOTHING", (blog_id, post_id, t["term_taxonomy_id"]))
        await _upsert_term(cur, blog_id, t, seq)


async def _upsert_term(cur: AsyncCursor[Any], blog_id: int, t: Event, seq: int) -> None:
    """The term's name and slug, unless a newer event already set them."""
    await cur.execute(
        "INSERT INTO terms (blog_id, term_taxonomy_id, term_id, taxonomy, slug, name, seq) "
        "VALUES (%s, %s, %s, %s, %s, %s, %s) ON CONFLICT (blog_id, term_taxonomy_id) DO UPDATE SET "
        "term_id = EXCLUDED.term_id, taxonomy = EXCLUDED.taxonomy, slug = EXCLUDED.slug, name = EXCLUDED.name, "
        "seq = EXCLUDED.seq WHERE terms.seq < EXCLUDED.seq",
        (blog_id, t["term_taxonomy_id"], t["term_id"], t["taxonomy"], t["slug"], t["name"], seq))


async def apply_term_record(cur: AsyncCursor[Any], key: bytes | None, value: Event | None) -> None:
    """Apply one record of the term topic: a created or changed term's name, or its delete."""
    blog_id, tt_id = parse_key(key)
    if value is None:  # tombstone
        await cur.execute("DELETE FROM terms WHERE blog_id = %s AND term_taxonomy_id = %s", (blog_id, tt_id))
        return
    if value["op"] == "delete" or value.get("after") is None:
        await cur.execute("DELETE FROM terms WHERE blog_id = %s AND term_taxonomy_id = %s AND seq < %s",
                          (blog_id, tt_id, value["seq"]))
        return
    after = value["after"]
    await _upsert_term(cur, blog_id, {"term_taxonomy_id": tt_id, "term_id": value["term_id"],
                                      "taxonomy": value["taxonomy"], "slug": _plain(after.get("slug"))[0],
                                      "name": _plain(after.get("name"))[0]}, int(value["seq"]))
