"""The ``link`` of post events: each event's URL before and after the change, resolved per flush.

cdc/permalinks.py knows WordPress's rules; this module feeds them what they read beside the row:

* each blog's settings, read from its options table the first time a flush has an event of the
  blog, and read again before the next flush's events once the binlog showed a write to that
  table (:class:`~cdc.model.SettingsWritten`, noticed by table name only: options rows are
  never decoded, so the options table stays off the hot path, and a burst of option writes costs
  one small read per flush at most);
* users' nicenames (``%author%``), kept until the users table is written;
* per flush, the facts its events need: other posts' link columns (a page's parents, an
  attachment's parent) from the row cache or else the database, and posts' categories from the
  database, in batched reads, one round per level of page hierarchy still unknown.

A link is made as the database stands when the flush runs, apart from the post's own row: the
event's row for ``after`` and its row before the change for ``before``, whose categories are the
current ones without the categories the change added and with those it removed (a post deleted
meanwhile counts with its row before the deletion). The link.after of each post's last event is
remembered: the next event's link.before is that URL, the one consumers hold. It also finds the
descendants of a changed post (:meth:`Linker.descendants`), whose ``moved`` events the session
writes (cdc/pipeline.py, Session._moved).
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from typing import Any

from cdc.model import PostKey, Row, SettingsWritten
from cdc.permalinks import BlogSettings, Link, Permalinks, PostTypeBase
from cdc.ports import PostStore
from cdc.terms import TermCatalog
from cdc.wordpress import BUILTIN_POST_TYPES, SettingsKind, TableNames

log = logging.getLogger(__name__)

MAX_ROUNDS = 32  # batched reads for one flush's links: a page hierarchy deeper than this reads as cut
MAX_NICENAMES = 100_000  # users remembered (~100 bytes each)
MAX_REMEMBERED = 50_000  # posts whose last link is remembered (~250 bytes each: ~12 MB)
CATEGORY = "category"

Pair = tuple[Link | None, Link | None]
Blocking = Callable[..., Awaitable[Any]]  # how blocking reads run (Ports.blocking)


class FlushFacts:
    """:class:`cdc.permalinks.Facts` for one flush: what is known, and what was asked for in vain.

    An answer not held is returned as "none" and noted in ``want_*``; a link computed while
    ``misses`` grew is discarded and computed again once the wanted facts are read.
    """

    def __init__(self, catalog: TermCatalog, cached_row: Callable[[PostKey], Row | None],
                 nicenames: dict[int, str | None], gone: Callable[[PostKey], Row | None] | None = None) -> None:
        self.catalog = catalog
        self.cached_row = cached_row
        self.nicenames = nicenames
        self.gone = gone or (lambda key: None)
        self.posts: dict[PostKey, Row | None] = {}
        self.cats: dict[PostKey, tuple[int, ...]] = {}
        self.want_posts: set[PostKey] = set()
        self.want_cats: set[PostKey] = set()
        self.want_users: set[int] = set()
        self.misses = 0
        self.final = False  # the last round: what is still unknown counts as absent

    def post(self, blog: int, post_id: int, fresh: bool = False) -> Row | None:
        """The row cache's row (the newest the stream read), else the database's; ``fresh``: the
        database's (a backfill document is newer than what the stream read, maybe)."""
        key = (blog, post_id)
        if not fresh:
            row = self.cached_row(key)
            if row is not None:
                return row
        try:
            return self.posts[key]
        except KeyError:
            self._miss(self.want_posts, key)
            return None

    def post_before(self, blog: int, post_id: int) -> Row | None:
        """For a link before a change: a post that is gone now (deleted in this flush, or its delete
        still pending) is there with its row before its deletion."""
        row = self.post(blog, post_id)
        if row is None and (blog, post_id) in self.posts:
            return self.gone((blog, post_id))
        return row

    def categories(self, blog: int, post_id: int) -> tuple[int, ...]:
        key = (blog, post_id)
        try:
            return self.cats[key]
        except KeyError:
            self._miss(self.want_cats, key)
            return ()

    def category(self, blog: int, term_id: int) -> tuple[str, int] | None:
        return self.catalog.category(blog, term_id)

    def nicename(self, user_id: int) -> str | None:
        try:
            return self.nicenames[user_id]
        except KeyError:
            self._miss(self.want_users, user_id)
            return None

    def _miss(self, wanted: set[Any], key: Any) -> None:
        if not self.final:
            wanted.add(key)
            self.misses += 1

    @property
    def wanted(self) -> bool:
        return bool(self.want_posts or self.want_cats or self.want_users)

    def read(self, store: PostStore, tables: TableNames) -> None:
        """Read what was wanted, in one query per kind and blog (blocking: run it in a thread)."""
        by_blog: dict[int, list[int]] = {}
        for blog, pid in self.want_posts:
            by_blog.setdefault(blog, []).append(pid)
        for blog, ids in by_blog.items():
            found = store.post_stubs(tables, blog, sorted(ids))
            for pid in ids:
                self.posts[(blog, pid)] = found.get(pid)
        by_blog = {}
        for blog, pid in self.want_cats:
            by_blog.setdefault(blog, []).append(pid)
        for blog, ids in by_blog.items():
            cats = store.post_categories(tables, blog, sorted(ids))
            for pid in ids:
                self.cats[(blog, pid)] = tuple(cats.get(pid, ()))
        if self.want_users:
            if len(self.nicenames) > MAX_NICENAMES:
                self.nicenames.clear()
            names = store.user_nicenames(tables, sorted(self.want_users))
            for uid in self.want_users:
                self.nicenames[uid] = names.get(uid)
        self.want_posts.clear()
        self.want_cats.clear()
        self.want_users.clear()


