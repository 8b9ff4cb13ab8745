"""The search recipe (examples/search/) end to end: WordPress edits -> wpcdc -> Kafka -> consumer -> Solr.

Real everything: a `wpcdc stream` of the single site (database ``wpsingle``) with a backfill, the
recipe's consumer as its README runs it, and Solr 9 from Maven Central (examples/search/solr.py;
a core of the test's own). Posts with tags are created through WordPress's PHP API; then a title
is edited, a tag renamed, another deleted, posts trashed, deleted, unpublished and published.
The consumer is killed with SIGKILL in the middle of the edits and started again in the same
consumer group (a backlog, and perhaps a batch written to Solr whose offsets were never committed).
Searches (the ``/select`` a site would use) must then find exactly the right posts: the new title
and the new tag name find them, the old title and the old names find nothing, and no deleted,
trashed, unpublished or draft post is ever returned. Finally a second consumer group re-reads
both topics from the beginning into the same core: every record is stale, nothing changes.
"""

from __future__ import annotations

import ast
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.integration.harness import unique

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
CONSUMER = REPO / "examples" / "search" / "consumer.py"


class SearchConsumer:
    """examples/search/consumer.py as a subprocess, with the command line of its README."""

    def __init__(self, bootstrap: str, name: str, solr: str, group: str, log_path: Path) -> None:
        self.cmd = [sys.executable, str(CONSUMER), "--bootstrap", bootstrap, "--topic", f"wpcdc.{name}.posts",
                    "--term-topic", f"wpcdc.{name}.terms", "--solr", solr, "--group", group, "--wait", "60"]
        self.log_path = log_path
        self.start()

    def start(self) -> None:
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(self.cmd, stdout=log, stderr=log, cwd=REPO)

    def kill(self) -> None:
        self.alive()
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def alive(self) -> None:
        if self.proc.poll() is not None:
            raise AssertionError(f"the consumer exited ({self.proc.returncode}):\n{self.log()[-4000:]}")

    def stop(self) -> int:
        self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(30)


def search(solr: str, q: str) -> set[int]:
    """post_ids that a site's search (/select: published posts only) returns for q."""
    answer = httpx.get(f"{solr}/select", params={"q": q, "fl": "post_id", "rows": "1000"}, timeout=30).json()
    return {int(d["post_id"]) for d in answer["response"]["docs"]}


def stored(solr: str, post_id: int) -> dict[str, Any] | None:
    """Whatever document the core holds for the post (any kind), by real-time get."""
    doc = httpx.get(f"{solr}/get", params={"id": f"post:1:{post_id}"}, timeout=30).json()["doc"]
    return dict(doc) if doc else None


def committed(log: str) -> dict[str, int]:
    """The highest offset the consumer's log says it committed, per topic-partition."""
    out: dict[str, int] = {}
    for line in re.findall(r"; committed (\{.*\})$", log, re.MULTILINE):
        for tp, offset in ast.literal_eval(line).items():
            out[tp] = max(out.get(tp, 0), int(offset))
    return out


def wait_until(what: str, check: Callable[[], Any], consumer: SearchConsumer, timeout: float = 90.0) -> float:
    """Poll check() until it returns a true value; the seconds it took."""
    started = time.monotonic()
    while True:
        consumer.alive()
        last = check()
        if last is True:
            return time.monotonic() - started
        if time.monotonic() - started > timeout:
            raise AssertionError(f"{what}: not reached within {timeout:.0f}s, last {last!r}\n"
                                 f"consumer log:\n{consumer.log()[-3000:]}")
        time.sleep(0.3)


