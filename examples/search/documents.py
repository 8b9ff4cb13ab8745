"""What each wpcdc record does to the search index: pure functions, no Solr, no Kafka.

The index holds three kinds of documents (``kind``; see solr/conf/schema.xml):

- ``post``: a published post, searchable. Its title; its content and excerpt as plain text (HTML
  tags and the block editor's ``<!-- wp:… -->`` comments removed, entities decoded); its terms by
  name; its permalink (``link.after``); its author (``post_author``, a user id: events carry no
  user names).
- ``state``: a post that is not (or no longer) published, or a deleted one until its tombstone:
  no text at all, only its ``seq`` and its terms. Post events list the terms a change added and
  removed, not all of them, so the terms of a draft must be remembered for the day it is
  published.
- ``term``: the newest name of a term the consumer has seen a term event for, with that event's
  ``seq``, so that a post event read after a rename (the two topics are read side by side) still
  gets the new name.

Every function takes the stored documents it needs and returns the documents to write (whole
documents, never partial updates): applying a record twice writes the same thing twice, and a
record older than what is stored (``seq``) changes nothing. That is what makes an at-least-once
consumer exact.
"""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from html.parser import HTMLParser
from typing import Any

Doc = dict[str, Any]
SCHEMA_VERSION = 1
DEFAULT_POST_TYPES = frozenset({"post", "page"})

# Tags after which text is a new word even without whitespace in the markup ("<p>a</p><p>b</p>").
_BLOCK_TAGS = frozenset({
    "address", "article", "aside", "blockquote", "br", "dd", "div", "dl", "dt", "figcaption", "figure",
    "footer", "h1", "h2", "h3", "h4", "h5", "h6", "header", "hr", "li", "main", "nav", "ol", "p", "pre",
    "section", "table", "td", "th", "tr", "ul",
})
_SKIPPED_TAGS = frozenset({"script", "style", "template"})
_SPACES = re.compile(r"\s+")


class ContractError(ValueError):
    """A record that does not follow the event contract (docs/events.md) this recipe implements:
    an unknown schema_version, a key that is not ``blog:id``. No retry fixes it."""


