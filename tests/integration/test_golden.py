"""Golden cases: an editor action through real WordPress beside the events it must produce.

Each file in golden/ lists steps (driver actions; ``{"settle": true}`` waits until the window
has closed, so the next step makes its own event) and the exact events expected for the posts
the steps name. One connector serves every case; each case looks only at its own posts.

Expected event fields:
  op, action, post_type, blog     equal
  status [before, after]          equal
  changed_fields                  [] means none; otherwise each listed field must be among them
  after {field: value}            these fields of ``after`` equal (``"after": null`` for deletes)
  meta {key: [before, after]}     exactly these meta keys changed, with these values
  meta_keys [keys]                exactly these meta keys changed (values not compared)
  terms_added / terms_removed     exactly these ``taxonomy:slug``
  revisions                       count of revisions noted, or "autosave"
  tombstone                       the event is followed by a tombstone for its key
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest

from tests.integration.harness import Connector

pytestmark = pytest.mark.integration

GOLDEN = Path(__file__).parent / "golden"
CASES = sorted(GOLDEN.glob("*.json"))
WINDOW = 0.4
SETTLE = WINDOW + 1.2


@pytest.fixture(scope="module")
def golden_connector(cdc_env: dict[str, str]):  # type: ignore[no-untyped-def]
    connector = Connector(cdc_env, window=WINDOW)
    connector.start()
    yield connector
    assert connector.stop() == 0, connector.log()[-3000:]


def _subst(value: Any, ids: dict[str, int], as_text: bool = False) -> Any:
    if isinstance(value, str) and value.startswith("$") and value[1:] in ids:
        return str(ids[value[1:]]) if as_text else ids[value[1:]]
    if isinstance(value, dict):
        return {k: _subst(v, ids, as_text) for k, v in value.items()}
    if isinstance(value, list):
        return [_subst(v, ids, as_text) for v in value]
    return value


def _terms(items: list[dict[str, Any]]) -> list[str]:
    return sorted(f"{t['taxonomy']}:{t['slug']}" for t in items)


def _check(event: dict[str, Any], want: dict[str, Any], ids: dict[str, int], where: str) -> None:
    for field in ("op", "action", "post_type"):
        if field in want:
            assert event[field] == want[field], f"{where}: {field}"
    if "blog" in want:
        assert event["blog_id"] == want["blog"], f"{where}: blog_id"
    if "status" in want:
        assert [event["status"]["before"], event["status"]["after"]] == want["status"], f"{where}: status"
    if "changed_fields" in want:
        if want["changed_fields"]:
            missing = set(want["changed_fields"]) - set(event["changed_fields"])
            assert not missing, f"{where}: changed_fields lacks {missing}: {event['changed_fields']}"
        else:
            assert event["changed_fields"] == [], f"{where}: changed_fields {event['changed_fields']}"
    if "after" in want:
        if want["after"] is None:
            assert event["after"] is None, f"{where}: after"
        else:
            for k, v in want["after"].items():
                assert event["after"][k] == v, f"{where}: after.{k}"
    if "meta" in want:
        got = {m["key"]: [m["before"], m["after"]] for m in event["meta"]}
        assert got == _subst(want["meta"], ids, as_text=True), f"{where}: meta"
    if "meta_keys" in want:
        assert sorted(m["key"] for m in event["meta"]) == sorted(want["meta_keys"]), f"{where}: meta keys"
    for side in ("added", "removed"):
        if f"terms_{side}" in want:
            assert _terms(event["terms"][side]) == sorted(want[f"terms_{side}"]), f"{where}: terms {side}"
    if "revisions" in want:
        revs = event["revisions"]
        if want["revisions"] == "autosave":
            assert revs and all(r["autosave"] for r in revs), f"{where}: revisions {revs}"
        else:
            assert len(revs) == want["revisions"], f"{where}: revisions {revs}"


@pytest.mark.parametrize("case", CASES, ids=[c.stem for c in CASES])
def test_golden(case: Path, golden_connector: Connector, wordpress) -> None:  # type: ignore[no-untyped-def]
    spec = json.loads(case.read_text())
    ids: dict[str, int] = {}
    blogs: dict[str, int] = {}
    for step in spec["steps"]:
        if step.get("settle"):
            time.sleep(SETTLE)
            continue
        blog = step.get("blog", 1)
        result = wordpress.run(step["do"], blog, **_subst(step.get("args", {}), ids))
        if "as" in step:
            ids[step["as"]] = int(result[step.get("result", "post_id")])
            blogs[step["as"]] = blog

    keys = {(blogs[name], pid) for name, pid in ids.items()}
    expected = spec["expect"]
    events = golden_connector.wait_events(*keys, count=len(expected), timeout=30, settle=SETTLE)
    by_post: dict[tuple[int, int], list[dict[str, Any]]] = {}
    for e in events:
        by_post.setdefault((e["blog_id"], e["post_id"]), []).append(e)
    seen: dict[tuple[int, int], int] = {}
    for n, want in enumerate(expected):
        key = (want.get("blog", 1), ids[want["post"]])
        i = seen.get(key, 0)
        seen[key] = i + 1
        assert i < len(by_post.get(key, [])), f"event {n} for {want['post']}: missing"
        _check(by_post[key][i], want, ids, f"{case.stem} event {n} ({want['post']})")

    # One post's seq only grows, and deletes are followed by a tombstone.
    messages = [m for m in golden_connector.messages() if m.post in keys]
    for key in keys:
        seqs = [m.value["seq"] for m in messages if m.post == key and m.value is not None]
        assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs), f"seq of {key}: {seqs}"
    for n, m in enumerate(messages):
        if m.value is not None and m.value["op"] == "delete":
            assert n + 1 < len(messages) and messages[n + 1].key == m.key and messages[n + 1].value is None
