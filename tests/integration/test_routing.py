"""--topic as a template against real WordPress: a topic per blog and post type, created as
first needed; a post turned into a page moves (a tombstone in the old topic, the document in
the new one, in one transaction)."""

from __future__ import annotations

import os
import subprocess
import sys

import orjson
import pytest

from tests.integration.harness import REPO, read_topic, unique, wait_until

pytestmark = pytest.mark.integration


def test_posts_and_pages_get_their_own_topics_and_a_type_change_moves(connectors, wordpress, cdc_env) -> None:  # type: ignore[no-untyped-def]
    name = unique("route")
    c = connectors(name=name, extra=["--topic", "wpcdc.{name}.{blog_id}.{post_type}", "--blogs", "1"])
    c.start()
    post_topic, page_topic = f"wpcdc.{name}.1.post", f"wpcdc.{name}.1.page"
    post = wordpress.create_post("routed post", status="publish")
    page = wordpress.create_post("routed page", status="publish", type="page")

    def keys(topic: str) -> list[tuple[str, bool]]:
        return [(m.key, m.value is None) for m in read_topic(c.bootstrap, topic)]

    wait_until(lambda: (f"1:{post}", False) in keys(post_topic) and (f"1:{page}", False) in keys(page_topic),
               timeout=60, what="a post in the post topic and a page in the page topic")
    assert all(k != f"1:{page}" for k, _ in keys(post_topic))

    wordpress.run("set_post_type", post_id=post, type="page")
    wait_until(lambda: (f"1:{post}", True) in keys(post_topic), timeout=60, what="the tombstone in the old topic")
    moved = [m for m in read_topic(c.bootstrap, page_topic) if m.key == f"1:{post}"]
    assert moved and moved[-1].value is not None and moved[-1].value["after"]["post_type"] == "page"
    assert dict(moved[-1].headers)["wpcdc_post_type"] == b"page"
    # status sums the topics the template names
    status = subprocess.run([sys.executable, "-m", "cdc", "status", "--json", "--name", name, "--topic",
                             "wpcdc.{name}.{blog_id}.{post_type}"], env={**os.environ, **cdc_env},
                            capture_output=True, text=True, timeout=90, cwd=REPO)
    report = orjson.loads(status.stdout)
    assert report["events"]["topics"] == sorted([page_topic, post_topic]), status.stderr
    assert report["events"]["committed_offsets"] >= 4
