"""Helpers for tests against the real stack: run the real `wpcdc` CLI, read what reached Kafka.

The connector runs as a subprocess (``python -m cdc stream``), exactly as an operator runs it, so
tests can stop it with SIGTERM, kill it with SIGKILL and restart it.
"""

from __future__ import annotations

import asyncio
import os
import random
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
import pymysql
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient

from cdc.checkpoint import Checkpoint, CheckpointStore
from cdc.config import KafkaSettings, default_checkpoint_topic
from cdc.fold import Fold, PostState
from cdc.wordpress import DEFAULT_EXCLUDED_POST_TYPES, DEFAULT_IGNORED_META, KeyPattern

REPO = Path(__file__).resolve().parents[2]


@dataclass(frozen=True)
class Message:
    key: str
    value: dict[str, Any] | None
    offset: int
    headers: tuple[tuple[str, bytes], ...] = ()

    @property
    def post(self) -> tuple[int, int]:
        blog, _, post = self.key.partition(":")
        return int(blog), int(post)


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


async def _read(bootstrap: str, topic: str) -> list[Message]:
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, isolation_level="read_committed",
                                enable_auto_commit=False, auto_offset_reset="earliest")
    await consumer.start()
    try:
        await consumer._client.force_metadata_update()  # noqa: SLF001
        parts = consumer.partitions_for_topic(topic) or set()
        tps = [TopicPartition(topic, p) for p in sorted(parts)]
        if not tps:
            return []
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        ends = await consumer.end_offsets(tps)
        out: list[Message] = []
        for tp in tps:
            while await consumer.position(tp) < ends[tp]:
                batch = await consumer.getmany(tp, timeout_ms=1000)
                for m in batch.get(tp, []):
                    value = orjson.loads(m.value) if m.value is not None else None
                    out.append(Message(m.key.decode(), value, m.offset, tuple(m.headers or ())))
        return out
    finally:
        await consumer.stop()


@asynccontextmanager
async def kafka_admin(bootstrap: str | list[str]) -> AsyncIterator[AIOKafkaAdminClient]:
    """An admin client for a test's own checks (the single node or the three-broker cluster)."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=30_000)
    await admin.start()
    try:
        yield admin
    finally:
        await admin.close()


def read_topic(bootstrap: str, topic: str) -> list[Message]:
    """Every committed record of ``topic`` (read_committed), in partition order."""
    return asyncio.run(_read(bootstrap, topic))


def admin_connection(port: int, database: str | None = None, **kw: Any) -> pymysql.connections.Connection:
    """An autocommit connection as the stack's admin user (utf8mb4 unless ``charset`` says otherwise;
    ``kw`` goes to pymysql.connect, e.g. ``cursorclass``)."""
    kw.setdefault("charset", "utf8mb4")
    return pymysql.connect(host="127.0.0.1", port=port, user="admin", password="admin-pw", database=database,
                           autocommit=True, **kw)


def binlog_end(conn: pymysql.connections.Connection) -> Any:
    """The server's current binlog end (a cdc.position.Position)."""
    from cdc.position import Position

    with conn.cursor() as cur:
        cur.execute("SHOW MASTER STATUS")
        file, pos = cur.fetchone()[:2]
    return Position(file, int(pos))


def wait_until(check: Callable[[], Any], timeout: float = 30.0, interval: float = 0.3, what: str = "") -> Any:
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = check()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what or check}; last: {last!r}")


