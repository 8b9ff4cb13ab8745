"""A consumer's fold of the event topic: per post, the state its events leave.

The rules, written once: a snapshot document sets the post's whole state; a delete (and the
tombstone after it) removes the post; every other event replaces the row with its ``after`` and
applies its meta changes (by ``meta_id``) and term changes (by ``term_taxonomy_id``). That is what
a consumer building a search index does (docs/events.md), what ``wpcdc verify`` compares with the
database, and what the tests check the stream against (tests/integration/harness.py,
tests/sim/oracle.py), so all three agree on what the topic says.

What a state keeps of a row and of a meta value is the caller's choice: the values themselves
(the tests), or digests (``wpcdc verify``, cdc/digest.py), so that a fold of a large site fits in
memory. No I/O.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

# Entries of an event's ``truncated`` that leave part of the post's *state* out of the event (a
# list emptied, the row cut to six columns). A value cut to a marker is not among them: the marker
# carries the value's sha256, which cdc/digest.py compares.
STATE_CUTS = frozenset({"meta", "terms.added", "terms.removed", "after.*"})


@dataclass(slots=True)
class PostState:
    """One post as the events so far leave it (``row`` and meta values as the fold keeps them)."""

    row: Any = None
    meta: dict[int, Any] = field(default_factory=dict)  # meta_id → (key, value), or its digest
    terms: set[int] = field(default_factory=set)  # term_taxonomy_ids
    seq: int = 0  # of the newest event applied
    cut: bool = False  # an event since the last document left part of the state out (size policy)


def cuts_state(event: Mapping[str, Any]) -> bool:
    """Whether the size policy left part of the post's state out of ``event``."""
    return any(entry in STATE_CUTS for entry in event.get("truncated") or ())


def _pair(key: Any, value: Any) -> tuple[Any, Any]:
    return key, value


def _same(row: Any) -> Any:
    return row


class Fold:
    """Applies events to a post's state; ``row`` and ``meta`` say what the state keeps of a row
    and of a (key, value) pair (by default the values themselves)."""

    def __init__(self, row: Callable[[Any], Any] = _same, meta: Callable[[Any, Any], Any] = _pair) -> None:
        self.row = row
        self.meta = meta

    def apply(self, state: PostState | None, event: Mapping[str, Any] | None) -> PostState | None:
        """The state after ``event`` (a decoded record value; None is a tombstone). None: the post
        is gone. ``state`` may be changed in place."""
        if event is None or event["op"] == "delete":
            return None
        if state is None or event["op"] == "snapshot":
            state = PostState()
        state.row = self.row(event["after"])
        state.seq = int(event["seq"])
        for m in event.get("meta") or ():
            if m["op"] == "delete":
                state.meta.pop(int(m["meta_id"]), None)
            else:
                state.meta[int(m["meta_id"])] = self.meta(m["key"], m["after"])
        terms = event.get("terms") or {}
        state.terms.update(int(t["term_taxonomy_id"]) for t in terms.get("added") or ())
        state.terms.difference_update(int(t["term_taxonomy_id"]) for t in terms.get("removed") or ())
        state.cut = state.cut or cuts_state(event)
        return state


__all__ = ["Fold", "PostState", "STATE_CUTS", "cuts_state"]
