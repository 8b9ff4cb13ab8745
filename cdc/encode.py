"""Post event → Kafka record (key, JSON value), JSON-safe whatever the database holds.

* datetimes become ISO-8601 (orjson does it natively); MySQL zero dates arrive as None.
* strings that are not valid UTF-8 reach us as surrogate escapes (see source.decoding) and
  become ``{"$base64": "…"}`` holding the exact original bytes, so nothing is lost or mangled.
* a value larger than ``max_bytes`` follows the size policy (docs/events.md, "Size policy"):
  it is cut, in steps, until it fits, and says what was cut in ``truncated`` (and ``omitted``).
  One event stays one record, so a compacted topic keeps it whole; encoding never raises on
  size, so the stream never stops on a big post.
"""

from __future__ import annotations

import base64
import datetime as dt
import decimal
import functools
import hashlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import orjson

from cdc.events import PostEvent, SourceInfo
from cdc.slots import constructor

DEFAULT_MAX_BYTES = 900_000  # under Kafka's default message.max.bytes (1 MiB) with headroom
TEXT_LIMIT = 1024  # step 1: text values longer than this (characters) become markers
SHORT_TEXT_LIMIT = 128  # step 5: likewise in the rows left; a marker is ~110 bytes, so not less
HEAD_BYTES = 256  # the start of a value a step-1 marker keeps, for display
ROW_KEYS = ("ID", "post_type", "post_status", "post_name", "post_modified", "post_modified_gmt")
SIDES = ("before", "after")


Headers = tuple[tuple[str, bytes], ...]


@dataclass(frozen=True, slots=True)
class Record:
    topic_key: bytes
    value: bytes | None  # None: a tombstone
    headers: Headers = ()
    topic: str | None = None  # None: the sink's topic (cdc/routing.py sets it per post type or blog)
    truncated: bool = False  # the size policy cut the event to fit (wpcdc_truncated_events_total)


def _default(obj: Any) -> Any:
    if isinstance(obj, decimal.Decimal):
        return str(obj)
    if isinstance(obj, (bytes, bytearray, memoryview)):
        return {"$base64": base64.b64encode(bytes(obj)).decode()}
    if isinstance(obj, dt.timedelta):
        return obj.total_seconds()
    if isinstance(obj, (set, frozenset)):
        return sorted(obj)
    raise TypeError(f"cannot encode {type(obj).__name__}")


def _safe(value: Any) -> Any:
    """Replace strings holding surrogate escapes (invalid UTF-8 in the database) by base64."""
    if isinstance(value, str):
        try:
            value.encode("utf-8")
            return value
        except UnicodeEncodeError:
            raw = value.encode("utf-8", "surrogateescape")
            return {"$base64": base64.b64encode(raw).decode(), "$invalid_utf8": True}
    if isinstance(value, dict):
        return {k: _safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_safe(v) for v in value]
    return value


def dumps(doc: Any) -> bytes:
    """orjson, with a slow pass only when the fast one meets invalid UTF-8."""
    try:
        return orjson.dumps(doc, default=_default)
    except orjson.JSONEncodeError:
        return orjson.dumps(_safe(doc), default=_default)


def digest(value: Any) -> str:
    """sha256 (hex) of ``dumps(value)``: the bytes ``value`` has inside an uncut event's JSON.

    This is what ``omitted.*.sha256`` holds for a list the size policy left out.
    """
    return hashlib.sha256(dumps(value)).hexdigest()


def _is_text(value: Any) -> bool:
    return isinstance(value, (str, bytes, bytearray))


def _marker(value: str | bytes | bytearray, head: bool) -> dict[str, Any]:
    """What replaces a text value: its size and digest (of the exact bytes), maybe its start."""
    raw = value.encode("utf-8", "surrogateescape") if isinstance(value, str) else bytes(value)
    marker: dict[str, Any] = {"$truncated": True, "bytes": len(raw), "sha256": hashlib.sha256(raw).hexdigest()}
    if head:
        marker["head"] = raw[:HEAD_BYTES].decode("utf-8", "ignore")
    return marker


