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


class SettingsKind(enum.Enum):
    """Tables a post's URL depends on (cdc/permalinks.py) but whose rows wpcdc never decodes: a
    write to one is noticed by its table name only, and the few values needed are read again."""

    OPTIONS = "options"  # {prefix}options, {prefix}N_options: permalink_structure, home, …
    USERS = "users"  # {prefix}users, one per network: user_nicename for %author%


@dataclass(frozen=True, slots=True)
class WpTable:
    """A table name decoded: which blog of the network and which kind of table."""

    blog_id: int
    kind: TableKind


class TableNames:
    """Recognises ``{prefix}posts`` (blog 1) and ``{prefix}{N}_posts`` (blog N of a multisite).

    It is also what mysql-replication's ``only_tables`` asks (through
    cdc.source.binlog.TableFilter): the library only asks ``name in only_tables``, so a matcher
    catches blogs created after the connector started, which a fixed list could not. The options
    and users tables, which links depend on, are recognised apart (``settings``).
    """

    def __init__(self, prefix: str = "wp_", blog_ids: Iterable[int] | None = None) -> None:
        if not re.fullmatch(r"[A-Za-z0-9_]+", prefix):
            raise ValueError(f"table prefix must be letters, digits and '_', got {prefix!r}")
        self.prefix = prefix
        self.blog_ids = frozenset(blog_ids) if blog_ids else None
        kinds = "|".join(k.value for k in TableKind)
        self._pattern = re.compile(rf"{re.escape(prefix)}(?:([1-9][0-9]*)_)?({kinds})")
        self._cache: dict[str, WpTable | None] = {}
        self._settings = re.compile(rf"{re.escape(prefix)}(?:(?:([1-9][0-9]*)_)?(options)|(users))")

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

    def settings(self, table: str) -> tuple[SettingsKind, int] | None:
        """(OPTIONS, blog id) for a captured blog's options table, (USERS, 0) for the network's
        users table, None otherwise. Called for table maps only (not per row): no cache."""
        m = self._settings.fullmatch(table)
        if m is None:
            return None
        if m.group(3):
            return SettingsKind.USERS, 0
        blog_id = int(m.group(1) or 1)
        if self.blog_ids is not None and blog_id not in self.blog_ids:
            return None
        return SettingsKind.OPTIONS, blog_id

    def settings_name(self, kind: SettingsKind, blog_id: int = 1) -> str:
        """The options table of a blog, or the users table (shared by every blog of a network)."""
        if kind is SettingsKind.USERS or blog_id == 1:
            return f"{self.prefix}{kind.value}"
        return f"{self.prefix}{blog_id}_{kind.value}"


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

# The post types WordPress core registers itself (create_initial_post_types, 6.1). get_permalink()
# links those other than page and attachment like posts; every other type is a plugin's or a
# theme's, registered in PHP, whose rewrite slug wpcdc cannot see (--post-type-base).
BUILTIN_POST_TYPES = frozenset({
    "post", "page", "attachment", "revision", "nav_menu_item", "custom_css", "customize_changeset",
    "oembed_cache", "user_request", "wp_block", "wp_template", "wp_template_part", "wp_global_styles",
    "wp_navigation",
})

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
