"""examples/search/consumer.py's batches against a real Solr core, without Kafka: hand-made records.

What an end-to-end run only hits by chance: a rename in the same batch as the post event that
adds the term (the post's document is not in Solr's search yet), a rename read before an older
post event, a rename of a term a document lost earlier in the batch, a batch read twice (the
re-read after a crash before the offset commit), and the errors that stop the consumer.
"""

from __future__ import annotations

import asyncio
import importlib.util
import json
import sys
from pathlib import Path
from typing import Any, NamedTuple

import httpx
import pytest
from aiokafka import TopicPartition

pytestmark = pytest.mark.integration

HERE = Path(__file__).resolve().parents[2] / "examples" / "search"
POSTS, TERMS = TopicPartition("t.posts", 0), TopicPartition("t.terms", 0)


def _load(name: str, as_name: str) -> Any:
    spec = importlib.util.spec_from_file_location(as_name, HERE / f"{name}.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


if "documents" not in sys.modules:  # consumer.py imports it by that name, as when run as a script
    _load("documents", "documents")
consumer = _load("consumer", "search_consumer")


class Record(NamedTuple):
    key: bytes
    value: bytes | None
    offset: int


def post(seq: int, post_id: int = 5, op: str = "update", status: str = "publish", title: str = "Hello",
         added: tuple[tuple[int, str], ...] = (), removed: tuple[int, ...] = ()) -> Record:
    def term(ttid: int, name: str) -> dict[str, Any]:
        return {"term_taxonomy_id": ttid, "taxonomy": "post_tag", "term_id": ttid, "slug": name.lower(), "name": name}

    event = {"schema_version": 1, "op": op, "seq": seq, "blog_id": 1, "post_id": post_id, "post_type": "post",
             "after": {"post_title": title, "post_content": "<p>Body</p>", "post_excerpt": "", "post_author": 1,
                       "post_status": status, "post_type": "post", "post_date_gmt": "2026-12-01T10:00:00"},
             "terms": {"added": [term(t, n) for t, n in added], "removed": [term(t, "") for t in removed]},
             "link": {"before": None, "after": {"url": f"http://site/p{post_id}/", "path": f"/p{post_id}/"}}}
    return Record(f"1:{post_id}".encode(), json.dumps(event).encode(), seq)


def rename(seq: int, ttid: int, name: str | None) -> Record:
    event = {"schema_version": 1, "op": "delete" if name is None else "update", "seq": seq, "blog_id": 1,
             "term_id": ttid, "term_taxonomy_id": ttid, "taxonomy": "post_tag",
             "before": {"name": "x", "slug": "x", "parent": 0, "description": ""},
             "after": None if name is None else {"name": name, "slug": "x", "parent": 0, "description": ""}}
    return Record(f"1:{ttid}".encode(), json.dumps(event).encode(), seq)


def run_batch(url: str, records: list[tuple[TopicPartition, Record]]) -> int:
    """One batch as the consumer applies it: the documents written to Solr; the stale count."""
    async def go() -> int:
        solr = consumer.Solr(url)
        try:
            changes, stale = await consumer.apply_batch(solr, records, TERMS.topic, frozenset({"post"}))
            if changes:
                await solr.write(changes)
            return int(stale)
        finally:
            await solr.close()
    return asyncio.run(go())


def terms_of(url: str, post_id: int = 5) -> list[str] | None:
    doc = httpx.get(f"{url}/get", params={"id": f"post:1:{post_id}"}, timeout=30).json()["doc"]
    return None if doc is None else [t["name"] for t in json.loads(doc["terms_json"])]


def test_rename_in_the_batch_that_adds_the_term(solr_core: str) -> None:
    run_batch(solr_core, [(POSTS, post(10, op="create", added=((7, "Tips"),))), (TERMS, rename(20, 7, "Advice"))])
    assert terms_of(solr_core) == ["Advice"]
    hits = httpx.get(f"{solr_core}/select", params={"q": 'term_names:"Advice"'}, timeout=30).json()
    assert hits["response"]["numFound"] == 1


def test_rename_read_before_an_older_post_event(solr_core: str) -> None:
    run_batch(solr_core, [(TERMS, rename(20, 7, "Advice"))])
    run_batch(solr_core, [(POSTS, post(10, op="create", added=((7, "Tips"),)))])
    assert terms_of(solr_core) == ["Advice"]


def test_rename_of_a_term_the_batch_removed(solr_core: str) -> None:
    run_batch(solr_core, [(POSTS, post(10, op="create", added=((7, "Tips"), (8, "Keep"))))])
    run_batch(solr_core, [(POSTS, post(11, removed=(7,))), (TERMS, rename(20, 7, "Advice"))])
    assert terms_of(solr_core) == ["Keep"], "Solr's search still had the term; the batch's document did not"


def test_rename_and_delete_reach_drafts_and_other_documents(solr_core: str) -> None:
    run_batch(solr_core, [(POSTS, post(10, op="create", added=((7, "Tips"),))),
                          (POSTS, post(11, post_id=6, op="create", status="draft", added=((7, "Tips"), (9, "Gone"))))])
    run_batch(solr_core, [(TERMS, rename(20, 7, "Advice")), (TERMS, rename(21, 9, None))])
    assert terms_of(solr_core, 5) == ["Advice"] and terms_of(solr_core, 6) == ["Advice"]
    run_batch(solr_core, [(POSTS, post(22, post_id=6))])  # published: the draft's terms, renamed
    hits = httpx.get(f"{solr_core}/select", params={"q": 'term_names:"Advice"', "fl": "post_id"}, timeout=30).json()
    assert sorted(d["post_id"] for d in hits["response"]["docs"]) == [5, 6]


def test_a_batch_read_twice_changes_nothing(solr_core: str) -> None:
    batch = [(POSTS, post(10, op="create", added=((7, "Tips"),))), (POSTS, post(11, title="Edited")),
             (TERMS, rename(20, 7, "Advice")), (POSTS, post(12, post_id=6, op="create")),
             (POSTS, post(13, post_id=6, op="delete")), (POSTS, Record(b"1:6", None, 14))]
    assert run_batch(solr_core, batch) == 0
    first = httpx.get(f"{solr_core}/all", params={"q": "*:*", "sort": "id asc", "rows": "100"}, timeout=30).json()
    # Post 5's events and the rename are stale; post 6's are applied again (the tombstone forgot its
    # seq), ending where they ended the first time: no document.
    assert run_batch(solr_core, batch) == 3
    again = httpx.get(f"{solr_core}/all", params={"q": "*:*", "sort": "id asc", "rows": "100"}, timeout=30).json()
    assert again["response"]["docs"] == first["response"]["docs"]
    assert terms_of(solr_core) == ["Advice"] and terms_of(solr_core, 6) is None


def test_not_a_wpcdc_record(solr_core: str) -> None:
    with pytest.raises(consumer.ContractError, match=r"t.posts\[0\] offset 3: .*--topic"):
        run_batch(solr_core, [(POSTS, Record(b"1:5", b"not json", 3))])
    with pytest.raises(consumer.ContractError, match=r"offset 4: schema_version 2"):
        run_batch(solr_core, [(POSTS, Record(b"1:5", json.dumps({"schema_version": 2, "seq": 1}).encode(), 4))])


def test_solr_refusing_stops(solr_core: str) -> None:
    with pytest.raises(consumer.SolrRefused, match="HTTP 404"):
        run_batch(solr_core.rsplit("/", 1)[0] + "/no_such_core", [(POSTS, post(10, op="create"))])
