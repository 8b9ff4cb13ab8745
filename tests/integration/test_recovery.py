"""Crash and restart: every committed change arrives once, in order, whatever kills the connector.

A WordPress workload runs while the connector is killed with SIGKILL at random moments and
restarted from its checkpoint. Afterwards, read ``read_committed``:

* no event twice (event ids unique) and each post's ``seq`` strictly increasing;
* every binlog row in exactly one event: per post, the rows the events cover add up to what an
  uninterrupted connector reading the same binlog range counts;
* the state folded from the events equals the database (post row, meta, terms).
"""

from __future__ import annotations

import random
import re
import threading
import time
from collections import Counter
from typing import Any

import pymysql
import pytest

from tests.integration.harness import Connector, wait_until

pytestmark = pytest.mark.integration


class Workload(threading.Thread):
    """Editor-like actions on a handful of posts, through the real WordPress driver."""

    def __init__(self, wordpress: Any, seed: int, posts: int = 6) -> None:
        super().__init__(daemon=True)
        self.wp = wordpress
        self.rng = random.Random(seed)
        self.n_posts = posts
        self.stop = threading.Event()
        self.post_ids: list[int] = []
        self.actions = 0
        self.error: BaseException | None = None

    def step(self) -> None:
        rng, wp = self.rng, self.wp
        if len(self.post_ids) < self.n_posts or rng.random() < 0.05:
            pid = wp.create_post(f"crash {rng.random():.6f}", "body", status=rng.choice(["draft", "publish"]),
                                 tags=[f"crash-{rng.randint(1, 4)}"], meta={"n": str(rng.randint(1, 9))})
            self.post_ids.append(pid)
            return
        pid = rng.choice(self.post_ids)
        action = rng.choice(["title", "title", "meta", "meta", "tags", "trash", "untrash", "publish"])
        if action == "title":
            wp.update_post(pid, title=f"t {rng.random():.6f}", content=f"c {rng.random():.6f}")
        elif action == "meta":
            wp.run("update_meta", post_id=pid, key=f"k{rng.randint(1, 3)}", value=str(rng.random()))
        elif action == "tags":
            wp.run("set_tags", post_id=pid, tags=[f"crash-{rng.randint(1, 4)}"], append=rng.random() < 0.5)
        elif action == "trash":
            wp.trash(pid)
        elif action == "untrash":
            wp.untrash(pid)
        else:
            wp.publish(pid, via="update")

    def run(self) -> None:
        try:
            while not self.stop.is_set():
                try:
                    self.step()
                except Exception as exc:  # noqa: BLE001 - trash of a trashed post etc.
                    if "WordPressError" not in type(exc).__name__:
                        raise
                self.actions += 1
        except BaseException as exc:  # noqa: BLE001 - reported by the test
            self.error = exc


def fold(events: list[dict[str, Any]]) -> dict[tuple[int, int], dict[str, Any]]:
    """Replay events into per-post state: row, meta by meta_id, term_taxonomy_ids."""
    state: dict[tuple[int, int], dict[str, Any]] = {}
    for e in events:
        key = (e["blog_id"], e["post_id"])
        s = state.setdefault(key, {"row": None, "meta": {}, "terms": set(), "rows": 0})
        s["rows"] += e["source"]["rows"]
        if e["op"] == "delete":
            s["row"], s["meta"], s["terms"] = None, {}, set()
            continue
        s["row"] = e["after"]
        for m in e["meta"]:
            if m["after"] is None:
                s["meta"].pop(m["meta_id"], None)
            else:
                s["meta"][m["meta_id"]] = (m["key"], m["after"])
        s["terms"] |= {t["term_taxonomy_id"] for t in e["terms"]["added"]}
        s["terms"] -= {t["term_taxonomy_id"] for t in e["terms"]["removed"]}
    return state


