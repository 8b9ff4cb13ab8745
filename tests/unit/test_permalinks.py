"""get_permalink()'s rules, one by one (cdc/permalinks.py); tests/integration/test_links.py holds
them against WordPress itself."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest

from cdc.permalinks import BlogSettings, Link, Permalinks, PostTypeBase, parse_post_type_bases
from tests.unit.rows import post_row

HOME = "https://example.test/blog"
DATE = dt.datetime(2024, 5, 7, 8, 9, 10)


class Facts:
    """Posts, categories ({post: term ids}), category terms ({term_id: (slug, parent)}), users."""

    def __init__(self, posts: dict[int, dict[str, Any]] | None = None, cats: dict[int, tuple[int, ...]] | None = None,
                 terms: dict[int, tuple[str, int]] | None = None, users: dict[int, str] | None = None) -> None:
        self.posts, self.cats = posts or {}, cats or {}
        self.terms = terms if terms is not None else {1: ("uncategorized", 0)}
        self.users = users or {1: "admin"}

    def post(self, blog: int, post_id: int) -> dict[str, Any] | None:
        return self.posts.get(post_id)

    def categories(self, blog: int, post_id: int) -> tuple[int, ...]:
        return self.cats.get(post_id, ())

    def category(self, blog: int, term_id: int) -> tuple[str, int] | None:
        return self.terms.get(term_id)

    def nicename(self, user_id: int) -> str | None:
        return self.users.get(user_id)


def url(row: dict[str, Any], structure: str = "/%postname%/", facts: Facts | None = None,
        bases: dict[str, PostTypeBase] | None = None, **settings: Any) -> str:
    site = BlogSettings(HOME, structure, default_category=settings.pop("default_category", 1), **settings)
    return Permalinks(1, site, facts or Facts(), bases).url(row)


def post(pid: int = 5, **fields: Any) -> dict[str, Any]:
    return post_row(pid, **{"post_status": "publish", "post_name": f"hello-{pid}", "post_date": DATE, **fields})


def page(pid: int, parent: int = 0, **fields: Any) -> dict[str, Any]:
    return post(pid, post_type="page", post_parent=parent, **fields)


def attachment(pid: int = 9, parent: int = 0, **fields: Any) -> dict[str, Any]:
    fields.setdefault("post_status", "inherit")
    return post_row(pid, post_type="attachment", post_parent=parent, post_name=fields.pop("name", "photo"),
                    post_date=DATE, **fields)


# ------------------------------------------------------------------------------------ plain links


def test_plain_structure_links_by_query() -> None:
    assert url(post(), "") == f"{HOME}/?p=5"
    assert url(page(6), "") == f"{HOME}/?page_id=6"
    assert url(attachment(), "") == f"{HOME}/?attachment_id=9"


@pytest.mark.parametrize("status", ["draft", "pending", "future", "private", "trash", "auto-draft", "inherit"])
def test_what_an_anonymous_visitor_cannot_view_links_by_query(status: str) -> None:
    """wp_force_plain_post_permalink(): only publish is publicly viewable (private too, for a reader
    who may read it: links are made for anonymous visitors)."""
    assert url(post(post_status=status)) == f"{HOME}/?p=5"
    assert url(page(6, post_status=status)) == f"{HOME}/?page_id=6"


# ------------------------------------------------------------------------------------ structure tags


@pytest.mark.parametrize(("structure", "path"), [
    ("/%year%/%monthnum%/%day%/%postname%/", "/2024/05/07/hello-5/"),
    ("/%year%/%monthnum%/%postname%/", "/2024/05/hello-5/"),
    ("/%hour%/%minute%/%second%/%post_id%", "/08/09/10/5"),
    ("/%post_id%/", "/5/"),
    ("/archives/%post_id%", "/archives/5"),
    ("/%author%/%postname%/", "/admin/hello-5/"),
    ("/%postname%.html", "/hello-5.html"),
    ("/index.php/%postname%/", "/index.php/hello-5/"),
    ("/%pagename%/", "/hello-5/"),
])
def test_each_structure_tag(structure: str, path: str) -> None:
    assert url(post(), structure) == HOME + path


def test_the_date_is_the_stored_local_post_date_zero_padded() -> None:
    assert url(post(post_date=dt.datetime(999, 1, 2, 3, 4, 5)), "/%year%/%monthnum%/%day%/%hour%") == \
        f"{HOME}/0999/01/02/03"
    assert url(post(post_date=None), "/%year%/%monthnum%/%postname%/") == f"{HOME}/0000/00/hello-5/"
    assert url(post(post_date="2024-02-30T10:11:12"), "/%year%/%monthnum%/%day%/") == f"{HOME}/2024/02/30/"


def test_author_without_a_user_is_empty() -> None:
    assert url(post(post_author=77), "/%author%/%postname%/") == f"{HOME}/hello-5/"  # home_url() ltrims "/"


def test_the_lowest_category_term_id_with_its_parents() -> None:
    facts = Facts(cats={5: (12, 8)}, terms={1: ("uncategorized", 0), 8: ("news", 3), 3: ("world", 2),
                                            2: ("all", 0), 12: ("zzz", 0)})
    assert url(post(), "/%category%/%postname%/", facts) == f"{HOME}/all/world/news/hello-5/"


def test_no_category_uses_the_default_one_and_a_parent_loop_stops() -> None:
    assert url(post(), "/%category%/%postname%/", Facts(terms={4: ("misc", 0)}), default_category=4) == \
        f"{HOME}/misc/hello-5/"
    looped = Facts(cats={5: (7,)}, terms={7: ("a", 6), 6: ("b", 7)})
    # get_ancestors() stops at a term it has seen: 6's ancestors are [7, 6]; inclusive: 6, 7, 6 reversed.
    assert url(post(), "/%category%/%postname%/", looped) == f"{HOME}/b/a/b/a/hello-5/"


def test_trailing_slash_follows_the_structure() -> None:
    assert url(page(6), "/%post_id%") == f"{HOME}/hello-6"
    assert url(page(6), "/%post_id%/") == f"{HOME}/hello-6/"


# ------------------------------------------------------------------------------------ pages


def test_pages_carry_their_ancestors_slugs() -> None:
    facts = Facts(posts={2: page(2, 1), 1: page(1, 0, post_name="top"), 3: page(3, 0, post_name="")})
    assert url(page(6, 2), facts=facts) == f"{HOME}/top/hello-2/hello-6/"
    assert url(page(6, 3), facts=facts) == f"{HOME}/hello-6/", "an ancestor without a slug is left out"
    assert url(page(6, 99), facts=facts) == f"{HOME}/hello-6/", "a missing parent ends the chain"
    assert url(page(6, 6), facts=facts) == f"{HOME}/hello-6/", "its own parent"
    loop = Facts(posts={7: page(7, 8), 8: page(8, 7)})
    assert url(page(6, 7), facts=loop) == f"{HOME}/hello-8/hello-7/hello-6/"


def test_unpublished_ancestors_still_give_their_slugs() -> None:
    facts = Facts(posts={2: page(2, 0, post_status="draft")})
    assert url(page(6, 2), facts=facts) == f"{HOME}/hello-2/hello-6/"


def test_the_front_page_is_home_whatever_its_status_and_the_posts_page_is_a_page() -> None:
    front = {"show_on_front": "page", "page_on_front": 6}
    assert url(page(6), **front) == f"{HOME}/"
    assert url(page(6, post_status="draft"), "", **front) == f"{HOME}/"
    assert url(page(7), **front) == f"{HOME}/hello-7/"
    assert url(page(6), show_on_front="posts", page_on_front=6) == f"{HOME}/hello-6/"
    assert url(post(6), **front) == f"{HOME}/hello-6/", "only a page is the front page"


# ------------------------------------------------------------------------------------ attachments


def test_attachment_of_a_post_is_the_posts_link_and_its_slug() -> None:
    facts = Facts(posts={5: post()})
    assert url(attachment(parent=5), "/%year%/%postname%/", facts) == f"{HOME}/2024/hello-5/photo/"
    assert url(attachment(parent=5, name="123"), "/%postname%/", facts) == f"{HOME}/hello-5/attachment/123/"
    assert url(attachment(parent=5, name="1e3"), "/%postname%/", facts) == f"{HOME}/hello-5/attachment/1e3/"
    assert url(attachment(parent=5), "/%category%/%postname%/", facts) == \
        f"{HOME}/uncategorized/hello-5/attachment/photo/"
    assert url(attachment(parent=5), "/archives/%post_id%", facts) == f"{HOME}/archives/5/photo"


def test_attachment_of_the_front_page_uses_the_pages_own_link() -> None:
    facts = Facts(posts={6: page(6)})
    assert url(attachment(parent=6), facts=facts, show_on_front="page", page_on_front=6) == \
        f"{HOME}/hello-6/photo/"


@pytest.mark.parametrize(("parent", "posts"), [
    (5, {5: post(post_status="draft")}),  # inherits draft: not viewable
    (5, {5: post(post_status="trash")}),  # its link has a query
    (5, {}),  # parent gone
    (9, {}),  # its own parent
    (5, {5: post(post_type="nav_menu_item")}),  # a type that is not viewable
    (5, {5: post(post_type="wpcdc_unknown")}),  # a type wpcdc does not know
])
def test_attachment_links_by_id_when_its_parent_does_not_give_a_link(parent: int, posts: dict[int, Any]) -> None:
    assert url(attachment(parent=parent), facts=Facts(posts=posts)) == f"{HOME}/?attachment_id=9"


def test_unattached_attachment() -> None:
    assert url(attachment()) == f"{HOME}/photo/"
    assert url(attachment(), "/%post_id%") == f"{HOME}/photo"
    assert url(attachment(post_status="private")) == f"{HOME}/?attachment_id=9"


# ------------------------------------------------------------------------------------ post types


def test_builtin_types_other_than_page_and_attachment_link_like_posts() -> None:
    assert url(post(post_type="wp_block")) == f"{HOME}/hello-5/"
    assert url(post(post_type="revision", post_status="inherit")) == f"{HOME}/?p=5"


def test_custom_types_with_a_base() -> None:
    bases = parse_post_type_bases("book=shop/books, doc=docs:hierarchical")
    facts = Facts(posts={4: post(4, post_type="doc", post_name="manual")})
    assert url(post(post_type="book"), bases=bases) == f"{HOME}/shop/books/hello-5/"
    assert url(post(post_type="book"), "/%post_id%", bases=bases) == f"{HOME}/shop/books/hello-5"
    assert url(post(post_type="doc", post_parent=4), facts=facts, bases=bases) == f"{HOME}/docs/manual/hello-5/"
    assert url(post(post_type="book"), "", bases=bases) == f"{HOME}/?book=hello-5"
    assert url(post(post_type="doc", post_parent=4), "", facts=facts, bases=bases) == f"{HOME}/?doc=manual/hello-5"
    assert url(post(post_type="book", post_status="draft"), bases=bases) == f"{HOME}/?post_type=book&p=5"


def test_custom_types_without_a_base_link_by_type_and_id() -> None:
    assert url(post(post_type="product")) == f"{HOME}/?post_type=product&p=5"


def test_post_type_bases_are_checked() -> None:
    assert parse_post_type_bases("") == {}
    assert parse_post_type_bases("a=/x/y/,b=") == {"a": PostTypeBase("x/y"), "b": PostTypeBase("")}
    for bad in ("product", "Product=x", "a=b:flat", "a=x?y"):
        with pytest.raises(ValueError, match="expected TYPE=BASE"):
            parse_post_type_bases(bad)


# ------------------------------------------------------------------------------------ settings, link


def test_settings_from_options() -> None:
    assert BlogSettings.from_options({"permalink_structure": "/%postname%/"}) is None
    s = BlogSettings.from_options({"home": b"http://h", "permalink_structure": None, "page_on_front": "12",
                                   "default_category": "x"})
    assert s == BlogSettings("http://h", "", "posts", 12, 0)


def test_link_path_is_what_follows_the_host() -> None:
    assert Link.of("http://h:8080/blog/a/?p=1") == Link("http://h:8080/blog/a/?p=1", "/blog/a/?p=1")
    assert Link.of("http://h") == Link("http://h", "/")
    assert Link.of("not a url").path == "not a url"
    assert Link.of("http://h/x").as_dict() == {"url": "http://h/x", "path": "/x"}


def test_a_bad_post_type_base_names_the_option() -> None:
    from cdc.config import build_post_type_bases
    from cdc.errors import ConfigError

    assert build_post_type_bases("b=x,a=y:hierarchical") == (("a", PostTypeBase("y", True)), ("b", PostTypeBase("x")))
    with pytest.raises(ConfigError, match=r"--post-type-base 'shop': expected TYPE=BASE"):
        build_post_type_bases("a=b,shop")
