"""A post WordPress deletes while wpcdc is behind: the meta, term and revision deletions that
wp_delete_post writes before the post row fold into the delete, never into an update without a
row (docs/events.md: only a delete has no ``after``)."""

from __future__ import annotations

import time

import pytest

from tests.integration.harness import Connector, wait_until

pytestmark = pytest.mark.integration


@pytest.mark.parametrize("window", [0.0, 0.4])
def test_wp_delete_post_read_after_the_fact_is_one_delete(connectors, wordpress, window) -> None:  # type: ignore[no-untyped-def]
    c: Connector = connectors(window=window)
    c.start()
    pid = wordpress.create_post("Deleted while the connector was away", "body", status="publish",
                                tags=["going"], meta={"color": "teal", "size": "xl"})
    wordpress.update_post(pid, title="Deleted while the connector was away (revised)")
    wait_until(lambda: any("(revised)" in (e["after"] or {}).get("post_title", "") for e in c.events((1, pid))),
               60, what="the revised post's event")
    time.sleep(c.window + 1.0)
    first = c.events((1, pid))  # one event per save, or per transaction with window 0
    assert c.stop() == 0
    # Restarted with an empty row cache, behind WordPress: every lookup of the post misses.
    wordpress.delete(pid)
    c.start()
    events = c.wait_events((1, pid), count=len(first) + 1, timeout=60)
    assert events[:-1] == first
    last = events[-1]
    assert (last["op"], last["action"], last["after"]) == ("delete", "deleted", None), last
    assert last["before"]["ID"] == pid
    assert {m["key"] for m in last["meta"] if m["op"] == "delete"} >= {"color", "size"}
    assert {t["slug"] for t in last["terms"]["removed"]} == {"uncategorized", "going"}
    assert last["revisions"] == [] and last["source"]["rows"] > 4  # meta, terms, revisions and the row
    for e in events:
        assert e["op"] == "delete" or e["after"] is not None, f"an {e['op']} without after: {e}"
    keys = [m for m in c.messages() if m.post == (1, pid)]
    assert keys[-1].value is None, "the delete's tombstone closes the post's records"
    assert "dropping its change" not in c.log()
