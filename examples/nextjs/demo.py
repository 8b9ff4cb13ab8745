#!/usr/bin/env python3
"""`make demo-nextjs`: the Next.js recipe against the local stack, edits in WordPress and the page fresh.

Starts (or reuses) the local stack with its headless WordPress served over HTTP, installs and
builds the app (``npm ci`` and ``next build``, each only when its inputs changed), then runs three
processes: ``wpcdc stream`` for the headless site, ``next start``, and the consumer. It then edits
WordPress through its PHP API (publish, edit, rename, unpublish) and shows after each edit how long
the page took to be fresh. It keeps serving until Ctrl-C: open the printed URL and edit on.

The test (tests/examples/test_nextjs.py) uses the helpers here to start the same processes. None of
this is the recipe itself: the recipe is the app and ``consumer/``, which know only the event contract.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
sys.path.insert(0, str(REPO / "deploy" / "local"))

import stack  # noqa: E402

# What `next build` reads: a change to any of these rebuilds, anything else reuses .next/.
BUILD_INPUTS = ("app", "lib", "next.config.mjs", "jsconfig.json", "package.json", "package-lock.json")
NODE_ENV = {"NEXT_TELEMETRY_DISABLED": "1"}


class RecipeError(RuntimeError):
    """A step of the recipe failed; the message names the log to read."""


def _digest(paths: list[Path]) -> str:
    h = hashlib.sha256()
    for path in sorted(paths):
        h.update(str(path.relative_to(HERE)).encode())
        h.update(path.read_bytes())
    return h.hexdigest()


def _inputs() -> list[Path]:
    files: list[Path] = []
    for name in BUILD_INPUTS:
        path = HERE / name
        files += [p for p in path.rglob("*") if p.is_file()] if path.is_dir() else [path]
    return files


def _run(cmd: list[str], log: Path, what: str) -> None:
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "ab") as out:
        proc = subprocess.run(cmd, cwd=HERE, stdout=out, stderr=subprocess.STDOUT,
                              env={**os.environ, **NODE_ENV})
    if proc.returncode != 0:
        tail = log.read_text(errors="replace")[-3000:]
        raise RecipeError(f"{what} failed ({proc.returncode}); see {log}\n{tail}")


def npm_ci(log: Path) -> None:
    """node_modules from package-lock.json (npm's cache in ~/.npm), again only when the lock changed."""
    if not shutil.which("npm"):
        raise RecipeError("npm not found: make deps installs Node.js")
    stamp = HERE / "node_modules" / ".wpcdc-deps"
    want = hashlib.sha256((HERE / "package-lock.json").read_bytes()).hexdigest()
    if stamp.exists() and stamp.read_text() == want:
        return
    _run(["npm", "ci", "--prefer-offline", "--no-audit", "--no-fund", "--loglevel=error"], log, "npm ci")
    stamp.write_text(want)


def build(log: Path) -> bool:
    """`next build` unless .next/ was built from the same inputs; True when it built."""
    stamp = HERE / ".next" / "wpcdc-build"
    want = _digest(_inputs())
    if stamp.exists() and stamp.read_text() == want and (HERE / ".next" / "BUILD_ID").exists():
        return False
    _run(["npx", "--no-install", "next", "build"], log, "next build")
    stamp.write_text(want)
    return True


def free_port(preferred: int | None = None) -> int:
    for port in ([preferred] if preferred else []) + [0]:
        with socket.socket() as s:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as Node's listen() does
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            return int(s.getsockname()[1])
    raise RecipeError("no free port")


def wait_http(url: str, proc: subprocess.Popen[bytes], log: Path, timeout: float = 60.0) -> None:
    """Until ``url`` answers at all (any status): the server is listening."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RecipeError(f"{proc.args!r} exited with {proc.returncode}; see {log}\n"
                              f"{log.read_text(errors='replace')[-3000:]}")
        try:
            urllib.request.urlopen(url, timeout=5).close()
            return
        except urllib.error.HTTPError:
            return
        except OSError:
            time.sleep(0.2)
    raise RecipeError(f"{url} did not answer within {timeout:.0f}s; see {log}")


def _spawn(cmd: list[str], env: dict[str, str], log: Path, cwd: Path = HERE) -> subprocess.Popen[bytes]:
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "ab") as out:
        return subprocess.Popen(cmd, cwd=cwd, env={**os.environ, **NODE_ENV, **env}, stdout=out,
                                stderr=subprocess.STDOUT, start_new_session=True)


def start_app(port: int, wordpress_url: str, secret: str, log: Path) -> subprocess.Popen[bytes]:
    """`next start` on 127.0.0.1:port, rendering from ``wordpress_url``."""
    proc = _spawn(["npx", "--no-install", "next", "start", "-H", "127.0.0.1", "-p", str(port)],
                  {"WORDPRESS_URL": wordpress_url, "REVALIDATE_SECRET": secret}, log)
    wait_http(f"http://127.0.0.1:{port}/api/revalidate/", proc, log)
    return proc


def start_connector(name: str, log: Path, window: float = 0.5, snapshot: str = "never") -> subprocess.Popen[bytes]:
    """`wpcdc stream` for the headless site (database wpheadless), as the least-privilege user."""
    env = {**stack.env(), "WPCDC_MYSQL_DATABASE": "wpheadless", "WPCDC_TABLE_PREFIX": "wp_"}
    python = os.environ.get("WPCDC_PYTHON", sys.executable)
    return _spawn([python, "-m", "cdc", "stream", "--name", name, "--window", str(window), "--snapshot", snapshot],
                  env, log, cwd=REPO)


def start_consumer(name: str, next_url: str, secret: str, group: str, log: Path) -> subprocess.Popen[bytes]:
    """consumer/consumer.js for the connector ``name``'s topics."""
    env = {"KAFKA_BOOTSTRAP": stack.env()["WPCDC_KAFKA_BOOTSTRAP"], "WPCDC_NAME": name,
           "NEXT_URL": next_url, "REVALIDATE_SECRET": secret, "GROUP_ID": group}
    return _spawn(["node", "consumer/consumer.js"], env, log)


def stop(proc: subprocess.Popen[bytes] | None, timeout: float = 20.0) -> None:
    """SIGTERM to the process group (npx's child, next-server, goes too), then SIGKILL."""
    if proc is None or proc.poll() is not None:
        return
    try:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(10)
    except ProcessLookupError:
        pass


def fetch(url: str) -> tuple[int, str]:
    """Status and body of a GET (no exception for 404)."""
    try:
        with urllib.request.urlopen(url, timeout=30) as res:
            return res.status, res.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode(errors="replace")


def wait_fresh(check: Callable[[], bool], timeout: float = 60.0, interval: float = 0.05) -> float:
    """Poll ``check`` until true; seconds it took. Raises TimeoutError."""
    start = time.monotonic()
    while time.monotonic() - start < timeout:
        if check():
            return time.monotonic() - start
        time.sleep(interval)
    raise TimeoutError(f"not fresh after {timeout:.0f}s")


def main() -> int:
    from wordpress import WordPress

    logs = stack.STATE / "nextjs"
    print("stack: MariaDB, Kafka, WordPress over HTTP ...", flush=True)
    stack.up()
    wordpress_url = stack.wordpress_http_url()
    print(f"WordPress (headless site): {wordpress_url}/wp-json/", flush=True)
    print(f"npm ci, next build (logs in {logs}) ...", flush=True)
    npm_ci(logs / "npm.log")
    build(logs / "build.log")
    secret = os.environ.get("REVALIDATE_SECRET") or hashlib.sha256(os.urandom(16)).hexdigest()[:24]
    port = free_port(int(os.environ.get("NEXT_PORT", "3000")))
    next_url = f"http://127.0.0.1:{port}"
    procs: list[subprocess.Popen[bytes]] = []
    for name in ("connector", "next", "consumer"):  # this run's logs only; the last run's as *.log.1
        if (logs / f"{name}.log").exists():
            (logs / f"{name}.log").replace(logs / f"{name}.log.1")
    try:
        # when_needed: a first run, or a saved position the server has purged since, backfills the
        # site's posts (the consumer then revalidates every page once) instead of stopping.
        procs.append(start_connector("nextjs-demo", logs / "connector.log", snapshot="when_needed"))
        procs.append(start_app(port, wordpress_url, secret, logs / "next.log"))
        procs.append(start_consumer("nextjs-demo", next_url, secret, "wpcdc-nextjs-demo", logs / "consumer.log"))
        print(f"Next.js: {next_url}/   consumer log: {logs / 'consumer.log'}", flush=True)
        # The connector fixes its start position (edits before it would be missed), the consumer joins.
        deadline = time.monotonic() + 60
        while "streaming from" not in (logs / "connector.log").read_text(errors="replace"):
            if time.monotonic() > deadline or procs[0].poll() is not None:
                raise RecipeError(f"wpcdc stream did not start; see {logs / 'connector.log'}")
            time.sleep(0.3)
        time.sleep(3)
        wp = WordPress.headless()
        title = f"Hello from Next.js {time.strftime('%H:%M:%S')}"
        fetch(next_url + "/")  # cached from now on
        post = wp.create_post(title, "<p>Written in WordPress, rendered by Next.js.</p>", status="publish")
        path = "/" + wp.permalinks([post])[post].split("/", 3)[3]
        print(f"published {title!r}: the home page shows it after "
              f"{wait_fresh(lambda: title in fetch(next_url + '/')[1]):.2f}s", flush=True)
        time.sleep(2)  # the publish's own revalidation of the post's path is done: cache it stale now
        fetch(next_url + path)
        wp.update_post(post, title=title + " (edited)")
        print(f"edited the title: {next_url}{path} fresh after "
              f"{wait_fresh(lambda: '(edited)' in fetch(next_url + path)[1]):.2f}s", flush=True)
        time.sleep(2)
        fetch(next_url + path)
        wp.update_post(post, slug="renamed-in-wordpress")
        new_path = "/" + wp.permalinks([post])[post].split("/", 3)[3]
        print(f"renamed: {path} is 404 after {wait_fresh(lambda: fetch(next_url + path)[0] == 404):.2f}s, "
              f"now at {next_url}{new_path}", flush=True)
        print(f"\nEdit on and watch {next_url}/ (WordPress's PHP API: deploy/local/wordpress.py, "
              "WordPress.headless()). Ctrl-C stops.", flush=True)
        while all(p.poll() is None for p in procs):
            time.sleep(1)
        print("a process exited; see the logs in " + str(logs), file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 0
    except RecipeError as exc:
        print(f"demo-nextjs: {exc}", file=sys.stderr)
        return 1
    finally:
        for proc in reversed(procs):
            stop(proc)


if __name__ == "__main__":
    sys.exit(main())