class _Side:
    """The facts for one row of an event: the post's own categories as they were at that row.

    ``before``: the current ones without those the change added and with those it removed. A
    backfill document gives them ``exact``: the terms it read with the row (and its other posts come
    from the database, not from the stream's cache, which may be behind it). For the link of a
    descendant before its ancestor's change, ``key`` is the ancestor and ``row`` its row before.
    """

    def __init__(self, facts: FlushFacts, key: PostKey, added: frozenset[int] = frozenset(),
                 removed: frozenset[int] = frozenset(), exact: tuple[int, ...] | None = None,
                 row: Row | None = None, before: bool = False) -> None:
        self.facts, self.key, self.added, self.removed, self.exact = facts, key, added, removed, exact
        self.row = row  # the post's row at that side (a descendant's link reads its ancestor's)
        self.before = before

    def post(self, blog: int, post_id: int) -> Row | None:
        if self.row is not None and (blog, post_id) == self.key:
            return self.row
        if self.before:
            return self.facts.post_before(blog, post_id)
        # A backfill document's parents from the database: the stream may not have read up to it.
        return self.facts.post(blog, post_id, fresh=self.exact is not None)

    def categories(self, blog: int, post_id: int) -> tuple[int, ...]:
        if (blog, post_id) != self.key:
            return self.facts.categories(blog, post_id)
        if self.exact is not None:
            return self.exact
        cats = self.facts.categories(blog, post_id)
        return tuple(sorted((set(cats) - self.added) | self.removed))

    def category(self, blog: int, term_id: int) -> tuple[str, int] | None:
        return self.facts.category(blog, term_id)

    def nicename(self, user_id: int) -> str | None:
        return self.facts.nicename(user_id)


