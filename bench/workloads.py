"""The workloads: WordPress-shaped writes into the local MariaDB's binlog, each in its own database.

Every SQL workload gets a fresh database with the real WordPress schema (copied with SHOW CREATE
TABLE from the installed ``wordpress`` database), a few terms, and then its writes, fast: multi-row
INSERTs through PyMySQL's ``executemany`` as admin. The caller records the binlog position before
and after; both connectors then read exactly that range.

Shapes (``scale`` multiplies every count; 1.0 is the issue's size):

* ``wp-bulk``: 20k posts, 200k postmeta inserts, 200k postmeta updates, 60k term relationships,
  100k wp_options transient writes (noise), interleaved the way an import plugin writes them.
* ``noise-heavy``: 90 % of the row bytes in tables wpcdc does not capture (transients, user
  meta, a WooCommerce-like sessions table), the rest ordinary post/meta writes.
* ``mem-1m`` (issue #4): 1,000,000 postmeta rows inserted *before* the start position, then ONE
  ``UPDATE wp_postmeta SET meta_value=… WHERE meta_key=…`` that changes all of them in one
  transaction.
* ``latency``: a paced stream of single-post edits (see bench/latency.py).
* ``wp-editor``: real WordPress saves through the PHP driver (see :func:`wp_editor`).
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pymysql

from bench.common import Stack, log

SCHEMA_SOURCE = "wordpress"
TABLES = ("wp_posts", "wp_postmeta", "wp_term_relationships", "wp_terms", "wp_term_taxonomy",
          "wp_options", "wp_usermeta", "wp_termmeta")
CAPTURED = ("wp_posts", "wp_postmeta", "wp_term_relationships", "wp_terms", "wp_term_taxonomy")

WORDS = ("stream", "binlog", "kafka", "press", "editor", "change", "capture", "event", "replica",
         "offset", "schema", "row", "update", "insert", "post", "meta", "term", "block", "theme")


@dataclass
class Written:
    """What a workload wrote: statements, rows and payload bytes per table."""

    rows: dict[str, int] = field(default_factory=dict)
    bytes: dict[str, int] = field(default_factory=dict)
    statements: int = 0
    seconds: float = 0.0
    extra: dict[str, Any] = field(default_factory=dict)

    def add(self, table: str, rows: int, nbytes: int) -> None:
        self.rows[table] = self.rows.get(table, 0) + rows
        self.bytes[table] = self.bytes.get(table, 0) + nbytes
        self.statements += 1

    def as_dict(self) -> dict[str, Any]:
        captured = sum(v for k, v in self.bytes.items() if k in CAPTURED)
        total = sum(self.bytes.values()) or 1
        return {"rows": self.rows, "payload_bytes": self.bytes, "statements": self.statements,
                "write_seconds": round(self.seconds, 2),
                "noise_byte_share": round(1 - captured / total, 3), **self.extra}


def _nbytes(row: tuple[Any, ...]) -> int:
    return sum(len(v.encode()) if isinstance(v, str) else 8 for v in row)


def prepare_database(st: Stack, db: str) -> None:
    """A fresh database with WordPress's tables and 100 terms (written before the start)."""
    src = st.admin(SCHEMA_SOURCE)
    ddl = []
    with src.cursor() as cur:
        for t in TABLES:
            cur.execute(f"SHOW CREATE TABLE `{t}`")
            ddl.append(cur.fetchone()[1])
    src.close()
    conn = st.admin()
    with conn.cursor() as cur:
        cur.execute(f"DROP DATABASE IF EXISTS `{db}`")
        cur.execute(f"CREATE DATABASE `{db}` CHARACTER SET utf8mb4")
        cur.execute(f"USE `{db}`")
        for stmt in ddl:
            cur.execute(stmt)
        terms = [(i, f"{WORDS[i % len(WORDS)].title()} {i}", f"{WORDS[i % len(WORDS)]}-{i}", 0) for i in range(1, 101)]
        cur.executemany("INSERT INTO wp_terms (term_id, name, slug, term_group) VALUES (%s,%s,%s,%s)", terms)
        tax = [(i, i, "category" if i <= 20 else "post_tag", "", 0, 0) for i in range(1, 101)]
        cur.executemany("INSERT INTO wp_term_taxonomy (term_taxonomy_id, term_id, taxonomy, description, parent, count) "
                        "VALUES (%s,%s,%s,%s,%s,%s)", tax)
        cur.execute("INSERT INTO wp_options (option_name, option_value, autoload) VALUES ('siteurl','http://localhost','yes')")
    conn.close()