class Connector:
    """One `wpcdc stream` process with its own name, topic and log file."""

    def __init__(self, env: dict[str, str], name: str | None = None, *, database: str = "wordpress",
                 prefix: str = "wp_", window: float = 0.4, extra: list[str] | None = None,
                 log_dir: Path | None = None, subcommand: str = "stream") -> None:
        self.name = name or unique("t")
        self.env = {**os.environ, **env, "WPCDC_MYSQL_DATABASE": database, "WPCDC_TABLE_PREFIX": prefix}
        self.bootstrap = env["WPCDC_KAFKA_BOOTSTRAP"]
        self.topic = f"wpcdc.{self.name}.posts"
        self.window = window
        self.extra = list(extra or [])
        self.checkpoint_topic = (self.extra[self.extra.index("--checkpoint-topic") + 1]
                                 if "--checkpoint-topic" in self.extra else default_checkpoint_topic(self.name))
        self.subcommand = subcommand
        import stack as local_stack

        self.log_path = (log_dir or local_stack.STATE / "connector-logs") / f"{self.name}.log"
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        self.proc: subprocess.Popen[bytes] | None = None

    def command(self, *more: str) -> list[str]:
        return [sys.executable, "-m", "cdc", "--log-format", "json", "--log-level", "debug", self.subcommand,
                "--name", self.name, "--window", str(self.window), "--max-delay", "20",
                *self.extra, *more]

    def start(self, *more: str, wait: bool = True) -> Connector:
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(self.command(*more), env=self.env, stdout=log, stderr=log,
                                         cwd=REPO)
        if wait:
            self.wait_ready()
        return self

    def checkpoint(self, timeout: float = 30.0) -> Checkpoint | None:
        """The committed checkpoint; ``timeout`` bounds the wait for a transaction a killed
        connector left open (the broker aborts it after the producer's transaction timeout, 60 s)."""
        store = CheckpointStore(KafkaSettings(self.bootstrap), self.checkpoint_topic, self.name)
        return asyncio.run(store.load(timeout=timeout))

    def wait_ready(self, timeout: float = 60.0) -> None:
        """Ready once the connector saved its first checkpoint (it does before reading rows)."""
        def ready() -> bool:
            if self.proc is not None and self.proc.poll() is not None:
                raise AssertionError(f"connector exited with {self.proc.returncode}:\n{self.log()}")
            return self.checkpoint() is not None

        wait_until(ready, timeout, 0.3, f"connector {self.name} to checkpoint")

    def stop(self, timeout: float = 30.0) -> int:
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            raise AssertionError(f"connector did not stop within {timeout}s:\n{self.log()[-3000:]}") from None

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def streamed_from(self) -> list[str]:
        """The position each session of this connector started streaming from, in order.

        From the JSON log's ``streaming from`` records: what a restarted connector actually read
        from its checkpoint, to compare with the checkpoint a test read before the restart.
        """
        out = []
        for line in self.log().splitlines():
            try:
                record = orjson.loads(line)
            except orjson.JSONDecodeError:
                continue  # a traceback or a line of another format
            if isinstance(record, dict) and str(record.get("message", "")).startswith("streaming from "):
                out.append(str(record.get("position")))
        return out

    def messages(self) -> list[Message]:
        return read_topic(self.bootstrap, self.topic)

    def events(self, *posts: tuple[int, int]) -> list[dict[str, Any]]:
        """Event values (tombstones left out), optionally only for the given (blog, post) keys."""
        wanted = set(posts)
        return [m.value for m in self.messages()
                if m.value is not None and (not wanted or m.post in wanted)]

    def wait_events(self, *posts: tuple[int, int], count: int, timeout: float = 30.0,
                    settle: float | None = None) -> list[dict[str, Any]]:
        """Wait for ``count`` events of the given posts, then make sure no more arrive."""
        events = wait_until(lambda: (e := self.events(*posts)) and len(e) >= count and e, timeout,
                            what=f"{count} events for {posts}")
        time.sleep(settle if settle is not None else self.window + 1.0)
        events = self.events(*posts)
        assert len(events) == count, f"expected {count} events for {posts}, got {len(events)}: " + "\n".join(
            f"{e['op']} {e['action']} {e['post_id']} {e['changed_fields']}" for e in events)
        return events


def fold(events: list[dict[str, Any]]) -> dict[tuple[int, int], dict[str, Any]]:
    """Replay events into per-post state: row, meta by meta_id, term_taxonomy_ids, rows covered.

    The rules are the consumer's fold of cdc/fold.py (the one ``wpcdc verify`` uses); this adds
    what the tests count. ``cut`` says an event the size policy cut in any way touched the state
    since the last delete or snapshot (its values cannot be compared as they are then).
    """
    rules = Fold()
    states: dict[tuple[int, int], PostState | None] = {}
    out: dict[tuple[int, int], dict[str, Any]] = {}
    for e in events:
        key = (e["blog_id"], e["post_id"])
        s = out.setdefault(key, {"row": None, "meta": {}, "terms": set(), "rows": 0, "cut": False})
        s["rows"] += e["source"]["rows"]
        state = states[key] = rules.apply(states.get(key), e)
        if state is None:
            s["row"], s["meta"], s["terms"], s["cut"] = None, {}, set(), False
            continue
        cut = False if e["op"] == "snapshot" else s["cut"]
        s["row"], s["meta"], s["terms"], s["cut"] = state.row, state.meta, state.terms, cut or "truncated" in e
        s["link"] = (e.get("link") or {}).get("after")
    return out


