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


def tag_id(dsn: str, slug: str) -> int:
    """The term_id of a tag, as the recipe's ``terms`` table knows it."""
    with psycopg.connect(dsn) as conn:
        row = conn.execute("SELECT term_id FROM terms WHERE slug = %s", (slug,)).fetchone()
    assert row is not None, f"tag {slug!r} is not in the terms table"
    return int(row[0])


def steps(dsn: str) -> list[tuple[str, Step | None]]:
    """The editor's actions; None is the kill -9 of the consumer (main() does it)."""
    return [
        ("create a draft with a tag and a meta value", lambda wp, s: s.update(post=wp.create_post(
            "Hello, PostgreSQL", "First words.", status="draft", tags=["pg-demo"], meta={"color": "teal"}))),
        ("publish it", lambda wp, s: wp.publish(s["post"], via="update")),
        ("edit the title", lambda wp, s: wp.update_post(s["post"], title="Hello again, PostgreSQL")),
        ("rename its tag (a term event: no post row changes)", lambda wp, s: wp.run(
            "update_term", term_id=tag_id(dsn, "pg-demo"), name=f"PG demo {time.strftime('%H:%M:%S')}")),
        ("kill -9 the consumer, change the meta while it is down, start it again", None),
        ("move it to the trash", lambda wp, s: wp.trash(s["post"])),
        ("delete it for good", lambda wp, s: wp.delete(s["post"])),
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


def settle(dsn: str, seconds: float = 4.0, *, started: bool = True) -> None:
    """Until the offsets stop moving: the connector's window (2 s) plus the consumer's batch
    (``started=False``: first until anything at all was applied, the backfill)."""
    last, quiet_since = None, time.monotonic()
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        with psycopg.connect(dsn) as conn:
            now = conn.execute("SELECT coalesce(sum(next_offset), 0) FROM kafka_offsets").fetchone()
        if now != last or (not started and not (now and now[0])):
            last, quiet_since = now, time.monotonic()
        elif time.monotonic() - quiet_since > seconds:
            return
        time.sleep(0.3)


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
                     "--snapshot", "initial"]
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
        settle(dsn, started=False)
        with psycopg.connect(dsn) as conn:
            n = conn.execute("SELECT count(*) FROM posts").fetchone()
        print(f"backfill: {n[0] if n else 0} posts of the site are in the posts table\n")
        for i, (title, step) in enumerate(steps(dsn), 1):
            print(f"{i}. {title}", flush=True)
            if step is None:
                consumer.send_signal(signal.SIGKILL)
                consumer.wait()
                wp.run("update_meta", post_id=state["post"], key="color", value="navy")
                consumer = subprocess.Popen(consumer_cmd, stdout=consumer_log, stderr=consumer_log, cwd=REPO)
            else:
                step(wp, state)
            settle(dsn)
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
