#!/usr/bin/env python3
"""`make demo-postgres`: WordPress edits landing in PostgreSQL tables, exactly once, in front of you.

Starts a throwaway PostgreSQL (deploy/local/postgres.py) beside the local stack, `wpcdc stream`
on the single site (database ``wpsingle``) with a backfill, and the recipe's consumer
(consumer.py); then edits through WordPress's own PHP API, printing the ``posts`` table after each
step, with one ``kill -9`` of the consumer in the middle. Stops the connector, the consumer and
PostgreSQL at the end (``--keep`` leaves PostgreSQL up to look around with psql).
"""

from __future__ import annotations

import argparse
import functools
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psycopg

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
sys.path.insert(0, str(REPO / "deploy" / "local"))

import postgres  # noqa: E402
import stack  # noqa: E402
from wordpress import WordPress  # noqa: E402

NAME = "pg-demo"
DATABASE = "wpcdc_demo"
Step = Callable[[WordPress, dict[str, Any]], Any]


def one(dsn: str, sql: str, *params: Any) -> Any:
    """The first column of the first row (None without a row)."""
    with psycopg.connect(dsn) as conn:
        row = conn.execute(sql, params).fetchone()
    return row[0] if row else None


def steps(dsn: str) -> list[tuple[str, Step | None, Callable[[dict[str, Any]], bool]]]:
    """The editor's actions, each with what PostgreSQL shows once it arrived; a None action is the
    kill -9 of the consumer (main() does it)."""
    def post(s: dict[str, Any], column: str) -> Any:
        return one(dsn, f"SELECT {column} FROM posts WHERE blog_id = 1 AND post_id = %s", s["post"])

    return [
        ("create a draft with a tag and a meta value", lambda wp, s: s.update(post=wp.create_post(
            "Hello, PostgreSQL", "First words.", status="draft", tags=["pg-demo"], meta={"color": "teal"})),
         lambda s: post(s, "post_status") == "draft"),
        ("publish it", lambda wp, s: wp.publish(s["post"], via="update"),
         lambda s: post(s, "post_status") == "publish"),
        ("edit the title", lambda wp, s: wp.update_post(s["post"], title="Hello again, PostgreSQL"),
         lambda s: post(s, "post_title") == "Hello again, PostgreSQL"),
        ("rename its tag (a term event: no post row changes)", lambda wp, s: s.update(tag=f"PG demo {time.strftime('%H:%M:%S')}")
         or wp.run("update_term", term_id=one(dsn, "SELECT term_id FROM terms WHERE slug = 'pg-demo'"), name=s["tag"]),
         lambda s: one(dsn, "SELECT name FROM terms WHERE slug = 'pg-demo'") == s["tag"]),
        ("kill -9 the consumer, change the meta while it is down, start it again", None,
         lambda s: one(dsn, "SELECT meta_value FROM post_meta WHERE blog_id = 1 AND post_id = %s AND "
                            "meta_key = 'color'", s["post"]) == "navy"),
        ("move it to the trash", lambda wp, s: wp.trash(s["post"]),
         lambda s: post(s, "post_status") == "trash"),
        ("delete it for good", lambda wp, s: wp.delete(s["post"]),
         lambda s: one(dsn, "SELECT count(*) FROM posts WHERE blog_id = 1 AND post_id = %s", s["post"]) == 0),
    ]


def show(dsn: str, post_id: int | None) -> None:
    with psycopg.connect(dsn) as conn:
        row = conn.execute("SELECT post_id, post_status, post_title, path, seq FROM posts "
                           "WHERE blog_id = 1 AND post_id = %s", (post_id,)).fetchone()
        meta = conn.execute("SELECT meta_key, meta_value FROM post_meta WHERE blog_id = 1 AND post_id = %s "
                            "ORDER BY meta_id", (post_id,)).fetchall()
        terms = conn.execute("SELECT taxonomy, name FROM post_terms_named WHERE blog_id = 1 AND post_id = %s "
                             "ORDER BY term_taxonomy_id", (post_id,)).fetchall()
        total = conn.execute("SELECT count(*) FROM posts").fetchone()
    if row is None:
        print(f"    posts: no row for post {post_id}  ({total[0] if total else 0} posts in the table)")
        return
    print(f"    posts: {row[0]} {row[1]!r} {row[2]!r} {row[3]} seq={row[4]}")
    print(f"    post_meta: {dict(meta)}   post_terms: {[f'{t}:{n}' for t, n in terms]}")


