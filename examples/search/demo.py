#!/usr/bin/env python3
"""`make demo-search`: WordPress edits showing up in (and leaving) a Solr search, in front of you.

Starts the recipe's Solr (solr.py: Solr 9 from Maven Central) beside the local stack, `wpcdc
stream` on the single site (database ``wpsingle``) with a backfill, and the recipe's consumer
(consumer.py) in a consumer group of its own, so the index is rebuilt from the topics; then edits
through WordPress's own PHP API and prints what a search finds after each step. Stops the
connector, the consumer and Solr at the end (``--keep`` leaves Solr up to query it).
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

import httpx

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
sys.path.insert(0, str(REPO / "deploy" / "local"))
sys.path.insert(0, str(HERE))

import solr  # noqa: E402

import stack  # noqa: E402
from wordpress import WordPress  # noqa: E402

NAME = "search-demo"
Step = Callable[[WordPress, dict[str, Any]], Any]


def search(core: str, q: str) -> list[dict[str, Any]]:
    """What a site's search box would get: /select, published posts only."""
    answer = httpx.get(f"{core}/select", params={"q": q, "fl": "post_id,title,term_names,permalink",
                                                 "rows": "10"}, timeout=30).json()
    return list(answer["response"]["docs"])


def ids(core: str, q: str) -> set[int]:
    return {int(d["post_id"]) for d in search(core, q)}


def steps(core: str) -> list[tuple[str, Step, list[str], Callable[[dict[str, Any]], bool]]]:
    """The editor's actions, the searches shown after each, and what the index shows once the
    change arrived."""
    def found(s: dict[str, Any], q: str) -> bool:
        return s["post"] in ids(core, q)

    return [
        ("create a draft 'Hello, Solr' with a new tag (drafts are not searchable)",
         lambda wp, s: s.update(post=wp.create_post(
             "Hello, Solr", "<!-- wp:paragraph --><p>Search me, <em>caf&eacute;</em>.</p><!-- /wp:paragraph -->",
             status="draft", tags=[s["tag_slug"]])),
         ["title:hello"],
         lambda s: solr_doc(core, s["post"]) is not None),
        ("publish it", lambda wp, s: wp.publish(s["post"], via="update"),
         ["title:hello", "café"], lambda s: found(s, "title:hello")),
        ("edit the title to 'Welcome back, search'",
         lambda wp, s: wp.update_post(s["post"], title="Welcome back, search"),
         ["title:hello", "title:welcome"], lambda s: found(s, "title:welcome") and not found(s, "title:hello")),
        ("rename its tag (a term event: no post changed)",
         lambda wp, s: s.update(tag=f"Search tag {time.strftime('%H%M%S')}")
         or wp.run("update_term", term_id=s["tag_id"], name=s["tag"]),
         [], lambda s: found(s, f'term_names:"{s["tag"]}"')),
        ("move it to the trash", lambda wp, s: wp.trash(s["post"]),
         ["title:welcome"], lambda s: not found(s, "title:welcome")),
        ("delete it for good", lambda wp, s: wp.delete(s["post"]),
         ["title:welcome"], lambda s: solr_doc(core, s["post"]) is None),
    ]


def solr_doc(core: str, post_id: int) -> dict[str, Any] | None:
    """The core's document of the post, of any kind (real-time get)."""
    doc = httpx.get(f"{core}/get", params={"id": f"post:1:{post_id}"}, timeout=30).json()["doc"]
    return dict(doc) if doc else None