class Workload(threading.Thread):
    """Editor-like actions on a handful of posts, through the real WordPress driver."""

    def __init__(self, wordpress: Any, seed: int, posts: int = 6, existing: list[int] | None = None,
                 deletes: bool = False) -> None:
        super().__init__(daemon=True)
        self.wp = wordpress
        self.rng = random.Random(seed)
        self.n_posts = posts + len(existing or [])
        self.stop = threading.Event()
        self.post_ids: list[int] = list(existing or [])
        # deletes: now and then a post is deleted for good (its events end with a tombstone); off
        # by default so that a seed replays the same actions as before the option existed.
        self.deletes = deletes
        self.deleted: list[int] = []
        self.actions = 0
        self.error: BaseException | None = None

    def step(self) -> None:
        rng, wp = self.rng, self.wp
        alive = [p for p in self.post_ids if p not in self.deleted]
        if len(alive) < self.n_posts or rng.random() < 0.05:
            pid = wp.create_post(f"crash {rng.random():.6f}", "body", status=rng.choice(["draft", "publish"]),
                                 tags=[f"crash-{rng.randint(1, 4)}"], meta={"n": str(rng.randint(1, 9))})
            self.post_ids.append(pid)
            return
        pid = rng.choice(alive)
        if self.deletes and rng.random() < 0.04:
            self.deleted.append(pid)
            wp.delete(pid)
            return
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


def check_stream(events: list[dict[str, Any]]) -> None:
    ids = Counter(e["event_id"] for e in events)
    assert not [i for i, n in ids.items() if n > 1], "duplicate events"
    last: dict[tuple[int, int], int] = {}
    for e in events:
        key = (e["blog_id"], e["post_id"])
        assert e["seq"] > last.get(key, -1), f"seq of {key} went backwards"
        last[key] = e["seq"]


def assert_folds_to_database(folded: dict[tuple[int, int], dict[str, Any]],
                             db: dict[tuple[int, int], dict[str, Any]], keys: set[tuple[int, int]]) -> None:
    """Each post of ``keys`` folded from the topic is what the database holds: row fields, meta,
    terms; a post gone from the database has no document left (its last event was the delete)."""
    for key in sorted(keys):
        d = db.get(key)
        if d is None or d["row"] is None:
            assert key not in folded or folded[key]["row"] is None, f"post {key} deleted but still in the topic"
            continue
        s = folded.get(key)
        assert s is not None and s["row"] is not None, f"post {key} has no document and no event"
        for name in ("post_title", "post_status", "post_content"):
            assert s["row"][name] == d["row"][name], f"post {key} {name}"
        assert s["meta"] == d["meta"], f"post {key} meta"
        assert s["terms"] == d["terms"], f"post {key} terms"


_IGNORED = KeyPattern(DEFAULT_IGNORED_META)


def database_state(port: int) -> dict[tuple[int, int], dict[str, Any]]:
    """Every post wpcdc would publish, per (blog, post): row fields, meta, term ids."""
    conn = pymysql.connect(host="127.0.0.1", port=port, user="admin", password="admin-pw", database="wordpress",
                           cursorclass=pymysql.cursors.DictCursor)
    out: dict[tuple[int, int], dict[str, Any]] = {}
    with conn, conn.cursor() as cur:
        for blog, prefix in ((1, "wp_"), (2, "wp_2_")):
            cur.execute(f"SELECT ID, post_title, post_status, post_type, post_content FROM {prefix}posts")
            for r in cur.fetchall():
                if r["post_type"] in DEFAULT_EXCLUDED_POST_TYPES or r["post_status"] == "auto-draft":
                    continue
                out[(blog, r["ID"])] = {"row": r, "meta": {}, "terms": set()}
            cur.execute(f"SELECT meta_id, post_id, meta_key, meta_value FROM {prefix}postmeta")
            for m in cur.fetchall():
                if (blog, m["post_id"]) in out and m["meta_key"] not in _IGNORED:
                    out[(blog, m["post_id"])]["meta"][m["meta_id"]] = (m["meta_key"], m["meta_value"])
            cur.execute(f"SELECT object_id, term_taxonomy_id FROM {prefix}term_relationships")
            for t in cur.fetchall():
                if (blog, t["object_id"]) in out:
                    out[(blog, t["object_id"])]["terms"].add(t["term_taxonomy_id"])
    return out