def wait_for(check: Callable[[], bool], connector: subprocess.Popen[bytes], what: str,
             timeout: float = 60) -> float:
    """Until ``check()``: the seconds it took (the connector's 2 s window, then the consumer)."""
    started = time.monotonic()
    while not check():
        if connector.poll() is not None:
            raise SystemExit(f"wpcdc exited with {connector.returncode}; see its log "
                             f"{stack.STATE / 'connector-logs' / (NAME + '.log')}")
        if time.monotonic() - started > timeout:
            raise SystemExit(f"{what} did not reach PostgreSQL within {timeout:.0f}s; see the logs above")
        time.sleep(0.2)
    return time.monotonic() - started


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--keep", action="store_true", help="leave PostgreSQL running at the end")
    args = parser.parse_args()
    ports = stack.up()
    port = postgres.up()
    with psycopg.connect(postgres.dsn(port=port), autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {DATABASE} WITH (FORCE)")
        conn.execute(f"CREATE DATABASE {DATABASE}")
    dsn = postgres.dsn(DATABASE, port)
    with psycopg.connect(dsn, autocommit=True) as conn:  # the consumer does it too; the demo reads first
        conn.execute((HERE / "schema.sql").read_text())
    logs = stack.STATE / "connector-logs"
    logs.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, **stack.env(ports), "WPCDC_MYSQL_DATABASE": "wpsingle", "WPCDC_TABLE_PREFIX": "site_"}
    bootstrap = env["WPCDC_KAFKA_BOOTSTRAP"]
    connector_cmd = [sys.executable, "-m", "cdc", "--log-format", "text", "stream", "--name", NAME,
                     "--snapshot", "when_needed"]  # a backfill at first, and again if its binlog was purged
    consumer_cmd = [sys.executable, str(HERE / "consumer.py"), "--bootstrap", bootstrap,
                    "--topic", f"wpcdc.{NAME}.posts", "--term-topic", f"wpcdc.{NAME}.terms", "--dsn", dsn]
    print(f"PostgreSQL: {dsn}")
    print(f"wpcdc:      {' '.join(connector_cmd[2:])}   (log: {logs / (NAME + '.log')})")
    print(f"consumer:   {' '.join(consumer_cmd[1:])}   (log: {logs / (NAME + '-consumer.log')})\n", flush=True)
    with open(logs / f"{NAME}.log", "ab") as out:
        connector = subprocess.Popen(connector_cmd, env=env, stdout=out, stderr=out, cwd=REPO)
    consumer_log = open(logs / f"{NAME}-consumer.log", "ab")  # noqa: SIM115 - closed in finally
    consumer = subprocess.Popen(consumer_cmd, stdout=consumer_log, stderr=consumer_log, cwd=REPO)
    wp = WordPress.single()
    state: dict[str, Any] = {}
    try:
        wait_for(lambda: bool(one(dsn, "SELECT count(*) FROM posts")), connector, "the backfill")
        with psycopg.connect(dsn) as conn:
            n = conn.execute("SELECT count(*) FROM posts").fetchone()
        print(f"backfill: {n[0] if n else 0} posts of the site are in the posts table\n")
        for i, (title, step, arrived) in enumerate(steps(dsn), 1):
            print(f"{i}. {title}", flush=True)
            if step is None:
                consumer.send_signal(signal.SIGKILL)
                consumer.wait()
                wp.run("update_meta", post_id=state["post"], key="color", value="navy")
                consumer = subprocess.Popen(consumer_cmd, stdout=consumer_log, stderr=consumer_log, cwd=REPO)
            else:
                step(wp, state)
            took = wait_for(functools.partial(arrived, state), connector, title)
            print(f"    in PostgreSQL {took:.1f} s later:")
            show(dsn, state.get("post"))
        with psycopg.connect(dsn) as conn:
            twice = conn.execute("SELECT count(*) FROM (SELECT 1 FROM applied GROUP BY blog_id, post_id, seq "
                                 "HAVING count(*) > 1) d").fetchone()
            applied = conn.execute("SELECT count(*) FROM applied").fetchone()
        print(f"\n{applied[0] if applied else 0} events applied, {twice[0] if twice else 0} of them more than once.")
    finally:
        for proc in (consumer, connector):
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                proc.wait(30)
        consumer_log.close()
        if args.keep:
            print(f"PostgreSQL left running: psql '{dsn}'   (stop: python deploy/local/postgres.py down)")
        else:
            postgres.down()
    return 0


if __name__ == "__main__":
    sys.exit(main())
