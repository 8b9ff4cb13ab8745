"""examples/search/documents.py: what each record does to the search documents (pure, no servers).

Hand-made records for the cases an end-to-end run may not hit: markup and entities, a size-policy
marker, stale events, a snapshot replacing the terms, a draft's terms remembered until it is
published, a rename read before or after the post event that shows the old name, a term delete,
a delete before its tombstone, the --term-fanout event.
"""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[2]


def _load() -> Any:
    """examples/search/documents.py under a name of its own (no package, like the other recipes)."""
    spec = importlib.util.spec_from_file_location("search_documents", REPO / "examples" / "search" / "documents.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


d = _load()


def row(**over: Any) -> dict[str, Any]:
    base = {"ID": 5, "post_author": 3, "post_date_gmt": "2026-12-01T10:00:00", "post_title": "Hello",
            "post_content": "<!-- wp:paragraph --><p>Body</p><!-- /wp:paragraph -->", "post_excerpt": "",
            "post_status": "publish", "post_type": "post", "post_name": "hello"}
    return {**base, **over}


def term(ttid: int, name: str, taxonomy: str = "post_tag") -> dict[str, Any]:
    return {"term_taxonomy_id": ttid, "taxonomy": taxonomy, "term_id": ttid + 100, "slug": name.lower(), "name": name}


def event(seq: int, op: str = "update", after: dict[str, Any] | None = None, added: list[Any] = (),  # type: ignore[assignment]
          removed: list[Any] = (), **more: Any) -> dict[str, Any]:  # type: ignore[assignment]
    return {"schema_version": 1, "op": op, "seq": seq, "blog_id": 1, "post_id": 5, "post_type": "post",
            "after": row() if after is None and op != "delete" else after, "before": None,
            "terms": {"added": list(added), "removed": list(removed)},
            "link": {"before": None, "after": {"url": "http://site/2026/12/01/hello/", "path": "/2026/12/01/hello/"}},
            **more}


def term_event(seq: int, ttid: int, name: str | None, op: str = "update") -> dict[str, Any]:
    after = None if op == "delete" else {"name": name, "slug": (name or "").lower(), "parent": 0, "description": ""}
    return {"schema_version": 1, "op": op, "seq": seq, "blog_id": 1, "term_id": ttid + 100,
            "term_taxonomy_id": ttid, "taxonomy": "post_tag", "after": after,
            "before": {"name": "old", "slug": "old", "parent": 0, "description": ""}}


def apply(stored: dict[str, Any] | None, ev: dict[str, Any] | None, registry: dict[int, Any] | None = None,
          key: str = "1:5") -> Any:
    return d.apply_post_record(key, ev, stored, registry or {})


def only(changes: Any) -> dict[str, Any]:
    assert not changes.deletes and len(changes.upserts) == 1, changes
    return next(iter(changes.upserts.values()))


def names(doc: dict[str, Any]) -> list[str]:
    return [t["name"] for t in json.loads(doc["terms_json"])]


# ------------------------------------------------------------------ text


@pytest.mark.parametrize(("markup", "text"), [
    ("<!-- wp:paragraph --><p>Caf&eacute; &amp; <b>bar</b></p><!-- /wp:paragraph -->", "Café & bar"),
    ("<p>one</p><p>two</p><ul><li>a</li><li>b</li></ul>", "one two a b"),
    ("a<br>b", "a b"),
    ("x <script>var s = '<p>no</p>';</script> y <style>p{}</style>z", "x y z"),
    ("<!-- wp:image {\"id\":3} --><figure><img src=\"a.png\" alt=\"alt\"/></figure><!-- /wp:image -->", ""),
    ("plain  text\n\nwith   spaces", "plain text with spaces"),
    ("&lt;not a tag&gt; &#8217;quoted&#8217;", "<not a tag> \u2019quoted\u2019"),
    ("[gallery ids=\"1,2\"] after", "[gallery ids=\"1,2\"] after"),
    ("", ""),
])
def test_plain_text(markup: str, text: str) -> None:
    assert d.plain_text(markup) == text


@pytest.mark.parametrize(("value", "date"), [
    ("2026-12-01T10:00:00", "2026-12-01T10:00:00Z"),
    ("2026-12-01T10:00:00.123456", "2026-12-01T10:00:00Z"),
    (None, None),
    ("2024-02-30T10:11:12", None),  # MySQL took it, no calendar has it: left out, not a refused batch
    ("2024-00-00T00:00:00", None),
])
def test_solr_date(value: str | None, date: str | None) -> None:
    assert d.solr_date(value) == date
    if value == "2024-02-30T10:11:12":
        assert "date" not in only(apply(None, event(10, "create", after=row(post_date_gmt=value))))


def test_column_text_markers() -> None:
    assert d.column_text("abc") == ("abc", True)
    assert d.column_text({"$base64": "aGk="}) == ("hi", True)
    assert d.column_text({"$truncated": True, "bytes": 9, "sha256": "x", "head": "<p>he"}) == ("<p>he", False)
    assert d.column_text({"$truncated": True, "bytes": 9, "sha256": "x"}) == (None, False)


# ------------------------------------------------------------------ post events


def test_published_post_document() -> None:
    doc = only(apply(None, event(10, "create", added=[term(1, "News", "category"), term(7, "Tips")])))
    assert doc["id"] == "post:1:5" and doc["kind"] == "post" and doc["seq"] == 10
    assert (doc["title"], doc["content"], doc["excerpt"]) == ("Hello", "Body", "")
    assert doc["permalink"] == "http://site/2026/12/01/hello/" and doc["path"] == "/2026/12/01/hello/"
    assert doc["author"] == 3 and doc["date"] == "2026-12-01T10:00:00Z" and doc["incomplete"] is False
    assert doc["term_ids"] == [1, 7] and doc["term_names"] == ["News", "Tips"]
    assert doc["term_labels"] == ["category:News", "post_tag:Tips"]


def test_draft_is_a_state_document_without_text() -> None:
    doc = only(apply(None, event(10, "create", after=row(post_status="draft", post_date_gmt=None), added=[term(7, "Tips")])))
    assert doc["kind"] == "state" and doc["status"] == "draft" and doc["term_ids"] == [7]
    assert not {"title", "content", "excerpt", "term_names", "permalink"} & set(doc)


def test_draft_terms_are_remembered_until_it_is_published() -> None:
    draft = only(apply(None, event(10, "create", after=row(post_status="draft"), added=[term(7, "Tips")])))
    tagged = only(apply(draft, event(11, after=row(post_status="draft"), added=[term(8, "More")])))
    published = only(apply(tagged, event(12)))  # the publish event lists no terms: nothing changed there
    assert published["kind"] == "post" and published["term_names"] == ["Tips", "More"]


@pytest.mark.parametrize("status", ["trash", "draft", "private", "pending", "future"])
def test_leaving_publish_removes_the_text(status: str) -> None:
    post = only(apply(None, event(10, "create", added=[term(7, "Tips")])))
    gone = only(apply(post, event(11, after=row(post_status=status), action="trashed")))
    assert gone["kind"] == "state" and "title" not in gone and gone["term_ids"] == [7]


def test_other_post_types_are_not_searchable() -> None:
    doc = only(apply(None, event(10, "create", after=row(post_type="attachment", post_status="publish"))))
    assert doc["kind"] == "state"
    assert only(d.apply_post_record("1:5", event(10, "create", after=row(post_type="product")), None, {},
                                    post_types={"product"}))["kind"] == "post"


def test_stale_and_repeated_events_change_nothing() -> None:
    doc = only(apply(None, event(10, "create")))
    for seq in (10, 9):
        changes = apply(doc, event(seq, after=row(post_title="older")))
        assert not changes.upserts and not changes.deletes and changes.skipped


def test_update_keeps_terms_and_applies_the_delta() -> None:
    doc = only(apply(None, event(10, "create", added=[term(7, "Tips"), term(8, "Old")])))
    doc = only(apply(doc, event(11, after=row(post_title="New title"), added=[term(9, "Fresh")], removed=[term(8, "Old")])))
    assert doc["title"] == "New title" and doc["term_names"] == ["Tips", "Fresh"]


def test_snapshot_replaces_the_terms() -> None:
    doc = only(apply(None, event(10, "create", added=[term(7, "Tips"), term(8, "Gone")])))
    doc = only(apply(doc, event(20, "snapshot", added=[term(7, "Tips")])))
    assert doc["term_names"] == ["Tips"]


def test_delete_then_tombstone() -> None:
    doc = only(apply(None, event(10, "create")))
    deleted = only(apply(doc, event(11, "delete", after=None)))
    assert deleted["kind"] == "state" and deleted["status"] == "deleted" and deleted["seq"] == 11
    assert apply(deleted, event(10, "create")).skipped, "an older event read again cannot bring it back"
    tomb = apply(deleted, None)
    assert tomb.deletes == {"post:1:5"} and not tomb.upserts


def test_size_policy_markers() -> None:
    doc = only(apply(None, event(10, "create")))
    cut = row(post_content={"$truncated": True, "bytes": 5_000_000, "sha256": "x", "head": "<p>Start of a"})
    doc2 = only(apply(doc, event(11, after=cut, truncated=["after.post_content"])))
    assert doc2["content"] == "Start of a" and doc2["incomplete"] is True
    six = {k: v for k, v in row(post_title=None).items() if k in ("ID", "post_type", "post_status", "post_name")}
    doc3 = only(apply(doc, event(12, after=six, truncated=["after.*"])))
    assert doc3["title"] == "Hello" and doc3["content"] == "Body" and doc3["incomplete"] is True


def test_contract_errors() -> None:
    with pytest.raises(d.ContractError, match="schema_version"):
        apply(None, {**event(10, "create"), "schema_version": 2})
    with pytest.raises(d.ContractError, match="blog_id:id"):
        apply(None, event(10, "create"), key="nonsense")


# ------------------------------------------------------------------ term events


def test_rename_after_the_post_event() -> None:
    post = only(apply(None, event(10, "create", added=[term(7, "Tips")])))
    changes = d.apply_term_record("1:7", term_event(20, 7, "Advice"), None, [post])
    assert changes.upserts["term:1:7"]["name"] == "Advice" and changes.upserts["term:1:7"]["seq"] == 20
    renamed = changes.upserts["post:1:5"]
    assert renamed["term_names"] == ["Advice"] and renamed["seq"] == 10, "the post's seq is the post's"
    assert renamed["title"] == "Hello"
    later = only(apply(renamed, event(11, after=row(post_title="Next"))))  # a post event after: not stale
    assert later["title"] == "Next" and later["term_names"] == ["Advice"]


def test_rename_read_before_an_older_post_event() -> None:
    registry = d.apply_term_record("1:7", term_event(20, 7, "Advice"), None, []).upserts["term:1:7"]
    doc = only(apply(None, event(10, "create", added=[term(7, "Tips")]), {7: registry}))
    assert doc["term_names"] == ["Advice"], "the newer name of the registry wins"
    newer = only(apply(None, event(30, "create", added=[term(7, "Newest")]), {7: registry}))
    assert newer["term_names"] == ["Newest"], "a post event newer than the rename shows the newer name"


def test_rename_older_than_what_a_document_shows_changes_nothing() -> None:
    post = only(apply(None, event(30, "create", added=[term(7, "Newest")])))
    changes = d.apply_term_record("1:7", term_event(20, 7, "Advice"), None, [post])
    assert set(changes.upserts) == {"term:1:7"}
    stale = d.apply_term_record("1:7", term_event(15, 7, "Older"), changes.upserts["term:1:7"], [post])
    assert stale.skipped and not stale.upserts


def test_rename_reaches_drafts() -> None:
    draft = only(apply(None, event(10, "create", after=row(post_status="draft"), added=[term(7, "Tips")])))
    renamed = d.apply_term_record("1:7", term_event(20, 7, "Advice"), None, [draft]).upserts["post:1:5"]
    assert renamed["kind"] == "state" and "term_names" not in renamed
    assert only(apply(renamed, event(21)))["term_names"] == ["Advice"]


def test_term_delete_and_tombstone() -> None:
    post = only(apply(None, event(10, "create", added=[term(7, "Tips"), term(8, "Keep")])))
    changes = d.apply_term_record("1:7", term_event(20, 7, None, op="delete"), None, [post])
    assert changes.upserts["term:1:7"]["deleted"] is True
    assert changes.upserts["post:1:5"]["term_names"] == ["Keep"]
    late = only(apply(None, event(15, "create", added=[term(7, "Tips")]), {7: changes.upserts["term:1:7"]}))
    assert late["term_ids"] == [], "a post event older than the delete does not bring the term back"
    assert d.apply_term_record("1:7", None, changes.upserts["term:1:7"], []).deletes == {"term:1:7"}


def test_term_fanout_event() -> None:
    post = only(apply(None, event(10, "create", added=[term(7, "Tips")])))
    fanout = event(20, action="term_changed", term_change={"event_id": "1-term-7-20", "term": term(7, "Advice"),
                                                           "changed_fields": ["name"]})
    assert only(apply(post, fanout))["term_names"] == ["Advice"]
