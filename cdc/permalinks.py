"""A post's URL exactly as WordPress's ``get_permalink()`` makes it, from data wpcdc can read.

Consumers that cache pages (Next.js revalidation, CDN purges, search indexes) need the URL a change
affects, before and after it. WordPress computes it in PHP from the post row, a few options of the
blog, the post's categories, its author's nicename and its parents' slugs. This module is that
computation (WordPress 6.1, wp-includes/link-template.php: ``get_permalink``, ``get_page_link``,
``_get_page_link``, ``get_post_permalink``, ``get_attachment_link``; wp-includes/post.php:
``get_page_uri``, ``get_post_ancestors``, ``get_post_status``; class-wp-rewrite.php), with no I/O:
what it needs beyond the row it asks a :class:`Facts`. A Facts that does not hold an answer yet
says so to its owner (cdc/links.py), which fetches every missing answer of a flush in one batch and
computes again.

What the database cannot tell is not applied: PHP filters (``post_link``, ``page_link``,
``post_type_link``, ``post_link_category``: SEO and translation plugins use them), the rewrite slugs
of post types registered in PHP (``--post-type-base`` gives them), ``WP_HOME`` in wp-config.php.
Links are those an anonymous visitor is given: a private post has its plain ``?p=`` link.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol
from urllib.parse import urlsplit

from cdc.model import Row
from cdc.wordpress import BUILTIN_POST_TYPES, PUBLISH

INHERIT = "inherit"
# is_post_type_viewable(): builtin and public. Custom types given a base count as viewable too.
_VIEWABLE_BUILTIN = frozenset({"post", "page", "attachment"})
_NUMERIC = re.compile(r"\s*[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?\s*")  # PHP's is_numeric()
_MAX_DEPTH = 50  # attachments of attachments: PHP would recurse without end on a cycle; we stop


@dataclass(frozen=True, slots=True)
class Link:
    """A post's URL, and its path (and query) without scheme and host: what a cache is keyed by."""

    url: str
    path: str

    @classmethod
    def of(cls, url: str) -> Link:
        parts = urlsplit(url)
        if not parts.scheme or not parts.netloc:
            return cls(url, url)
        path = parts.path or "/"
        return cls(url, f"{path}?{parts.query}" if parts.query else path)

    def as_dict(self) -> dict[str, str]:
        return {"url": self.url, "path": self.path}


@dataclass(frozen=True, slots=True)
class PostTypeBase:
    """Where a post type registered in PHP lives: ``base`` is the path between the home URL and the
    slug as its URLs show it (the rewrite slug, with the front when ``with_front``). A hierarchical
    type prefixes its parents' slugs, as pages do."""

    base: str
    hierarchical: bool = False


def parse_post_type_bases(text: str | None) -> dict[str, PostTypeBase]:
    """``product=shop/product,doc=handbook:hierarchical`` → {type: PostTypeBase}; ValueError names
    the entry that is not ``TYPE=BASE[:hierarchical]``."""
    out: dict[str, PostTypeBase] = {}
    for entry in (text or "").split(","):
        entry = entry.strip()
        if not entry:
            continue
        name, sep, base = entry.partition("=")
        base, _, flag = base.partition(":")
        name, base, flag = name.strip(), base.strip().strip("/"), flag.strip()
        if not sep or not re.fullmatch(r"[a-z0-9_-]{1,20}", name) or flag not in ("", "hierarchical") or \
                any(c in base for c in "?#% "):
            raise ValueError(f"{entry!r}: expected TYPE=BASE or TYPE=BASE:hierarchical, e.g. product=shop/product")
        out[name] = PostTypeBase(base, flag == "hierarchical")
    return out


def _int(value: Any) -> int:
    try:
        return int(value or 0)
    except (TypeError, ValueError):
        return 0


def _text(value: Any) -> str:
    if isinstance(value, (bytes, bytearray)):
        return bytes(value).decode("utf-8", "replace")
    return "" if value is None else str(value)


@dataclass(frozen=True, slots=True)
class BlogSettings:
    """The options of one blog that its links depend on (``{prefix}options``/``{prefix}N_options``)."""

    home: str
    structure: str = ""  # permalink_structure: "" is plain links
    show_on_front: str = "posts"
    page_on_front: int = 0
    default_category: int = 0

    # page_for_posts, category_base and tag_base change archive links, not a post's own: get_permalink()
    # gives the posts page its ordinary page link.
    OPTION_NAMES = ("home", "permalink_structure", "show_on_front", "page_on_front", "default_category")

    @classmethod
    def from_options(cls, options: Mapping[str, Any]) -> BlogSettings | None:
        """None when ``home`` is missing: links cannot be made for that blog."""
        home = _text(options.get("home"))
        if not home:
            return None
        return cls(home=home, structure=_text(options.get("permalink_structure")),
                   show_on_front=_text(options.get("show_on_front")) or "posts",
                   page_on_front=_int(options.get("page_on_front")),
                   default_category=_int(options.get("default_category")))

    @property
    def root(self) -> str:
        """WP_Rewrite::$root: ``index.php/`` for "almost pretty" structures, else empty."""
        return "index.php/" if re.match(r"/*index\.php", self.structure) else ""

    def home_url(self, path: str = "") -> str:
        """home_url(): the home option, then ``/`` and the path (PHP skips a falsy path: "" or "0")."""
        url = self.home
        if path and path != "0":
            url += "/" + path.lstrip("/")
        return url

    def trailing(self, text: str) -> str:
        """user_trailingslashit(): the structure's own trailing slash, or none."""
        text = text.rstrip("/\\")
        return text + "/" if self.structure.endswith("/") else text