class _TextOnly(HTMLParser):
    """The text of an HTML fragment. Comments (block delimiters ``<!-- wp:paragraph -->`` among
    them) are dropped by not handling them; entities are decoded (convert_charrefs)."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self.skipping = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in _SKIPPED_TAGS:
            self.skipping += 1
        elif tag in _BLOCK_TAGS:
            self.parts.append(" ")

    def handle_endtag(self, tag: str) -> None:
        if tag in _SKIPPED_TAGS:
            self.skipping = max(0, self.skipping - 1)
        elif tag in _BLOCK_TAGS:
            self.parts.append(" ")

    def handle_data(self, data: str) -> None:
        if not self.skipping:
            self.parts.append(data)


def plain_text(markup: str) -> str:
    """Post content or excerpt as a search engine should see it: no tags, no block comments,
    entities decoded, whitespace collapsed. Shortcodes (``[gallery]``) are left: WordPress
    expands them in PHP, which a consumer cannot run."""
    if "<" not in markup and "&" not in markup:  # most titles: no parser needed
        return _SPACES.sub(" ", markup).strip()
    parser = _TextOnly()
    parser.feed(markup)
    parser.close()
    return _SPACES.sub(" ", "".join(parser.parts)).strip()


def column_text(value: Any) -> tuple[str | None, bool]:
    """A ``wp_posts`` text value as the event carries it: a string, ``{"$base64": …}`` (bytes
    that are not valid UTF-8), or a size-policy marker ``{"$truncated": true, "head": …}``.
    Returns (text, complete): a marker gives its head, if any, and complete=False."""
    if value is None or isinstance(value, str):
        return value, True
    if isinstance(value, dict):
        if "$base64" in value:
            return base64.b64decode(value["$base64"]).decode("utf-8", errors="replace"), True
        if value.get("$truncated"):
            return value.get("head"), False
    return str(value), True


def solr_date(value: Any) -> str | None:
    """A ``post_date_gmt`` as Solr's date type takes it (UTC, ``Z``), or None: a draft never dated
    has none (``null``), and a date MySQL accepted but no calendar has (``2024-02-30T…``, which
    the event keeps as text) would make Solr refuse the whole batch."""
    if not isinstance(value, str):
        return None
    try:
        return datetime.fromisoformat(value).replace(microsecond=0).isoformat() + "Z"
    except ValueError:
        return None


def post_doc_id(blog_id: int, post_id: int) -> str:
    return f"post:{blog_id}:{post_id}"


def term_doc_id(blog_id: int, term_taxonomy_id: int) -> str:
    return f"term:{blog_id}:{term_taxonomy_id}"


def parse_key(key: bytes | str | None) -> tuple[int, int]:
    """``"{blog_id}:{id}"`` (a post id on the post topic, a term_taxonomy_id on the term topic)."""
    text = key.decode() if isinstance(key, bytes) else key
    try:
        blog, _, ident = (text or "").partition(":")
        return int(blog), int(ident)
    except ValueError:
        raise ContractError(f"record key {text!r} is not 'blog_id:id' (docs/events.md, 'Key')") from None


def check_version(event: Mapping[str, Any]) -> None:
    if event.get("schema_version") != SCHEMA_VERSION:
        raise ContractError(f"schema_version {event.get('schema_version')!r} is not {SCHEMA_VERSION}, the "
                            "version this consumer implements: upgrade the consumer (docs/events.md)")


def stored_terms(doc: Mapping[str, Any] | None) -> dict[int, dict[str, Any]]:
    """A post or state document's terms, by term_taxonomy_id: each
    ``{term_taxonomy_id, taxonomy, term_id, slug, name, seq}`` where ``seq`` is that of the
    record the name came from (a post event or a term event)."""
    if not doc or not doc.get("terms_json"):
        return {}
    return {int(t["term_taxonomy_id"]): t for t in json.loads(doc["terms_json"])}


def _with_terms(doc: Doc, terms: Mapping[int, Mapping[str, Any]]) -> Doc:
    """doc with its term fields made from terms: the JSON the consumer reads back, the ids a term
    event looks documents up by, the names searched, ``taxonomy:name`` labels for facets."""
    ordered = [dict(terms[k]) for k in sorted(terms)]
    doc["terms_json"] = json.dumps(ordered, ensure_ascii=False, separators=(",", ":"))
    doc["term_ids"] = [t["term_taxonomy_id"] for t in ordered]
    if doc["kind"] == "post":
        doc["term_names"] = [t["name"] for t in ordered]
        doc["term_labels"] = [f"{t['taxonomy']}:{t['name']}" for t in ordered]
    return doc


@dataclass
class Changes:
    """What one record does: documents to write whole (by id), ids to delete, and why nothing
    happened when that is the case (``skipped``, for the log and the tests)."""

    upserts: dict[str, Doc] = field(default_factory=dict)
    deletes: set[str] = field(default_factory=set)
    skipped: str | None = None


def _stale(doc_id: str, event: Mapping[str, Any], stored: Mapping[str, Any] | None) -> Changes | None:
    """A skip for an event whose ``seq`` is not newer than the stored document's (a re-read after
    a crash before the offsets were committed); None for one to apply. Checks the schema version."""
    check_version(event)
    seq = int(event["seq"])
    if stored is not None and int(stored.get("seq") or 0) >= seq:
        return Changes(skipped=f"{doc_id}: seq {seq} is not newer than the stored {stored.get('seq')}")
    return None


def _merge_terms(current: dict[int, dict[str, Any]], event: Mapping[str, Any],
                 registry: Mapping[int, Mapping[str, Any] | None]) -> dict[int, dict[str, Any]]:
    """The post's terms after the event: the stored ones (none for a snapshot, which lists them
    all) minus ``terms.removed``, plus ``terms.added`` under the newest name known (the event's,
    or the registry's if a term event newer than the post event renamed or deleted it)."""
    seq = int(event["seq"])
    terms = {} if event.get("op") == "snapshot" else {k: dict(v) for k, v in current.items()}
    changes = event.get("terms") or {}
    for t in changes.get("removed") or []:
        terms.pop(int(t["term_taxonomy_id"]), None)
    for t in changes.get("added") or []:
        ttid = int(t["term_taxonomy_id"])
        entry = {"term_taxonomy_id": ttid, "taxonomy": t.get("taxonomy"), "term_id": t.get("term_id"),
                 "slug": t.get("slug"), "name": t.get("name"), "seq": seq}
        known = registry.get(ttid)
        if known is not None and int(known["seq"]) > seq:
            if known.get("deleted"):
                continue  # deleted after this event: WordPress removed it from the post first
            entry.update(name=known.get("name"), slug=known.get("slug"), seq=int(known["seq"]))
        terms[ttid] = entry
    change = event.get("term_change")  # a --term-fanout event: the term as it is now
    if change and change.get("term"):
        t = change["term"]
        ttid = int(t["term_taxonomy_id"])
        if ttid in terms and int(terms[ttid]["seq"]) < seq:
            terms[ttid].update(name=t.get("name"), slug=t.get("slug"), seq=seq)
    return terms


def apply_post_record(key: bytes | str | None, event: Mapping[str, Any] | None, stored: Mapping[str, Any] | None,
                      registry: Mapping[int, Mapping[str, Any] | None],
                      post_types: Iterable[str] = DEFAULT_POST_TYPES) -> Changes:
    """One record of the post topic. ``stored`` is the post's document (post or state) or None;
    ``registry`` the term documents of the terms the event adds (by term_taxonomy_id, None when
    there is none).

    - tombstone (null value): the document is deleted; nothing of this key comes after it;
    - an event not newer than the stored ``seq``: nothing (a re-read after a crash before the
      offsets were committed, an operator resetting offsets);
    - ``op: delete``: the post leaves the search at once; a state document keeps its ``seq``
      until the tombstone, so that a re-read older event cannot bring it back;
    - anything else: a ``post`` document when the post is published and of a searched type, a
      ``state`` document otherwise (a draft, an unpublished, scheduled, private or trashed post).
    """
    blog_id, post_id = parse_key(key)
    doc_id = post_doc_id(blog_id, post_id)
    if event is None:
        return Changes(deletes={doc_id})
    stale = _stale(doc_id, event, stored)
    if stale is not None:
        return stale
    seq = int(event["seq"])
    after = event.get("after")
    if event.get("op") == "delete" or after is None:
        return Changes(upserts={doc_id: {"id": doc_id, "kind": "state", "blog_id": blog_id, "post_id": post_id,
                                         "post_type": event.get("post_type"), "status": "deleted", "seq": seq,
                                         "terms_json": "[]", "term_ids": []}})
    terms = _merge_terms(stored_terms(stored), event, registry)
    status = after.get("post_status") or (event.get("status") or {}).get("after")
    post_type = after.get("post_type") or event.get("post_type")
    base = {"id": doc_id, "blog_id": blog_id, "post_id": post_id, "post_type": post_type, "status": status, "seq": seq}
    if status != "publish" or post_type not in set(post_types):
        return Changes(upserts={doc_id: _with_terms({**base, "kind": "state"}, terms)})
    complete = not event.get("truncated")
    doc: Doc = {**base, "kind": "post"}
    old = stored if stored is not None and stored.get("kind") == "post" else {}
    for name, column in (("title", "post_title"), ("content", "post_content"), ("excerpt", "post_excerpt")):
        if column in after:  # titles may hold entities (&amp;) and inline tags too
            text, whole = column_text(after[column])
            complete = complete and whole
            doc[name] = plain_text(text or "")
        else:  # a row the size policy cut to six columns: keep what the index had
            doc[name] = old.get(name, "")
    author = after.get("post_author", old.get("author"))
    if author is not None:
        doc["author"] = int(author)
    link = (event.get("link") or {}).get("after") or {}
    doc["permalink"] = link.get("url") or old.get("permalink")
    doc["path"] = link.get("path") or old.get("path")
    doc["date"] = solr_date(after.get("post_date_gmt"))
    doc["incomplete"] = not complete
    return Changes(upserts={doc_id: _with_terms({k: v for k, v in doc.items() if v is not None}, terms)})


def apply_term_record(key: bytes | str | None, event: Mapping[str, Any] | None, stored_term: Mapping[str, Any] | None,
                      posts: Iterable[Mapping[str, Any]]) -> Changes:
    """One record of the term topic. ``stored_term`` is the term's registry document (or None);
    ``posts`` the post and state documents that have the term (the consumer finds them by
    ``term_ids``).

    - create/update: the registry document, and each document's entry for the term gets the new
      name and slug, unless the document already holds a newer one (its entry's ``seq``);
    - delete: the registry document says so (with the ``seq``), and the term leaves the
      documents (WordPress removed it from each post first, and those post events remove it too:
      this is only the belt to their braces);
    - tombstone: the registry document is deleted.

    A document's own ``seq`` is left alone: it is its post's, which a term event does not move.
    """
    blog_id, ttid = parse_key(key)
    term_id = term_doc_id(blog_id, ttid)
    if event is None:
        return Changes(deletes={term_id})
    stale = _stale(term_id, event, stored_term)
    if stale is not None:
        return stale
    seq = int(event["seq"])
    deleted = event.get("op") == "delete" or event.get("after") is None
    now = event.get("after") or event.get("before") or {}
    changes = Changes(upserts={term_id: {
        "id": term_id, "kind": "term", "blog_id": blog_id, "term_taxonomy_id": ttid,
        "term_id": event.get("term_id"), "taxonomy": event.get("taxonomy"), "name": now.get("name"),
        "slug": now.get("slug"), "deleted": deleted, "seq": seq}})
    for post in posts:
        terms = stored_terms(post)
        entry = terms.get(ttid)
        if entry is None or int(entry.get("seq") or 0) >= seq:
            continue
        if deleted:
            del terms[ttid]
        else:
            entry.update(name=now.get("name"), slug=now.get("slug"), seq=seq)
        doc = {k: v for k, v in post.items() if k not in ("_version_", "term_names", "term_labels", "term_ids")}
        changes.upserts[str(post["id"])] = _with_terms(doc, terms)
    return changes
