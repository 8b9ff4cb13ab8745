#!/usr/bin/env python3
"""Keep a Solr index of a WordPress site's published posts current from wpcdc's topics.

    python examples/search/consumer.py --bootstrap 127.0.0.1:9092 \\
        --topic wpcdc.blog.posts --term-topic wpcdc.blog.terms \\
        --solr http://127.0.0.1:8983/solr/wpcdc

At least once, and exact all the same:

1. Records are read ``read_committed``: what an aborted connector transaction wrote is never seen.
2. A batch of records is turned into whole Solr documents (documents.py), written in one update
   request that ends with a hard ``commit``; only when Solr has answered are the batch's Kafka
   offsets committed (a consumer group, ``--group``). A crash in between re-reads the batch.
3. Re-reading is harmless: documents are written whole (never patched), and a record whose ``seq``
   is not newer than the stored document's changes nothing.

Term renames and deletes (the term topic) are found in the index by ``term_ids`` (the posts'
``term_taxonomy_id``s, which the documents keep): no ``--term-fanout`` is needed; ``term_changed``
events, when the connector writes them, are applied too.

It uses only the documented event contract (docs/events.md, docs/schema/*.json), a Kafka client
and HTTP: any language can do the same.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import signal
import sys
from collections.abc import Callable, Iterable
from typing import Any

import httpx
from aiokafka import AIOKafkaConsumer, ConsumerRebalanceListener, TopicPartition
from aiokafka.errors import CommitFailedError
from aiokafka.structs import OffsetAndMetadata
from documents import (
    DEFAULT_POST_TYPES,
    Changes,
    ContractError,
    Doc,
    apply_post_record,
    apply_term_record,
    parse_key,
    post_doc_id,
    term_doc_id,
)

log = logging.getLogger("search-consumer")
RETRY_SECONDS = 2.0


class SolrRefused(RuntimeError):
    """Solr answered 4xx: the request itself is wrong (a schema that is not solr/conf's, a core
    that does not exist); retrying cannot help."""


class Solr:
    """The few calls the consumer makes to a Solr core, over plain HTTP."""

    def __init__(self, base_url: str) -> None:
        self.base = base_url.rstrip("/")
        self.http = httpx.AsyncClient(timeout=60.0)

    async def close(self) -> None:
        await self.http.aclose()

    async def _call(self, method: str, path: str, **kw: Any) -> dict[str, Any]:
        """One request, retried while Solr is unreachable or failing (5xx): the batch in hand
        waits, its offsets uncommitted. 4xx raises SolrRefused."""
        attempt = 0
        while True:
            try:
                response = await self.http.request(method, f"{self.base}{path}", **kw)
                if response.status_code < 500:
                    if response.status_code >= 400:
                        raise SolrRefused(f"Solr refused {method} {self.base}{path}: HTTP {response.status_code} "
                                          f"{response.text[:500]}")
                    return dict(response.json())
                problem = f"HTTP {response.status_code} {response.text[:200]}"
            except httpx.TransportError as e:
                problem = f"{type(e).__name__}: {e}"
            attempt += 1
            if attempt == 1 or attempt % 15 == 0:
                log.warning("Solr at %s: %s; retrying every %.0fs (offsets not committed meanwhile)",
                            self.base, problem, RETRY_SECONDS)
            await asyncio.sleep(RETRY_SECONDS)

    async def get_many(self, ids: Iterable[str]) -> dict[str, Doc]:
        """Documents by id (real-time get: the stored fields, without ``_version_``, which in a
        written document would make Solr check it instead of overwriting)."""
        found: dict[str, Doc] = {}
        wanted = sorted(set(ids))
        for i in range(0, len(wanted), 200):
            answer = await self._call("POST", "/get", data={"ids": ",".join(wanted[i:i + 200]), "wt": "json"})
            for doc in answer.get("response", {}).get("docs", []):
                doc.pop("_version_", None)
                found[doc["id"]] = doc
        return found

    async def with_term(self, blog_id: int, term_taxonomy_id: int) -> list[Doc]:
        """Every post and state document that has the term (cursor paging: any number)."""
        docs: list[Doc] = []
        cursor = "*"
        while True:
            answer = await self._call("POST", "/all", data={
                "q": f"term_ids:{term_taxonomy_id}", "fq": [f"blog_id:{blog_id}", "kind:(post OR state)"],
                "sort": "id asc", "rows": "500", "cursorMark": cursor, "wt": "json"})
            for doc in answer["response"]["docs"]:
                doc.pop("_version_", None)
                docs.append(doc)
            if answer.get("nextCursorMark", cursor) == cursor:
                return docs
            cursor = answer["nextCursorMark"]

    async def write(self, changes: dict[str, Doc | None]) -> None:
        """Whole documents and deletes in one update request, then a hard commit (searchable and
        durable: the offsets are committed after this returns)."""
        parts = [f'"add":{json.dumps({"doc": doc}, ensure_ascii=False)}' for doc in changes.values() if doc]
        deletes = [doc_id for doc_id, doc in changes.items() if doc is None]
        if deletes:
            parts.append(f'"delete":{json.dumps(deletes)}')
        parts.append('"commit":{}')
        # Solr's JSON update format takes repeated "add" keys in one object, applied in order.
        await self._call("POST", "/update", content=("{" + ",".join(parts) + "}").encode(),
                         headers={"Content-Type": "application/json"})


async def apply_batch(solr: Solr, records: list[tuple[TopicPartition, Any]], term_topic: str | None,
                      post_types: frozenset[str]) -> tuple[dict[str, Doc | None], int]:
    """The documents the batch changes (None: deleted), and how many records were stale. Records
    are applied one after the other on what Solr holds plus what the batch changed so far."""
    decoded: list[tuple[bool, Any, dict[str, Any] | None, str]] = []
    wanted: set[str] = set()
    for tp, r in records:
        where = f"{tp.topic}[{tp.partition}] offset {r.offset}"
        try:
            value = json.loads(r.value) if r.value is not None else None
            blog_id, ident = parse_key(r.key)
        except (ValueError, ContractError) as e:
            raise ContractError(f"{where}: {e} (not a wpcdc record: is --topic/--term-topic right?)") from None
        is_term = tp.topic == term_topic
        decoded.append((is_term, r.key, value, where))
        if is_term:
            wanted.add(term_doc_id(blog_id, ident))
        else:
            wanted.add(post_doc_id(blog_id, ident))
            for t in ((value or {}).get("terms") or {}).get("added") or []:
                wanted.add(term_doc_id(blog_id, int(t["term_taxonomy_id"])))
    known = await solr.get_many(wanted)
    pending: dict[str, Doc | None] = {}

    def current(doc_id: str) -> Doc | None:
        return pending[doc_id] if doc_id in pending else known.get(doc_id)

    stale = 0
    for is_term, key, value, where in decoded:
        try:
            changes = await apply_record(solr, is_term, key, value, pending, current, post_types)
        except ContractError as e:
            raise ContractError(f"{where}: {e}") from None
        if changes.skipped:
            stale += 1
            log.debug("skipped: %s", changes.skipped)
        pending.update(changes.upserts)
        pending.update(dict.fromkeys(changes.deletes))
    return pending, stale


async def apply_record(solr: Solr, is_term: bool, key: Any, value: dict[str, Any] | None,
                       pending: dict[str, Doc | None], current: Callable[[str], Doc | None],
                       post_types: frozenset[str]) -> Changes:
    """One record on what Solr holds plus what the batch changed so far (``pending``)."""
    blog_id, ident = parse_key(key)
    if is_term:
        having: dict[str, Doc | None] = {d["id"]: d for d in await solr.with_term(blog_id, ident)}
        for doc_id, doc in pending.items():  # what this batch wrote is not in Solr's search yet
            if doc_id in having or (doc is not None and doc.get("blog_id") == blog_id
                                    and ident in (doc.get("term_ids") or [])):
                having[doc_id] = doc
        posts = [d for d in having.values() if d is not None]
        return apply_term_record(key, value, current(term_doc_id(blog_id, ident)), posts)
    added = ((value or {}).get("terms") or {}).get("added") or []
    registry = {int(t["term_taxonomy_id"]): current(term_doc_id(blog_id, int(t["term_taxonomy_id"])))
                for t in added}
    return apply_post_record(key, value, current(post_doc_id(blog_id, ident)), registry, post_types)


class Assignments(ConsumerRebalanceListener):  # type: ignore[misc]
    """Logs what this member reads (several members of one group share the partitions)."""

    async def on_partitions_revoked(self, revoked: Any) -> None:
        if revoked:
            log.info("partitions revoked: %s", sorted(f"{tp.topic}[{tp.partition}]" for tp in revoked))

    async def on_partitions_assigned(self, assigned: Any) -> None:
        log.info("partitions assigned: %s", sorted(f"{tp.topic}[{tp.partition}]" for tp in assigned))


async def wait_for_topics(consumer: AIOKafkaConsumer, topics: list[str], timeout: float) -> None:
    """Until the connector created the topics (it does at its start)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        existing = await consumer.topics()
        missing = [t for t in topics if t not in existing]
        if not missing:
            return
        if loop.time() > deadline:
            raise SystemExit(f"topics {missing} do not exist after {timeout:.0f}s: is `wpcdc stream` running "
                             "with this --name (topics wpcdc.<name>.posts and wpcdc.<name>.terms)?")
        await asyncio.sleep(0.5)


