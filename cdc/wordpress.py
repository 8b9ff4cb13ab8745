"""What wpcdc knows about WordPress, in one place.

Table naming (any prefix, multisite blogs), which rows belong to which post, which meta keys are
WordPress's own bookkeeping, which post types are internal, and how a pair of post statuses reads
to an editor. Everything else in the pipeline asks this module instead of hard-coding a name.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Iterable
from dataclasses import dataclass, field


class TableKind(enum.Enum):
    """The WordPress tables wpcdc reads."""

    POSTS = "posts"
    POSTMETA = "postmeta"
    TERM_RELATIONSHIPS = "term_relationships"
    TERMS = "terms"
    TERM_TAXONOMY = "term_taxonomy"


# The column of each table that names the post a row belongs to: what keys every row to its post.
POST_COLUMN: dict[TableKind, str] = {
    TableKind.POSTS: "ID",
    TableKind.POSTMETA: "post_id",
    TableKind.TERM_RELATIONSHIPS: "object_id",
}


@dataclass(frozen=True, slots=True)
class WpTable:
    """A table name decoded: which blog of the network and which kind of table."""

    blog_id: int
    kind: TableKind


class TableNames:
    """Recognises ``{prefix}posts`` (blog 1) and ``{prefix}{N}_posts`` (blog N of a multisite).

    It is also handed to mysql-replication as ``only_tables``: the library only asks
    ``name in only_tables``, so a matcher catches blogs created after the connector started,
    which a fixed list could not.
    """

    def __init__(self, prefix: str = "wp_", blog_ids: Iterable[int] | None = None) -> None:
        if not re.fullmatch(r"[A-Za-z0-9_]+", prefix):
            raise ValueError(f"table prefix must be letters, digits and '_', got {prefix!r}")
        self.prefix = prefix
        self.blog_ids = frozenset(blog_ids) if blog_ids else None
        kinds = "|".join(k.value for k in TableKind)
        self._pattern = re.compile(rf"{re.escape(prefix)}(?:([1-9][0-9]*)_)?({kinds})")
        self._cache: dict[str, WpTable | None] = {}

    def parse(self, table: str) -> WpTable | None:
        """The blog and kind of a table, or None when wpcdc does not read it."""
        try:
            return self._cache[table]
        except KeyError:
            pass
        m = self._pattern.fullmatch(table)
        result = None
        if m:
            blog_id = int(m.group(1) or 1)
            if self.blog_ids is None or blog_id in self.blog_ids:
                result = WpTable(blog_id, TableKind(m.group(2)))
        if len(self._cache) < 10_000:
            self._cache[table] = result
        return result

    def __contains__(self, table: object) -> bool:
        return isinstance(table, str) and self.parse(table) is not None

    def name(self, blog_id: int, kind: TableKind) -> str:
        return f"{self.prefix}{kind.value}" if blog_id == 1 else f"{self.prefix}{blog_id}_{kind.value}"


# Meta keys that are WordPress's bookkeeping: they change on every save or heartbeat and say
# nothing a consumer needs. Patterns ending in '*' are prefixes.
DEFAULT_IGNORED_META = (
    "_edit_lock",
    "_edit_last",
    "_pingme",
    "_encloseme",
    "_trackbackme",
    "_wp_trash_meta_*",
    "_wp_desired_post_slug",
    "_wp_old_slug",
    "_wp_old_date",
    "_oembed_*",
    "_wp_attachment_backup_sizes",
    "_wp_suggested_privacy_policy_content",
)

# Internal post types that are not content: caches, customizer drafts, privacy requests, and
# WooCommerce's placeholder rows for HPOS orders. Revisions are handled apart (see Capture).
DEFAULT_EXCLUDED_POST_TYPES = (
    "revision",
    "oembed_cache",
    "customize_changeset",
    "user_request",
    "shop_order_placehold",
)

AUTO_DRAFT = "auto-draft"
TRASH = "trash"
PUBLISH = "publish"
FUTURE = "future"


class KeyPattern:
    """Exact keys and ``prefix*`` patterns, matched without regexes on the hot path."""

    def __init__(self, patterns: Iterable[str]) -> None:
        self.exact = frozenset(p for p in patterns if not p.endswith("*"))
        self.prefixes = tuple(p[:-1] for p in patterns if p.endswith("*"))

    def __contains__(self, key: object) -> bool:
        if not isinstance(key, str):
            return False
        return key in self.exact or (bool(self.prefixes) and key.startswith(self.prefixes))


@dataclass(frozen=True)
class Capture:
    """What becomes an event: the capture policy, configured by the operator.

    ``revisions``: ``attach`` notes a saved revision on its parent's event, ``skip`` drops
    revisions, ``events`` makes each revision an event of its own (post_type ``revision``).
    """

    ignored_meta: KeyPattern = field(default_factory=lambda: KeyPattern(DEFAULT_IGNORED_META))
    excluded_post_types: frozenset[str] = frozenset(DEFAULT_EXCLUDED_POST_TYPES)
    included_post_types: frozenset[str] | None = None
    excluded_statuses: frozenset[str] = frozenset()
    revisions: str = "attach"
    skip_auto_drafts: bool = True

    def wants_type(self, post_type: str | None) -> bool:
        if post_type is None:
            return True
        if post_type == "revision":
            return self.revisions == "events"
        if self.included_post_types is not None:
            return post_type in self.included_post_types
        return post_type not in self.excluded_post_types

    def wants_status(self, status: str | None) -> bool:
        return status is None or status not in self.excluded_statuses


def editor_action(op: str, before_status: str | None, after_status: str | None) -> str:
    """Name a change the way an editor would: published, trashed, scheduled, …"""
    if op == "delete":
        return "deleted"
    if after_status == TRASH and before_status != TRASH:
        return "trashed"
    if before_status == TRASH and after_status != TRASH:
        return "untrashed"
    if after_status == PUBLISH and (op == "create" or before_status != PUBLISH):
        return "published"
    if after_status == FUTURE and before_status != FUTURE:
        return "scheduled"
    if before_status == PUBLISH and after_status != PUBLISH:
        return "unpublished"
    if op == "create":
        return "created"
    return "updated"


def is_autosave(revision_row: dict[str, object]) -> bool:
    """WordPress names autosave revisions ``{parent}-autosave-v1``."""
    name = revision_row.get("post_name")
    return isinstance(name, str) and "-autosave-" in name
