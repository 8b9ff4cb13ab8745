"""The WordPress driver is real: what it does through WordPress's PHP API is what MariaDB holds.

Every check reads the tables directly with pymysql (as the ``wordpress`` user, like WordPress
itself), never through the driver alone - except where the driver's ``get_post`` is compared
with the database, which is what later CDC tests rely on.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from typing import Any

import pymysql
import pytest
from pymysql.cursors import DictCursor

import stack as local_stack
from wordpress import WordPress, WordPressError

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def wp(stack: local_stack.Ports) -> WordPress:
    return WordPress.multisite()


@pytest.fixture(scope="module")
def single(stack: local_stack.Ports) -> WordPress:
    return WordPress.single()


def _connect(port: int, database: str) -> pymysql.connections.Connection:
    return pymysql.connect(host="127.0.0.1", port=port, user=local_stack.WP_USER,
                           password=local_stack.WP_PASSWORD, database=database,
                           charset="utf8mb4", autocommit=True, cursorclass=DictCursor)


@pytest.fixture(scope="module")
def db(stack: local_stack.Ports) -> Iterator[pymysql.connections.Connection]:
    conn = _connect(stack.mysql, "wordpress")
    yield conn
    conn.close()


@pytest.fixture(scope="module")
def single_db(stack: local_stack.Ports) -> Iterator[pymysql.connections.Connection]:
    conn = _connect(stack.mysql, "wpsingle")
    yield conn
    conn.close()


def q(conn: pymysql.connections.Connection, sql: str, *args: Any) -> list[dict[str, Any]]:
    with conn.cursor() as cur:
        cur.execute(sql, args)
        return list(cur.fetchall())


def post_row(conn: pymysql.connections.Connection, prefix: str, post_id: int) -> dict[str, Any] | None:
    rows = q(conn, f"SELECT * FROM {prefix}posts WHERE ID = %s", post_id)
    return rows[0] if rows else None


def meta(conn: pymysql.connections.Connection, prefix: str, post_id: int) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for row in q(conn, f"SELECT meta_key, meta_value FROM {prefix}postmeta WHERE post_id = %s "
                       "ORDER BY meta_id", post_id):
        out.setdefault(row["meta_key"], []).append(row["meta_value"])
    return out


def terms(conn: pymysql.connections.Connection, prefix: str, post_id: int) -> set[tuple[str, str]]:
    rows = q(conn, f"""SELECT tt.taxonomy, t.name FROM {prefix}term_relationships tr
                       JOIN {prefix}term_taxonomy tt USING (term_taxonomy_id)
                       JOIN {prefix}terms t USING (term_id)
                       WHERE tr.object_id = %s""", post_id)
    return {(r["taxonomy"], r["name"]) for r in rows}


def as_text(row: dict[str, Any]) -> dict[str, Any]:
    """A pymysql row the way PHP's wpdb returns it (datetimes as 'Y-m-d H:i:s' strings)."""
    return {k: (v.strftime("%Y-%m-%d %H:%M:%S") if hasattr(v, "strftime") else v)
            for k, v in row.items()}


def test_created_post_is_in_wp_posts_with_terms_and_meta(wp: WordPress, db) -> None:
    post_id = wp.create_post(
        "Driver post 'quoted' \\ backslash", "<!-- wp:paragraph --><p>Hello ünïcode</p><!-- /wp:paragraph -->",
        status="publish", tags=["driver-tag", "Second Tag"], categories=["Driver Category"],
        meta={"plain": "v1", "structured": {"a": 1, "list": ["x", "y"]}},
    )
    row = post_row(db, "wp_", post_id)
    assert row is not None
    assert row["post_title"] == "Driver post 'quoted' \\ backslash"  # unslashed exactly once
    assert row["post_status"] == "publish" and row["post_type"] == "post"
    assert row["post_author"] == 1
    assert "ünïcode" in row["post_content"]
    assert row["post_date_gmt"] != row["post_date"]  # the site runs in Europe/Berlin

    assert terms(db, "wp_", post_id) == {("post_tag", "driver-tag"), ("post_tag", "Second Tag"),
                                         ("category", "Driver Category")}
    stored = meta(db, "wp_", post_id)
    assert stored["plain"] == ["v1"]
    # Arrays are stored PHP-serialized - the CDC will see exactly this string.
    assert stored["structured"] == ['a:2:{s:1:"a";i:1;s:4:"list";a:2:{i:0;s:1:"x";i:1;s:1:"y";}}']

    # The driver's get_post is the database state, row for row.
    got = wp.get_post(post_id)
    assert got["post"] == as_text(row)
    assert got["meta"] == stored
    assert {(t["taxonomy"], t["name"]) for t in got["terms"]} == terms(db, "wp_", post_id)