class LinkRequest:
    """One event's rows and category changes: what its link is made of.

    ``side`` is the post whose row and categories differ before the change: the post itself, or for
    a descendant whose URL moved with an ancestor's (:meth:`moved`), that ancestor.
    """

    __slots__ = ("blog", "post_id", "before", "after", "added", "removed", "snapshot_cats", "side", "side_row",
                 "make_before")

    def __init__(self, blog: int, post_id: int, before: Row | None, after: Row | None,
                 terms_added: Sequence[Mapping[str, Any]] = (), terms_removed: Sequence[Mapping[str, Any]] = (),
                 snapshot: bool = False) -> None:
        self.blog, self.post_id, self.before, self.after = blog, post_id, before, after
        self.added = frozenset(int(t["term_id"]) for t in terms_added
                               if t.get("taxonomy") == CATEGORY and t.get("term_id") is not None)
        self.removed = frozenset(int(t["term_id"]) for t in terms_removed
                                 if t.get("taxonomy") == CATEGORY and t.get("term_id") is not None)
        # A backfill document lists every term of the post as it was read: exact, no lookup.
        self.snapshot_cats = tuple(sorted(self.added)) if snapshot else None
        self.side: PostKey = (blog, post_id)
        self.side_row: Row | None = None
        self.make_before = before is not None  # False: the link before is known already (Linker.last)

    @classmethod
    def moved(cls, row: Row, blog: int, ancestor: LinkRequest) -> LinkRequest:
        """A descendant of ``ancestor``'s post, unchanged itself: its link before is made with the
        ancestor as it was before its change."""
        req = cls(blog, int(row["ID"]), row, row)
        req.added, req.removed = ancestor.added, ancestor.removed
        req.side, req.side_row = (ancestor.blog, ancestor.post_id), ancestor.before
        return req