@pytest.mark.timeout(300)
def test_search_index_follows_titles_terms_and_deletes(stack, wp_single, connectors, solr_core, tmp_path) -> None:
    u = unique("s").replace("-", "").replace("_", "")[-10:]  # one token for Solr's tokenizer
    connector = connectors(name=unique("search"), database="wpsingle", prefix="site_",
                           extra=["--snapshot", "initial"]).start()
    consumer = SearchConsumer(connector.bootstrap, connector.name, solr_core, f"g1-{u}", tmp_path / "consumer.log")
    wp = wp_single
    rename, doomed = f"alpha{u}", f"beta{u}"
    tag_a = int(wp.run("insert_term", name=rename, slug=rename)["term_id"])
    tag_b = int(wp.run("insert_term", name=doomed, slug=doomed)["term_id"])
    markup = (f"<!-- wp:paragraph --><p>Caf&eacute; body{u} &amp; <strong>bold</strong></p><!-- /wp:paragraph -->"
              f"<!-- wp:list --><ul><li>one</li><li>two</li></ul><!-- /wp:list -->")
    p1 = wp.create_post(f"Title{u} one", markup, status="publish", tags=[rename, doomed],
                        excerpt=f"<em>Short</em> excerpt{u}")
    p2 = wp.create_post(f"Second{u}", "plain", status="publish", tags=[rename])
    draft = wp.create_post(f"Draft{u}", "never published", status="draft", tags=[rename])
    trashed = wp.create_post(f"Trashed{u}", "x", status="publish", tags=[rename])
    deleted = wp.create_post(f"Deleted{u}", "x", status="publish", tags=[rename, doomed])
    unpublished = wp.create_post(f"Unpublished{u}", "x", status="publish", tags=[rename])
    late = wp.create_post(f"Late{u}", "published after the rename", status="draft", tags=[rename])
    published = {p1, p2, trashed, deleted, unpublished}

    took = wait_until("the published posts in Solr", lambda: search(solr_core, f'term_names:"{rename}"') == published
                      or search(solr_core, f'term_names:"{rename}"'), consumer)
    doc = stored(solr_core, p1)
    assert doc is not None and doc["kind"] == "post"
    assert doc["title"] == f"Title{u} one"
    assert doc["content"] == f"Café body{u} & bold one two"  # no tags, no block comments, entities decoded
    assert doc["excerpt"] == f"Short excerpt{u}"
    assert set(doc["term_labels"]) == {f"post_tag:{rename}", f"post_tag:{doomed}", "category:Uncategorized"}
    assert doc["permalink"] == wp.permalinks([p1])[p1]
    assert doc["author"] == int(wp.get_post(p1)["post"]["post_author"])
    assert search(solr_core, f"body{u}") == {p1}, "content is searchable"
    draft_doc = stored(solr_core, draft)
    assert draft_doc is not None and draft_doc["kind"] == "state" and "title" not in draft_doc, draft_doc
    assert search(solr_core, f"Draft{u}") == set(), "a draft is never searchable"

    t0 = time.monotonic()
    wp.update_post(p1, title=f"Renamed{u} title")
    wp.run("update_term", term_id=tag_a, name=f"Gamma{u}")
    consumer.kill()  # kill -9 while it may hold a batch in hand; the rest is a backlog for its next run
    wp.run("delete_term", term_id=tag_b)
    wp.trash(trashed)
    wp.delete(deleted)
    wp.update_post(unpublished, status="draft")
    wp.publish(late, via="update")
    edits = time.monotonic() - t0
    consumer.start()  # the same group: resumes at the offsets its last run committed

    expected = {
        f'title:"Renamed{u}"': {p1},
        f'title:"Title{u}"': set(),
        f'term_names:"Gamma{u}"': {p1, p2, late},
        f'term_names:"{rename}"': set(),
        f'term_names:"{doomed}"': set(),
        f"Trashed{u} OR Deleted{u} OR Unpublished{u} OR Draft{u}": set(),
        f"Late{u}": {late},
    }

    def all_expected() -> bool | dict[str, set[int]]:
        got = {q: search(solr_core, q) for q in expected}
        return got == expected or {q: ids for q, ids in got.items() if ids != expected[q]}

    settled = wait_until("the index after the edits", all_expected, consumer)
    assert stored(solr_core, deleted) is None, "the tombstone removed the deleted post's document"
    assert stored(solr_core, trashed)["kind"] == "state"  # type: ignore[index]
    assert stored(solr_core, unpublished)["kind"] == "state"  # type: ignore[index]
    late_doc = stored(solr_core, late)
    assert late_doc is not None and f"Gamma{u}" in late_doc["term_names"], (
        "a draft renamed while unpublished shows the new name once published", late_doc)
    assert doomed not in stored(solr_core, p1)["term_names"]  # type: ignore[index]
    log = consumer.log()
    assert consumer.stop() == 0, log[-3000:]
    assert " ERROR " not in log, log[-3000:]

    # A second group reads both topics from the start into the same core, as a crash before the
    # offset commit makes a consumer re-read: every record is stale or repeats a delete, nothing changes.
    first = committed(log)
    assert first, log[-2000:]
    before = {q: search(solr_core, q) for q in expected}
    docs_before = {p: stored(solr_core, p) for p in (p1, p2, late, trashed)}
    again = SearchConsumer(connector.bootstrap, connector.name, solr_core, f"g2-{u}", tmp_path / "again.log")
    try:
        wait_until("the second group read everything the first did",
                   lambda: all(committed(again.log()).get(tp, -1) >= n for tp, n in first.items())
                   or committed(again.log()), again, timeout=60)
    finally:
        assert again.stop() == 0, again.log()[-3000:]
    assert {q: search(solr_core, q) for q in expected} == before
    assert {p: stored(solr_core, p) for p in (p1, p2, late, trashed)} == docs_before
    print(f"\nsearch recipe: first posts searchable {took:.1f}s after creation; "
          f"{edits:.1f}s of edits, index exact {settled:.1f}s after them")