class Facts(Protocol):
    """What a link needs beyond the post's own row. An answer not loaded yet is given as "none"
    (None, (), None) and noted by the implementation, which then computes the link again."""

    def post(self, blog: int, post_id: int) -> Row | None:
        """A post's row (ID, post_type, post_status, post_name, post_parent, …); None if none."""
        ...

    def categories(self, blog: int, post_id: int) -> tuple[int, ...]:
        """The term_ids of the post's categories."""
        ...

    def category(self, blog: int, term_id: int) -> tuple[str, int] | None:
        """A category's (slug, parent term_id)."""
        ...

    def nicename(self, user_id: int) -> str | None:
        """users.user_nicename."""
        ...


class Permalinks:
    """``get_permalink()`` for the posts of one blog."""

    def __init__(self, blog: int, settings: BlogSettings, facts: Facts,
                 bases: Mapping[str, PostTypeBase] | None = None) -> None:
        self.blog = blog
        self.site = settings
        self.facts = facts
        self.bases = bases or {}

    def url(self, row: Row, depth: int = 0) -> str:
        """get_permalink($post) for the post whose row this is."""
        post_type = _text(row.get("post_type"))
        if post_type == "page":
            return self._page_link(row)
        if post_type == "attachment":
            return self._attachment_link(row, depth)
        if post_type not in BUILTIN_POST_TYPES:
            return self._custom_link(row, post_type)
        return self._post_link(row)

    def link(self, row: Row) -> Link:
        return Link.of(self.url(row))

    # ------------------------------------------------------------------------------ per type

    def _post_link(self, row: Row) -> str:
        site, pid = self.site, _int(row.get("ID"))
        structure = site.structure
        if not structure or not self._viewable(row):
            return site.home_url(f"?p={pid}")
        category = ""
        if "%category%" in structure:
            cats = sorted(self.facts.categories(self.blog, pid))  # wp_list_sort by term_id ASC
            if cats:
                term = self.facts.category(self.blog, cats[0])
                if term is not None:
                    category = term[0]
                    if term[1]:
                        category = self._category_parents(term[1]) + category
            if not category:  # the default category, without having to assign it explicitly
                default = self.facts.category(self.blog, site.default_category)
                if default is not None:
                    category = default[0]
        author = ""
        if "%author%" in structure:
            author = self.facts.nicename(_int(row.get("post_author"))) or ""
        name = _text(row.get("post_name"))
        year, month, day, hour, minute, second = _date_parts(row.get("post_date"))
        path = structure
        # str_replace() with arrays replaces one tag after the other over the whole string: the same.
        for tag, value in (("%year%", year), ("%monthnum%", month), ("%day%", day), ("%hour%", hour),
                           ("%minute%", minute), ("%second%", second), ("%postname%", name),
                           ("%post_id%", str(pid)), ("%category%", category), ("%author%", author),
                           ("%pagename%", name)):
            path = path.replace(tag, value)
        return site.trailing(site.home_url(path))

    def _page_link(self, row: Row) -> str:
        site = self.site
        if site.show_on_front == "page" and site.page_on_front == _int(row.get("ID")):
            return site.home_url("/")
        return self._plain_page_link(row)

    def _plain_page_link(self, row: Row) -> str:
        """_get_page_link(): ignores the front page."""
        site = self.site
        if site.structure and self._viewable(row):
            return site.trailing(site.home_url(site.root + self.page_uri(row)))
        return site.home_url(f"?page_id={_int(row.get('ID'))}")

    def _custom_link(self, row: Row, post_type: str) -> str:
        """get_post_permalink(): a type registered in PHP. Without a base wpcdc cannot know its
        rewrite slug: ``?post_type=x&p=ID``, which WordPress resolves for every registered type."""
        site, pid = self.site, _int(row.get("ID"))
        base = self.bases.get(post_type)
        if base is None:
            return site.home_url(f"?post_type={post_type}&p={pid}")
        viewable = self._viewable(row)
        slug = self.page_uri(row) if base.hierarchical else _text(row.get("post_name"))
        if site.structure and viewable:
            return site.home_url(site.trailing(f"{base.base}/{slug}" if base.base else slug))
        if viewable:  # the type's query var, its name by default
            return site.home_url(f"?{post_type}={slug}")
        return site.home_url(f"?post_type={post_type}&p={pid}")

    def _attachment_link(self, row: Row, depth: int) -> str:
        site, pid = self.site, _int(row.get("ID"))
        parent_id = _int(row.get("post_parent"))
        parent = self.facts.post(self.blog, parent_id) if parent_id else None
        parent_valid = not parent_id or (
            parent_id != pid and parent is not None and self._type_viewable(_text(parent.get("post_type"))))
        link = ""
        if not self._viewable(row) or not parent_valid or depth >= _MAX_DEPTH:
            link = ""
        elif site.structure and parent is not None:
            if _text(parent.get("post_type")) == "page":
                parent_link = self._plain_page_link(parent)  # ignores page_on_front
            else:
                parent_link = self.url(parent, depth + 1)
            name = _text(row.get("post_name"))
            if _NUMERIC.fullmatch(name) or "%category%" in site.structure:
                name = "attachment/" + name  # <permalink>/<int>/ is a paged URL
            if "?" not in parent_link:
                link = site.trailing(parent_link.rstrip("/\\") + "/%postname%").replace("%postname%", name)
        elif site.structure:
            link = site.home_url(site.trailing(_text(row.get("post_name"))))
        return link or site.home_url(f"/?attachment_id={pid}")

    # ------------------------------------------------------------------------------ helpers

    def page_uri(self, row: Row) -> str:
        """get_page_uri(): the slugs of the ancestors that have one, then the post's."""
        uri = _text(row.get("post_name"))
        for parent_id in self._ancestors(row):
            parent = self.facts.post(self.blog, parent_id)
            if parent is not None and parent.get("post_name"):
                uri = f"{_text(parent.get('post_name'))}/{uri}"
        return uri

    def _ancestors(self, row: Row) -> list[int]:
        """get_post_ancestors(): parent first, stopping at a loop or a missing post."""
        pid, parent = _int(row.get("ID")), _int(row.get("post_parent"))
        if not parent or parent == pid:
            return []
        ancestors = [parent]
        while (ancestor := self.facts.post(self.blog, parent)) is not None:
            up = _int(ancestor.get("post_parent"))
            if not up or up == pid or up in ancestors:
                break
            parent = up
            ancestors.append(up)
        return ancestors

    def _category_parents(self, term_id: int) -> str:
        """get_category_parents($id, false, '/', true): the slugs from the root down to ``term_id``,
        each followed by ``/`` (get_ancestors() stops at a term already seen)."""
        if self.facts.category(self.blog, term_id) is None:
            return ""
        ancestors: list[int] = []
        term = self.facts.category(self.blog, term_id)
        while term is not None and term[1] and term[1] not in ancestors:
            ancestors.append(term[1])
            term = self.facts.category(self.blog, term[1])
        out = ""
        for tid in reversed([term_id, *ancestors]):
            found = self.facts.category(self.blog, tid)
            out += (found[0] if found is not None else "") + "/"
        return out

    def _viewable(self, row: Row, depth: int = 0) -> bool:
        """Not wp_force_plain_post_permalink(): the status is publicly viewable (publish)."""
        return self._status(row, depth) == PUBLISH

    def _status(self, row: Row, depth: int = 0) -> str:
        """get_post_status(): an attachment's ``inherit`` is its parent's status."""
        status = _text(row.get("post_status"))
        if _text(row.get("post_type")) != "attachment":
            return status
        if status == INHERIT:
            pid, parent_id = _int(row.get("ID")), _int(row.get("post_parent"))
            parent = self.facts.post(self.blog, parent_id) if parent_id and parent_id != pid else None
            if parent is None or depth >= _MAX_DEPTH:
                return PUBLISH  # unattached attachments are published
            parent_status = self._status(parent, depth + 1)
            # A trashed parent: WordPress takes its status before the trash (a meta row); its link
            # has a query then, so the attachment gets ?attachment_id= whatever that status was.
            return PUBLISH if parent_status == "trash" else parent_status
        return status if status in ("private", "trash", "auto-draft") else PUBLISH

    def _type_viewable(self, post_type: str) -> bool:
        return post_type in _VIEWABLE_BUILTIN or post_type in self.bases


def _date_parts(value: Any) -> tuple[str, str, str, str, str, str]:
    """post_date as get_permalink() splits its stored text ("Y-m-d H:i:s")."""
    if isinstance(value, dt.datetime):
        return (f"{value.year:04d}", f"{value.month:02d}", f"{value.day:02d}", f"{value.hour:02d}",
                f"{value.minute:02d}", f"{value.second:02d}")
    text = "0000-00-00 00:00:00" if value is None else _text(value).replace("T", " ")
    parts = re.split(r"[-: ]", text) + [""] * 6
    return parts[0], parts[1], parts[2], parts[3], parts[4], parts[5]