def database_state(port: int, post_ids: list[int], ignored: Any) -> dict[int, dict[str, Any]]:
    conn = pymysql.connect(host="127.0.0.1", port=port, user="admin", password="admin-pw", database="wordpress",
                           cursorclass=pymysql.cursors.DictCursor)
    out: dict[int, dict[str, Any]] = {}
    with conn, conn.cursor() as cur:
        for pid in post_ids:
            cur.execute("SELECT post_title, post_status, post_content FROM wp_posts WHERE ID=%s", (pid,))
            row = cur.fetchone()
            cur.execute("SELECT meta_id, meta_key, meta_value FROM wp_postmeta WHERE post_id=%s", (pid,))
            meta = {r["meta_id"]: (r["meta_key"], r["meta_value"]) for r in cur.fetchall()
                    if r["meta_key"] not in ignored}
            cur.execute("SELECT term_taxonomy_id FROM wp_term_relationships WHERE object_id=%s", (pid,))
            terms = {r["term_taxonomy_id"] for r in cur.fetchall()}
            out[pid] = {"row": row, "meta": meta, "terms": terms}
    return out


def check_stream(events: list[dict[str, Any]]) -> None:
    ids = Counter(e["event_id"] for e in events)
    assert not [i for i, n in ids.items() if n > 1], "duplicate events"
    last: dict[tuple[int, int], int] = {}
    for e in events:
        key = (e["blog_id"], e["post_id"])
        assert e["seq"] > last.get(key, -1), f"seq of {key} went backwards"
        last[key] = e["seq"]


@pytest.mark.parametrize("delivery", ["exactly-once"])
def test_kill_9_cycles_lose_nothing_and_repeat_nothing(connectors, wordpress, stack, delivery: str) -> None:  # type: ignore[no-untyped-def]
    rng = random.Random(20261127)
    # A window long against the workload's pace keeps several posts pending at once, so kills land
    # while some posts are already in Kafka past the resume point: the case the marks exist for.
    crashy: Connector = connectors(window=1.5, extra=["--delivery", delivery])
    crashy.start()
    start = crashy.checkpoint()
    assert start is not None
    workload = Workload(wordpress, seed=7)
    workload.start()
    kills = 0
    try:
        for cycle in range(6):
            if cycle % 2:
                time.sleep(rng.uniform(0.5, 3.0))
            else:  # aim: kill right after a checkpoint that has posts emitted past its resume point
                deadline = time.monotonic() + 10
                while time.monotonic() < deadline and not (crashy.checkpoint() or start).emitted:
                    time.sleep(0.05)
            crashy.kill()
            kills += 1
            time.sleep(rng.uniform(0.0, 0.5))
            crashy.start()
    finally:
        workload.stop.set()
        workload.join(30)
    assert workload.error is None, workload.error
    assert workload.actions > 20 and kills == 6
    time.sleep(2.0)
    assert crashy.stop() == 0, crashy.log()[-3000:]
    restarts_with_marks = re.findall(r"streaming from \S+ \(([1-9][0-9]*) posts already emitted", crashy.log())
    assert restarts_with_marks, "no kill landed while posts past the resume point were in Kafka"

    # The reference: one uninterrupted connector over the same binlog range.
    reference: Connector = connectors(window=1.5)
    reference.start("--start", str(start.resume))
    keys = {(1, pid) for pid in workload.post_ids}
    wait_until(lambda: fold(reference.events(*keys)).keys() >= keys, 60, what="reference caught up")
    time.sleep(3.0)
    assert reference.stop() == 0

    got, want = crashy.events(*keys), reference.events(*keys)
    check_stream(got)
    check_stream(want)
    folded, folded_ref = fold(got), fold(want)
    assert {k: s["rows"] for k, s in folded.items()} == {k: s["rows"] for k, s in folded_ref.items()}

    from cdc.wordpress import DEFAULT_IGNORED_META, KeyPattern

    db = database_state(stack.mysql, workload.post_ids, KeyPattern(DEFAULT_IGNORED_META))
    for pid in workload.post_ids:
        s = folded[(1, pid)]
        d = db[pid]
        assert s["row"] is not None and d["row"] is not None
        for field in ("post_title", "post_status", "post_content"):
            assert s["row"][field] == d["row"][field], f"post {pid} {field}"
        assert s["meta"] == d["meta"], f"post {pid} meta"
        assert s["terms"] == d["terms"], f"post {pid} terms"