def test_post_on_blog_2_lands_in_wp_2_posts(wp: WordPress, db) -> None:
    title = f"Blog two {time.time_ns()}"
    post_id = wp.create_post(title, "on the second blog", status="publish", tags=["b2"], blog=2)
    assert wp.table("posts", 2) == "wp_2_posts"
    row = post_row(db, "wp_2_", post_id)
    assert row is not None and row["post_title"] == title
    assert "/second/" in row["guid"]
    assert not q(db, "SELECT ID FROM wp_posts WHERE post_title = %s", title)
    # No category given: WordPress assigns the blog's default one.
    assert terms(db, "wp_2_", post_id) == {("post_tag", "b2"), ("category", "Uncategorized")}
    # Blogs 1 and 2 are the install's; other tests may add blogs after them.
    assert q(db, "SELECT blog_id, path FROM wp_blogs ORDER BY blog_id")[:2] == [
        {"blog_id": 1, "path": "/"}, {"blog_id": 2, "path": "/second/"}]


def test_single_site_with_site_prefix(single: WordPress, single_db) -> None:
    info = single.info()
    assert (info["multisite"], info["prefix"], info["database"]) == (False, "site_", "wpsingle")
    post_id = single.create_post("Single site post", "x", status="publish", tags=["solo"],
                                 meta={"m": 42})
    row = post_row(single_db, "site_", post_id)
    assert row is not None and row["post_title"] == "Single site post"
    assert terms(single_db, "site_", post_id) == {("post_tag", "solo"),
                                                  ("category", "Uncategorized")}
    assert meta(single_db, "site_", post_id)["m"] == ["42"]
    with pytest.raises(WordPressError, match="single site"):
        single.run("info", blog=2)


def test_block_editor_flow_publishes_with_a_revision(wp: WordPress, db) -> None:
    post_id = wp.editor_new()
    row = post_row(db, "wp_", post_id)
    assert row is not None
    assert (row["post_status"], row["post_title"]) == ("auto-draft", "Auto Draft")
    assert "_edit_lock" in meta(db, "wp_", post_id)

    saved = wp.rest_save(post_id, title="Written in the block editor",
                         content="<!-- wp:paragraph --><p>Body</p><!-- /wp:paragraph -->",
                         status="publish", tags=["editor-tag"], categories=["Editor Category"])
    assert saved["http_status"] == 200 and saved["status"] == "publish"

    # Age the row so the meta box request's own write to post_modified is visible.
    with db.cursor() as cur:
        cur.execute("UPDATE wp_posts SET post_modified = '2001-01-01 00:00:00', "
                    "post_modified_gmt = '2001-01-01 00:00:00' WHERE ID = %s", (post_id,))
    wp.metabox_save(post_id, original_status="auto-draft")

    row = post_row(db, "wp_", post_id)
    assert row is not None
    assert row["post_status"] == "publish"
    assert row["post_title"] == "Written in the block editor"
    assert row["post_modified"].year > 2001  # edit_post() rewrote the row again
    assert terms(db, "wp_", post_id) == {("post_tag", "editor-tag"),
                                         ("category", "Editor Category")}
    revisions = q(db, "SELECT post_name, post_status, post_title FROM wp_posts "
                      "WHERE post_parent = %s AND post_type = 'revision'", post_id)
    assert {"post_name": f"{post_id}-revision-v1", "post_status": "inherit",
            "post_title": "Written in the block editor"} in revisions
    stored = meta(db, "wp_", post_id)
    assert stored["_edit_last"] == ["1"]  # written by edit_post(), i.e. the meta box request
    assert stored["_edit_lock"][0].endswith(":1")

    # Autosave of a published post: a separate "-autosave-v1" revision, the post is untouched.
    autosave = wp.run("autosave", post_id=post_id, content="unsaved edit")
    assert autosave["autosave_type"] == "revision" and autosave["autosave_id"] != post_id
    assert q(db, "SELECT post_name, post_content FROM wp_posts WHERE ID = %s",
             autosave["autosave_id"]) == [{"post_name": f"{post_id}-autosave-v1",
                                           "post_content": "unsaved edit"}]
    assert "unsaved edit" not in post_row(db, "wp_", post_id)["post_content"]  # type: ignore[index]


