"""Names for term_taxonomy ids, kept current from the binlog.

``wp_term_relationships`` only says (object_id, term_taxonomy_id); an event should say "tag
'news'". The catalog starts from the tables (loaded by the pipeline) and then follows the
``terms`` and ``term_taxonomy`` rows in the stream, which WordPress writes before the
relationship that uses a new term, so a lookup at close time finds it.
"""

from __future__ import annotations

from typing import Any

from cdc.changes import RowChange, Term
from cdc.wordpress import TableKind


class TermCatalog:
    """(blog_id, term_taxonomy_id) → Term. Deleted terms are kept: a removal still needs a name."""

    def __init__(self) -> None:
        self._terms: dict[tuple[int, int], tuple[str | None, str | None]] = {}  # (blog, term_id) → (slug, name)
        self._taxonomy: dict[tuple[int, int], tuple[int, str | None]] = {}  # (blog, ttid) → (term_id, tax)
        self._category_parent: dict[tuple[int, int], int] = {}  # (blog, term_id) → parent term_id

    def load(self, blog_id: int, rows: list[dict[str, Any]]) -> None:
        """Rows of ``term_taxonomy JOIN terms`` (term_taxonomy_id, term_id, taxonomy, slug, name, parent)."""
        for r in rows:
            self._taxonomy[(blog_id, int(r["term_taxonomy_id"]))] = (int(r["term_id"]), r["taxonomy"])
            self._terms[(blog_id, int(r["term_id"]))] = (r["slug"], r["name"])
            if r["taxonomy"] == "category":
                self._category_parent[(blog_id, int(r["term_id"]))] = int(r.get("parent") or 0)

    def apply(self, change: RowChange) -> None:
        if change.after is None:
            return
        row, blog = change.after, change.table.blog_id
        if change.table.kind is TableKind.TERMS:
            self._terms[(blog, int(row["term_id"]))] = (row.get("slug"), row.get("name"))
        elif change.table.kind is TableKind.TERM_TAXONOMY:
            self._taxonomy[(blog, int(row["term_taxonomy_id"]))] = (int(row["term_id"]), row.get("taxonomy"))
            if row.get("taxonomy") == "category":
                self._category_parent[(blog, int(row["term_id"]))] = int(row.get("parent") or 0)

    def lookup(self, blog_id: int, term_taxonomy_id: int) -> Term:
        tax = self._taxonomy.get((blog_id, term_taxonomy_id))
        if tax is None:
            return Term(term_taxonomy_id, None, None, None, None)
        term_id, taxonomy = tax
        slug, name = self._terms.get((blog_id, term_id), (None, None))
        return Term(term_taxonomy_id, taxonomy, term_id, slug, name)

    def category(self, blog_id: int, term_id: int) -> tuple[str, int] | None:
        """A category's (slug, parent term_id), or None when ``term_id`` is no category we know."""
        parent = self._category_parent.get((blog_id, term_id))
        if parent is None:
            return None
        slug = self._terms.get((blog_id, term_id), (None, None))[0]
        return (slug or "", parent)

    def __len__(self) -> int:
        return len(self._taxonomy)
