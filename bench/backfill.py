"""The backfill at scale (issues #5, #17): `wpcdc backfill` beside Debezium's snapshot, and how
the backfill's cost grows with the site.

A database with WordPress's schema is filled fast (multi-row INSERTs): by default 100,000 posts,
1,000,000 postmeta and 200,000 term relationships (``bench_backfill``). Then, one after the other
and each alone:

* ``wpcdc backfill`` snapshots it into its own topic and exits;
* Debezium's MariaDB connector snapshots the five captured tables (``snapshot.mode=initial_only``,
  JSON without schemas, topics created beforehand; bench/debezium.py), done when its topics hold
  one record per row.

Reported for both: rows/s (rows of the five tables / wall time from process start), posts/s, wall
time, CPU seconds and peak RSS of the whole process tree, and the read load each put on MariaDB
(rows read and statements per second, from SHOW GLOBAL STATUS deltas). Every post must arrive as
exactly one snapshot event. ``--scaling 10000,100000,300000`` adds wpcdc alone at other sizes (one
database per size, ``bench_backfill_<n>``), for the plot of throughput and memory against the
site's size. The machine, versions and load average are recorded beside the figures.

    python -m bench.backfill [--posts 100000] [--meta-per-post 10] [--chunk-size 500]
                             [--no-debezium] [--scaling 10000,100000,300000|''] [--reuse]
                             [--profile FILE]   (py-spy, if installed: a flame graph of wpcdc)
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import random
import re
import shutil
import subprocess
import time
from pathlib import Path
from typing import Any

from bench.common import (
    PY,
    REPO,
    ProcWatch,
    Stack,
    binlog_bytes,
    binlog_end,
    delete_topics,
    log,
    scan_topics,
    stack,
    write_json,
)
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
TABLES = ("wp_posts", "wp_postmeta", "wp_term_relationships", "wp_terms", "wp_term_taxonomy")


def database_for(posts: int) -> str:
    """``bench_backfill`` for the issue's 100,000 posts, ``bench_backfill_<n>k`` for other sizes."""
    if posts == 100_000:
        return DB
    return f"{DB}_{posts // 1000}k" if posts % 1000 == 0 else f"{DB}_{posts}"


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


def table_counts(st: Stack, database: str) -> dict[str, int] | None:
    """Rows per captured table, or None when the database or a table is missing."""
    conn = st.admin()
    try:
        with conn.cursor() as cur:
            out = {}
            for t in TABLES:
                cur.execute(f"SELECT COUNT(*) FROM `{database}`.`{t}`")
                out[t] = int(cur.fetchone()[0])
            return out
    except Exception:  # noqa: BLE001 - no such database/table: populate it
        return None
    finally:
        conn.close()


def ensure(st: Stack, database: str, posts: int, meta_per_post: int, reuse: bool) -> dict[str, int]:
    """The database filled with ``posts`` posts (kept from an earlier run with ``reuse`` when its
    counts are the expected ones); the rows per captured table."""
    want = {"wp_posts": posts, "wp_postmeta": posts * meta_per_post, "wp_term_relationships": posts * 2}
    have = table_counts(st, database) if reuse else None
    if have is not None and all(have[t] == n for t, n in want.items()):
        log(f"backfill: reusing {database}: {have}")
        return have
    log(f"backfill: writing {posts:,} posts and {posts * meta_per_post:,} postmeta rows into {database}")
    prepare_database(st, database)
    started = time.monotonic()
    populate(st, posts, meta_per_post, database=database)
    counts = table_counts(st, database)
    assert counts is not None
    log(f"backfill: written in {time.monotonic() - started:.0f}s: {counts}")
    return counts


def server_status(st: Stack) -> dict[str, Any]:
    """The server's counters, and where its binlog ends (what others wrote meanwhile: the backfill
    reads the binlog too, and a shared machine's other sessions write into it)."""
    conn = st.admin()
    with conn.cursor() as cur:
        cur.execute("SHOW GLOBAL STATUS WHERE Variable_name IN ('Rows_read', 'Questions', 'Com_select')")
        rows: dict[str, Any] = {name: int(value) for name, value in cur.fetchall()}
    rows["binlog_end"] = binlog_end(conn)
    conn.close()
    return rows