def _label(key: Any) -> str:
    """A meta key as it appears in a ``truncated`` path: always a string (invalid UTF-8 as U+FFFD)."""
    return str(key).encode("utf-8", "surrogateescape").decode("utf-8", "replace")


def _is_marker(value: Any) -> bool:
    return isinstance(value, dict) and value.get("$truncated") is True


_Slot = tuple[int, dict[str, Any], str, str]  # (size, container, key, path in `truncated`)


def _copy(doc: dict[str, Any]) -> dict[str, Any]:
    """A copy deep enough to edit: the rows are shared with the assembler's cache."""
    out = dict(doc)
    for side in SIDES:
        if isinstance(out.get(side), dict):
            out[side] = dict(out[side])
    if isinstance(out.get("meta"), (list, tuple)):
        out["meta"] = [dict(m) if isinstance(m, dict) else m for m in out["meta"]]
    if isinstance(out.get("terms"), dict):
        out["terms"] = dict(out["terms"])
    if isinstance(out.get("omitted"), dict):
        out["omitted"] = dict(out["omitted"])
    out["truncated"] = list(out.get("truncated") or ())
    return out


class _Fit:
    """The size policy on one event that does not fit: each step only while it still does not.

    ``size`` is the length of ``dumps(doc)``, kept up to date by arithmetic while many values
    are replaced one at a time (re-encoding a 40 MB event per value would take minutes), and
    checked by a real encoding whenever it says the event fits.
    """

    def __init__(self, doc: dict[str, Any], value: bytes, max_bytes: int) -> None:
        self.original = doc
        self.doc = _copy(doc)
        self.truncated: list[str] = self.doc.pop("truncated")
        self.max_bytes = max_bytes
        self.value = value
        self.size = len(value)
        self.exact = True  # value is dumps() of the event as it is now

    def encode(self) -> bytes:
        steps: tuple[Callable[[], Iterator[None]], ...] = (
            self.long_text, self.meta, self.terms, self.revisions, self.before, self.short_text, self.row_keys,
        )
        for step in steps:
            for _ in step():
                if self.fits():
                    return self.value
        if not self.exact:
            self.measure()
        return self.value  # still too big (a tiny max_bytes): the producer will say so

    # ------------------------------------------------------------------------------ bookkeeping

    def fits(self) -> bool:
        if self.size > self.max_bytes:
            return False
        if not self.exact:
            self.measure()
        return self.size <= self.max_bytes

    def measure(self) -> None:
        doc = self.doc
        if self.truncated:
            doc = {**doc, "truncated": self.truncated}
        self.value = dumps(doc)
        self.size = len(self.value)
        self.exact = True

    def note(self, path: str) -> None:
        """List ``path`` in ``truncated``, counting the bytes it adds."""
        self.size += len(dumps(path)) + (1 if self.truncated else len(b',"truncated":[]'))
        self.truncated.append(path)
        self.exact = False

    def forget(self, keep: Callable[[str], bool]) -> None:
        """Drop the paths into something that is gone as a whole (the caller re-measures)."""
        self.truncated[:] = [p for p in self.truncated if keep(p)]

    def replace(self, container: dict[str, Any], key: str, new: Any, path: str | None) -> None:
        self.size += len(dumps(new)) - len(dumps(container[key]))
        container[key] = new
        self.exact = False
        if path is not None:
            self.note(path)

    def omit(self, name: str, original: Any) -> None:
        """Record a list left out: how many entries it had and the digest of its JSON."""
        omitted = self.doc.setdefault("omitted", {})
        omitted[name] = {"count": len(original), "sha256": digest(original)}

    def rows(self) -> Iterator[tuple[str, dict[str, Any]]]:
        for side in SIDES:
            row = self.doc.get(side)
            if isinstance(row, dict):
                yield side, row

    # ---------------------------------------------------------------------------------- steps

    def long_text(self) -> Iterator[None]:
        """1. Text longer than TEXT_LIMIT in the rows and meta values, largest first."""
        slots: list[_Slot] = []
        for side, row in self.rows():
            for k, v in row.items():
                if _is_text(v) and len(v) > TEXT_LIMIT:
                    slots.append((len(v), row, k, f"{side}.{k}"))
        for m in self.doc.get("meta") or ():
            for side in SIDES:
                v = m.get(side)
                if _is_text(v) and len(v) > TEXT_LIMIT:
                    slots.append((len(v), m, side, f"meta[{_label(m.get('key'))}].{side}"))
        slots.sort(key=lambda s: s[0], reverse=True)
        for _, container, k, path in slots:
            self.replace(container, k, _marker(container[k], head=True), path)
            yield

    def meta(self) -> Iterator[None]:
        """2. The meta list goes; ``omitted.meta`` says how many entries and their digest."""
        original = self.original.get("meta")
        if original:
            self.doc["meta"] = []
            self.omit("meta", original)
            self.forget(lambda p: not p.startswith("meta["))
            self.truncated.append("meta")
            self.measure()
            yield

    def terms(self) -> Iterator[None]:
        """3a. The term lists go (``omitted.terms_added``, ``omitted.terms_removed``)."""
        original = self.original.get("terms")
        terms = self.doc.get("terms")
        if not (isinstance(original, dict) and isinstance(terms, dict)):
            return
        cut = False
        for side in ("added", "removed"):
            if original.get(side):
                terms[side] = []
                self.omit(f"terms_{side}", original[side])
                self.truncated.append(f"terms.{side}")
                cut = True
        if cut:
            self.measure()
            yield

    def revisions(self) -> Iterator[None]:
        """3b. The revision list goes (``omitted.revisions``)."""
        original = self.original.get("revisions")
        if original:
            self.doc["revisions"] = []
            self.omit("revisions", original)
            self.truncated.append("revisions")
            self.measure()
            yield

    def before(self) -> Iterator[None]:
        """4. ``before`` becomes null when there is an ``after`` too (an update).

        A delete's ``before`` is its only row: it is not dropped but cut by step 5.
        """
        if isinstance(self.doc.get("before"), dict) and isinstance(self.doc.get("after"), dict):
            self.doc["before"] = None
            self.forget(lambda p: not p.startswith("before."))
            self.truncated.append("before")
            self.measure()
            yield

    def short_text(self) -> Iterator[None]:
        """5a. In the rows left, text longer than SHORT_TEXT_LIMIT and step 1's heads go, largest first."""
        slots: list[_Slot] = []
        for side, row in self.rows():
            for k, v in row.items():
                if _is_text(v) and len(v) > SHORT_TEXT_LIMIT:
                    slots.append((len(v), row, k, f"{side}.{k}"))
                elif _is_marker(v) and "head" in v:
                    slots.append((len(v["head"]), row, k, ""))
        slots.sort(key=lambda s: s[0], reverse=True)
        for _, row, k, path in slots:
            v = row[k]
            if path:
                self.replace(row, k, _marker(v, head=False), path)
            else:  # already listed in `truncated`
                self.replace(row, k, {n: x for n, x in v.items() if n != "head"}, None)
            yield

    def row_keys(self) -> Iterator[None]:
        """5b. The rows left keep only ROW_KEYS, and say so: ``after.*`` (``before.*``)."""
        for side, row in list(self.rows()):
            kept = {k: row[k] for k in ROW_KEYS if k in row}
            if len(kept) == len(row):
                continue
            self.doc[side] = kept
            gone = {f"{side}.{k}" for k in row if k not in kept}
            self.truncated[:] = [p for p in self.truncated if p not in gone]
            self.truncated.append(f"{side}.*")
            self.measure()
            yield


