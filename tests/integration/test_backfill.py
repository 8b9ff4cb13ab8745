"""Backfill against the real multisite: complete documents, resumable, and in order with the stream."""

from __future__ import annotations

import hashlib
import time
from typing import Any

import pymysql
import pytest

from tests.integration.harness import (
    Connector,
    Workload,
    admin_connection,
    check_stream,
    database_state,
    fold,
    wait_until,
)

pytestmark = pytest.mark.integration


def _comparable(value: Any, like: Any = None) -> Any:
    """Values the size policy truncated compare by their digest."""
    if isinstance(value, dict) and value.get("$truncated"):
        return value["sha256"]
    if isinstance(like, dict) and like.get("$truncated") and isinstance(value, str):
        return hashlib.sha256(value.encode()).hexdigest()
    return value


def assert_matches_database(events: list[dict[str, Any]], port: int) -> None:
    state, db = fold(events), database_state(port)
    missing = sorted(set(db) - set(state))
    assert not missing, f"{len(missing)} posts never reached the topic: {missing[:10]}"
    for key, want in db.items():
        got = state[key]
        assert got["row"]["post_title"] == want["row"]["post_title"], f"{key} title"
        assert got["row"]["post_status"] == want["row"]["post_status"], f"{key} status"
        assert {k: (name, _comparable(v)) for k, (name, v) in got["meta"].items()} == {
            k: (name, _comparable(v, like=got["meta"].get(k, (None, None))[1])) for k, (name, v) in want["meta"].items()
        }, f"{key} meta"
        assert got["terms"] == want["terms"], f"{key} terms"


def test_backfill_gives_one_complete_document_per_post(connectors, wordpress, stack) -> None:  # type: ignore[no-untyped-def]
    wordpress.seed(12, with_terms=True, with_meta=True)
    wordpress.seed(5, with_terms=True, with_meta=True, blog=2)
    c: Connector = connectors(subcommand="backfill", extra=["--snapshot-chunk-size", "7"])
    c.start(wait=False)
    assert c.proc is not None and c.proc.wait(180) == 0, c.log()[-3000:]
    events = c.events()
    snapshots = [e for e in events if e["op"] == "snapshot"]
    keys = [(e["blog_id"], e["post_id"]) for e in snapshots]
    assert len(keys) == len(set(keys)), "a post got two snapshot documents"
    assert {2} <= {b for b, _ in keys} and {1} <= {b for b, _ in keys}
    assert all(e["source"]["snapshot"] and e["before"] is None for e in snapshots)
    check_stream(events)
    assert_matches_database(events, stack.mysql)
    saved = c.checkpoint()
    assert saved is not None and saved.snapshot and saved.snapshot["finished_ms"]
    assert saved.snapshot["posts_done"] == saved.snapshot["total"] >= len(snapshots)


def test_killed_backfill_resumes_where_it_stood(connectors, wordpress, stack) -> None:  # type: ignore[no-untyped-def]
    wordpress.seed(40, with_terms=True, with_meta=True)  # enough posts to be killed mid-way, whatever ran before
    c: Connector = connectors(subcommand="backfill",
                              extra=["--snapshot-chunk-size", "5", "--snapshot-rows-per-second", "80"])
    c.start(wait=False)

    def midway() -> bool:
        cp = c.checkpoint()
        return bool(cp and cp.snapshot and cp.snapshot["posts_done"] >= 15 and not cp.snapshot["finished_ms"])

    wait_until(midway, 120, 0.2, "the backfill to be partly done")
    c.kill()
    cp = c.checkpoint()
    assert cp is not None and cp.snapshot is not None
    done_before, snapshot_id = cp.snapshot["posts_done"], cp.snapshot["id"]

    c.extra = ["--snapshot-chunk-size", "50"]
    c.start(wait=False)  # `wpcdc backfill` again: resumes the interrupted snapshot
    assert c.proc is not None and c.proc.wait(180) == 0, c.log()[-3000:]
    assert f"backfill {snapshot_id}" in c.log() and "resuming at {" in c.log()
    events = c.events()
    snapshots = [(e["blog_id"], e["post_id"]) for e in events if e["op"] == "snapshot"]
    assert len(snapshots) == len(set(snapshots)), "the resumed backfill repeated posts"
    final = c.checkpoint()
    assert final is not None and final.snapshot is not None and final.snapshot["id"] == snapshot_id
    assert final.snapshot["posts_done"] == final.snapshot["total"] > done_before
    assert_matches_database(events, stack.mysql)


def site_rows(port: int) -> int:
    """Rows a whole-site backfill reads (posts, meta, term relationships of every blog)."""
    conn = admin_connection(port, "wordpress")
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT table_name FROM information_schema.tables WHERE table_schema = 'wordpress' AND "
                        "table_name REGEXP '^wp_([0-9]+_)?(posts|postmeta|term_relationships)$'")
            total = 0
            for (table,) in cur.fetchall():
                cur.execute(f"SELECT COUNT(*) FROM `{table}`")
                total += cur.fetchone()[0]
            return total
    finally:
        conn.close()


