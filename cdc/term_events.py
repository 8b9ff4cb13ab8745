"""The term event: a term renamed, moved, re-described, created or deleted (docs/events.md, "Term events").

A post document shows its terms' names and slugs; renaming a term makes every such document
stale, and no post row changes to say so. Term events go to their own topic (``--term-topic``),
keyed ``{blog_id}:{term_taxonomy_id}``, one per changed ``wp_term_taxonomy`` row and window
(cdc/terms.py folds the rows), with a tombstone after a delete. ``build`` turns a closed
TermChange into a TermEvent, ``encode`` into its records. No I/O.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from cdc.encode import DEFAULT_MAX_BYTES, Headers, Record, cloudevent_headers, encode_value
from cdc.events import Origin, SourceInfo
from cdc.terms import TermChange

SCHEMA_VERSION = 1
CLOUDEVENTS_TYPE = "org.wordpress.term."  # + the action: org.wordpress.term.updated
ACTIONS = {"create": "created", "update": "updated", "delete": "deleted"}


@dataclass(frozen=True, slots=True)
class TermEvent:
    """One change of one term_taxonomy row. ``seq`` orders a term's events; ``event_id`` is its identity."""

    op: str  # create | update | delete
    blog_id: int
    term_id: int
    term_taxonomy_id: int
    taxonomy: str | None
    seq: int
    source: SourceInfo
    ts_ms: int
    before: dict[str, Any] | None
    after: dict[str, Any] | None
    changed_fields: tuple[str, ...]
    post_count: int | None
    schema_version: int = SCHEMA_VERSION

    @property
    def key(self) -> str:
        return f"{self.blog_id}:{self.term_taxonomy_id}"

    @property
    def event_id(self) -> str:
        """``{blog_id}-term-{term_taxonomy_id}-{seq}``: never equal to a post event's id."""
        return f"{self.blog_id}-term-{self.term_taxonomy_id}-{self.seq}"

    @property
    def action(self) -> str:
        return ACTIONS[self.op]

    def as_dict(self) -> dict[str, Any]:
        return {
            "schema_version": self.schema_version,
            "event_id": self.event_id,
            "op": self.op,
            "blog_id": self.blog_id,
            "term_id": self.term_id,
            "term_taxonomy_id": self.term_taxonomy_id,
            "taxonomy": self.taxonomy,
            "seq": self.seq,
            "ts_ms": self.ts_ms,
            "source": self.source.as_dict(),
            "changed_fields": list(self.changed_fields),
            "before": self.before,
            "after": self.after,
            "post_count": self.post_count,
        }


def build(change: TermChange, origin: Origin, now_ms: int) -> TermEvent:
    source = SourceInfo(
        connector=origin.connector, database=origin.database, server_id=origin.server_id,
        file=change.last_pos.file, pos=change.last_pos.pos, gtid=change.gtid, ts_ms=change.ts * 1000,
        first_file=change.first_pos.file, first_pos=change.first_pos.pos, rows=change.rows,
    )
    return TermEvent(
        op=change.op, blog_id=change.blog_id, term_id=change.term_id, term_taxonomy_id=change.term_taxonomy_id,
        taxonomy=change.taxonomy, seq=change.last_pos.seq, source=source, ts_ms=now_ms,
        before=change.before, after=change.after, changed_fields=change.changed_fields,
        post_count=change.post_count,
    )


def event_headers(event: TermEvent) -> Headers:
    """CloudEvents attributes (binary content mode) and routing headers, as post events have."""
    return cloudevent_headers(event.event_id, event.source, event.blog_id, CLOUDEVENTS_TYPE + event.action,
                              f"terms/{event.term_taxonomy_id}", (
                                  ("wpcdc_blog_id", str(event.blog_id).encode()),
                                  ("wpcdc_taxonomy", (event.taxonomy or "").encode()),
                                  ("wpcdc_op", event.op.encode()),
                                  ("wpcdc_action", event.action.encode()),
                              ))


def tombstone_headers(event: TermEvent) -> Headers:
    return (
        ("wpcdc_blog_id", str(event.blog_id).encode()),
        ("wpcdc_taxonomy", (event.taxonomy or "").encode()),
        ("wpcdc_op", b"tombstone"),
    )


def encode(event: TermEvent, topic: str, max_bytes: int = DEFAULT_MAX_BYTES) -> list[Record]:
    """The records for one term event in ``topic``: the event, then a tombstone after a delete.
    A long description is cut by the post events' size policy (``truncated`` says so)."""
    key = event.key.encode()
    records = [Record(key, encode_value(event.as_dict(), max_bytes), event_headers(event), topic=topic)]
    if event.op == "delete":
        records.append(Record(key, None, tombstone_headers(event), topic=topic))
    return records
