"""The PostgreSQL recipe (examples/postgres/) end to end: exactly once through kill -9.

A real connector streams the single site (database ``wpsingle``, prefix ``site_``) with a backfill,
so its topic holds every post; editor actions run through WordPress while the recipe's consumer
is killed with SIGKILL at random moments and restarted, sometimes only after a backlog has built
up. Afterwards:

- the PostgreSQL tables equal the WordPress database (posts as the connector captures them, their
  meta without the bookkeeping keys, their terms with the terms' current names);
- every post event of the topic was applied exactly once (the recipe's append-only ``applied``
  table against the topic), and no event was ever read again after its offset was stored (the
  ``skipped`` table is empty).
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

import psycopg
import pymysql
import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition

from cdc.wordpress import DEFAULT_EXCLUDED_POST_TYPES, DEFAULT_IGNORED_META, KeyPattern
from tests.integration.harness import read_topic, unique

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
CONSUMER = REPO / "examples" / "postgres" / "consumer.py"
KILLS = int(os.environ.get("WPCDC_PG_KILLS", "24"))
COLUMNS = ("post_type", "post_status", "post_title", "post_name", "post_content", "post_excerpt",
           "post_author", "post_parent", "menu_order", "post_modified")
IGNORED_META = KeyPattern(DEFAULT_IGNORED_META)


class RecipeConsumer:
    """examples/postgres/consumer.py as a subprocess, run as its README says."""

    def __init__(self, bootstrap: str, topic: str, term_topic: str, dsn: str, log_path: Path) -> None:
        self.cmd = [sys.executable, str(CONSUMER), "--bootstrap", bootstrap, "--topic", topic,
                    "--term-topic", term_topic, "--dsn", dsn]
        self.log_path = log_path
        self.proc: subprocess.Popen[bytes] | None = None
        self.starts = 0
        self.log_start = 0  # where this run's lines begin in the log

    def start(self) -> None:
        self.log_start = self.log_path.stat().st_size if self.log_path.exists() else 0
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(self.cmd, stdout=log, stderr=log, cwd=REPO)
        self.starts += 1

    def kill(self) -> None:
        assert self.proc is not None
        if self.proc.poll() is not None:
            raise AssertionError(f"the consumer exited on its own ({self.proc.returncode}):\n{self.log()[-3000:]}")
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)

    def stop(self) -> int:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(30)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def wait_ready(self, timeout: float = 30.0) -> None:
        """Until this run has sought to its stored offsets (its "resuming at" line)."""
        deadline = time.monotonic() + timeout
        while " resuming at " not in self.log()[self.log_start:]:
            if self.proc is not None and self.proc.poll() is not None:
                raise AssertionError(f"the consumer exited ({self.proc.returncode}):\n{self.log()[-3000:]}")
            if time.monotonic() > deadline:
                raise AssertionError(f"the consumer did not start within {timeout}s:\n{self.log()[-3000:]}")
            time.sleep(0.05)

    def runs_that_committed(self) -> int:
        """How many runs (from one start to the next) committed at least one batch: kills that
        landed while the consumer was doing work rather than while it was starting."""
        return sum("committed" in run for run in self.log().split(" resuming at ")[1:-1])


class EditorWork(threading.Thread):
    """Editor actions on the single site: create, edit, publish, trash, untrash, delete for good,
    meta set and deleted, tags set, renamed and deleted."""

    def __init__(self, wp: Any, seed: int) -> None:
        super().__init__(daemon=True)
        self.wp, self.rng = wp, random.Random(seed)
        self.run_id = f"{seed:x}"
        self.stop = threading.Event()
        self.posts: list[int] = []
        self.tags: dict[str, int] = {}  # slug -> term_id
        self.actions: Counter[str] = Counter()
        self.error: BaseException | None = None

    def new_tag(self) -> None:
        slug = f"pg-{self.run_id}-{len(self.actions) + len(self.tags)}-{self.rng.randint(0, 9999)}"
        self.tags[slug] = int(self.wp.run("insert_term", name=slug, slug=slug)["term_id"])

    def step(self) -> str:
        rng, wp = self.rng, self.wp
        if len(self.tags) < 4:
            self.new_tag()
            return "tag created"
        if len(self.posts) < 6 or rng.random() < 0.08:
            self.posts.append(wp.create_post(f"pg {rng.random():.6f}", f"body {rng.random():.6f}",
                                             status=rng.choice(["draft", "publish"]),
                                             tags=rng.sample(sorted(self.tags), 2),
                                             meta={"color": rng.choice(["teal", "red"])}))
            return "created"
        pid = rng.choice(self.posts)
        action = rng.choices(["edit", "publish", "trash", "untrash", "delete", "meta", "unmeta", "tags",
                              "rename tag", "delete tag"], [6, 2, 1, 1, 0.6, 4, 1, 3, 1.2, 0.3])[0]
        if action == "edit":
            wp.update_post(pid, title=f"t {rng.random():.6f}", content=f"c {rng.random():.6f}",
                           excerpt=f"e {rng.random():.3f}")
        elif action == "publish":
            wp.publish(pid, via="update")
        elif action == "trash":
            wp.trash(pid)
        elif action == "untrash":
            wp.untrash(pid)
        elif action == "delete":
            wp.delete(pid)
            self.posts.remove(pid)
        elif action == "meta":
            wp.run("update_meta", post_id=pid, key=f"k{rng.randint(1, 3)}", value=f"v{rng.random():.6f}")
        elif action == "unmeta":
            wp.run("delete_meta", post_id=pid, key=f"k{rng.randint(1, 3)}")
        elif action == "tags":
            wp.run("set_tags", post_id=pid, tags=rng.sample(sorted(self.tags), rng.randint(0, 2)),
                   append=rng.random() < 0.5)
        elif action == "rename tag":  # a new name, the same slug: only a term event says it
            slug = rng.choice(sorted(self.tags))
            wp.run("update_term", term_id=self.tags[slug], name=f"Tag {rng.random():.6f}")
        else:
            slug = rng.choice(sorted(self.tags))
            wp.run("delete_term", term_id=self.tags.pop(slug))
        return action

    def run(self) -> None:
        try:
            while not self.stop.is_set():
                try:
                    self.actions[self.step()] += 1
                except Exception as exc:  # noqa: BLE001 - untrash of a post not in the trash, etc.
                    if "WordPressError" not in type(exc).__name__:
                        raise
                    self.actions["refused by WordPress"] += 1
        except BaseException as exc:  # noqa: BLE001 - reported by the test
            self.error = exc


def wordpress_state(mysql_port: int) -> dict[int, dict[str, Any]]:
    """Every post of the single site the connector captures: columns, meta by meta_id, terms."""
    conn = pymysql.connect(host="127.0.0.1", port=mysql_port, user="admin", password="admin-pw",
                           database="wpsingle")
    out: dict[int, dict[str, Any]] = {}
    with conn, conn.cursor() as cur:
        cur.execute(f"SELECT ID, {', '.join(COLUMNS)} FROM site_posts")
        for pid, *values in cur.fetchall():
            row = dict(zip(COLUMNS, values))
            if row["post_type"] in DEFAULT_EXCLUDED_POST_TYPES or row["post_status"] == "auto-draft":
                continue
            out[pid] = {"row": row, "meta": {}, "terms": set()}
        cur.execute("SELECT meta_id, post_id, meta_key, meta_value FROM site_postmeta")
        for meta_id, pid, key, value in cur.fetchall():
            if pid in out and key not in IGNORED_META:
                out[pid]["meta"][meta_id] = (key, value)
        cur.execute("SELECT r.object_id, tt.term_taxonomy_id, tt.taxonomy, t.slug, t.name "
                    "FROM site_term_relationships r JOIN site_term_taxonomy tt USING (term_taxonomy_id) "
                    "JOIN site_terms t USING (term_id)")
        for pid, *term in cur.fetchall():
            if pid in out:
                out[pid]["terms"].add(tuple(term))
    return out


def postgres_state(dsn: str) -> dict[int, dict[str, Any]]:
    """The same picture from the recipe's tables (blog 1: the single site)."""
    out: dict[int, dict[str, Any]] = {}
    with psycopg.connect(dsn) as conn:
        for pid, *values in conn.execute(f"SELECT post_id, {', '.join(COLUMNS)} FROM posts WHERE blog_id = 1"):
            out[pid] = {"row": dict(zip(COLUMNS, values)), "meta": {}, "terms": set()}
        for meta_id, pid, key, value in conn.execute(
                "SELECT meta_id, post_id, meta_key, meta_value FROM post_meta WHERE blog_id = 1"):
            out.setdefault(pid, {"row": None, "meta": {}, "terms": set()})["meta"][meta_id] = (key, value)
        for pid, *term in conn.execute("SELECT post_id, term_taxonomy_id, taxonomy, slug, name "
                                       "FROM post_terms_named WHERE blog_id = 1"):
            out.setdefault(pid, {"row": None, "meta": {}, "terms": set()})["terms"].add(tuple(term))
    return out


