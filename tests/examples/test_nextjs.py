"""examples/nextjs end to end: WordPress edits -> wpcdc -> Kafka -> the consumer -> `next start`'s HTML.

Real everything: the headless WordPress served over HTTP by the stack (its REST API is what the app
renders), a `wpcdc stream` for its database, the app built once per session and served by
`next start`, the KafkaJS consumer. Each step edits WordPress through its PHP API, then polls the
HTML the app serves until it shows the change; every page involved was served from Next.js's cache
just before (so only a revalidation can make it fresh). The time from the driver call's return
(WordPress has committed) to the first fresh HTML is measured, and p50/p95 are printed and written
to ``nextjs-latency.json`` in the test's tmp dir. One screenshot by Debian's headless Chromium.
"""

from __future__ import annotations

import importlib.util
import json
import re
import shutil
import statistics
import struct
import subprocess
import sys
import time
import zlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.integration.harness import unique

REPO = Path(__file__).resolve().parents[2]


def _load_recipe() -> Any:
    """examples/nextjs/demo.py under a name of its own (other recipes have a demo.py too)."""
    spec = importlib.util.spec_from_file_location("nextjs_demo", REPO / "examples" / "nextjs" / "demo.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


recipe = _load_recipe()

pytestmark = [pytest.mark.integration, pytest.mark.timeout(900)]

SECRET = "test-revalidate-secret"


class Site:
    """The running recipe: WordPress's driver, the connector, the app and the consumer, their logs."""

    def __init__(self, wp: Any, wordpress_url: str, logs: Path) -> None:
        self.wp = wp
        self.wordpress_url = wordpress_url
        self.logs = logs
        self.name = unique("nx")
        self.port = recipe.free_port()
        self.next_url = f"http://127.0.0.1:{self.port}"
        self.connector: Any = None
        self.app: Any = None
        self.consumer: Any = None
        self.latencies: list[tuple[str, float]] = []

    def start(self) -> None:
        self.connector = recipe.start_connector(self.name, self.logs / "connector.log")
        self.start_app()
        self.start_consumer()
        deadline = time.monotonic() + 90
        # Ready once the connector has fixed its start position and the consumer subscribed.
        while "streaming from" not in self.log("connector") or '"consuming"' not in self.log("consumer"):
            assert time.monotonic() < deadline, \
                f"consumer not consuming:\n{self.log('consumer')}\n{self.log('connector')[-2000:]}"
            assert self.consumer.poll() is None, f"consumer exited:\n{self.log('consumer')}"
            time.sleep(0.2)

    def start_app(self) -> None:
        self.app = recipe.start_app(self.port, self.wordpress_url, SECRET, self.logs / "next.log")

    def start_consumer(self) -> None:
        self.consumer = recipe.start_consumer(self.name, self.next_url, SECRET, f"{self.name}-group",
                                              self.logs / "consumer.log")

    def stop(self) -> None:
        for proc in (self.consumer, self.app, self.connector):
            recipe.stop(proc)

    def get(self, path: str) -> tuple[int, str]:
        return recipe.fetch(self.next_url + path)

    def path_of(self, post_id: int) -> str:
        link = self.wp.permalinks([post_id])[post_id]
        assert link, f"post {post_id} has no permalink"
        return "/" + link.split("/", 3)[3]

    def warm(self, *paths: str) -> None:
        """Serve each path twice: the second answer must come from the cache, unchanged."""
        for path in paths:
            first, second = self.get(path), self.get(path)
            assert first[0] == second[0], path
            assert rendered_at(first[1]) == rendered_at(second[1]), f"{path} was rendered twice: not cached"

    def mark(self) -> int:
        return len(self.log("consumer"))

    def settle(self, event_id_prefix: str, mark: int, timeout: float = 60.0) -> None:
        """Until the consumer logged (so committed) an event whose id starts with the prefix
        (``1-42-`` a post's, ``1-term-7-`` a term's) after ``mark``: the change's own revalidation is
        done, so a page warmed next is not made fresh by it."""
        pattern = re.compile('"' + re.escape(event_id_prefix) + r'\d+ ')
        recipe.wait_fresh(lambda: bool(pattern.search(self.log("consumer")[mark:])), timeout=timeout)

    def measure(self, what: str, change: Callable[[], Any], fresh: Callable[[], bool],
                event: Callable[[], str], timeout: float = 60.0) -> float:
        """Do ``change`` in WordPress, then poll until ``fresh``; returns and records the seconds.

        Then waits for the consumer to have handled ``event()`` (an event id prefix), see settle.
        """
        mark = self.mark()
        change()
        committed = time.monotonic()
        deadline = committed + timeout
        while time.monotonic() < deadline:
            if fresh():
                took = time.monotonic() - committed
                self.latencies.append((what, took))
                self.settle(event(), mark, timeout)
                return took
            assert self.consumer.poll() is None, f"the consumer exited:\n{self.log('consumer')}"
            time.sleep(0.05)
        raise AssertionError(f"{what}: the app still served stale HTML {timeout:.0f}s after WordPress's commit\n"
                             f"consumer log:\n{self.log('consumer')[-3000:]}")

    def log(self, name: str) -> str:
        path = self.logs / f"{name}.log"
        return path.read_text(errors="replace") if path.exists() else ""


def rendered_at(html: str) -> str | None:
    m = re.search(r'data-rendered-at="([^"]+)"', html)
    return m.group(1) if m else None


@pytest.fixture(scope="session")
def nextjs_build(stack: Any, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """npm ci and `next build`, once per session (and not again while the app's sources are unchanged)."""
    logs = tmp_path_factory.mktemp("nextjs-build")
    recipe.npm_ci(logs / "npm.log")
    recipe.build(logs / "build.log")
    return logs


@pytest.fixture
def site(stack: Any, nextjs_build: Path, tmp_path: Path) -> Iterator[Site]:
    import stack as local_stack
    from wordpress import WordPress

    s = Site(WordPress.headless(), local_stack.wordpress_http_url(), tmp_path / "logs")
    try:
        s.start()
        yield s
    finally:
        s.stop()


def png_colors(path: Path, limit: int = 2) -> int:
    """How many distinct pixel values a PNG has (counting stops at ``limit``): a tiny decoder for
    the 8-bit, non-interlaced RGB/RGBA images Chromium writes, so no imaging library is needed."""
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", f"{path} is not a PNG"
    pos, idat, header = 8, b"", None
    while pos < len(data):
        length, kind = struct.unpack(">I4s", data[pos:pos + 8])
        body = data[pos + 8:pos + 8 + length]
        if kind == b"IHDR":
            header = struct.unpack(">IIBBBBB", body)
        elif kind == b"IDAT":
            idat += body
        pos += 12 + length
    assert header is not None
    width, height, depth, color, _, _, interlace = header
    assert depth == 8 and color in (2, 6) and interlace == 0, f"unexpected PNG format {header}"
    bpp = 3 if color == 2 else 4
    raw, stride = zlib.decompress(idat), width * bpp
    prev = bytearray(stride)
    seen: set[bytes] = set()
    for y in range(height):
        kind, line = raw[y * (stride + 1)], bytearray(raw[y * (stride + 1) + 1:(y + 1) * (stride + 1)])
        for i in range(stride):
            a = line[i - bpp] if i >= bpp else 0
            b, c = prev[i], (prev[i - bpp] if i >= bpp else 0)
            if kind == 1:
                line[i] = (line[i] + a) & 0xFF
            elif kind == 2:
                line[i] = (line[i] + b) & 0xFF
            elif kind == 3:
                line[i] = (line[i] + (a + b) // 2) & 0xFF
            elif kind == 4:
                p = a + b - c
                pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                line[i] = (line[i] + (a if pa <= pb and pa <= pc else b if pb <= pc else c)) & 0xFF
        seen.update(bytes(line[i:i + bpp]) for i in range(0, stride, bpp * 7))
        if len(seen) >= limit:
            return len(seen)
        prev = line
    return len(seen)


def screenshot(url: str, out: Path) -> None:
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    assert chromium, "chromium not found: make deps installs Debian's chromium"
    proc = subprocess.run(
        [chromium, "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
         "--hide-scrollbars", f"--user-data-dir={out.parent / 'chromium-profile'}",
         f"--screenshot={out}", "--window-size=1100,800", url],
        capture_output=True, timeout=120)
    assert out.exists(), f"chromium wrote no screenshot ({proc.returncode}):\n{proc.stderr.decode()[-2000:]}"


def test_pages_are_fresh_after_each_kind_of_edit(site: Site, tmp_path: Path) -> None:
    wp, get = site.wp, site.get
    tag = unique("tag")
    mark = site.mark()
    term = wp.run("insert_term", name=tag, taxonomy="post_tag")
    site.settle(f"1-term-{term['term_taxonomy_id']}-", mark, timeout=90)  # the group has joined
    site.warm("/")

    # Publish a new post: the cached home page lists it, its own page answers.
    title = unique("Fresh post")
    created: dict[str, int] = {}
    site.measure("publish (new post)",
                 lambda: created.update(id=wp.create_post(title, "<p>first words</p>", status="publish", tags=[tag])),
                 lambda: title in get("/")[1], event=lambda: f"1-{created['id']}-")
    post = created["id"]
    path = site.path_of(post)
    assert get(path)[0] == 200 and title in get(path)[1]

    # Edit the title and body a few times: the post's page and the list follow each time.
    for n in range(4):
        site.warm(path, "/")
        new_title = f"{title} edit {n}"
        site.measure("edit (title, content)",
                     lambda t=new_title, n=n: wp.update_post(post, title=t, content=f"<p>body {n}</p>"),
                     lambda t=new_title, n=n: (page := get(path)[1]) and t in page and f"body {n}" in page
                     and t in get("/")[1], event=lambda: f"1-{post}-")
        title = new_title

    # Rename (slug change): the old path 404, the new one 200, the list links to the new one.
    site.warm(path, "/")
    old_path, slug = path, unique("renamed")
    path = old_path.rstrip("/").rsplit("/", 1)[0] + f"/{slug}/"
    site.measure("rename (slug)", lambda: wp.update_post(post, slug=slug),
                 lambda: get(old_path)[0] == 404 and f'href="{path}"' in get("/")[1], event=lambda: f"1-{post}-")
    assert site.path_of(post) == path
    assert get(path)[0] == 200 and title in get(path)[1]

    # A term rename: the pages show tag names, so they follow too.
    site.warm(path, "/")
    new_tag = unique("retagged")
    site.measure("term rename", lambda: wp.run("update_term", term_id=term["term_id"], taxonomy="post_tag", name=new_tag),
                 lambda: new_tag in get("/")[1] and new_tag in get(path)[1],
                 event=lambda: f"1-term-{term['term_taxonomy_id']}-")

    # Unpublish: gone from the list, its page 404.
    site.warm(path, "/")
    site.measure("unpublish", lambda: wp.update_post(post, status="draft"),
                 lambda: get(path)[0] == 404 and title not in get("/")[1], event=lambda: f"1-{post}-")

    # Publish again, then trash: back, then gone.
    site.warm(path, "/")
    site.measure("publish (draft)", lambda: wp.publish(post), lambda: title in get("/")[1], event=lambda: f"1-{post}-")
    path = site.path_of(post)
    assert get(path)[0] == 200
    site.warm(path, "/")
    site.measure("trash", lambda: wp.trash(post), lambda: get(path)[0] == 404 and title not in get("/")[1],
                 event=lambda: f"1-{post}-")

    # Delete a published post for good (no trash on the way): gone.
    other_title = unique("Short-lived")
    made: dict[str, int] = {}
    site.warm("/")
    site.measure("publish (second post)",
                 lambda: made.update(id=wp.create_post(other_title, "<p>soon gone</p>", status="publish")),
                 lambda: other_title in get("/")[1], event=lambda: f"1-{made['id']}-")
    other = made["id"]
    other_path = site.path_of(other)
    site.warm(other_path, "/")
    assert other_title in get(other_path)[1]
    site.measure("delete", lambda: wp.delete(other), lambda: get(other_path)[0] == 404 and other_title not in get("/")[1],
                 event=lambda: f"1-{other}-")

    # A page (not on the list) under its own permalink.
    page_title = unique("About")
    mark = site.mark()
    page = wp.create_post(page_title, "<p>a page</p>", status="publish", type="page")
    site.settle(f"1-{page}-", mark)
    page_path = site.path_of(page)
    assert re.fullmatch(r"/[^/]+/", page_path), page_path
    site.warm(page_path)
    site.measure("edit (page)", lambda: wp.update_post(page, title=page_title + " v2"),
                 lambda: page_title + " v2" in get(page_path)[1], event=lambda: f"1-{page}-")

    # A change no page shows (a meta row): the consumer reads its event, commits it and revalidates
    # nothing, so the cached page is served as it was.
    site.warm(page_path)
    cached = rendered_at(get(page_path)[1])
    wp.run("add_meta", post_id=page, key="colour", value="teal")
    marker = re.compile(r'"revalidated":\[\],"all":false,"events":\["1-' + str(page) + r'-\d+ updated"\]')
    recipe.wait_fresh(lambda: bool(marker.search(site.log("consumer"))), timeout=60)
    assert rendered_at(get(page_path)[1]) == cached, "a meta-only change re-rendered the page"

    shot = tmp_path / "home.png"
    screenshot(site.next_url + "/", shot)
    assert png_colors(shot) >= 2, f"{shot} is blank (one color)"

    seconds = [s for _, s in site.latencies]
    report = {
        "samples": len(seconds),
        "p50_s": round(statistics.median(seconds), 3),
        "p95_s": round(statistics.quantiles(seconds, n=20, method="inclusive")[18], 3),
        "max_s": round(max(seconds), 3),
        "connector_window_s": 0.5,
        "steps": [{"what": w, "seconds": round(s, 3)} for w, s in site.latencies],
        "screenshot": str(shot),
    }
    (tmp_path / "nextjs-latency.json").write_text(json.dumps(report, indent=2))
    print(f"\nnextjs: WordPress commit -> fresh HTML over {report['samples']} edits: "
          f"p50 {report['p50_s']}s, p95 {report['p95_s']}s, max {report['max_s']}s "
          f"({tmp_path / 'nextjs-latency.json'})")
    assert site.consumer.poll() is None
    assert "revalidation failed" not in site.log("consumer"), site.log("consumer")[-3000:]



def test_offsets_are_committed_only_after_the_revalidation(site: Site) -> None:
    """The app is down when an edit's event arrives: the consumer retries, and is killed (kill -9)
    meanwhile. Its successor in the same group reads the event again, because its offset was never
    committed, and the page gets fresh once the app is back. A consumer that committed before the
    revalidation succeeded would leave the page stale for good."""
    wp, get = site.wp, site.get
    title = unique("Delivery")
    mark = site.mark()
    post = wp.create_post(title, "<p>first</p>", status="publish")
    site.settle(f"1-{post}-", mark)
    path = site.path_of(post)
    site.warm(path)

    recipe.stop(site.app)
    mark = site.mark()
    wp.update_post(post, title=f"{title} v2")
    recipe.wait_fresh(lambda: "revalidation failed" in site.log("consumer")[mark:], timeout=60)
    site.consumer.kill()
    site.consumer.wait(10)

    site.start_app()
    # Served from the cache the app left on disk: stale, and only a revalidation can change that.
    for _ in range(3):
        status, html = get(path)
        assert status == 200 and title in html and f"{title} v2" not in html
        time.sleep(0.5)
    site.start_consumer()
    took = recipe.wait_fresh(lambda: f"{title} v2" in get(path)[1], timeout=120)
    print(f"\nnextjs: fresh {took:.1f}s after the second consumer started (group rebalance included)")


def test_consumer_plan_rules() -> None:
    """consumer/plan.js's own unit tests (node --test): which events revalidate which paths."""
    node = shutil.which("node")
    assert node, "node not found: make deps installs Node.js"
    proc = subprocess.run([node, "--test", "consumer/"], cwd=REPO / "examples" / "nextjs",
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]
    assert re.search(r"^# fail 0$", proc.stdout, re.M) and not re.search(r"^# pass 0$", proc.stdout, re.M), proc.stdout
