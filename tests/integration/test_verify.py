"""`wpcdc verify` against the real stack: a streamed WordPress workload verifies clean (changes in
flight included), mismatches planted behind the binlog's back are found and named, `--repair`
re-emits exactly those posts (by the running connector, which is neither stopped nor fenced, or
inline with the connector stopped; a connector killed mid-repair finishes it when it starts again),
and verify then passes.

Each test has a blog of its own (other tests write blogs 1 and 2 meanwhile) and a connector that
backfills it first (`--snapshot initial`), so the topic holds every post of the blog.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
import threading
import time
from typing import Any

import orjson
import pymysql
import pytest

from tests.integration.harness import (
    REPO,
    Connector,
    admin_connection,
    check_stream,
    fold,
    unique,
    wait_until,
)

pytestmark = pytest.mark.integration


class Editing:
    """WordPress editing ``posts`` in turn (a title and a meta value, about one a second) in a
    thread while the ``with`` block runs; ``edits`` counts the saves made."""

    def __init__(self, wp: Any, blog: int, posts: tuple[int, ...]) -> None:
        self.wp, self.blog, self.posts = wp, blog, posts
        self.edits = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            post = self.posts[self.edits % len(self.posts)]
            try:
                self.wp.update_post(post, title=f"busy {self.edits}", blog=self.blog)
                self.wp.run("update_meta", self.blog, post_id=post, key="colour", value=f"c{self.edits}")
            except Exception as exc:  # noqa: BLE001 - a busy shared server refusing a connection
                if "WordPressError" not in type(exc).__name__:
                    raise
            self.edits += 1
            self._stop.wait(1.0)

    def __enter__(self) -> Editing:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(30)


def verify(c: Connector, blog: int, *more: str, json: bool = True, timeout: float = 300) -> tuple[int, Any, str]:
    """Run `wpcdc verify` for connector ``c`` on ``blog``: (exit code, report (JSON) or stdout, stderr)."""
    cmd = [sys.executable, "-m", "cdc", "--log-format", "json", "verify", "--name", c.name, "--blogs", str(blog),
           *more, *(["--json"] if json else [])]
    proc = subprocess.run(cmd, env=c.env, cwd=REPO, capture_output=True, text=True, timeout=timeout)
    out: Any = proc.stdout
    if json and proc.stdout.strip():
        out = orjson.loads(proc.stdout)
    return proc.returncode, out, proc.stderr


def new_blog(wordpress: Any, posts: int = 4) -> tuple[int, list[int]]:
    blog = wordpress.create_blog(unique("verify"))
    return blog, wordpress.seed(posts, blog=blog)


def admin(port: int) -> pymysql.connections.Connection:
    """The admin connection, writing behind the binlog's back (the changes no connector can see)."""
    conn = admin_connection(port, "wordpress")
    with conn.cursor() as cur:
        cur.execute("SET SESSION sql_log_bin = 0")
    return conn