def test_backfill_beside_concurrent_edits_ends_equal_to_the_database(connectors, wordpress, stack) -> None:  # type: ignore[no-untyped-def]
    # Throttled so that edits land while it runs, to about a minute whatever the suite (or an
    # earlier run on the same stack) has put into the site: at a fixed 400 rows/s a site grown to
    # 10,000 posts outlasted the wait below.
    rate = max(400, site_rows(stack.mysql) // 60)
    c: Connector = connectors(window=0.5, extra=["--snapshot", "initial", "--snapshot-chunk-size", "10",
                                                 "--snapshot-rows-per-second", str(rate)])
    # Edits of posts that exist before the backfill, so some get a snapshot and then stream events.
    workload = Workload(wordpress, seed=11, posts=4, existing=wordpress.seed(10, with_terms=True, with_meta=True))
    c.start(wait=False)
    workload.start()
    try:
        wait_until(lambda: (cp := c.checkpoint()) and cp.snapshot and cp.snapshot["finished_ms"], 240, 0.5,
                   "the backfill to finish")
        time.sleep(3)  # and edits after it, on posts it has documented
    finally:
        workload.stop.set()
        workload.join(30)
    assert workload.error is None, workload.error
    time.sleep(3)  # the last edits' windows close
    assert c.stop() == 0
    events = c.events()
    check_stream(events)
    assert_matches_database(events, stack.mysql)
    # Both sources really interleaved: some posts have a snapshot and stream events after it.
    by_post: dict[tuple[int, int], list[str]] = {}
    for e in events:
        by_post.setdefault((e["blog_id"], e["post_id"]), []).append(e["op"])
    assert any("snapshot" in ops and ops.index("snapshot") < len(ops) - 1 for ops in by_post.values())


def test_backfill_of_a_subset(connectors, wordpress) -> None:  # type: ignore[no-untyped-def]
    page = wordpress.create_post("a page on blog two", status="publish", type="page", blog=2)
    post = wordpress.create_post("a post on blog two", status="publish", blog=2)
    c: Connector = connectors(subcommand="backfill",
                              extra=["--snapshot-blogs", "2", "--snapshot-post-types", "page"])
    c.start(wait=False)
    assert c.proc is not None and c.proc.wait(120) == 0, c.log()[-3000:]
    snapshots = [e for e in c.events() if e["op"] == "snapshot"]
    assert snapshots and {(e["blog_id"], e["post_type"]) for e in snapshots} == {(2, "page")}
    assert (2, page) in {(e["blog_id"], e["post_id"]) for e in snapshots}
    assert (2, post) not in {(e["blog_id"], e["post_id"]) for e in snapshots}


def test_when_needed_snapshots_after_a_purged_binlog(connectors, wordpress, stack) -> None:  # type: ignore[no-untyped-def]
    c: Connector = connectors(extra=["--snapshot", "when_needed", "--snapshot-post-types", "page"])
    c.start()  # a new connector: when_needed takes the initial snapshot too
    wait_until(lambda: (cp := c.checkpoint()) and cp.snapshot and cp.snapshot["finished_ms"], 120, 0.5,
               "the initial snapshot")
    assert c.stop() == 0
    conn = pymysql.connect(host="127.0.0.1", port=stack.mysql, user="admin", password="admin-pw", autocommit=True)
    with conn, conn.cursor() as cur:
        before = len([e for e in c.events() if e["op"] == "snapshot"])
        cur.execute("FLUSH BINARY LOGS")
        pid = wordpress.create_post("written while wpcdc was down", status="publish", type="page")
        cur.execute("SHOW MASTER STATUS")
        cur.execute(f"PURGE BINARY LOGS TO '{cur.fetchone()[0]}'")
        cur.execute("SHOW BINARY LOGS")
        left = {r[0] for r in cur.fetchall()}
    first = c.checkpoint()
    assert first is not None and first.snapshot is not None
    assert first.resume.file not in left, "the server kept the file (another replica is reading it)"
    c.start(wait=False)
    wait_until(lambda: (cp := c.checkpoint()) and cp.snapshot and cp.snapshot["id"] != first.snapshot["id"]
               and cp.snapshot["finished_ms"], 120, 0.5, "the snapshot after the purge")
    assert "starting over at the current end with a new snapshot" in c.log()
    snapshots = [e for e in c.events() if e["op"] == "snapshot"]
    assert len(snapshots) > before and (1, pid) in {(e["blog_id"], e["post_id"]) for e in snapshots}
    assert c.stop() == 0