async def events_below(bootstrap: str, topic: str, stored: dict[tuple[str, int], int]) -> list[dict[str, Any]]:
    """The post events (tombstones left out) of ``topic`` below the stored offset of each partition."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, isolation_level="read_committed",
                                enable_auto_commit=False, auto_offset_reset="earliest")
    await consumer.start()
    try:
        tps = [TopicPartition(t, p) for (t, p) in sorted(stored) if t == topic]
        consumer.assign(tps)
        out: list[dict[str, Any]] = []
        for tp in tps:
            await consumer.seek_to_beginning(tp)
            while await consumer.position(tp) < stored[(tp.topic, tp.partition)]:
                batch = await consumer.getmany(tp, timeout_ms=1000)
                out += [json.loads(r.value) for r in batch.get(tp, [])
                        if r.value is not None and r.offset < stored[(tp.topic, tp.partition)]]
        return out
    finally:
        await consumer.stop()


def differences(wp: dict[int, dict[str, Any]], pg: dict[int, dict[str, Any]]) -> list[str]:
    out = []
    for pid in sorted(set(wp) | set(pg)):
        if pid not in pg:
            out.append(f"post {pid} missing in PostgreSQL")
        elif pid not in wp:
            out.append(f"post {pid} in PostgreSQL but not in WordPress")
        else:
            out += [f"post {pid} {part}: WordPress {wp[pid][part]!r} != PostgreSQL {pg[pid][part]!r}"
                    for part in ("row", "meta", "terms") if wp[pid][part] != pg[pid][part]]
    return out


@pytest.mark.timeout(420)  # ~2 min on a busy 2-core machine; the default 300 s is too close
def test_postgres_upsert_exactly_once_through_kill9(stack, wp_single, connectors, pg_database, tmp_path) -> None:
    connector = connectors(name=unique("pgrecipe"), database="wpsingle", prefix="site_",
                           extra=["--snapshot", "initial"]).start()
    term_topic = f"wpcdc.{connector.name}.terms"
    consumer = RecipeConsumer(connector.bootstrap, connector.topic, term_topic, pg_database,
                              tmp_path / "consumer.log")
    seed = random.randrange(1 << 30)
    rng = random.Random(seed)
    work = EditorWork(wp_single, seed)
    consumer.start()
    work.start()
    started = time.monotonic()
    try:
        for _ in range(KILLS):
            if rng.random() < 0.8:  # mostly while it works; sometimes while it starts
                consumer.wait_ready()
            time.sleep(rng.uniform(0.2, 2.5))
            consumer.kill()
            if rng.random() < 0.3:  # a backlog builds up, so the next run is killed while catching up
                time.sleep(rng.uniform(0.5, 2.0))
            consumer.start()
            assert work.error is None, f"workload failed (seed {seed}): {work.error!r}"
    finally:
        work.stop.set()
        work.join(60)
    assert work.error is None, f"workload failed (seed {seed}): {work.error!r}"
    assert consumer.starts == KILLS + 1
    # Whatever the dice said, each kind of change the recipe must follow happened at least once.
    wp_single.delete(work.posts[0])
    slug = sorted(work.tags)[0]
    wp_single.run("update_term", term_id=work.tags[slug], name=f"Tag renamed {seed}")
    wp_single.run("delete_term", term_id=work.tags[sorted(work.tags)[1]])
    kill_phase = time.monotonic() - started

    # The connector flushes the last changes (window 0.4 s), then the consumer catches up: every
    # event of the topic applied, and the tables equal to WordPress (checked together, in a loop,
    # since another writer of the site would add events in between).
    def applied_and_published() -> tuple[Counter[tuple[int, int, int]], Counter[tuple[int, int, int]]]:
        events = [m.value for m in read_topic(connector.bootstrap, connector.topic) if m.value is not None]
        with psycopg.connect(pg_database) as conn:
            applied = Counter(conn.execute("SELECT blog_id, post_id, seq FROM applied").fetchall())
        return applied, Counter((e["blog_id"], e["post_id"], e["seq"]) for e in events)

    deadline = time.monotonic() + 90
    while True:
        time.sleep(1.0)
        applied, published = applied_and_published()
        diff = differences(wordpress_state(stack.mysql), postgres_state(pg_database))
        if (set(applied) == set(published) and not diff) or time.monotonic() > deadline:
            break
    assert not diff, (f"seed {seed}: PostgreSQL differs from WordPress:\n" + "\n".join(diff[:30])
                      + f"\n\nconsumer log:\n{consumer.log()[-3000:]}")
    assert consumer.stop() == 0, consumer.log()[-3000:]
    with psycopg.connect(pg_database) as conn:
        applied = Counter(conn.execute("SELECT blog_id, post_id, seq FROM applied").fetchall())
        stored = dict(((t, p), o) for t, p, o in conn.execute("SELECT * FROM kafka_offsets"))
        skipped = conn.execute("SELECT * FROM skipped").fetchall()
        rollbacks = conn.execute("SELECT xact_rollback FROM pg_stat_database WHERE datname = current_database()"
                                 ).fetchone()
    # What the topic held below the offsets the consumer stored when it stopped (a writer of the
    # site other than this test may have added more since).
    published = Counter((e["blog_id"], e["post_id"], e["seq"])
                        for e in asyncio.run(events_below(connector.bootstrap, connector.topic, stored)))
    twice = {k: n for k, n in applied.items() if n > 1}
    assert not twice, f"seed {seed}: events applied more than once: {sorted(twice.items())[:10]}"
    assert not skipped, f"seed {seed}: records read again after their offset was stored: {skipped[:10]}"
    assert applied == published, (f"seed {seed}: applied != the topic's events: missing "
                                  f"{sorted(published - applied)[:10]}, extra {sorted(applied - published)[:10]}")
    assert work.actions["created"] and work.actions["edit"] and work.actions["meta"], work.actions
    busy = consumer.runs_that_committed()
    assert busy >= KILLS // 2, f"only {busy} of {KILLS} killed runs had committed anything: kills came too early"
    print(f"\npostgres recipe: seed {seed}, {KILLS} kill -9 in {kill_phase:.0f}s, {sum(work.actions.values())} "
          f"editor actions {dict(work.actions)}, {sum(published.values())} post events applied once each, "
          f"{busy} killed runs had committed batches, "
          f"{rollbacks[0] if rollbacks else '?'} transactions rolled back by the kills")