def _load(st: Stack, before: dict[str, Any], after: dict[str, Any], seconds: float) -> dict[str, Any]:
    # Rows_read counts the server's handler reads (index and table rows) of every session: the
    # machine runs nothing else that reads much while a bench runs, but it is not per-connection.
    return {
        "rows_read": after["Rows_read"] - before["Rows_read"],
        "rows_read_per_second": round((after["Rows_read"] - before["Rows_read"]) / seconds),
        "statements": after["Questions"] - before["Questions"],
        "statements_per_second": round((after["Questions"] - before["Questions"]) / seconds, 1),
        "selects": after["Com_select"] - before["Com_select"],
        # Written into the binlog by anyone meanwhile (other sessions on a shared machine): the
        # backfill's stream reads it all, so a large figure here means a noisy run.
        "binlog_bytes_written": binlog_bytes(st, before["binlog_end"], after["binlog_end"]),
    }


def _profile(pid: int, path: Path) -> subprocess.Popen[bytes] | None:
    """py-spy sampling ``pid`` (all threads, idle samples left out) into ``path`` (a flame graph,
    or collapsed stacks for a ``.txt``): for docs/performance.md, never in a measured run."""
    spy = shutil.which("py-spy") or str(Path(PY).parent / "py-spy")
    if not Path(spy).exists():
        log("backfill: py-spy not found; no profile")
        return None
    fmt = "raw" if path.suffix == ".txt" else "flamegraph"
    return subprocess.Popen([spy, "record", "--pid", str(pid), "--rate", "200", "--format", fmt,
                             "--output", str(path), "--nonblocking"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def run_wpcdc(st: Stack, database: str, counts: dict[str, int], chunk_size: int, max_pending_mb: int,
              profile: Path | None = None, extra: list[str] | None = None) -> dict[str, Any]:
    posts = counts["wp_posts"]
    name = f"bench-backfill-{int(time.time())}"
    env = {**os.environ, **stack.env(), "WPCDC_MYSQL_DATABASE": database, "PYTHONPATH": str(REPO)}
    cmd = [PY, "-m", "cdc", "--log-format", "json", "--log-level", "info", "backfill", "--name", name,
           "--window", "0.5", "--max-pending-mb", str(max_pending_mb), "--snapshot-chunk-size", str(chunk_size),
           *(extra or [])]
    log_path = stack.STATE / "bench" / f"{name}.log"
    log_path.parent.mkdir(parents=True, exist_ok=True)
    load_before = os.getloadavg()
    before = server_status(st)
    t0 = time.monotonic()
    with open(log_path, "wb") as out:
        proc = subprocess.Popen(cmd, env=env, stdout=out, stderr=subprocess.STDOUT, cwd=REPO)
        watch = ProcWatch(proc.pid)
        spy = _profile(proc.pid, profile) if profile else None
        rc = proc.wait(3600)
    seconds = time.monotonic() - t0
    watch.finish()
    after = server_status(st)
    if spy is not None:
        spy.wait(60)
    if rc != 0:
        raise SystemExit(f"bench: wpcdc backfill exited {rc}; see {log_path}")
    topic = f"wpcdc.{name}.posts"
    scan = scan_topics(stack.env()["WPCDC_KAFKA_BOOTSTRAP"], [topic])[topic]
    delete_topics(st.kafka, [topic])
    rows = sum(counts.values())
    fallbacks = re.findall(rb"\((\d+) of them with meta and terms read row by row", log_path.read_bytes())
    result = {
        "connector": "wpcdc",
        "database": database,
        "posts": posts,
        "rows": rows,
        "chunk_size": chunk_size,
        "wall_seconds": round(seconds, 2),
        "posts_per_second": round(posts / seconds),
        "rows_per_second": round(rows / seconds),
        "snapshot_events": scan.count,
        "cpu_seconds": round(watch.cpu, 2),
        "peak_rss_mb": round(watch.peak_rss / 2**20, 1),
        "max_pending_mb": max_pending_mb,
        "mariadb": _load(st, before, after, seconds),
        "loadavg_before": [round(x, 2) for x in load_before],
        "loadavg_after": [round(x, 2) for x in os.getloadavg()],
        "log": str(log_path),
    }
    if fallbacks:
        result["meta_fallbacks"] = int(fallbacks[-1])
    if profile:
        result["profile"] = str(profile)
    if scan.count != posts:
        raise SystemExit(f"bench: {scan.count} snapshot events for {posts} posts; see {log_path}")
    log(f"backfill: wpcdc {posts:,} posts in {seconds:.1f}s = {result['posts_per_second']:,} posts/s, "
        f"{result['rows_per_second']:,} rows/s; CPU {watch.cpu:.1f}s; peak RSS {result['peak_rss_mb']} MB "
        f"(pending bound {max_pending_mb} MB); MariaDB read {result['mariadb']['rows_read_per_second']:,} "
        f"rows/s in {result['mariadb']['statements_per_second']} statements/s; load {load_before[0]:.1f}")
    return result


def run_debezium(st: Stack, database: str, counts: dict[str, int], workdir: Path) -> dict[str, Any]:
    from bench.debezium import Debezium

    dbz = Debezium(st, database, workdir, "backfill")
    rows = sum(counts.values())
    load_before = os.getloadavg()
    before = server_status(st)
    try:
        r = dbz.snapshot(rows)
        after = server_status(st)
    finally:
        delete_topics(st.kafka, dbz.prefix)
    if r.done is None:
        raise SystemExit(f"bench: Debezium's snapshot did not finish; see {dbz.logfile}")
    seconds = r.done - r.started
    result = {
        "connector": "debezium",
        "version": dbz.version,
        "snapshot_mode": r.extra["snapshot_mode"],
        "database": database,
        "posts": counts["wp_posts"],
        "rows": rows,
        "wall_seconds": round(seconds, 2),
        "posts_per_second": round(counts["wp_posts"] / seconds),
        "rows_per_second": round(rows / seconds),
        "records": r.events,
        "cpu_seconds": round(r.cpu_seconds, 2),
        "peak_rss_mb": round(r.peak_rss / 2**20, 1),
        # The deltas span until the bench saw the last record and stopped the JVM (a little longer
        # than ``seconds``), so the rates are per ``seconds`` of the snapshot itself.
        "mariadb": _load(st, before, after, seconds),
        "loadavg_before": [round(x, 2) for x in load_before],
        "loadavg_after": [round(x, 2) for x in os.getloadavg()],
        "log": str(dbz.logfile),
    }
    log(f"backfill: Debezium {dbz.version} snapshot of {rows:,} rows in {seconds:.1f}s = "
        f"{result['rows_per_second']:,} rows/s; CPU {r.cpu_seconds:.1f}s; peak RSS {result['peak_rss_mb']} MB; "
        f"MariaDB read {result['mariadb']['rows_read_per_second']:,} rows/s; load {load_before[0]:.1f}")
    return result


READ_MODES = {  # SnapshotReader's keyword arguments per way of reading a chunk
    "row by row (before #17)": {"aggregate": False},
    "meta and terms folded by the server": {"aggregate": True, "row_json": False},
    "... and the post row as one JSON object": {"aggregate": True, "row_json": True},
}


def read_only(database: str, chunk_size: int, posts: int) -> dict[str, Any]:
    """The snapshot's reading alone, in this process (no assembler, no Kafka): every chunk of the
    database read with each of READ_MODES, CPU seconds of this process and wall time each. What
    each way of reading costs on our side, apart from the rest of the pipeline."""
    from cdc.config import MysqlSettings, SnapshotSettings
    from cdc.source.snapshot import SnapshotReader
    from cdc.wordpress import TableNames

    env = stack.env()
    settings = MysqlSettings(host=env["WPCDC_MYSQL_HOST"], port=int(env["WPCDC_MYSQL_PORT"]),
                             user=env["WPCDC_MYSQL_USER"], password=env["WPCDC_MYSQL_PASSWORD"], database=database)
    out: dict[str, Any] = {}
    for label, kw in READ_MODES.items():
        reader = SnapshotReader(settings, TableNames("wp_"), SnapshotSettings(chunk_size=chunk_size), **kw)
        cursor, docs, meta = 0, 0, 0
        load = os.getloadavg()[0]
        cpu, wall = time.process_time(), time.monotonic()
        while True:
            chunk = reader.read_chunk(1, cursor)
            docs += len(chunk.docs)
            meta += sum(len(d.meta) for d in chunk.docs)
            cursor = chunk.last_id
            if chunk.exhausted:
                break
        cpu, wall = time.process_time() - cpu, time.monotonic() - wall
        reader.close()
        if docs != posts:
            raise SystemExit(f"bench: read {docs} posts of {posts} ({label})")
        out[label] = {"cpu_seconds": round(cpu, 2), "wall_seconds": round(wall, 2), "posts_per_cpu_second": round(docs / cpu),
                      "meta_rows": meta, "fallbacks": reader.fallbacks, "loadavg": round(load, 2)}
        log(f"backfill: read only, {label}: {docs:,} posts in {wall:.1f}s, CPU {cpu:.1f}s "
            f"({docs / cpu:,.0f} posts per CPU second), load {load:.1f}")
    return out


def chart(doc: dict[str, Any], path: Path) -> Path | None:
    """Side by side (rows/s, CPU, RSS) and the scaling runs (posts/s and peak RSS by size)."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    from bench.chart import DBZ, WPCDC

    side = [(k, doc[k]) for k in ("wpcdc", "debezium") if doc.get(k)]
    scaling = sorted(doc.get("scaling", []), key=lambda r: r["posts"])
    fig, axes = plt.subplots(1, 3 if scaling else 2, figsize=(15 if scaling else 10, 4.5))
    m = doc.get("machine", {})
    fig.suptitle(f"backfill: wpcdc beside Debezium {m.get('debezium', '')} snapshot — {m.get('cores')} cores, "
                 f"load {doc.get('loadavg_start', [0])[0]:.1f}, run {doc.get('run')}", fontsize=11)
    for ax, key, title, fmt in ((axes[0], "rows_per_second", "rows/s (higher is better)", "{:,.0f}"),
                                (axes[1], "cpu_seconds", "CPU s / peak RSS MB (lower is better)", "{:.0f}")):
        xs = range(len(side))
        vals = [r[key] for _, r in side]
        colors = [WPCDC if k == "wpcdc" else DBZ for k, _ in side]
        if key == "cpu_seconds":
            rss = [r["peak_rss_mb"] for _, r in side]
            ax.bar([x - 0.2 for x in xs], vals, 0.4, color=colors, label="CPU s")
            ax.bar([x + 0.2 for x in xs], rss, 0.4, color=colors, alpha=0.5, label="peak RSS MB")
            for x, v, r in zip(xs, vals, rss):
                ax.text(x - 0.2, v, fmt.format(v), ha="center", va="bottom", fontsize=8)
                ax.text(x + 0.2, r, fmt.format(r), ha="center", va="bottom", fontsize=8)
            ax.set_yscale("log")
            ax.legend(fontsize=8)
        else:
            ax.bar(list(xs), vals, 0.6, color=colors)
            for x, v in zip(xs, vals):
                ax.text(x, v, fmt.format(v), ha="center", va="bottom", fontsize=8)
        ax.set_xticks(list(xs), [k for k, _ in side])
        ax.set_title(title, fontsize=10)
    if scaling:
        ax = axes[2]
        xs = [r["posts"] for r in scaling]
        ax.plot(xs, [r["posts_per_second"] for r in scaling], "o-", color=WPCDC, label="posts/s")
        ax.set_xscale("log")
        ax.set_xlabel("posts (10 meta, 2 terms each)")
        ax.set_ylabel("posts/s")
        ax.set_ylim(bottom=0)
        ax2 = ax.twinx()
        ax2.plot(xs, [r["peak_rss_mb"] for r in scaling], "s--", color=DBZ, label="peak RSS MB")
        ax2.set_ylabel("peak RSS MB")
        ax2.set_ylim(bottom=0)
        for x, r in zip(xs, scaling):
            ax.annotate(f"{r['posts_per_second']:,}", (x, r["posts_per_second"]), fontsize=8,
                        textcoords="offset points", xytext=(0, 6), ha="center")
            ax2.annotate(f"{r['peak_rss_mb']:.0f} MB", (x, r["peak_rss_mb"]), fontsize=8,
                         textcoords="offset points", xytext=(0, -12), ha="center")
        ax.set_title("wpcdc backfill by size (flat is good)", fontsize=10)
        h1, l1 = ax.get_legend_handles_labels()
        h2, l2 = ax2.get_legend_handles_labels()
        ax.legend(h1 + h2, l1 + l2, fontsize=8, loc="lower left")
    fig.tight_layout(rect=(0, 0, 1, 0.93))
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--posts", type=int, default=100_000)
    parser.add_argument("--meta-per-post", type=int, default=10)
    parser.add_argument("--chunk-size", type=int, default=500)
    parser.add_argument("--max-pending-mb", type=int, default=64)
    parser.add_argument("--no-debezium", action="store_true", help="wpcdc only")
    parser.add_argument("--scaling", default="10000,100000,300000",
                        help="comma-separated post counts for wpcdc alone (a database per size, kept for --reuse; "
                        "the --posts run counts as its size); '' for none")
    parser.add_argument("--read-only", action="store_true",
                        help="only the snapshot's reading, in this process, with each way of reading (no Kafka)")
    parser.add_argument("--reuse", action="store_true", help="keep a database of an earlier run whose counts match")
    parser.add_argument("--profile", type=Path, help="py-spy output of the wpcdc run (.svg, or .txt collapsed)")
    parser.add_argument("--wpcdc-args", default="", help="extra arguments of `wpcdc backfill` (split on spaces)")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()

    from bench.run import machine

    st = Stack.load()
    stamp = dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    extra = args.wpcdc_args.split()
    doc: dict[str, Any] = {
        "workload": "backfill", "run": stamp,
        "machine": machine(st, not args.no_debezium),
        "loadavg_start": [round(x, 2) for x in os.getloadavg()],
        "args": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
    }
    main_db = database_for(args.posts)
    counts = ensure(st, main_db, args.posts, args.meta_per_post, args.reuse)
    doc["written"] = counts
    if args.read_only:
        doc["read_only"] = read_only(main_db, args.chunk_size, counts["wp_posts"])
        write_json(args.out / f"backfill-read-{stamp}.json", doc)
        return
    doc["wpcdc"] = run_wpcdc(st, main_db, counts, args.chunk_size, args.max_pending_mb, args.profile, extra)
    if not args.no_debezium:
        doc["debezium"] = run_debezium(st, main_db, counts, stack.STATE / "bench" / f"backfill-{stamp}" / "debezium")
        w, d = doc["wpcdc"], doc["debezium"]
        doc["ratios"] = {
            "rows_per_second_wpcdc_over_debezium": round(w["rows_per_second"] / d["rows_per_second"], 2),
            "cpu_seconds_wpcdc_over_debezium": round(w["cpu_seconds"] / d["cpu_seconds"], 2),
            "peak_rss_wpcdc_over_debezium": round(w["peak_rss_mb"] / d["peak_rss_mb"], 2),
        }
        log(f"backfill: wpcdc / Debezium rows/s = {doc['ratios']['rows_per_second_wpcdc_over_debezium']}x")
    sizes = [int(n) for n in args.scaling.split(",") if n.strip()]
    if sizes:
        doc["scaling"] = []
        for n in sizes:
            if n == args.posts:
                doc["scaling"].append(doc["wpcdc"])
                continue
            database = database_for(n)
            c = ensure(st, database, n, args.meta_per_post, args.reuse)
            doc["scaling"].append(run_wpcdc(st, database, c, args.chunk_size, args.max_pending_mb, None, extra))
    doc["targets"] = {
        "posts_per_second_min": 5000,
        "posts_per_second": doc["wpcdc"]["posts_per_second"],
        "rows_per_second_ratio_min": 3.0,
        "rows_per_second_ratio": (doc.get("ratios") or {}).get("rows_per_second_wpcdc_over_debezium"),
    }
    doc["loadavg_end"] = [round(x, 2) for x in os.getloadavg()]
    path = args.out / f"backfill-{stamp}.json"
    write_json(path, doc)
    png = chart(doc, path.with_suffix(".png"))
    if png:
        shutil.copyfile(png, args.out / "backfill-latest.png")
    write_json(args.out / "backfill-latest.json", doc)
    log(f"backfill: -> {path}")


if __name__ == "__main__":
    main()