def drop_database(st: Stack, db: str) -> None:
    conn = st.admin()
    with conn.cursor() as cur:
        cur.execute(f"DROP DATABASE IF EXISTS `{db}`")
    conn.close()


# ------------------------------------------------------------------------------------- row shapes


def _text(rng: random.Random, words: int) -> str:
    return " ".join(rng.choice(WORDS) for _ in range(words))


def _content(rng: random.Random, i: int, paragraphs: int = 4) -> str:
    parts = []
    for p in range(paragraphs):
        parts.append(f"<!-- wp:paragraph -->\n<p>{_text(rng, 40)} ({i}.{p}) ünïcödé</p>\n<!-- /wp:paragraph -->")
    return "\n\n".join(parts)


def post_row(rng: random.Random, pid: int, *, paragraphs: int = 4, status: str = "publish") -> tuple[Any, ...]:
    day = f"2024-{1 + pid % 12:02d}-{1 + pid % 28:02d} {pid % 24:02d}:{pid % 60:02d}:00"
    title = f"{_text(rng, 6).title()} {pid}"
    slug = title.lower().replace(" ", "-")[:190]
    return (pid, 1, day, day, _content(rng, pid, paragraphs), title, _text(rng, 20), status, "open", "open",
            "", slug, "", "", day, day, "", 0, f"http://localhost/?p={pid}", 0, "post", "", 0)


POST_COLS = ("ID, post_author, post_date, post_date_gmt, post_content, post_title, post_excerpt, post_status, "
             "comment_status, ping_status, post_password, post_name, to_ping, pinged, post_modified, "
             "post_modified_gmt, post_content_filtered, post_parent, guid, menu_order, post_type, "
             "post_mime_type, comment_count")
INSERT_POSTS = f"INSERT INTO wp_posts ({POST_COLS}) VALUES ({','.join(['%s'] * 23)})"
INSERT_META = "INSERT INTO wp_postmeta (meta_id, post_id, meta_key, meta_value) VALUES (%s,%s,%s,%s)"
INSERT_REL = "INSERT INTO wp_term_relationships (object_id, term_taxonomy_id, term_order) VALUES (%s,%s,%s)"
UPSERT_OPTION = ("INSERT INTO wp_options (option_name, option_value, autoload) VALUES (%s,%s,%s) "
                 "ON DUPLICATE KEY UPDATE option_value=VALUES(option_value), autoload=VALUES(autoload)")
INSERT_USERMETA = "INSERT INTO wp_usermeta (user_id, meta_key, meta_value) VALUES (%s,%s,%s)"

META_KEYS = ("_thumbnail_id", "_wp_page_template", "views", "seo_title", "seo_description", "_price",
             "_sku", "related_posts", "rating", "_edit_last")


def meta_value(rng: random.Random, key: str, pid: int, gen: int = 0) -> str:
    if key == "related_posts":
        ids = [pid + k for k in range(1, 6)]
        inner = "".join(f"i:{n};i:{v};" for n, v in enumerate(ids))
        return f"a:{len(ids)}:{{{inner}}}"
    if key in ("seo_title", "seo_description"):
        return f"{_text(rng, 8 if key == 'seo_title' else 20)} #{gen}"
    if key == "_wp_page_template":
        return "default"
    return str(rng.randrange(1, 10_000_000) + gen)