def encode_value(doc: dict[str, Any], max_bytes: int = DEFAULT_MAX_BYTES) -> bytes:
    """The event's JSON, cut by the size policy when longer than ``max_bytes``. Never raises on size.

    The result is at most ``max_bytes`` whenever ``max_bytes`` is at least 10,000 (the lowest
    ``--max-message-bytes`` accepts) and the event's required fields are of ordinary size;
    below that the smallest event the policy can make is returned as it is.
    ``doc`` itself is never changed.
    """
    return _fitted(doc, max_bytes)[0]


def _fitted(doc: dict[str, Any], max_bytes: int) -> tuple[bytes, bool]:
    """(the JSON, whether the size policy cut it)."""
    value = dumps(doc)
    if len(value) <= max_bytes:
        return value, False
    return _Fit(doc, value, max_bytes).encode(), True


CLOUDEVENTS_TYPE = "org.wordpress.post."  # + the event's action: org.wordpress.post.published


def rfc3339(ts_ms: int) -> str:
    return dt.datetime.fromtimestamp(ts_ms / 1000, tz=dt.UTC).isoformat(timespec="milliseconds").replace(
        "+00:00", "Z")


@functools.lru_cache(maxsize=4096)
def _ce_time(ts_ms: int) -> bytes:
    """The ce_time header of a binlog time: events share their seconds (a backfill chunk all of
    them), and formatting one was a sixth of encoding an event."""
    return rfc3339(ts_ms).encode()


