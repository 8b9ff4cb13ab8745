"""The post-level event: what consumers read (documented in docs/events.md).

``build`` turns an assembler PostChange into a PostEvent: it decides op and action, applies the
post-type, status and auto-draft policy, and names the changed fields. No I/O.
"""

from __future__ import annotations

from dataclasses import dataclass, fields, replace
from typing import Any

from cdc.model import PostChange, Row
from cdc.permalinks import Link
from cdc.slots import constructor
from cdc.wordpress import AUTO_DRAFT, Capture, editor_action

SCHEMA_VERSION = 1
MOVED = "moved"  # the action of an event whose post's URL moved with an ancestor's (cdc/links.py)


@dataclass(frozen=True, slots=True)
class SourceInfo:
    """Where an event came from in the binlog, Debezium's ``source`` block in our words."""

    connector: str
    database: str
    server_id: int | None
    file: str
    pos: int
    gtid: str | None
    ts_ms: int
    first_file: str
    first_pos: int
    rows: int
    snapshot: bool = False

    def as_dict(self) -> dict[str, Any]:
        return {
            "connector": self.connector,
            "db": self.database,
            "server_id": self.server_id,
            "file": self.file,
            "pos": self.pos,
            "gtid": self.gtid,
            "ts_ms": self.ts_ms,
            "first": {"file": self.first_file, "pos": self.first_pos},
            "rows": self.rows,
            "snapshot": self.snapshot,
        }


@dataclass(frozen=True, slots=True)
class PostEvent:
    """One change of one post. ``seq`` orders a post's events; ``event_id`` is its identity."""

    op: str  # create | update | delete | snapshot
    action: str
    blog_id: int
    post_id: int
    post_type: str | None
    seq: int
    source: SourceInfo
    ts_ms: int
    before: Row | None
    after: Row | None
    changed_fields: tuple[str, ...]
    status_before: str | None
    status_after: str | None
    meta: tuple[dict[str, Any], ...] = ()
    terms_added: tuple[dict[str, Any], ...] = ()
    terms_removed: tuple[dict[str, Any], ...] = ()
    revisions: tuple[dict[str, Any], ...] = ()
    # The post's URL before and after the change (cdc/links.py adds them once the event is built),
    # and, on a post whose URL moved its descendants' too, (their "moved" events that follow, whether
    # --link-fanout cut them).
    link_before: Link | None = None
    link_after: Link | None = None
    link_descendants: tuple[int, bool] | None = None
    # A posts row was written (whatever its net change): a descendant's event in between may have
    # read a state of it the net does not show. Not in the JSON (cdc/pipeline.py, Session._moved).
    row_written: bool = False
    schema_version: int = SCHEMA_VERSION

    @property
    def key(self) -> str:
        return f"{self.blog_id}:{self.post_id}"

    @property
    def event_id(self) -> str:
        return f"{self.blog_id}-{self.post_id}-{self.seq}"

    def as_dict(self) -> dict[str, Any]:
        return {
            "schema_version": self.schema_version,
            "event_id": self.event_id,
            "op": self.op,
            "action": self.action,
            "blog_id": self.blog_id,
            "post_id": self.post_id,
            "post_type": self.post_type,
            "seq": self.seq,
            "ts_ms": self.ts_ms,
            "source": self.source.as_dict(),
            "status": {"before": self.status_before, "after": self.status_after},
            "link": self._link(),
            "changed_fields": list(self.changed_fields),
            "before": self.before,
            "after": self.after,
            "meta": list(self.meta),
            "terms": {"added": list(self.terms_added), "removed": list(self.terms_removed)},
            "revisions": list(self.revisions),
        }


    def _link(self) -> dict[str, Any]:
        link: dict[str, Any] = {"before": self.link_before.as_dict() if self.link_before else None,
                                "after": self.link_after.as_dict() if self.link_after else None}
        if self.link_descendants is not None:
            link["descendants"] = {"moved": self.link_descendants[0], "cut": self.link_descendants[1]}
        return link


def _with_links_factory() -> Any:
    """``replace(event, link_before=…, link_after=…)`` by copying the slots through their
    descriptors: dataclasses.replace runs the frozen __init__ (an object.__setattr__ per field, 23
    of them), about 10 us an event, a second per 100,000 backfilled posts."""
    names = [f.name for f in fields(PostEvent)]
    slots = [(PostEvent.__dict__[n].__get__, PostEvent.__dict__[n].__set__) for n in names
             if n not in ("link_before", "link_after")]
    set_before, set_after = PostEvent.__dict__["link_before"].__set__, PostEvent.__dict__["link_after"].__set__
    new = object.__new__

    def with_links(event: PostEvent, before: Link | None, after: Link | None) -> PostEvent:
        if type(event) is not PostEvent:
            # A subclass (term_fanout.TermChangedEvent) has fields of its own the slots above
            # do not copy: the plain way keeps them.
            return replace(event, link_before=before, link_after=after)
        copy = new(PostEvent)
        for get, put in slots:
            put(copy, get(event))
        set_before(copy, before)
        set_after(copy, after)
        return copy

    return with_links