def transient(rng: random.Random, n: int, size: int) -> tuple[str, str, str]:
    body = _text(rng, max(1, size // 7))[:size]
    return (f"_transient_bench_{n}", f's:{len(body)}:"{body}";', "no")


# -------------------------------------------------------------------------------------- wp-bulk


def wp_bulk(st: Stack, db: str, scale: float = 1.0, seed: int = 7) -> Written:
    """20k posts / 200k meta inserts / 200k meta updates / 60k term rows / 100k transients."""
    rng = random.Random(seed)
    posts = max(10, int(20_000 * scale))
    per_post_meta = 10
    transients = max(10, int(100_000 * scale))
    chunk = 500
    out = Written()
    started = time.monotonic()
    conn = st.admin(db, autocommit=False)
    cur = conn.cursor()
    t_next = 0
    meta_id = 0
    for base in range(1, posts + 1, chunk):
        ids = range(base, min(base + chunk, posts + 1))
        prow = [post_row(rng, pid) for pid in ids]
        cur.executemany(INSERT_POSTS, prow)
        out.add("wp_posts", len(prow), sum(map(_nbytes, prow)))
        mrows = []
        for pid in ids:
            for key in META_KEYS[:per_post_meta]:
                meta_id += 1
                mrows.append((meta_id, pid, key, meta_value(rng, key, pid)))
        for k in range(0, len(mrows), 1000):
            cur.executemany(INSERT_META, mrows[k:k + 1000])
        out.add("wp_postmeta", len(mrows), sum(map(_nbytes, mrows)))
        rels = [(pid, t, 0) for pid in ids for t in (1 + pid % 20, 21 + pid % 80, 21 + (pid * 7) % 80)]
        rels = list(dict.fromkeys(rels))
        cur.executemany(INSERT_REL, rels)
        out.add("wp_term_relationships", len(rels), sum(map(_nbytes, rels)))
        conn.commit()
        # Transient noise between the imports: half of them written here.
        n = (transients // 2) * len(ids) // posts
        orows = [transient(rng, t_next + k, 300) for k in range(n)]
        t_next += n
        if orows:
            cur.executemany(UPSERT_OPTION, orows)
            out.add("wp_options", len(orows), sum(map(_nbytes, orows)))
            conn.commit()
    # Second pass: every meta row updated once (1000 rows per statement), transients rewritten.
    total_meta = meta_id
    per_stmt = 1000
    steps = max(1, total_meta // per_stmt)
    rewritten = transients - t_next
    for step, lo in enumerate(range(1, total_meta + 1, per_stmt)):
        hi = min(lo + per_stmt - 1, total_meta)
        cur.execute("UPDATE wp_postmeta SET meta_value = CONCAT(meta_value, '-u') WHERE meta_id BETWEEN %s AND %s",
                    (lo, hi))
        out.add("wp_postmeta", cur.rowcount, 2 * (hi - lo + 1) * 60)
        conn.commit()
        n = rewritten // steps if step < steps - 1 else rewritten - (rewritten // steps) * (steps - 1)
        orows = [transient(rng, rng.randrange(max(1, t_next)), 300) for _ in range(max(0, n))]
        if orows:
            cur.executemany(UPSERT_OPTION, orows)
            out.add("wp_options", len(orows), 2 * sum(map(_nbytes, orows)))
            conn.commit()
    conn.close()
    out.seconds = time.monotonic() - started
    out.extra.update(posts=posts, meta_inserts=total_meta, meta_updates=total_meta, transients=transients)
    return out


# ---------------------------------------------------------------------------------- noise-heavy


def noise_heavy(st: Stack, db: str, scale: float = 1.0, seed: int = 11) -> Written:
    """About 90 % of the row bytes go to tables wpcdc does not capture."""
    rng = random.Random(seed)
    posts = max(10, int(4_000 * scale))
    out = Written()
    started = time.monotonic()
    conn = st.admin(db, autocommit=False)
    cur = conn.cursor()
    meta_id = 0
    t = 0
    for base in range(1, posts + 1, 200):
        ids = range(base, min(base + 200, posts + 1))
        prow = [post_row(rng, pid, paragraphs=2) for pid in ids]
        cur.executemany(INSERT_POSTS, prow)
        out.add("wp_posts", len(prow), sum(map(_nbytes, prow)))
        mrows = []
        for pid in ids:
            for key in META_KEYS[:5]:
                meta_id += 1
                mrows.append((meta_id, pid, key, meta_value(rng, key, pid)))
        cur.executemany(INSERT_META, mrows)
        out.add("wp_postmeta", len(mrows), sum(map(_nbytes, mrows)))
        conn.commit()
        # Noise: transients (sessions, API caches), user meta, in many small transactions.
        for _ in range(12):
            orows = [transient(rng, t + k, 8000) for k in range(40)]
            t += 40
            cur.executemany(UPSERT_OPTION, orows)
            out.add("wp_options", len(orows), sum(map(_nbytes, orows)))
            urows = [(1 + k % 50, f"session_tokens_{t}_{k}", _text(rng, 60)) for k in range(10)]
            cur.executemany(INSERT_USERMETA, urows)
            out.add("wp_usermeta", len(urows), sum(map(_nbytes, urows)))
            conn.commit()
        lo = max(1, meta_id - len(mrows) + 1)
        cur.execute("UPDATE wp_postmeta SET meta_value = CONCAT(meta_value, '-u') WHERE meta_id BETWEEN %s AND %s",
                    (lo, meta_id))
        out.add("wp_postmeta", cur.rowcount, 2 * cur.rowcount * 40)
        conn.commit()
    conn.close()
    out.seconds = time.monotonic() - started
    return out


# --------------------------------------------------------------------------------------- mem-1m


def mem_setup(st: Stack, db: str, rows: int, posts: int, seed: int = 5) -> Written:
    """``posts`` posts and ``rows`` postmeta rows keyed ``bench_flag`` (spread evenly over the
    posts), written BEFORE the start position."""
    rng = random.Random(seed)
    posts = max(1, min(posts, rows))
    per_post = rows // posts
    out = Written()
    started = time.monotonic()
    conn = st.admin(db, autocommit=False)
    cur = conn.cursor()
    for base in range(1, posts + 1, 2000):
        ids = range(base, min(base + 2000, posts + 1))
        cur.executemany(INSERT_POSTS, [post_row(rng, pid, paragraphs=1) for pid in ids])
        conn.commit()
    meta_id = 0
    batch: list[tuple[Any, ...]] = []
    for pid in range(1, posts + 1):
        for _ in range(per_post):
            meta_id += 1
            batch.append((meta_id, pid, "bench_flag", "old"))
        if len(batch) >= 20_000:
            cur.executemany(INSERT_META, batch)
            conn.commit()
            batch.clear()
    if batch:
        cur.executemany(INSERT_META, batch)
        conn.commit()
    conn.close()
    out.seconds = time.monotonic() - started
    out.extra.update(posts=posts, meta_rows=meta_id)
    return out


def mem_update(st: Stack, db: str) -> Written:
    """The one statement: every bench_flag row changes, in one transaction."""
    out = Written()
    started = time.monotonic()
    conn = st.admin(db)
    with conn.cursor() as cur:
        cur.execute("UPDATE wp_postmeta SET meta_value = 'new value, written by one statement' "
                    "WHERE meta_key = 'bench_flag'")
        out.add("wp_postmeta", cur.rowcount, cur.rowcount * 2 * 60)
    conn.close()
    out.seconds = time.monotonic() - started
    return out


# ------------------------------------------------------------------------------------ wp-editor


def wp_editor(saves: int, progress: Callable[[str], None] = log) -> tuple[Written, int]:
    """Real WordPress saves through deploy/local's PHP driver, on a dedicated blog ``bench``.

    ``seed`` inserts posts through wp_insert_post (with tags, a category and three meta values),
    ``bulk_edit`` saves them all again through wp-admin's bulk edit (wp_update_post + terms), and a
    few dozen block-editor REST saves run one request per process. Returns (what, blog id).
    """
    from wordpress import WordPress  # deploy/local, on sys.path through bench.common

    wp = WordPress.multisite()
    blog = wp.create_blog("bench", "Bench")
    out = Written()
    started = time.monotonic()
    half = max(1, saves // 2)
    ids: list[int] = []
    for k in range(0, half, 250):
        n = min(250, half - k)
        ids += wp.run("seed", blog, count=n)["post_ids"]
        progress(f"wp-editor: {len(ids)}/{half} posts seeded")
    out.extra["seeded"] = len(ids)
    edited = 0
    for k in range(0, len(ids), 250):
        part = ids[k:k + 250]
        res = wp.run("bulk_edit", blog, post_ids=part, tags=["bulk", f"batch-{k // 250}"])
        edited += len(res["updated"])
    out.extra["bulk_edited"] = edited
    rest = min(40, len(ids))
    for pid in ids[:rest]:
        wp.run("rest_save", blog, post_id=pid, title=f"Edited in the block editor {pid}",
               content=f"<!-- wp:paragraph --><p>new body {pid}</p><!-- /wp:paragraph -->")
    out.extra["rest_saves"] = rest
    out.extra["saves"] = len(ids) + edited + rest
    out.seconds = time.monotonic() - started
    return out, blog


def check_connection(st: Stack) -> None:
    try:
        st.admin().close()
    except pymysql.err.OperationalError as exc:
        raise SystemExit(f"bench: cannot connect to MariaDB as admin: {exc}") from None