def wait_for(check: Callable[[], bool], procs: dict[str, subprocess.Popen[bytes]], what: str,
             timeout: float = 60) -> float:
    """Until ``check()``: the seconds it took (the connector's window, then the consumer)."""
    started = time.monotonic()
    while not check():
        for name, proc in procs.items():
            if proc.poll() is not None:
                raise SystemExit(f"{name} exited with {proc.returncode}; see the logs printed above")
        if time.monotonic() - started > timeout:
            raise SystemExit(f"{what} did not reach Solr within {timeout:.0f}s; see the logs printed above")
        time.sleep(0.2)
    return time.monotonic() - started


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--keep", action="store_true", help="leave Solr running at the end")
    args = parser.parse_args()
    ports = stack.up()
    print("starting Solr (the first time, Maven fetches its jars from Maven Central)...", flush=True)
    solr.up()
    core = solr.url()
    httpx.post(f"{core}/update", json={"delete": {"query": "*:*"}, "commit": {}}, timeout=60).raise_for_status()
    logs = stack.STATE / "connector-logs"
    logs.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, **stack.env(ports), "WPCDC_MYSQL_DATABASE": "wpsingle", "WPCDC_TABLE_PREFIX": "site_"}
    group = f"search-demo-{int(time.time())}"  # a new group: reads both topics from the beginning
    connector_cmd = [sys.executable, "-m", "cdc", "--log-format", "text", "stream", "--name", NAME,
                     "--snapshot", "when_needed"]
    consumer_cmd = [sys.executable, str(HERE / "consumer.py"), "--bootstrap", env["WPCDC_KAFKA_BOOTSTRAP"],
                    "--topic", f"wpcdc.{NAME}.posts", "--term-topic", f"wpcdc.{NAME}.terms",
                    "--solr", core, "--group", group]
    print(f"Solr:       {core}   (log: {solr.solr_dir() / 'solr.log'})")
    print(f"wpcdc:      {' '.join(connector_cmd[2:])}   (log: {logs / (NAME + '.log')})")
    print(f"consumer:   {' '.join(consumer_cmd[1:])}   (log: {logs / (NAME + '-consumer.log')})\n", flush=True)
    with open(logs / f"{NAME}.log", "ab") as out:
        connector = subprocess.Popen(connector_cmd, env=env, stdout=out, stderr=out, cwd=REPO)
    with open(logs / f"{NAME}-consumer.log", "ab") as out:
        consumer = subprocess.Popen(consumer_cmd, stdout=out, stderr=out, cwd=REPO)
    procs = {"wpcdc": connector, "the consumer": consumer}
    wp = WordPress.single()
    state: dict[str, Any] = {}
    try:
        wait_for(lambda: bool(httpx.get(f"{core}/all", params={"q": "kind:(post OR state)", "rows": "0"},
                                        timeout=30).json()["response"]["numFound"]), procs, "the backfill")
        n, last = -1, 0  # until the count holds still for 2 s: the backfill is in
        while n != last:
            n, last = last, httpx.get(f"{core}/select", params={"q": "*:*", "rows": "0"},
                                      timeout=30).json()["response"]["numFound"]
            time.sleep(2)
        print(f"backfill: {n} published posts of the site are searchable\n")
        state["tag_slug"] = slug = f"solr-demo-{time.strftime('%H%M%S')}"
        state["tag_id"] = int(wp.run("insert_term", name=slug, slug=slug)["term_id"])
        for i, (title, step, queries, arrived) in enumerate(steps(core), 1):
            print(f"{i}. {title}", flush=True)
            step(wp, state)
            took = wait_for(lambda arrived=arrived: arrived(state), procs, title)  # type: ignore[misc]
            print(f"    in Solr {took:.1f} s later:")
            if i == 4:
                queries = [f'term_names:"{state["tag_slug"]}"', f'term_names:"{state["tag"]}"']
            for q in queries:
                hits = [f"{d['post_id']} {d.get('title')!r} {d.get('term_names')} {d.get('permalink')}"
                        for d in search(core, q) if d["post_id"] == state["post"]]
                print(f"    search {q!r}: {hits or 'not found'}")
    finally:
        for proc in (consumer, connector):
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                proc.wait(30)
        if args.keep:
            print(f"\nSolr left running: curl '{core}/select?q=hello'   (stop: python examples/search/solr.py down)")
        else:
            solr.down()
    return 0


if __name__ == "__main__":
    sys.exit(main())