def keys(report: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {d["key"]: d for d in report["differ"]}


def test_a_streamed_workload_verifies_clean_with_changes_in_flight(connectors, wordpress) -> None:  # type: ignore[no-untyped-def]
    blog, ids = new_blog(wordpress)
    c: Connector = connectors(window=3.0, extra=["--blogs", str(blog), "--snapshot", "initial"])
    c.start()
    wp = wordpress
    extra = wp.create_post("with tags and meta", "body", status="publish", tags=["v1", "v2"],
                           meta={"colour": "blue"}, blog=blog)
    wp.update_post(ids[0], title="edited", content="new body", blog=blog)
    wp.run("update_meta", blog, post_id=ids[1], key="colour", value="red")
    wp.run("set_tags", blog, post_id=extra, tags=["v3"], append=False)
    wp.trash(ids[2], blog=blog)
    wp.delete(ids[3], blog=blog)

    started = time.monotonic()
    rc, report, err = verify(c, blog)
    seconds = time.monotonic() - started
    assert rc == 0, err[-3000:]
    assert report["differ"] == [] and report["changing"] == [] and report["position"]
    assert report["equal"] == report["compared"] >= len(ids) + 1
    assert seconds < 60, f"verify took {seconds:.1f}s"

    # Edited just before verify starts, inside the connector's 3-second window: not a difference.
    wp.update_post(ids[1], title="in flight", blog=blog)
    rc, report, err = verify(c, blog)
    assert rc == 0 and report["differ"] == [], (report, err[-3000:])

    # Edits while verify runs (one post every ~1.5 s, each post every ~4.5 s: past the window, so
    # the connector keeps up): they land between the fold and the database read, or after it.
    with Editing(wp, blog, (ids[0], ids[1], extra)) as editing:
        time.sleep(2)
        rc, report, err = verify(c, blog)
    assert editing.edits >= 2
    print("edits while verifying:", editing.edits, {k: report[k] for k in ("in_flight", "changing", "equal", "seconds")})
    assert rc == 0 and report["differ"] == [], (report, err[-3000:])
    assert c.running


def test_planted_mismatches_are_named_and_repair_re_emits_exactly_them(connectors, wordpress, stack) -> None:  # type: ignore[no-untyped-def]
    blog, ids = new_blog(wordpress, posts=6)
    c: Connector = connectors(window=0.5, extra=["--blogs", str(blog), "--snapshot", "initial"])
    c.start()
    rc, report, err = verify(c, blog)
    assert rc == 0 and report["differ"] == [], err[-3000:]

    title, rating, gone, untermed, calm = ids[0], ids[1], ids[2], ids[3], ids[4]
    posts, postmeta, rels = (f"wp_{blog}_{t}" for t in ("posts", "postmeta", "term_relationships"))
    conn = admin(stack.mysql)
    with conn, conn.cursor() as cur:
        cur.execute(f"UPDATE {posts} SET post_title = 'planted' WHERE ID = %s", (title,))
        assert cur.execute(f"UPDATE {postmeta} SET meta_value = 'planted' WHERE post_id = %s "
                           "AND meta_key = 'wpcdc_rating'", (rating,)) == 1
        cur.execute(f"DELETE FROM {posts} WHERE ID = %s", (gone,))
        cur.execute(f"INSERT INTO {posts} (post_author, post_date, post_date_gmt, post_content, post_title, "
                    "post_excerpt, post_status, post_name, to_ping, pinged, post_modified, post_modified_gmt, "
                    "post_content_filtered, guid, post_type) VALUES (1, NOW(), NOW(), 'hidden', 'hidden', '', "
                    "'publish', 'hidden', '', '', NOW(), NOW(), '', '', 'post')")
        hidden = cur.lastrowid
        assert cur.execute(f"DELETE FROM {rels} WHERE object_id = %s LIMIT 1", (untermed,)) == 1
    planted = {f"{blog}:{p}" for p in (title, rating, gone, hidden, untermed)}

    rc, report, err = verify(c, blog)
    assert rc == 50, err[-3000:]
    found = keys(report)
    assert set(found) == planted
    assert found[f"{blog}:{title}"]["columns"] == ["post_title"] and found[f"{blog}:{title}"]["row"]
    assert list(found[f"{blog}:{rating}"]["meta"]["keys"].values()) == ["wpcdc_rating"]
    assert found[f"{blog}:{rating}"]["meta"]["changed"] and not found[f"{blog}:{rating}"]["row"]
    assert found[f"{blog}:{gone}"]["kind"] == "extra" and found[f"{blog}:{hidden}"]["kind"] == "missing"
    assert len(found[f"{blog}:{untermed}"]["terms"]["extra"]) == 1
    assert "posts differ between topic" in err

    rc, text, _ = verify(c, blog, json=False)
    assert rc == 50
    assert f"post {blog}:{title}: differs in row (post_title)" in text
    assert f"post {blog}:{rating}: differs in meta changed: wpcdc_rating (meta_id" in text
    assert f"post {blog}:{gone}: in the topic, not in the database" in text
    assert f"post {blog}:{hidden}: in the database, missing from the topic" in text

    # With the connector stopped, the repair runs inline; a stopped connector cannot be waited for.
    assert c.stop() == 0
    wordpress.update_post(calm, title="changed while stopped", blog=blog)
    rc, _, err = verify(c, blog, "--verify-timeout", "2")
    assert rc == 51 and "did not checkpoint past" in err, err[-2000:]
    before = len(c.messages())
    rc, report, err = verify(c, blog, "--repair")
    assert rc == 0, err[-3000:]
    changed_while_stopped = f"{blog}:{calm}"
    assert set(report["repaired"]) == planted | {changed_while_stopped}

    new = c.messages()[before:]
    by_key: dict[str, list[str | None]] = {}
    for m in new:
        by_key.setdefault(m.key, []).append(None if m.value is None else m.value["op"])
    assert set(by_key) == planted | {changed_while_stopped}, "exactly the posts that differed"
    assert by_key[f"{blog}:{gone}"] == ["delete", None], "a delete, then the tombstone"
    for key in planted - {f"{blog}:{gone}"}:
        assert by_key[key] == ["snapshot"], key

    c.start()
    rc, report, err = verify(c, blog)
    assert rc == 0 and report["differ"] == [], (report, err[-3000:])
    # Beside the running connector with nothing to repair: no request, nothing written, exit 0.
    before = len(c.messages())
    rc, report, err = verify(c, blog, "--repair")
    assert rc == 0 and report["differ"] == [] and report["repaired"] == [] and report["requests"] == [], err[-2000:]
    assert len(c.messages()) == before
    assert c.running


def pending_requests(c: Connector) -> dict[str, Any]:
    """The repair requests still pending in the connector's checkpoint topic."""
    from cdc.config import KafkaSettings
    from cdc.repair_requests import pending

    return asyncio.run(pending(KafkaSettings(c.bootstrap), c.checkpoint_topic, c.name)).pending


def plant(port: int, blog: int, title: int, rating: int, gone: int) -> int:
    """Mismatches behind the binlog's back: a title, a meta value, a post deleted, a post added
    (returned)."""
    posts, postmeta = f"wp_{blog}_posts", f"wp_{blog}_postmeta"
    conn = admin(port)
    with conn, conn.cursor() as cur:
        cur.execute(f"UPDATE {posts} SET post_title = 'planted' WHERE ID = %s", (title,))
        assert cur.execute(f"UPDATE {postmeta} SET meta_value = 'planted' WHERE post_id = %s "
                           "AND meta_key = 'wpcdc_rating'", (rating,)) == 1
        cur.execute(f"DELETE FROM {posts} WHERE ID = %s", (gone,))
        cur.execute(f"INSERT INTO {posts} (post_author, post_date, post_date_gmt, post_content, post_title, "
                    "post_excerpt, post_status, post_name, to_ping, pinged, post_modified, post_modified_gmt, "
                    "post_content_filtered, guid, post_type) VALUES (1, NOW(), NOW(), 'hidden', 'hidden', '', "
                    "'publish', 'hidden', '', '', NOW(), NOW(), '', '', 'post')")
        return int(cur.lastrowid)


def test_repair_beside_the_running_connector_while_the_site_is_edited(connectors, wordpress, stack) -> None:  # type: ignore[no-untyped-def]
    blog, ids = new_blog(wordpress, posts=6)
    c: Connector = connectors(window=0.5, extra=["--blogs", str(blog), "--snapshot", "initial"])
    c.start()
    assert c.proc is not None
    pid = c.proc.pid
    rc, report, err = verify(c, blog)
    assert rc == 0 and report["differ"] == [], err[-3000:]

    title, rating, gone, busy1, busy2 = ids[0], ids[1], ids[2], ids[4], ids[5]
    hidden = plant(stack.mysql, blog, title, rating, gone)
    planted = {f"{blog}:{p}" for p in (title, rating, gone, hidden)}
    rc, report, err = verify(c, blog)
    assert rc == 50 and set(keys(report)) == planted, (report, err[-3000:])

    # WordPress goes on editing other posts (and one of the planted ones' meta) throughout.
    with Editing(wordpress, blog, (busy1, busy2)) as editing:
        rc, report, err = verify(c, blog, "--repair")
    assert editing.edits >= 2
    assert rc == 0, err[-4000:]
    assert set(report["repaired"]) == planted and report["differ"] == [] and len(report["requests"]) == 1, report
    [rid] = report["requests"]
    assert "asked the running connector" in err and "comparing again" in err

    # The connector did it: not fenced, never restarted, its log names the request.
    assert c.running and c.proc.pid == pid
    log = c.log()
    assert f"repair {rid}: re-emitting 4 posts" in log
    assert "fenced" not in log.lower() and "retrying in" not in log, log[-3000:]
    # The request is tombstoned; the checkpoint (read by its own key) records the repair finished.
    assert pending_requests(c) == {}
    checkpoint = c.checkpoint()
    assert checkpoint is not None and checkpoint.snapshot is not None
    assert checkpoint.snapshot["id"] == rid and checkpoint.snapshot["finished_ms"], checkpoint.snapshot
    assert checkpoint.snapshot["posts_done"] == 4 and checkpoint.snapshot["ids"] == {str(blog): sorted([title, rating, gone, hidden])}

    # The topic folds to the database for the planted posts.
    folded = fold(c.events(*((blog, p) for p in (title, rating, gone, hidden))))
    by_key = {}
    for m in c.messages():
        if m.post in {(blog, p) for p in (title, rating, gone, hidden)}:
            by_key.setdefault(m.post, []).append(None if m.value is None else m.value["op"])
    assert by_key[(blog, gone)][-2:] == ["delete", None], "a delete, then the tombstone"
    assert folded[(blog, title)]["row"]["post_title"] == "planted"
    assert "planted" in str(folded[(blog, rating)]["meta"])
    assert folded[(blog, hidden)]["row"]["post_title"] == "hidden"
    assert folded[(blog, gone)]["row"] is None

    rc, report, err = verify(c, blog)
    assert rc == 0 and report["differ"] == [], (report, err[-3000:])
    rc, out, err = status(c)
    assert rc == 0 and out["repair_requests"] == [], err[-2000:]
    assert c.running and c.proc.pid == pid


def status(c: Connector) -> tuple[int, Any, str]:
    cmd = [sys.executable, "-m", "cdc", "status", "--name", c.name, "--json"]
    proc = subprocess.run(cmd, env=c.env, cwd=REPO, capture_output=True, text=True, timeout=120)
    return proc.returncode, orjson.loads(proc.stdout) if proc.stdout.strip() else None, proc.stderr


def test_a_connector_killed_mid_repair_finishes_it_when_it_starts_again(connectors, wordpress) -> None:  # type: ignore[no-untyped-def]
    """Posts that existed before the connector started are missing from its topic: the repair
    re-reads them, slowly (a post per chunk, few rows a second), so it is killed with -9 midway."""
    blog, ids = new_blog(wordpress, posts=16)
    slow = ["--blogs", str(blog), "--snapshot-chunk-size", "1", "--snapshot-rows-per-second", "4"]
    c: Connector = connectors(window=0.5, extra=slow)
    c.start()
    rc, report, err = verify(c, blog)
    assert rc == 50, err[-3000:]
    missing = set(keys(report))  # the seeded posts, and those WordPress makes with a blog
    assert missing >= {f"{blog}:{p}" for p in ids} and {d["kind"] for d in report["differ"]} == {"missing"}

    # Not done within the timeout: exit 52, the request stays pending, the connector goes on.
    rc, _, err = verify(c, blog, "--repair", "--repair-timeout", "2")
    assert rc == 52 and "stay pending" in err, err[-3000:]
    [rid] = pending_requests(c)
    rc, out, _ = status(c)
    assert [q["id"] for q in out["repair_requests"]] == [rid] and out["repair_requests"][0]["posts"] == len(missing)

    def midway() -> bool:
        cp = c.checkpoint()
        snap = (cp.snapshot if cp is not None else None) or {}
        return snap.get("id") == rid and 0 < snap.get("posts_done", 0) < len(missing) and not snap.get("finished_ms")

    wait_until(midway, 60, 0.2, "the repair to be midway")
    c.kill()
    assert list(pending_requests(c)) == [rid]

    c.start()  # resumes the repair from the checkpoint, then tombstones the request
    wait_until(lambda: pending_requests(c) == {}, 120, 1.0, "the request to be tombstoned")
    cp = c.checkpoint()
    assert cp is not None and cp.snapshot is not None and cp.snapshot["id"] == rid and cp.snapshot["finished_ms"]
    assert cp.snapshot["posts_done"] == len(missing)
    assert len(c.streamed_from()) == 2
    resumed = [r["message"] for line in c.log().splitlines() if line.startswith("{")
               and str((r := orjson.loads(line)).get("message", "")).startswith(f"backfill {rid}: ")]
    assert len(resumed) == 2 and "resuming at start" in resumed[0] and "resuming at {" in resumed[1], resumed
    rc, report, err = verify(c, blog)
    assert rc == 0 and report["differ"] == [], (report, err[-3000:])
    snapshots = [m.value for m in c.messages() if m.value is not None and m.value["op"] == "snapshot"]
    assert {f"{e['blog_id']}:{e['post_id']}" for e in snapshots} == missing
    check_stream([m.value for m in c.messages() if m.value is not None])
    assert c.running
