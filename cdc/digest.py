"""Digests of a post's state, so ``wpcdc verify`` holds a whole site's topic in little memory.

Both sides are brought to one canonical form first. A database value takes the JSON form an event
gives it (cdc/encode.py: datetimes as ISO text, bytes and invalid UTF-8 as ``$base64``), then every
text value the size policy could have cut (longer than 128 characters), every binary value and
every invalid UTF-8 text becomes the sha256 of its exact bytes; a value the size policy cut to a
marker carries that same sha256, so a truncated ``post_content`` still compares. Then:

* the row is 16 bytes of BLAKE2b over its canonical JSON (keys sorted);
* each meta row is its ``meta_id`` and 8 bytes of BLAKE2b over (key, value): posts are compared
  meta_id by meta_id, so a collision could only hide one changed value of one post (odds 2^-64);
* terms are their term_taxonomy_ids.

A post's state is packed into one ``bytes`` (:func:`pack`): the seq and the Kafka place of its
newest event, whether the size policy cut part of it, then the comparable part (:func:`content`).
That is about 70 bytes plus 16 per meta row and 8 per term. No I/O.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import struct
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import orjson

from cdc.encode import SHORT_TEXT_LIMIT, dumps
from cdc.fold import Fold, PostState
from cdc.model import PostDoc
from cdc.wordpress import AUTO_DRAFT, Capture

_HEAD = struct.Struct("<QqHB")  # seq, Kafka offset, partition, cut
_BODY = struct.Struct("<16sII")  # row digest, number of terms, number of meta rows
_SCALARS = (int, float, bool, type(None))


def canonical(value: Any) -> Any:
    """The form of ``value`` two sides compare: a text value longer than any the size policy keeps
    (or not valid UTF-8, or binary) as ``[sha256 hex]`` of its exact bytes, a size-policy marker as
    ``[the sha256 it carries]``, anything else as its JSON form (a list never is a column's value)."""
    if type(value) is str:
        if len(value) <= SHORT_TEXT_LIMIT and (value.isascii() or _utf8(value)):
            return value  # never cut to a marker: itself (hashing every short text costs 40 %)
        return [hashlib.sha256(value.encode("utf-8", "surrogateescape")).hexdigest()]
    if isinstance(value, _SCALARS):
        return value
    if type(value) is dt.datetime and value.tzinfo is None:
        return value.isoformat()  # what orjson writes for a naive datetime
    if isinstance(value, (bytes, bytearray, memoryview)):
        return [hashlib.sha256(bytes(value)).hexdigest()]
    if isinstance(value, dict):
        if value.get("$truncated") is True:
            return [value.get("sha256")]
        if "$base64" in value:
            return [hashlib.sha256(base64.b64decode(value["$base64"])).hexdigest()]
        return {k: canonical(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [canonical(v) for v in value]
    # Decimal, timedelta, set, a datetime with a zone: the JSON form an event gives them
    return canonical(orjson.loads(dumps(value)))


def _utf8(value: str) -> bool:
    """Whether ``value`` is valid UTF-8 text (surrogate escapes stand for bytes that were not)."""
    try:
        value.encode("utf-8")
        return True
    except UnicodeEncodeError:
        return False


def row_digest(row: Mapping[str, Any] | None) -> bytes:
    """16 bytes standing for a wp_posts row (an event's ``after`` or a row read by SQL)."""
    if row is None:
        return bytes(16)
    doc = {k: canonical(v) for k, v in row.items()}
    return hashlib.blake2b(orjson.dumps(doc, option=orjson.OPT_SORT_KEYS), digest_size=16).digest()


def meta_hash(key: Any, value: Any) -> int:
    """64 bits standing for one meta row's (key, value)."""
    raw = orjson.dumps([canonical(key), canonical(value)])
    return int.from_bytes(hashlib.blake2b(raw, digest_size=8).digest(), "little")


def column_differences(topic_row: Mapping[str, Any] | None, db_row: Mapping[str, Any] | None) -> list[str]:
    """The columns whose values differ (canonically) between an event's row and the database's."""
    a, b = topic_row or {}, db_row or {}
    return sorted(c for c in a.keys() | b.keys() if c not in a or c not in b or canonical(a[c]) != canonical(b[c]))


DIGESTS = Fold(row=row_digest, meta=meta_hash)
"""The consumer's fold, keeping digests: what ``wpcdc verify`` folds the topic with."""


# ---------------------------------------------------------------------------------- packing


def pack(state: PostState, partition: int = 0, offset: int = -1) -> bytes:
    """``state`` (kept by DIGESTS) as one bytes value, with the Kafka place of its newest event."""
    terms = sorted(state.terms)
    meta = sorted(state.meta.items())
    flat = [x for pair in meta for x in pair]
    return b"".join((
        _HEAD.pack(state.seq, offset, partition, state.cut),
        _BODY.pack(state.row, len(terms), len(meta)),
        struct.pack(f"<{len(terms)}Q", *terms),
        struct.pack(f"<{len(flat)}Q", *flat),
    ))


@dataclass(frozen=True, slots=True)
class Packed:
    """A packed state read back: the state, and where its newest event is in the topic."""

    state: PostState
    partition: int
    offset: int


def unpack(data: bytes) -> Packed:
    seq, offset, partition, cut = _HEAD.unpack_from(data)
    row, n_terms, n_meta = _BODY.unpack_from(data, _HEAD.size)
    at = _HEAD.size + _BODY.size
    terms = struct.unpack_from(f"<{n_terms}Q", data, at)
    flat = struct.unpack_from(f"<{2 * n_meta}Q", data, at + 8 * n_terms)
    meta = dict(zip(flat[0::2], flat[1::2], strict=True))
    return Packed(PostState(row, meta, set(terms), seq, bool(cut)), partition, offset)


def content(data: bytes) -> bytes:
    """The part of a packed state two sides compare: row, terms, meta (not seq, place or cut)."""
    return data[_HEAD.size:]


def seq_of(data: bytes) -> int:
    return int(_HEAD.unpack_from(data)[0])


def is_cut(data: bytes) -> bool:
    return bool(_HEAD.unpack_from(data)[3])


def doc_state(doc: PostDoc, capture: Capture, seq: int = 0) -> bytes:
    """A post read from the database (a backfill document), packed like the topic's fold, under the
    same capture policy as the stream (ignored meta keys left out)."""
    meta = {int(m["meta_id"]): meta_hash(m["meta_key"], m["meta_value"])
            for m in doc.meta if m["meta_key"] not in capture.ignored_meta}
    return pack(PostState(row_digest(doc.row), meta, set(doc.term_taxonomy_ids), seq))


# ---------------------------------------------------------------------------------- differences


@dataclass
class Difference:
    """How one post differs between the topic and the database."""

    blog_id: int
    post_id: int
    kind: str  # "missing" (in the database, not in the topic) | "extra" (the reverse) | "differs"
    row: bool = False
    meta_missing: tuple[int, ...] = ()  # meta_ids in the database, not in the topic
    meta_extra: tuple[int, ...] = ()  # meta_ids in the topic, not in the database
    meta_changed: tuple[int, ...] = ()  # in both, with different values
    terms_missing: tuple[int, ...] = ()  # term_taxonomy_ids in the database, not in the topic
    terms_extra: tuple[int, ...] = ()
    # Filled for the first posts reported (they cost a read each): the columns that differ and
    # the meta keys of the meta_ids above, as the database has them.
    columns: tuple[str, ...] = ()
    meta_keys: dict[int, str] | None = None

    @property
    def key(self) -> str:
        return f"{self.blog_id}:{self.post_id}"

    def describe(self) -> str:
        """One line for the operator."""
        if self.kind == "missing":
            return f"post {self.key}: in the database, missing from the topic"
        if self.kind == "extra":
            return f"post {self.key}: in the topic, not in the database (or no longer captured)"
        parts = []
        if self.row:
            parts.append("row (" + (", ".join(self.columns) if self.columns else "columns not read") + ")")
        names = self.meta_keys or {}

        def label(ids: tuple[int, ...]) -> str:
            return ", ".join(f"{names[i]} (meta_id {i})" if i in names else f"meta_id {i}" for i in ids)

        for what, ids in (("meta changed", self.meta_changed), ("meta missing", self.meta_missing),
                          ("meta extra", self.meta_extra)):
            if ids:
                parts.append(f"{what}: {label(ids)}")
        if self.terms_missing:
            parts.append(f"terms missing: {list(self.terms_missing)}")
        if self.terms_extra:
            parts.append(f"terms extra: {list(self.terms_extra)}")
        return f"post {self.key}: differs in " + "; ".join(parts)

    def as_dict(self) -> dict[str, Any]:
        doc: dict[str, Any] = {"key": self.key, "blog_id": self.blog_id, "post_id": self.post_id, "kind": self.kind}
        if self.kind == "differs":
            doc |= {"row": self.row, "columns": list(self.columns),
                    "meta": {"changed": list(self.meta_changed), "missing": list(self.meta_missing),
                             "extra": list(self.meta_extra),
                             "keys": {str(k): v for k, v in (self.meta_keys or {}).items()}},
                    "terms": {"missing": list(self.terms_missing), "extra": list(self.terms_extra)}}
        return doc


def difference(blog_id: int, post_id: int, topic: bytes | None, db: bytes | None) -> Difference | None:
    """How the topic's packed state and the database's differ; None when they agree (both absent,
    or the same content)."""
    if topic is None and db is None:
        return None
    if topic is None:
        return Difference(blog_id, post_id, "missing")
    if db is None:
        return Difference(blog_id, post_id, "extra")
    if content(topic) == content(db):
        return None
    t, d = unpack(topic).state, unpack(db).state
    return Difference(
        blog_id, post_id, "differs", row=t.row != d.row,
        meta_missing=tuple(sorted(d.meta.keys() - t.meta.keys())),
        meta_extra=tuple(sorted(t.meta.keys() - d.meta.keys())),
        meta_changed=tuple(sorted(i for i in t.meta.keys() & d.meta.keys() if t.meta[i] != d.meta[i])),
        terms_missing=tuple(sorted(d.terms - t.terms)),
        terms_extra=tuple(sorted(t.terms - d.terms)),
    )


# ---------------------------------------------------------------------------------- the topic


def post_key(blog_id: int, post_id: int) -> int:
    """A post as one int (a dict of a million tuples would cost 80 MB more)."""
    return blog_id << 32 | post_id


def split_key(key: int) -> tuple[int, int]:
    return key >> 32, key & 0xFFFFFFFF


class Scope:
    """Which posts are compared: those the connector captures (``--blogs``, the capture policy),
    narrowed by the ``--snapshot-blogs``, ``--snapshot-post-types`` and ``--snapshot-id-range``
    options. Auto-drafts and posts of excluded statuses exist in the database but never in the
    topic: they are left out on both sides."""

    def __init__(self, capture: Capture, blogs: frozenset[int] | None = None, snapshot_blogs: frozenset[int] | None = None,
                 post_types: frozenset[str] | None = None, id_min: int = 0, id_max: int | None = None) -> None:
        self.capture = capture
        self.blogs = blogs if snapshot_blogs is None else (snapshot_blogs if blogs is None else blogs & snapshot_blogs)
        self.post_types = post_types
        self.id_min, self.id_max = id_min, id_max

    def wants_key(self, blog_id: int, post_id: int) -> bool:
        return ((self.blogs is None or blog_id in self.blogs) and post_id >= self.id_min
                and (self.id_max is None or post_id <= self.id_max))

    def wants_type(self, post_type: str | None) -> bool:
        return self.capture.wants_type(post_type) and (self.post_types is None or post_type in self.post_types)

    def wants_row(self, row: Mapping[str, Any]) -> bool:
        status = row.get("post_status")
        return (self.wants_type(row.get("post_type")) and self.capture.wants_status(status)
                and not (self.capture.skip_auto_drafts and status == AUTO_DRAFT))


class TopicFold:
    """The event topic folded into packed per-post states (``states``: post key → packed state).

    ``only``: fold the records of these posts only (the re-check of a few posts reads the topic's
    tail into their states).
    """

    def __init__(self, scope: Scope, states: dict[int, bytes] | None = None, only: set[int] | None = None) -> None:
        self.scope = scope
        self.states: dict[int, bytes] = {} if states is None else states
        self.only = only
        self.records = 0
        self.unreadable = 0  # records whose key or value is not a post event's

    def add(self, key: bytes | None, value: bytes | None, partition: int, offset: int) -> None:
        self.records += 1
        try:
            blog_text, _, post_text = (key or b"").decode().partition(":")
            blog_id, post_id = int(blog_text), int(post_text)
            event = None if value is None else orjson.loads(value)
        except (UnicodeDecodeError, ValueError):
            self.unreadable += 1
            return
        k = post_key(blog_id, post_id)
        if (self.only is not None and k not in self.only) or not self.scope.wants_key(blog_id, post_id):
            return
        if event is not None and not self.scope.wants_type(event.get("post_type")):
            self.states.pop(k, None)
            return
        old = self.states.get(k)
        previous = None if old is None or (event is not None and event.get("op") == "snapshot") else unpack(old).state
        try:
            state = DIGESTS.apply(previous, event)
        except (KeyError, TypeError, ValueError):
            self.unreadable += 1
            return
        if state is None:
            self.states.pop(k, None)
        else:
            self.states[k] = pack(state, partition, offset)


__all__ = ["DIGESTS", "Difference", "Packed", "Scope", "TopicFold", "canonical", "column_differences", "content",
           "difference", "doc_state", "is_cut", "meta_hash", "pack", "post_key", "row_digest", "seq_of", "split_key",
           "unpack"]
