"""The backfill path's cheap constructors build exactly what the dataclass constructors build."""

from __future__ import annotations

from dataclasses import fields, replace

from cdc.events import PostEvent, SourceInfo, with_links
from cdc.permalinks import Link


def test_with_links_is_replace() -> None:
    source = SourceInfo(connector="c", database="d", server_id=1, file="f", pos=1, gtid="0-1-2", ts_ms=1,
                        first_file="f", first_pos=1, rows=3, snapshot=True)
    event = PostEvent(op="snapshot", action="snapshot", blog_id=2, post_id=7, post_type="page", seq=5, source=source,
                      ts_ms=9, before=None, after={"ID": 7}, changed_fields=("a",), status_before=None,
                      status_after="publish", meta=({"meta_id": 1},), terms_added=({"t": 1},), revisions=({"r": 1},),
                      link_before=Link("x", "/x"), link_descendants=(2, True), row_written=True, schema_version=3)
    before, after = Link("https://a/b", "/b"), Link("https://a/c", "/c")
    made, want = with_links(event, before, after), replace(event, link_before=before, link_after=after)
    assert made == want and made.as_dict() == want.as_dict()
    assert all(getattr(made, f.name) is getattr(want, f.name) for f in fields(PostEvent))
    assert with_links(event, None, None) == replace(event, link_before=None, link_after=None)

    # A subclass keeps its class and its own fields (the term fan-out's ``term_change``).
    from cdc.term_fanout import TermChangedEvent

    fanned = TermChangedEvent(**{f.name: getattr(event, f.name) for f in fields(PostEvent)},
                              term_change={"event_id": "t-1"})
    linked = with_links(fanned, before, after)
    assert type(linked) is TermChangedEvent and linked.as_dict()["term_change"] == {"event_id": "t-1"}
    assert linked.link_after == after