class Linker:
    """Settings per blog, nicenames, and the rounds that resolve a flush's links."""

    def __init__(self, tables: TableNames, catalog: TermCatalog, cached_row: Callable[[PostKey], Row | None],
                 bases: Mapping[str, PostTypeBase] | None = None) -> None:
        self.tables = tables
        self.catalog = catalog
        self.cached_row = cached_row
        self.bases = dict(bases or {})
        self.settings: dict[int, BlogSettings | None] = {}
        self.stale: set[int] = set()
        self.nicenames: dict[int, str | None] = {}
        self._warned: set[object] = set()
        # The link.after each post's last event carried, newest last: what consumers hold for it, so
        # the next event's link.before (a moved one's included) is that URL even when it moved since
        # without an event (a settings change, an ancestor deleted). Per process: a new session makes
        # link.before from the row before the change again, until it wrote the post's event.
        self._last: OrderedDict[PostKey, Link] = OrderedDict()

    # ------------------------------------------------------------------ settings

    def on_written(self, written: SettingsWritten) -> None:
        """The binlog showed writes to these options tables (or the users table): read them again."""
        self.stale |= written.blogs & self.settings.keys()
        if written.users:
            self.nicenames.clear()

    def to_read(self, blogs: Iterable[int]) -> list[int]:
        """Blogs whose settings must be read before links of theirs are made."""
        return sorted(b for b in set(blogs) if b not in self.settings or b in self.stale)

    def read_settings(self, store: PostStore, blogs: list[int]) -> None:
        """(blocking) Read the options of ``blogs``."""
        for blog in blogs:
            self.stale.discard(blog)
            options = store.options(self.tables, blog, BlogSettings.OPTION_NAMES)
            settings = BlogSettings.from_options(options)
            if settings is None:
                self._warn(("blog", blog), "blog %d has no 'home' option in %s: its events carry no link",
                           blog, self.tables.settings_name(SettingsKind.OPTIONS, blog))
            self.settings[blog] = settings

    # ------------------------------------------------------------------ links

    def last(self, key: PostKey) -> Link | None:
        """The link.after of the post's last event this process wrote, if it still remembers it."""
        return self._last.get(key)

    def written(self, key: PostKey, after: Link | None) -> None:
        """The post's event carries ``after`` (None: the post is gone)."""
        if after is None:
            self._last.pop(key, None)
            return
        self._last[key] = after
        self._last.move_to_end(key)
        if len(self._last) > MAX_REMEMBERED:
            self._last.popitem(last=False)

    def facts(self, known: Mapping[PostKey, Row] | None = None,
              gone: Callable[[PostKey], Row | None] | None = None) -> FlushFacts:
        facts = FlushFacts(self.catalog, self.cached_row, self.nicenames, gone)
        facts.posts.update(known or {})
        return facts

    async def resolve(self, requests: Sequence[LinkRequest], store: PostStore, blocking: Blocking,
                      known: Mapping[PostKey, Row] | None = None,
                      gone: Callable[[PostKey], Row | None] | None = None) -> list[Pair]:
        """The links of ``requests``: attempts, and between them a batched read (blocking) of what
        they missed, until none misses or MAX_ROUNDS reads were made (then the rest counts as absent).
        ``gone``: the row before its deletion of a post deleted in this flush or pending deletion."""
        blogs = self.to_read(r.blog for r in requests)
        if blogs:
            await blocking(self.read_settings, store, blogs)
        facts = self.facts(known, gone)
        done: list[Pair | None] = [None] * len(requests)
        for _ in range(MAX_ROUNDS):
            if self.attempt(requests, facts, done):
                break
            await blocking(facts.read, store, self.tables)
        else:
            facts.final = True  # a hierarchy deeper than MAX_ROUNDS: the rest of it counts as absent
            self.attempt(requests, facts, done)
        return [pair if pair is not None else (None, None) for pair in done]

    async def descendants(self, ancestors: Sequence[LinkRequest], store: PostStore, blocking: Blocking,
                          limit: int) -> tuple[list[tuple[int, Row]], set[int]]:
        """The posts below ``ancestors`` (children, their children, …; revisions and auto-drafts
        left out), breadth first, at most ``limit``: [(index of its ancestor, row)], and the
        indexes of the ancestors whose descendants the limit cut."""
        owner: dict[PostKey, int] = {}
        for i, a in enumerate(ancestors):
            # A post changed twice in one flush: its descendants' URLs moved from before its first change.
            owner.setdefault((a.blog, a.post_id), i)
        frontier: dict[int, list[int]] = {}
        for blog, pid in owner:
            frontier.setdefault(blog, []).append(pid)
        found: list[tuple[int, Row]] = []
        cut: set[int] = set()
        for _ in range(MAX_ROUNDS):
            if not frontier:
                break
            below: dict[int, list[int]] = {}
            for blog, parents in sorted(frontier.items()):
                room = limit - len(found)
                rows = await blocking(store.post_children, self.tables, blog, sorted(parents), room + 1)
                for row in rows:
                    key, parent = (blog, int(row["ID"])), (blog, int(row.get("post_parent") or 0))
                    if key in owner or parent not in owner:
                        continue  # seen already (a loop of parents), or not ours
                    if len(found) >= limit:
                        cut.add(owner[parent])
                        continue
                    owner[key] = owner[parent]
                    found.append((owner[key], row))
                    below.setdefault(blog, []).append(key[1])
            frontier = below
        return found, cut

    def attempt(self, requests: Sequence[LinkRequest], facts: FlushFacts,
                done: list[Pair | None]) -> bool:
        """Make the links of ``requests`` not ``done`` yet; True when none is left to make."""
        left = False
        for i, req in enumerate(requests):
            if done[i] is not None:
                continue
            misses = facts.misses
            pair = self._pair(req, facts)
            if facts.misses == misses or facts.final:
                done[i] = pair
            else:
                left = True
        return not left

    def _pair(self, req: LinkRequest, facts: FlushFacts) -> Pair:
        settings = self.settings.get(req.blog)
        if settings is None:
            return None, None
        before = after = None
        if req.after is not None:
            after = self._link(req.blog, settings, req.after,
                               _Side(facts, (req.blog, req.post_id), exact=req.snapshot_cats))
        if req.before is not None and req.make_before:
            before = self._link(req.blog, settings, req.before,
                                _Side(facts, req.side, req.added, req.removed, row=req.side_row, before=True))
        return before, after

    def _link(self, blog: int, settings: BlogSettings, row: Row, facts: Any) -> Link:
        post_type = row.get("post_type")
        if post_type not in BUILTIN_POST_TYPES and post_type not in self.bases:
            self._warn(("type", post_type),
                       "post type %r has no --post-type-base: its links are ?post_type=%s&p=ID, which WordPress "
                       "resolves; give --post-type-base %s=BASE (the path before the slug in its URLs) for "
                       "its pretty URLs", post_type, post_type, post_type)
        return Permalinks(blog, settings, facts, self.bases).link(row)

    def _warn(self, key: object, message: str, *args: Any) -> None:
        if key not in self._warned:
            self._warned.add(key)
            log.warning(message, *args)

