"""The headless WordPress the stack serves over HTTP (stack.py's ``wordpress-http``).

examples/nextjs renders from its REST API and revalidates the paths wpcdc's events name, so the
site must answer at its own home: pretty permalinks, /wp-json/ and ?rest_route=, and links that
name the address it is served at.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from typing import Any

import pytest

from tests.integration.harness import unique

pytestmark = pytest.mark.integration


def _get(url: str) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=30) as res:
            return res.status, res.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def test_rest_api_and_permalinks_answer_at_the_served_address(stack: Any) -> None:
    import stack as local_stack
    from wordpress import WordPress

    home = local_stack.wordpress_http_url(stack)
    wp = WordPress.headless()
    assert wp.info()["home"] == home
    title = unique("served")
    post = wp.create_post(title, "<p>over http</p>", status="publish")
    link = wp.permalinks([post])[post]
    assert link and link.startswith(home + "/") and "?" not in link, link

    status, body = _get(f"{home}/wp-json/wp/v2/posts?include={post}")
    assert status == 200
    items = json.loads(body)
    assert [i["link"] for i in items] == [link]
    status, body = _get(f"{home}/?rest_route=/wp/v2/posts/{post}")
    assert status == 200 and json.loads(body)["title"]["rendered"] == title

    # WordPress resolves the pretty permalink (the page is empty: Debian's package ships no theme,
    # and a headless site needs none); a path that names no post is its 404.
    assert _get(link)[0] == 200
    assert _get(link.rstrip("/") + "-nothing-here/")[0] == 404
    wp.delete(post)
    assert _get(f"{home}/wp-json/wp/v2/posts/{post}")[0] == 404
    assert _get(f"{home}/wp-admin/")[0] == 403  # only the front end is served
