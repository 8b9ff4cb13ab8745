"""Terms: names for term_taxonomy ids, and the net change of one term over a window.

``wp_term_relationships`` only says (object_id, term_taxonomy_id); an event should say "tag
'news'". The catalog starts from the tables (loaded by the pipeline) and then follows the
``terms`` and ``term_taxonomy`` rows in the stream, which WordPress writes before the
relationship that uses a new term, so a lookup at close time finds it.

A term is also news of its own (a rename makes every post document that shows the old name
stale): :class:`TermFold` is the pending change of one term (``wp_terms`` row and its
``wp_term_taxonomy`` rows) that the assembler keeps beside its pending posts, under the same
window, ``max_delay``, memory bound and resume point, and closes into :class:`TermChange`\\ s, one
per term_taxonomy row (cdc/term_events.py turns those into term events). No I/O.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from cdc.model import PostKey, Row, RowChange, Term
from cdc.position import Position
from cdc.wordpress import TableKind

TERM_FIELDS = ("name", "slug", "parent", "description")
"""What a term event shows of a term, before and after (docs/events.md, "Term events")."""
_COLUMNS = {TableKind.TERMS: ("name", "slug"), TableKind.TERM_TAXONOMY: ("term_id", "taxonomy", "parent", "description")}


def term_key(blog_id: int, term_id: int) -> PostKey:
    """The assembler's key of a term's pending change, and of its mark in the checkpoint.

    ``(blog_id, -term_id)``: the checkpoint's marks are (blog, id) pairs, and no post id is
    negative, so a term's mark travels in the same record without a new format (an older wpcdc
    reading it sees a mark for a post that cannot exist, and ignores it).
    """
    return (blog_id, -term_id)


def is_term_key(key: PostKey) -> bool:
    return key[1] < 0


def term_id_of(change: RowChange) -> int:
    """The term a ``terms`` or ``term_taxonomy`` row belongs to (the newest image's)."""
    return int(change.row["term_id"])


def is_news(change: RowChange) -> bool:
    """Whether a term row can change what a term event shows. WordPress rewrites
    ``term_taxonomy.count`` on every post's term change: such an update is not news, and
    neither is one of ``term_group`` alone."""
    if change.op != "update" or change.before is None or change.after is None:
        return True
    return any(change.before.get(c) != change.after.get(c) for c in _COLUMNS[change.table.kind])


@dataclass(slots=True)
class _Taxonomy:
    term_id: int
    taxonomy: str | None
    parent: int | None = None
    description: str | None = None
    count: int | None = None


class TermCatalog:
    """(blog_id, term_taxonomy_id) → Term. Deleted terms are kept: a removal still needs a name."""

    def __init__(self) -> None:
        self._terms: dict[tuple[int, int], tuple[str | None, str | None]] = {}  # (blog, term_id) → (slug, name)
        self._taxonomy: dict[tuple[int, int], _Taxonomy] = {}  # (blog, ttid)
        self._by_term: dict[tuple[int, int], set[int]] = {}  # (blog, term_id) → live ttids

    def load(self, blog_id: int, rows: list[dict[str, Any]]) -> None:
        """Rows of ``term_taxonomy JOIN terms`` (term_taxonomy_id, term_id, taxonomy, slug, name,
        and parent, description, count when the query has them)."""
        for r in rows:
            ttid, term_id = int(r["term_taxonomy_id"]), int(r["term_id"])
            self._set_taxonomy(blog_id, ttid, _Taxonomy(term_id, r["taxonomy"], _int(r.get("parent")),
                                                        r.get("description"), _int(r.get("count"))))
            self._terms[(blog_id, term_id)] = (r["slug"], r["name"])

    def apply(self, change: RowChange) -> None:
        row, blog = change.after, change.table.blog_id
        if row is None:
            if change.table.kind is TableKind.TERM_TAXONOMY and change.before is not None:
                ttid = int(change.before["term_taxonomy_id"])
                self._by_term.get((blog, int(change.before["term_id"])), set()).discard(ttid)
            return  # the names stay: a post event removing the term still names it
        if change.table.kind is TableKind.TERMS:
            self._terms[(blog, int(row["term_id"]))] = (row.get("slug"), row.get("name"))
        elif change.table.kind is TableKind.TERM_TAXONOMY:
            self._set_taxonomy(blog, int(row["term_taxonomy_id"]), _Taxonomy(
                int(row["term_id"]), row.get("taxonomy"), _int(row.get("parent")), row.get("description"),
                _int(row.get("count"))))

    def _set_taxonomy(self, blog: int, ttid: int, entry: _Taxonomy) -> None:
        old = self._taxonomy.get((blog, ttid))
        if old is not None and old.term_id != entry.term_id:  # a shared term split off (WordPress 4.2+)
            self._by_term.get((blog, old.term_id), set()).discard(ttid)
        self._taxonomy[(blog, ttid)] = entry
        self._by_term.setdefault((blog, entry.term_id), set()).add(ttid)

    def lookup(self, blog_id: int, term_taxonomy_id: int) -> Term:
        tax = self._taxonomy.get((blog_id, term_taxonomy_id))
        if tax is None:
            return Term(term_taxonomy_id, None, None, None, None)
        slug, name = self._terms.get((blog_id, tax.term_id), (None, None))
        return Term(term_taxonomy_id, tax.taxonomy, tax.term_id, slug, name)

    def taxonomy_ids(self, blog_id: int, term_id: int) -> set[int]:
        """The term_taxonomy rows that use term ``term_id`` now (more than one: a shared term)."""
        return set(self._by_term.get((blog_id, term_id), ()))

    def term_row(self, blog_id: int, term_id: int) -> Row:
        slug, name = self._terms.get((blog_id, term_id), (None, None))
        return {"term_id": term_id, "name": name, "slug": slug}

    def taxonomy_row(self, blog_id: int, term_taxonomy_id: int) -> Row | None:
        tax = self._taxonomy.get((blog_id, term_taxonomy_id))
        if tax is None:
            return None
        return {"term_taxonomy_id": term_taxonomy_id, "term_id": tax.term_id, "taxonomy": tax.taxonomy,
                "parent": tax.parent, "description": tax.description, "count": tax.count}

    def category(self, blog_id: int, term_id: int) -> tuple[str, int] | None:
        """A category's (slug, parent term_id), or None when ``term_id`` is no category (now): what
        a ``%category%`` permalink spells out (cdc/permalinks.py)."""
        for ttid in self._by_term.get((blog_id, term_id), ()):
            tax = self._taxonomy.get((blog_id, ttid))
            if tax is not None and tax.taxonomy == "category":
                slug = self._terms.get((blog_id, term_id), (None, None))[0]
                return slug or "", tax.parent or 0
        return None

    def __len__(self) -> int:
        return len(self._taxonomy)


def _int(value: Any) -> int | None:
    return None if value is None else int(value)


@dataclass(frozen=True, slots=True)
class TermChange:
    """The net change of one term_taxonomy row over one window; term_events.build makes it an event.

    ``before``/``after`` hold TERM_FIELDS (None: the row did not exist). Fields the window's rows
    did not write come from the catalog, the same on both sides.
    """

    blog_id: int
    term_taxonomy_id: int
    term_id: int
    taxonomy: str | None
    op: str  # create | update | delete
    before: dict[str, Any] | None
    after: dict[str, Any] | None
    changed_fields: tuple[str, ...]
    post_count: int | None
    first_pos: Position
    last_pos: Position
    gtid: str | None
    ts: int
    rows: int

    def term(self) -> Term:
        """The term as it is after the change (before, for a delete), as post events name terms."""
        side = self.after if self.after is not None else self.before or {}
        return Term(self.term_taxonomy_id, self.taxonomy, self.term_id, side.get("slug"), side.get("name"))


_UNSEEN: Any = object()


@dataclass(slots=True)
class TermFold:
    """The rows of one term (one ``wp_terms`` row, its ``wp_term_taxonomy`` rows) in one window:
    the first before image and the last after image of each (None: inserted / deleted)."""

    term_id: int
    term_before: Row | None = _UNSEEN
    term_after: Row | None = None
    taxonomy: dict[int, list[Row | None]] = field(default_factory=dict)  # ttid → [before, after]

    def fold(self, change: RowChange) -> None:
        if change.table.kind is TableKind.TERMS:
            if self.term_before is _UNSEEN:
                self.term_before = change.before
            self.term_after = change.after
            return
        ttid = int(change.row["term_taxonomy_id"])
        entry = self.taxonomy.get(ttid)
        if entry is None:
            self.taxonomy[ttid] = [change.before, change.after]
        else:
            entry[1] = change.after

    def close(self, blog: int, catalog: TermCatalog, first_pos: Position, last_pos: Position,
              gtid: str | None, ts: int, rows: int) -> list[TermChange]:
        """One TermChange per term_taxonomy row whose shown fields changed (a rename of a shared
        term changes each row that uses it); nothing for a count-only or cancelled-out window."""
        seen = self.term_before is not _UNSEEN
        ttids = set(self.taxonomy) | (catalog.taxonomy_ids(blog, self.term_id) if seen else set())
        out = []
        for ttid in sorted(ttids):
            current = catalog.taxonomy_row(blog, ttid)
            tt_before, tt_after = self.taxonomy.get(ttid, (current, current))
            if tt_before is None and tt_after is None:
                continue  # born and gone within one window
            name = catalog.term_row(blog, self.term_id)
            term_before = self.term_before if seen else name
            term_after = self.term_after if seen else name
            if tt_before is not None and int(tt_before["term_id"]) != self.term_id:
                term_before = catalog.term_row(blog, int(tt_before["term_id"]))  # split off a shared term
            changed: tuple[str, ...]
            before = None if tt_before is None else _shown(term_before, tt_before)
            after = None if tt_after is None else _shown(term_after, tt_after)
            if before is None:
                op, changed = "create", TERM_FIELDS
            elif after is None:
                op, changed = "delete", ()
            else:
                op, changed = "update", tuple(f for f in TERM_FIELDS if before[f] != after[f])
                if not changed:
                    continue
            reference = tt_after if tt_after is not None else tt_before
            assert reference is not None
            out.append(TermChange(
                blog_id=blog, term_taxonomy_id=ttid, term_id=self.term_id, taxonomy=reference.get("taxonomy"),
                op=op, before=before, after=after, changed_fields=changed, post_count=_int(reference.get("count")),
                first_pos=first_pos, last_pos=last_pos, gtid=gtid, ts=ts, rows=rows,
            ))
        return out


def _shown(term: Row | None, taxonomy: Row) -> dict[str, Any]:
    """TERM_FIELDS of a term_taxonomy row and its term row (None: the term row is gone)."""
    term = term or {}
    return {"name": term.get("name"), "slug": term.get("slug"), "parent": _int(taxonomy.get("parent")),
            "description": taxonomy.get("description")}