with_links = _with_links_factory()


def moved_event(ancestor: PostEvent, row: Row, before: Link, after: Link) -> PostEvent:
    """The event of a post whose URL moved with its ancestor's (a parent page re-slugged, the post an
    attachment belongs to re-dated): ``moved``, its row unchanged, at the ancestor's ``seq``."""
    status = row.get("post_status")
    return PostEvent(
        op="update", action=MOVED, blog_id=ancestor.blog_id, post_id=int(row["ID"]), post_type=row.get("post_type"),
        seq=ancestor.seq, source=replace(ancestor.source, rows=0, snapshot=False), ts_ms=ancestor.ts_ms,
        before=row, after=row, changed_fields=(), status_before=status, status_after=status,
        link_before=before, link_after=after,
    )


@dataclass(frozen=True, slots=True)
class Origin:
    """What every event of one connector says about its source."""

    connector: str
    database: str
    server_id: int | None


def build(
    change: PostChange,
    capture: Capture,
    origin: Origin,
    now_ms: int,
    looked_up: Row | None = None,
) -> PostEvent | None:
    """The event for a closed change, or None when the policy says it is not news.

    ``looked_up`` is the post row read from the database when the change carried none
    (``row_known`` False): a meta-only change of a post the cache did not hold.
    """
    before, after = change.before, change.after
    if not change.row_known:
        before = after = looked_up
    if change.snapshot:
        op = "snapshot"
    elif change.deleted:
        op = "delete"
        after = None
    elif change.inserted or (before is not None and before.get("post_status") == AUTO_DRAFT):
        op = "create"
    else:
        op = "update"

    reference = after if after is not None else before
    post_type = reference.get("post_type") if reference else None
    status_before = before.get("post_status") if before else None
    status_after = after.get("post_status") if after else None

    if capture.skip_auto_drafts:
        if op != "delete" and status_after == AUTO_DRAFT:
            return None
        if op == "delete" and status_before == AUTO_DRAFT:
            return None
    if not capture.wants_type(post_type):
        return None
    if not capture.wants_status(status_after if op != "delete" else status_before):
        return None

    changed: tuple[str, ...]
    if op == "snapshot":
        changed = ()
    elif op == "create":
        before, status_before = None, None
        changed = tuple(after) if after else ()
    elif op == "delete" or not change.posts_row_changed or before is None or after is None:
        changed = ()
    else:
        changed = tuple(k for k, v in after.items() if before.get(k) != v)

    action = "snapshot" if op == "snapshot" else editor_action(op, status_before, status_after)
    if op == "update" and change.revisions and not (
        change.posts_row_changed or change.meta or change.terms_added or change.terms_removed
    ):
        # Only a revision row was written: the live post is unchanged (an autosave, say).
        action = "autosaved" if all(r.autosave for r in change.revisions) else "revision_saved"

    source = _source_info(
        connector=origin.connector,
        database=origin.database,
        server_id=origin.server_id,
        file=change.last_pos.file,
        pos=change.last_pos.pos,
        gtid=change.gtid,
        ts_ms=change.ts * 1000,
        first_file=change.first_pos.file,
        first_pos=change.first_pos.pos,
        rows=change.rows,
        snapshot=change.snapshot,
    )
    return _post_event(
        op=op,
        action=action,
        blog_id=change.blog_id,
        post_id=change.post_id,
        post_type=post_type,
        seq=change.last_pos.seq,
        source=source,
        ts_ms=now_ms,
        before=before,
        after=after,
        changed_fields=changed,
        status_before=status_before,
        status_after=status_after,
        meta=tuple(
            {"meta_id": m.meta_id, "key": m.key, "op": m.op, "before": m.before, "after": m.after}
            for m in change.meta
        ),
        terms_added=tuple(t.as_dict() for t in change.terms_added),
        terms_removed=tuple(t.as_dict() for t in change.terms_removed),
        revisions=tuple(
            {"revision_id": r.revision_id, "autosave": r.autosave} for r in change.revisions
        ),
        row_written=change.posts_row_changed,
    )


_source_info = constructor(SourceInfo)
_post_event = constructor(PostEvent)