async def run(args: argparse.Namespace) -> None:
    solr = Solr(args.solr)
    topics = [args.topic] + ([args.term_topic] if args.term_topic else [])
    # A consumer group: Kafka keeps the offsets, committed by hand after Solr's commit.
    # "earliest": a new group reads the whole compacted topic, i.e. indexes every post.
    consumer = AIOKafkaConsumer(bootstrap_servers=args.bootstrap, group_id=args.group,
                                isolation_level="read_committed", enable_auto_commit=False,
                                auto_offset_reset="earliest", client_id="wpcdc-search-recipe")
    await consumer.start()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    try:
        await wait_for_topics(consumer, topics, args.wait)
        consumer.subscribe(topics, listener=Assignments())
        log.info("reading %s as group %r into %s", topics, args.group, args.solr)
        while not stop.is_set():
            batch = await consumer.getmany(timeout_ms=500, max_records=args.batch)
            if not batch:
                continue
            records = [(tp, r) for tp, rs in batch.items() for r in rs]
            changes, stale = await apply_batch(solr, records, args.term_topic, args.post_types)
            if changes:
                await solr.write(changes)
            offsets = {tp: OffsetAndMetadata(rs[-1].offset + 1, "") for tp, rs in batch.items()}
            try:
                await consumer.commit(offsets)
            except CommitFailedError as e:  # a rebalance took the partitions: their new owner re-reads
                log.warning("offsets not committed (%s); the batch will be read again, harmlessly", e)
                continue
            log.info("indexed %d records (%d stale): %d documents written, %d deleted; committed %s",
                     len(records), stale, sum(1 for d in changes.values() if d), sum(1 for d in changes.values()
                                                                                if d is None),
                     {f"{tp.topic}[{tp.partition}]": o.offset for tp, o in offsets.items()})
        log.info("stopped: every batch read so far is in Solr and its offsets committed")
    finally:
        await consumer.stop()
        await solr.close()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--bootstrap", default=os.environ.get("WPCDC_KAFKA_BOOTSTRAP", "127.0.0.1:9092"),
                   help="Kafka bootstrap servers [env WPCDC_KAFKA_BOOTSTRAP]")
    p.add_argument("--topic", required=True, help="the post topic, e.g. wpcdc.blog.posts")
    p.add_argument("--term-topic", help="the term topic, e.g. wpcdc.blog.terms (term renames and deletes)")
    p.add_argument("--solr", default=os.environ.get("SOLR_URL", ""),
                   help="the Solr core's URL, e.g. http://127.0.0.1:8983/solr/wpcdc [env SOLR_URL]")
    p.add_argument("--group", help="Kafka consumer group (default: wpcdc-search.<topic>)")
    p.add_argument("--post-types", default=",".join(sorted(DEFAULT_POST_TYPES)),
                   help="post types that are searchable when published (default: page,post)")
    p.add_argument("--batch", type=int, default=500, help="records per Solr commit at most")
    p.add_argument("--wait", type=float, default=60.0, help="seconds to wait for the topics to exist")
    args = p.parse_args()
    if not args.solr:
        p.error("--solr (or SOLR_URL) is required")
    args.group = args.group or f"wpcdc-search.{args.topic}"
    args.post_types = frozenset(t.strip() for t in args.post_types.split(",") if t.strip())
    logging.basicConfig(level=logging.INFO, stream=sys.stderr,
                        format="%(asctime)s %(name)s %(levelname)s %(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)  # a line per request otherwise
    try:
        asyncio.run(run(args))
    except (ContractError, SolrRefused) as e:
        log.error("%s", e)
        sys.exit(2)


if __name__ == "__main__":
    main()