@functools.lru_cache(maxsize=1024)
def _ce_source(connector: str, database: str, blog_id: int) -> bytes:
    return f"/wpcdc/{connector}/{database}/blogs/{blog_id}".encode()


def event_headers(event: PostEvent) -> Headers:
    """CloudEvents attributes (Kafka protocol binding, binary content mode) and routing headers.

    Binary mode keeps the value the documented JSON, untouched: a consumer that ignores headers
    reads what it always read, and a CloudEvents SDK reads the same record as an event whose
    data is that JSON. ``wpcdc_*`` headers let a router or a filter (Kafka Streams, Connect
    SMTs, kcat) pick events without parsing the value.
    """
    return cloudevent_headers(event.event_id, event.source, event.blog_id, CLOUDEVENTS_TYPE + event.action,
                              f"posts/{event.post_id}", (
                                  ("wpcdc_blog_id", str(event.blog_id).encode()),
                                  ("wpcdc_post_type", (event.post_type or "").encode()),
                                  ("wpcdc_op", event.op.encode()),
                                  ("wpcdc_action", event.action.encode()),
                              ))


def cloudevent_headers(event_id: str, source: SourceInfo, blog_id: int, ce_type: str, subject: str,
                       routing: Headers) -> Headers:
    """The CloudEvents attributes every wpcdc event record carries, then its routing headers."""
    return (
        ("ce_specversion", b"1.0"),
        ("ce_id", event_id.encode()),
        ("ce_source", _ce_source(source.connector, source.database, blog_id)),
        ("ce_type", ce_type.encode()),
        ("ce_subject", subject.encode()),
        ("ce_time", _ce_time(source.ts_ms)),
        ("content-type", b"application/json"),
        *routing,
    )


def tombstone_headers(event: PostEvent) -> Headers:
    """A tombstone is compaction's record, not an event: routing headers only, no CloudEvents."""
    return (
        ("wpcdc_blog_id", str(event.blog_id).encode()),
        ("wpcdc_post_type", (event.post_type or "").encode()),
        ("wpcdc_op", b"tombstone"),
    )


def encode(event: PostEvent, max_bytes: int = DEFAULT_MAX_BYTES) -> list[Record]:
    """The records for one event: the event itself, then a tombstone after a delete."""
    key = event.key.encode()
    value, cut = _fitted(event.as_dict(), max_bytes)
    records = [_record(key, value, event_headers(event), truncated=cut)]
    if event.op == "delete":
        records.append(_record(key, None, tombstone_headers(event)))
    return records


_record = constructor(Record)  # one per event: cdc/slots.py
