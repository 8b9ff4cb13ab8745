"""``--term-fanout N``: a post event for every post that shows a renamed term, up to N posts.

The term event says a term's name or slug changed; a consumer that reads only the post topic and
re-indexes a post on each of its events would not know which posts to re-index. With a fan-out,
each post that has the term when the flush reads ``term_relationships`` (at most N; beyond that a
warning and only the term event) also gets an ``update`` event with action ``term_changed``: its
row as read from the database, nothing in ``changed_fields``, ``meta``, ``terms`` or
``revisions`` (the post did not change, and its relationships are not restated), and a
``term_change`` object naming the term and the term event. It cannot pass for an editor's save.

Only renames and slug changes fan out: a delete's posts have events of their own already
(WordPress removes the term from each post before it deletes it), and a parent or description
does not show in a post's terms.

Order: the event's ``seq`` is the term event's. A post with a pending change, or with a change
already out at or past that position, gets no fan-out event (its own event follows the rename or
already did), so a post's events stay in increasing ``seq``; the post's mark moves to the term's
position, so a backfill document read before the rename is stale (read again).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field, fields
from typing import Any

from cdc.assemble import Assembler
from cdc.events import Origin, PostEvent, build
from cdc.model import PostChange, Row
from cdc.ports import PostStore
from cdc.term_events import TermEvent
from cdc.terms import TermChange
from cdc.wordpress import Capture, TableNames

log = logging.getLogger(__name__)

ACTION = "term_changed"
FANOUT_FIELDS = ("name", "slug")  # what a post's terms show of a term


@dataclass(frozen=True, slots=True)
class TermChangedEvent(PostEvent):
    """A post event caused by a term change: a PostEvent with ``term_change`` beside its fields."""

    term_change: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {**PostEvent.as_dict(self), "term_change": self.term_change}


def fans_out(change: TermChange) -> bool:
    return change.op == "update" and any(f in change.changed_fields for f in FANOUT_FIELDS)


class TermFanout:
    """Reads the posts of renamed terms, then builds their ``term_changed`` events."""

    def __init__(self, limit: int, store: PostStore, tables: TableNames,
                 blocking: Callable[..., Awaitable[Any]]) -> None:
        self.limit = limit
        self.store = store
        self.tables = tables
        self.blocking = blocking

    async def read(self, changes: list[TermChange]) -> dict[tuple[int, int], list[Row]]:
        """(blog, term_taxonomy_id) → the post rows of each renamed term's posts, read now."""
        wanted = [c for c in changes if fans_out(c)]
        if not wanted or self.limit <= 0:
            return {}

        def read() -> dict[tuple[int, int], list[Row]]:
            found: dict[tuple[int, int], list[Row]] = {}
            for c in wanted:
                ids = self.store.term_posts(self.tables, c.blog_id, c.term_taxonomy_id, self.limit + 1)
                if len(ids) > self.limit:
                    log.warning("term %s:%s (%s %r) changed its %s on more than --term-fanout %d posts: only its "
                                "term event is written; consumers find its posts through term_taxonomy_id",
                                c.blog_id, c.term_taxonomy_id, c.taxonomy, (c.after or {}).get("name"),
                                " and ".join(f for f in c.changed_fields if f in FANOUT_FIELDS), self.limit,
                                extra={"position": str(c.last_pos)})
                    continue
                rows = self.store.post_rows(self.tables, c.blog_id, ids)
                found[(c.blog_id, c.term_taxonomy_id)] = [rows[i] for i in sorted(rows)]
            return found

        result: dict[tuple[int, int], list[Row]] = await self.blocking(read)
        return result

    @staticmethod
    def events(changes: list[tuple[TermChange, TermEvent]], posts: dict[tuple[int, int], list[Row]],
               assembler: Assembler, capture: Capture, origin: Origin, now_ms: int) -> list[PostEvent]:
        """The fan-out events, in term order. Called at the instant the flush takes its checkpoint:
        it decides on the assembler's state then, and moves the marks it writes past."""
        out: list[PostEvent] = []
        for change, term_event in sorted(changes, key=lambda pair: pair[0].last_pos._key()):
            for row in posts.get((change.blog_id, change.term_taxonomy_id), ()):
                key = (change.blog_id, int(row["ID"]))
                if assembler.is_pending(key) or assembler.emitted_since(key, change.last_pos):
                    continue
                event = build(_unchanged(change, row), capture, origin, now_ms)
                if event is None or event.op != "update":
                    continue  # a post the capture policy leaves out
                assembler.mark(key, change.last_pos)
                values = {f.name: getattr(event, f.name) for f in fields(PostEvent)}
                out.append(TermChangedEvent(**{**values, "action": ACTION}, term_change={
                    "event_id": term_event.event_id, "term": change.term().as_dict(),
                    "changed_fields": list(change.changed_fields),
                }))
        return out


def _unchanged(change: TermChange, row: Row) -> PostChange:
    """A post that did not change, at the term change's position (it covers none of its rows)."""
    return PostChange(
        blog_id=change.blog_id, post_id=int(row["ID"]), inserted=False, deleted=False, before=row, after=row,
        row_known=True, posts_row_changed=False, meta=(), terms_added=(), terms_removed=(), revisions=(),
        first_pos=change.first_pos, last_pos=change.last_pos, gtid=change.gtid, ts=change.ts, rows=0,
    )
