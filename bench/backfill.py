"""The backfill at scale (issue #5): 100,000 posts and 1,000,000 postmeta rows, `wpcdc backfill`.

A fresh database with WordPress's schema is filled fast (multi-row INSERTs), then `wpcdc
backfill` snapshots it into its own topic and exits. Reported: posts/s and rows/s (posts + meta +
term relationships read), wall time, CPU seconds and peak RSS of the connector against its
configured memory bound, and the read load it put on MariaDB (rows read and statements
per second, from SHOW GLOBAL STATUS deltas). Every post must arrive as exactly one snapshot event.

    python -m bench.backfill [--posts 100000] [--meta-per-post 10] [--chunk-size 500]
"""

from __future__ import annotations

import argparse
import os
import random
import subprocess
import time
from pathlib import Path
from typing import Any

from bench.common import PY, REPO, ProcWatch, Stack, log, scan_topics, stack, write_json
from bench.workloads import (
    INSERT_META,
    INSERT_POSTS,
    INSERT_REL,
    META_KEYS,
    meta_value,
    post_row,
    prepare_database,
)

DB = "bench_backfill"
RESULTS = REPO / "bench" / "results"


def populate(st: Stack, posts: int, meta_per_post: int, terms_per_post: int = 2, seed: int = 3,
             database: str = DB) -> dict[str, int]:
    rng = random.Random(seed)
    conn = st.admin(database, autocommit=False)
    cur = conn.cursor()
    meta_id = 0
    counts = {"posts": 0, "postmeta": 0, "term_relationships": 0}
    for base in range(1, posts + 1, 1000):
        ids = range(base, min(base + 1000, posts + 1))
        cur.executemany(INSERT_POSTS, [post_row(rng, pid, paragraphs=2) for pid in ids])
        meta, rels = [], []
        for pid in ids:
            for k in range(meta_per_post):
                meta_id += 1
                key = META_KEYS[k % len(META_KEYS)] if k < len(META_KEYS) else f"custom_{k}"
                meta.append((meta_id, pid, key, meta_value(rng, key, pid)))
            for t in rng.sample(range(1, 101), terms_per_post):
                rels.append((pid, t, 0))
        cur.executemany(INSERT_META, meta)
        cur.executemany(INSERT_REL, rels)
        conn.commit()
        counts["posts"] += len(ids)
        counts["postmeta"] += len(meta)
        counts["term_relationships"] += len(rels)
    conn.close()
    return counts


def server_status(st: Stack) -> dict[str, int]:
    conn = st.admin()
    with conn.cursor() as cur:
        cur.execute("SHOW GLOBAL STATUS WHERE Variable_name IN ('Rows_read', 'Questions', 'Com_select')")
        rows = {name: int(value) for name, value in cur.fetchall()}
    conn.close()
    return rows


def run(posts: int, meta_per_post: int, chunk_size: int, max_pending_mb: int, out_dir: Path) -> dict[str, Any]:
    st = Stack.load()
    log(f"backfill: writing {posts:,} posts and {posts * meta_per_post:,} postmeta rows into {DB}")
    prepare_database(st, DB)
    started = time.monotonic()
    written = populate(st, posts, meta_per_post)
    log(f"backfill: written in {time.monotonic() - started:.0f}s: {written}")

    name = f"bench-backfill-{int(time.time())}"
    env = {**os.environ, **stack.env(), "WPCDC_MYSQL_DATABASE": DB}
    cmd = [PY, "-m", "cdc", "--log-format", "json", "--log-level", "info", "backfill", "--name", name,
           "--window", "0.5", "--max-pending-mb", str(max_pending_mb), "--snapshot-chunk-size", str(chunk_size)]
    log_path = stack.STATE / "bench" / f"{name}.log"
    log_path.parent.mkdir(parents=True, exist_ok=True)
    before = server_status(st)
    t0 = time.monotonic()
    with open(log_path, "wb") as out:
        proc = subprocess.Popen(cmd, env=env, stdout=out, stderr=subprocess.STDOUT, cwd=REPO)
        watch = ProcWatch(proc.pid)
        rc = proc.wait(3600)
    seconds = time.monotonic() - t0
    watch.finish()
    after = server_status(st)
    if rc != 0:
        raise SystemExit(f"bench: wpcdc backfill exited {rc}; see {log_path}")

    scan = scan_topics(stack.env()["WPCDC_KAFKA_BOOTSTRAP"], [f"wpcdc.{name}.posts"])[f"wpcdc.{name}.posts"]
    rows = sum(written.values())
    result = {
        "workload": "backfill",
        "machine": f"{os.cpu_count()} cores",
        "written": written,
        "chunk_size": chunk_size,
        "wall_seconds": round(seconds, 2),
        "posts_per_second": round(posts / seconds),
        "rows_per_second": round(rows / seconds),
        "snapshot_events": scan.count,
        "cpu_seconds": round(watch.cpu, 2),
        "peak_rss_mb": round(watch.peak_rss / 2**20, 1),
        "max_pending_mb": max_pending_mb,
        "mariadb": {
            "rows_read_per_second": round((after["Rows_read"] - before["Rows_read"]) / seconds),
            "statements_per_second": round((after["Questions"] - before["Questions"]) / seconds),
            "selects": after["Com_select"] - before["Com_select"],
        },
        "log": str(log_path),
    }
    if scan.count != posts:
        raise SystemExit(f"bench: {scan.count} snapshot events for {posts} posts; see {log_path}")
    path = out_dir / f"backfill-{time.strftime('%Y%m%d-%H%M%S')}.json"
    write_json(path, result)
    log(f"backfill: {posts:,} posts in {seconds:.1f}s = {result['posts_per_second']:,} posts/s, "
        f"{result['rows_per_second']:,} rows/s; CPU {watch.cpu:.1f}s; peak RSS {result['peak_rss_mb']} MB "
        f"(pending bound {max_pending_mb} MB); MariaDB read {result['mariadb']['rows_read_per_second']:,} "
        f"rows/s in {result['mariadb']['statements_per_second']} statements/s -> {path}")
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--posts", type=int, default=100_000)
    parser.add_argument("--meta-per-post", type=int, default=10)
    parser.add_argument("--chunk-size", type=int, default=500)
    parser.add_argument("--max-pending-mb", type=int, default=64)
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    run(args.posts, args.meta_per_post, args.chunk_size, args.max_pending_mb, args.out)


if __name__ == "__main__":
    main()
