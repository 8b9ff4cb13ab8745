"""The latency workload: a steady rate of single-post edits, commit → committed-on-Kafka per edit.

Each edit is one transaction, as an editor's save is: the post's title (carrying the edit's
sequence number) and ``post_modified`` change, and one of its meta rows. The writer paces edits on
an absolute schedule (``rate`` per second) and notes the wall-clock time at which each COMMIT
returned. Posts are edited round-robin, so a post is edited again only after ``posts / rate``
seconds, longer than wpcdc's quiescence window: every edit becomes its own event.

Latency of an edit = broker append time of the Kafka record that carries it (the topics use
LogAppendTime) − the time its COMMIT returned. Same clock (one machine), millisecond resolution.
For wpcdc the window is part of the design (an event waits until its post is quiet for
``--window``), so the report gives both the latency as configured and with the window subtracted.
"""

from __future__ import annotations

import random
import time
from typing import Any

import orjson

from bench.common import Stack
from bench.workloads import INSERT_META, INSERT_POSTS, post_row

PREFIX = "lat "


def setup(st: Stack, db: str, posts: int) -> None:
    rng = random.Random(3)
    conn = st.admin(db, autocommit=False)
    cur = conn.cursor()
    for base in range(1, posts + 1, 500):
        ids = range(base, min(base + 500, posts + 1))
        cur.executemany(INSERT_POSTS, [post_row(rng, pid, paragraphs=2) for pid in ids])
        cur.executemany(INSERT_META, [(pid, pid, "seo_title", "initial") for pid in ids])
        conn.commit()
    conn.close()


def edits(st: Stack, db: str, *, rate: float, seconds: float, posts: int, tag: str) -> dict[str, Any]:
    """Write ``rate * seconds`` edits on schedule; returns commit times by sequence number.
    ``tag`` makes every value new (a second run writing the same values would change no row)."""
    conn = st.admin(db, autocommit=False)
    cur = conn.cursor()
    n = int(rate * seconds)
    committed: dict[int, float] = {}
    late = 0
    t0 = time.monotonic() + 0.2
    for i in range(n):
        due = t0 + i / rate
        now = time.monotonic()
        if due > now:
            time.sleep(due - now)
        elif now - due > 0.05:
            late += 1
        pid = 1 + i % posts
        cur.execute("UPDATE wp_posts SET post_title = %s, post_modified = NOW(), post_modified_gmt = UTC_TIMESTAMP() "
                    "WHERE ID = %s", (f"{PREFIX}{i} {tag}", pid))
        cur.execute("UPDATE wp_postmeta SET meta_value = %s WHERE meta_id = %s", (f"seo {i} {tag}", pid))
        conn.commit()
        committed[i] = time.time()
    conn.close()
    achieved = n / (time.monotonic() - t0)
    return {"committed": committed, "edits": n, "achieved_rate": round(achieved, 1), "late_edits": late}


def _title(doc: dict[str, Any]) -> str | None:
    after = doc.get("after")
    if isinstance(after, dict):
        t = after.get("post_title")
        if isinstance(t, str) and t.startswith(PREFIX):
            return t
    return None


def latencies(values: list[tuple[int, bytes | None]], committed: dict[int, float]) -> list[float]:
    """Seconds from COMMIT to append, per edit found (first record carrying each edit)."""
    seen: dict[int, float] = {}
    for ts, value in values:
        if not value:
            continue
        try:
            doc = orjson.loads(value)
        except orjson.JSONDecodeError:
            continue
        title = _title(doc)
        if title is None:
            continue
        seq = int(title[len(PREFIX):].split()[0])
        if seq in committed and seq not in seen:
            seen[seq] = ts / 1000 - committed[seq]
    return list(seen.values())


def summary(lat: list[float], subtract: float = 0.0) -> dict[str, Any]:
    if not lat:
        return {"events": 0}
    xs = sorted(x - subtract for x in lat)

    def pct(p: float) -> float:
        k = min(len(xs) - 1, max(0, int(round(p / 100 * len(xs))) - 1))
        return round(xs[k] * 1000, 1)

    return {"events": len(xs), "p50_ms": pct(50), "p95_ms": pct(95), "p99_ms": pct(99),
            "max_ms": round(xs[-1] * 1000, 1), "mean_ms": round(sum(xs) / len(xs) * 1000, 1)}
