"""`wpcdc verify` at scale: 100,000 posts and 1,000,000 postmeta rows, their topic against MariaDB.

The site of bench/backfill.py (same generator, its own database), snapshotted into a topic by
`wpcdc backfill`; then `wpcdc verify --verify-timeout 0` (nothing writes the database, and the
connector is stopped: nothing is in flight) must find every post equal. Then a few mismatches are
planted behind the binlog's back (a title, a meta value, a post row deleted), verify must name
exactly those (exit 50), `verify --repair` re-emits them, and verify passes again. Reported per
run: wall time, CPU seconds and peak RSS of the verify process, and the topic's size.

    python -m bench.verify [--posts 100000] [--meta-per-post 10] [--keep] [--reuse NAME]

On a shared, busy stack the backfill is the slow part (it streams the server's whole binlog
beside its reads): ``--keep`` keeps the database and prints the connector's name, ``--reuse NAME``
skips the fill and the backfill and verifies that connector's topic again (the planted mismatches
of a previous run are repaired by it, so the site is as written).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import time
from pathlib import Path
from typing import Any

from bench.backfill import populate
from bench.common import PY, REPO, ProcWatch, Stack, log, stack, write_json
from bench.workloads import drop_database, prepare_database

DB = "bench_verify"
RESULTS = REPO / "bench" / "results"


UNAVAILABLE = (20, 30)  # MySQL or Kafka went away: on a shared stack, someone restarted it


def wpcdc(args: list[str], env: dict[str, str], log_path: Path, tries: int = 6) -> tuple[int, str, dict[str, Any]]:
    """Run one wpcdc command: (exit code, stdout, measurements of its process). A run that found
    MySQL or Kafka down is run again after a pause (and the figures are those of the run that
    worked)."""
    for _ in range(tries - 1):
        rc, out, figures = _wpcdc(args, env, log_path)
        if rc not in UNAVAILABLE:
            return rc, out, figures
        log(f"verify: wpcdc {args[0]} exited {rc} (server unavailable); again in 30s")
        time.sleep(30)
    return _wpcdc(args, env, log_path)


def _wpcdc(args: list[str], env: dict[str, str], log_path: Path) -> tuple[int, str, dict[str, Any]]:
    t0 = time.monotonic()
    with open(log_path, "ab") as err:
        proc = subprocess.Popen([PY, "-m", "cdc", "--log-format", "json", *args], env=env, stdout=subprocess.PIPE,
                                stderr=err, cwd=REPO)
        watch = ProcWatch(proc.pid)
        out, _ = proc.communicate(timeout=3600)
    seconds = time.monotonic() - t0
    watch.finish()
    return proc.returncode, out.decode(), {"wall_seconds": round(seconds, 2), "cpu_seconds": round(watch.cpu, 2),
                                           "peak_rss_mb": round(watch.peak_rss / 2**20, 1)}


def plant(st: Stack) -> list[str]:
    """Three changes no binlog reader can see (a title, a meta value, a post row deleted), on posts
    chosen at random (a rerun plants anew); the keys of the posts they change."""
    stamp = f"planted {time.time()}"
    conn = st.admin(DB)
    with conn.cursor() as cur:
        cur.execute("SET SESSION sql_log_bin = 0")
        cur.execute("SELECT p.ID FROM wp_posts p JOIN wp_postmeta m ON m.post_id = p.ID AND m.meta_key = 'views' "
                    "ORDER BY RAND() LIMIT 3")
        title, meta, gone = (int(r[0]) for r in cur.fetchall())
        cur.execute("UPDATE wp_posts SET post_title = %s WHERE ID = %s", (stamp, title))
        cur.execute("UPDATE wp_postmeta SET meta_value = %s WHERE post_id = %s AND meta_key = 'views'", (stamp, meta))
        cur.execute("DELETE FROM wp_posts WHERE ID = %s", (gone,))
    conn.close()
    return [f"1:{title}", f"1:{meta}", f"1:{gone}"]


def counts(st: Stack) -> dict[str, int]:
    conn = st.admin(DB)
    with conn.cursor() as cur:
        out = {}
        for table in ("posts", "postmeta", "term_relationships"):
            cur.execute(f"SELECT COUNT(*) FROM wp_{table}")
            out[table] = int(cur.fetchone()[0])
    conn.close()
    return out


def run(posts: int, meta_per_post: int, out_dir: Path, keep: bool, reuse: str | None) -> dict[str, Any]:
    st = Stack.load()
    name = reuse or f"bench-verify-{int(time.time())}"
    env = {**os.environ, **stack.env(), "WPCDC_MYSQL_DATABASE": DB, "WPCDC_NAME": name}
    log_path = stack.STATE / "bench" / f"{name}.log"
    log_path.parent.mkdir(parents=True, exist_ok=True)
    backfill: dict[str, Any] = {}
    if reuse is None:
        log(f"verify: writing {posts:,} posts and {posts * meta_per_post:,} postmeta rows into {DB}")
        prepare_database(st, DB)
        populate(st, posts, meta_per_post, database=DB)
    written = counts(st)
    posts = written["posts"]
    try:
        if reuse is None:
            log(f"verify: wpcdc backfill --name {name} (rerun with --reuse {name} if it is interrupted)")
            rc, _, backfill = wpcdc(["backfill", "--window", "0.5"], env, log_path)
            if rc != 0:
                raise SystemExit(f"bench: wpcdc backfill exited {rc}; see {log_path}")
            log(f"verify: backfill of {posts:,} posts took {backfill['wall_seconds']}s")
        else:  # a run interrupted after planting left differences: repair them first (not measured)
            rc, out, _ = wpcdc(["verify", "--repair"], env, log_path)
            if rc != 0:
                raise SystemExit(f"bench: verify --repair of the reused topic exited {rc}; see {log_path}")

        rc, out, clean = wpcdc(["verify", "--verify-timeout", "0", "--json"], env, log_path)
        report = json.loads(out)
        if rc != 0 or report["equal"] != posts or report["differ"]:
            raise SystemExit(f"bench: verify of an untouched site exited {rc}: {out[:2000]}; see {log_path}")
        log(f"verify: {report['records']:,} records, {report['compared']:,} posts equal in {clean['wall_seconds']}s, "
            f"peak RSS {clean['peak_rss_mb']} MB")

        planted = plant(st)
        rc, out, found = wpcdc(["verify", "--verify-timeout", "0", "--json"], env, log_path)
        named = sorted(d["key"] for d in json.loads(out)["differ"])
        if rc != 50 or named != sorted(planted):
            raise SystemExit(f"bench: verify named {named} (exit {rc}), planted {planted}; see {log_path}")

        rc, out, repaired = wpcdc(["verify", "--repair", "--json"], env, log_path)
        if rc != 0 or sorted(json.loads(out)["repaired"]) != sorted(planted):
            raise SystemExit(f"bench: verify --repair exited {rc}: {out[:2000]}; see {log_path}")
        rc, out, after = wpcdc(["verify", "--verify-timeout", "0", "--json"], env, log_path)
        if rc != 0:
            raise SystemExit(f"bench: verify after the repair exited {rc}: {out[:2000]}; see {log_path}")
    finally:
        if not keep:
            drop_database(st, DB)
        else:
            log(f"verify: kept {DB}; again with --reuse {name}")
    result = {
        "workload": "verify",
        "machine": f"{os.cpu_count()} cores",
        "written": written,
        "topic_records": report["records"],
        "backfill": backfill,
        "verify_clean": clean,
        "verify_planted": found,
        "verify_repair": repaired,
        "verify_after_repair": after,
        "posts_per_second": round(posts / clean["wall_seconds"]),
        "log": str(log_path),
    }
    path = out_dir / f"verify-{time.strftime('%Y%m%d-%H%M%S')}.json"
    write_json(path, result)
    log(f"verify: {posts:,} posts / {written['postmeta']:,} meta in {clean['wall_seconds']}s "
        f"({result['posts_per_second']:,} posts/s), CPU {clean['cpu_seconds']}s, peak RSS {clean['peak_rss_mb']} MB; "
        f"with 3 planted: {found['wall_seconds']}s; --repair {repaired['wall_seconds']}s -> {path}")
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--posts", type=int, default=100_000)
    parser.add_argument("--meta-per-post", type=int, default=10)
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument("--keep", action="store_true", help="keep the bench_verify database afterwards")
    parser.add_argument("--reuse", metavar="NAME", help="verify connector NAME's topic of a kept database again")
    args = parser.parse_args()
    run(args.posts, args.meta_per_post, args.out, args.keep or bool(args.reuse), args.reuse)


if __name__ == "__main__":
    main()