def test_trash_untrash_delete(wp: WordPress, db) -> None:
    post_id = wp.create_post("Doomed", "gone soon", status="publish", tags=["doomed"],
                             meta={"keep": "me"})
    wp.update_post(post_id, content="gone soon, edited")  # leaves a revision behind
    assert q(db, "SELECT COUNT(*) AS n FROM wp_posts WHERE post_parent = %s "
                 "AND post_type = 'revision'", post_id)[0]["n"] >= 1

    assert wp.trash(post_id)["status"] == "trash"
    stored = meta(db, "wp_", post_id)
    assert stored["_wp_trash_meta_status"] == ["publish"]
    assert "_wp_trash_meta_time" in stored
    assert post_row(db, "wp_", post_id)["post_name"] == "doomed__trashed"  # type: ignore[index]

    # Since WordPress 5.6 untrash restores to draft, unless asked for the previous status.
    assert wp.untrash(post_id)["status"] == "draft"
    assert "_wp_trash_meta_status" not in meta(db, "wp_", post_id)
    wp.run("publish", post_id=post_id)
    wp.trash(post_id)
    assert wp.untrash(post_id, restore_previous_status=True)["status"] == "publish"

    assert wp.delete(post_id)["deleted"] is True
    assert post_row(db, "wp_", post_id) is None
    assert meta(db, "wp_", post_id) == {}
    assert terms(db, "wp_", post_id) == set()
    assert not q(db, "SELECT ID FROM wp_posts WHERE post_parent = %s", post_id)


def test_schedule_then_cron_publishes(wp: WordPress, db) -> None:
    post_id = wp.create_post("Scheduled", "later")
    result = wp.run("schedule", post_id=post_id, date=int(time.time()) + 3600)
    assert result["status"] == "future" and result["next_run"]
    cron = q(db, "SELECT option_value FROM wp_options WHERE option_name = 'cron'")[0]["option_value"]
    assert f"a:1:{{i:0;i:{post_id};}}" in cron  # the publish_future_post event's args

    result = wp.run("publish_scheduled", post_id=post_id)
    assert (result["status"], result["unscheduled"]) == ("publish", True)
    cron = q(db, "SELECT option_value FROM wp_options WHERE option_name = 'cron'")[0]["option_value"]
    assert f"a:1:{{i:0;i:{post_id};}}" not in cron


def test_attachments_and_bulk_edit(wp: WordPress, db) -> None:
    first, second = wp.seed(2)
    attachment_id = wp.upload_attachment("driver-test.png", parent_id=first,
                                         set_thumbnail_of=first)
    att = post_row(db, "wp_", attachment_id)
    assert att is not None
    assert (att["post_type"], att["post_status"], att["post_parent"], att["post_mime_type"]) == (
        "attachment", "inherit", first, "image/png")
    att_meta = meta(db, "wp_", attachment_id)
    # Relative to uploads, year/month folders, "-N" appended when the name is taken (reruns).
    assert re.fullmatch(r"\d{4}/\d{2}/driver-test(-\d+)?\.png", att_meta["_wp_attached_file"][0])
    assert att_meta["_wp_attachment_metadata"][0].startswith("a:")  # serialized: width, height...
    assert meta(db, "wp_", first)["_thumbnail_id"] == [str(attachment_id)]

    done = wp.run("bulk_edit", post_ids=[first, second], status="pending", tags=["bulk-added"])
    assert done["updated"] == [first, second]
    for post_id in (first, second):
        assert post_row(db, "wp_", post_id)["post_status"] == "pending"  # type: ignore[index]
        # Bulk edit adds tags, it never replaces: the seed tags are still there.
        tags = {name for tax, name in terms(db, "wp_", post_id) if tax == "post_tag"}
        assert "bulk-added" in tags and len(tags) == 3


def test_failures_are_clear(wp: WordPress) -> None:
    with pytest.raises(WordPressError, match="post 987654321 does not exist"):
        wp.trash(987654321)
    with pytest.raises(WordPressError, match="unknown action"):
        wp.run("no_such_action")
    with pytest.raises(WordPressError, match="blog 99 does not exist"):
        wp.run("info", blog=99)
