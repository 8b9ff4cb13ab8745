"""The local WordPress: install it (through PHP CLI, no web server) and drive it like an editor.

Why real WordPress: the connector turns MariaDB binlog row events into post/term/meta changes,
and the hard part is what WordPress actually writes - revisions, auto-drafts, ``_edit_lock``
churn, the second "meta box" save, serialized meta, per-blog tables of a multisite. Hand-written
SQL in tests would only prove we agree with ourselves. So tests make WordPress do the writing:
Debian's ``wordpress`` package (/usr/share/wordpress) run by ``php-cli``, one PHP process per
simulated request (see ``deploy/local/wp/driver.php`` for why one process per request).

Two sites are installed under one root directory (``.stack/wordpress`` by default):

``multisite``
    database ``wordpress``, prefix ``wp_``: a subdirectory multisite network on
    ``http://localhost/`` with the main blog (id 1, ``wp_posts`` ...) and a second blog at
    ``/second/`` (id 2, ``wp_2_posts`` ...).
``single``
    database ``wpsingle``, prefix ``site_``: a plain single site - proves that nothing in the
    connector assumes the ``wp_`` prefix.

A third site, ``headless`` (database ``wpheadless``, prefix ``wp_``), is installed by
:func:`install_headless` for the one WordPress served over HTTP (stack.py's ``wordpress-http``,
PHP's built-in server with ``wp/router.php``): its home is ``http://127.0.0.1:<port>``, so its
REST API and permalinks answer at the address it names (examples/nextjs renders from it).

Both have the admin user id 1 (``admin`` / ``admin-pw``), permalinks
``/%year%/%monthnum%/%day%/%postname%/`` (the main blog of the network has WordPress's mandatory
``/blog`` in front) and the site timezone Europe/Berlin, so ``post_date`` and ``post_date_gmt``
differ like on most real sites.

We write our own wp-config.php per site (Debian's /usr/share/wordpress/wp-config.php picks a
config by HTTP host from /etc/wordpress, which is global state we must not touch) with
ABSPATH=/usr/share/wordpress/ and WP_CONTENT_DIR under the root (uploads must be writable and
per-site; the package's themes are symlinked in, its plugins dir is used as is). Usage::

    from wordpress import WordPress, install
    install(root, mysql_port)                     # idempotent, ~20 ms when already installed
    wp = WordPress.multisite(root)
    post_id = wp.create_post("Hello", "<p>x</p>", status="publish", tags=["a"])
    wp.run("trash", post_id=post_id)              # any driver.php action, blog=2 for the second blog
"""

from __future__ import annotations

import fcntl
import json
import os
import secrets
import shutil
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
WP_DIR = HERE / "wp"
DRIVER = WP_DIR / "driver.php"
INSTALLER = WP_DIR / "install.php"
MU_PLUGINS = WP_DIR / "mu-plugins"
ABSPATH = Path("/usr/share/wordpress")

DB_USER, DB_PASSWORD = "wordpress", "wordpress-pw"
ADMIN_LOGIN, ADMIN_PASSWORD, ADMIN_ID = "admin", "admin-pw", 1
MULTISITE_DATABASE, MULTISITE_PREFIX = "wordpress", "wp_"
SINGLE_DATABASE, SINGLE_PREFIX = "wpsingle", "site_"
HEADLESS_DATABASE, HEADLESS_PREFIX = "wpheadless", "wp_"
ROUTER = WP_DIR / "router.php"
SECOND_BLOG_SLUG, SECOND_BLOG_ID = "second", 2
NETWORK_DOMAIN = "localhost"
TIMEZONE = "Europe/Berlin"

#: Bump when the install procedure changes in a way existing installs must not keep.
LAYOUT_VERSION = 2
#: Option (on blog 1 of each site) holding the token of the install the marker file describes.
TOKEN_OPTION = "wpcdc_install_token"

#: PHP settings for every driver/installer process. OPcache is off in PHP CLI by default, and its
#: shared memory would die with each process anyway; its FILE cache does not: the ~350 PHP files
#: WordPress compiles per request are compiled once and then loaded precompiled from disk, which
#: takes a bare driver call from ~140 ms to ~45 ms. Timestamps are still validated, so edits to
#: driver.php or WordPress are picked up. The cache dir is added per site (next to its config).
PHP_FLAGS = [
    "-d", "memory_limit=512M",
    "-d", "opcache.enable_cli=1",
    "-d", "opcache.file_cache_only=1",
    "-d", "opcache.validate_timestamps=1",
]


class WordPressError(RuntimeError):
    """A driver or installer process failed; carries WordPress's message and PHP's own output."""

    def __init__(self, what: str, message: str, *, returncode: int | None = None,
                 stdout: str = "", stderr: str = "", payload: dict[str, Any] | None = None) -> None:
        self.what = what
        self.message = message
        self.returncode = returncode
        self.stdout = stdout
        self.stderr = stderr
        self.payload = payload or {}
        parts = [f"{what}: {message}"]
        if returncode is not None:
            parts.append(f"(exit status {returncode})")
        if self.payload.get("where"):
            parts.append(f"\n  at {self.payload['where']}")
        if self.payload.get("output"):
            parts.append(f"\n  WordPress printed: {str(self.payload['output'])[:1500]}")
        if stderr.strip():
            parts.append(f"\n  PHP stderr: {stderr.strip()[-3000:]}")
        if not self.payload and stdout.strip():
            parts.append(f"\n  PHP stdout: {stdout.strip()[-3000:]}")
        super().__init__(" ".join(parts))


def _php() -> str:
    php = shutil.which("php")
    if not php:
        raise WordPressError("php", "php not found: install Debian's php-cli and php-mysql")
    return php


def _php_call(cmd_args: list[str], stdin: dict[str, Any], what: str, cwd: Path,
              timeout: float, log: Path | None = None) -> dict[str, Any]:
    """Run one PHP process of ours (in ``cwd``, a site dir) and return its decoded JSON envelope.

    The envelope has ``ok`` true, ``result`` and ``timing``; anything else raises.
    """
    opcache = cwd / ".opcache"
    opcache.mkdir(exist_ok=True)
    cmd = [_php(), *PHP_FLAGS, "-d", f"opcache.file_cache={opcache}", *cmd_args]
    try:
        proc = subprocess.run(cmd, input=json.dumps(stdin).encode(), capture_output=True,
                              timeout=timeout, cwd=cwd)
    except subprocess.TimeoutExpired as exc:
        raise WordPressError(what, f"timed out after {timeout:.0f}s",
                             stdout=(exc.stdout or b"").decode(errors="replace"),
                             stderr=(exc.stderr or b"").decode(errors="replace")) from exc
    stdout = proc.stdout.decode(errors="replace")
    stderr = proc.stderr.decode(errors="replace")
    if log is not None and (stderr.strip() or proc.returncode != 0):
        with open(log, "a", encoding="utf-8") as out:
            out.write(f"--- {time.strftime('%Y-%m-%dT%H:%M:%S')} {what} exit={proc.returncode}\n")
            out.write(stderr if stderr.endswith("\n") or not stderr else stderr + "\n")
            if proc.returncode != 0:
                out.write(stdout if stdout.endswith("\n") else stdout + "\n")
    try:
        payload = json.loads(stdout.strip().splitlines()[-1]) if stdout.strip() else None
    except (json.JSONDecodeError, IndexError):
        payload = None
    if not isinstance(payload, dict):
        raise WordPressError(what, "no JSON result on stdout", returncode=proc.returncode,
                             stdout=stdout, stderr=stderr)
    if proc.returncode != 0 or not payload.get("ok"):
        raise WordPressError(what, str(payload.get("error", "failed")), returncode=proc.returncode,
                             stdout=stdout, stderr=stderr, payload=payload)
    return payload


class WordPress:
    """One installed site (the network or the single site), driven one PHP process per action.

    ``run(action, blog=N, **args)`` is the whole interface; the typed helpers below are thin
    wrappers for the common actions. Every call is a separate PHP process, i.e. a separate
    simulated HTTP request: ~45 ms inside PHP (40 of them loading WordPress), ~65 ms wall time
    from Python. Tests that need many posts should use ``seed`` (one process) rather than loop
    over ``create_post``.
    """

    def __init__(self, config_path: Path, database: str, prefix: str, *,
                 timeout: float = 120.0) -> None:
        self.config_path = Path(config_path)
        self.database = database
        self.prefix = prefix
        self.timeout = timeout
        #: ``timing`` of the last call as reported by PHP: total_ms, load_ms, action_ms.
        self.last_timing: dict[str, float | None] = {}

    # ------------------------------------------------------------------ constructors

    @classmethod
    def multisite(cls, root: Path | None = None) -> WordPress:
        """The network: database ``wordpress``, prefix ``wp_``, blogs 1 and 2."""
        return cls(_site_dir(root, "multisite") / "wp-config.php", MULTISITE_DATABASE,
                   MULTISITE_PREFIX)

    @classmethod
    def single(cls, root: Path | None = None) -> WordPress:
        """The single site: database ``wpsingle``, prefix ``site_``."""
        return cls(_site_dir(root, "single") / "wp-config.php", SINGLE_DATABASE, SINGLE_PREFIX)

    @classmethod
    def headless(cls, root: Path | None = None) -> WordPress:
        """The site served over HTTP (stack.py's ``wordpress-http``): database ``wpheadless``."""
        return cls(_site_dir(root, "headless") / "wp-config.php", HEADLESS_DATABASE, HEADLESS_PREFIX)

    def __repr__(self) -> str:
        return f"WordPress({str(self.config_path)!r}, {self.database!r}, {self.prefix!r})"

    # ------------------------------------------------------------------ core

    def table(self, name: str, blog: int = 1) -> str:
        """The real table name: ``table("posts", 2)`` is ``wp_2_posts`` on the network.

        Network-wide tables (users, usermeta, blogs, site, sitemeta, ...) have no blog number.
        """
        if blog == 1 or name in _GLOBAL_TABLES:
            return f"{self.prefix}{name}"
        return f"{self.prefix}{blog}_{name}"

    def run(self, action: str, blog: int = 1, **args: Any) -> dict[str, Any]:
        """Run ONE driver action in its own PHP process and return its result object.

        ``args`` go to PHP as a JSON object on stdin. Raises :class:`WordPressError` (with
        WordPress's message, PHP's stderr and anything WordPress printed) on failure.
        """
        payload = _php_call(
            [str(DRIVER), f"--config={self.config_path}", f"--blog={int(blog)}", action],
            args, f"driver {action} (blog {blog}, {self.database})", self.config_path.parent,
            self.timeout, self.config_path.parent / "driver.log",
        )
        self.last_timing = dict(payload.get("timing") or {})
        result = payload.get("result")
        return result if isinstance(result, dict) else {"value": result}

    # ------------------------------------------------------------------ typed helpers

    def info(self, blog: int = 1) -> dict[str, Any]:
        """Blog id, table prefix, versions, URLs - and the cost of a bare WordPress load."""
        return self.run("info", blog)

    def create_post(self, title: str, content: str = "", *, status: str = "draft",
                    type: str = "post", tags: list[str] | None = None,
                    categories: list[str] | None = None, meta: dict[str, Any] | None = None,
                    date: str | int | None = None, excerpt: str | None = None,
                    blog: int = 1) -> int:
        """wp_insert_post + wp_set_post_terms + update_post_meta; returns the post id."""
        args: dict[str, Any] = {"title": title, "content": content, "status": status,
                                "type": type}
        for key, value in (("tags", tags), ("categories", categories), ("meta", meta),
                           ("date", date), ("excerpt", excerpt)):
            if value is not None:
                args[key] = value
        return int(self.run("create_post", blog, **args)["post_id"])

    def update_post(self, post_id: int, *, blog: int = 1, **fields: Any) -> dict[str, Any]:
        """wp_update_post with any of title, content, excerpt, status, slug, date."""
        return self.run("update_post", blog, post_id=post_id, **fields)

    def get_post(self, post_id: int, blog: int = 1) -> dict[str, Any]:
        """The post as stored: {post: row|None, meta: {key: [raw values]}, terms: [...], revisions: [...]}."""
        return self.run("get_post", blog, post_id=post_id)

    def publish(self, post_id: int, blog: int = 1, *, via: str = "wp_publish_post") -> dict[str, Any]:
        """Publish: ``wp_publish_post`` (status flip only) or ``update`` (wp_update_post)."""
        return self.run("publish", blog, post_id=post_id, via=via)

    def trash(self, post_id: int, blog: int = 1) -> dict[str, Any]:
        return self.run("trash", blog, post_id=post_id)

    def untrash(self, post_id: int, blog: int = 1, *,
                restore_previous_status: bool = False) -> dict[str, Any]:
        return self.run("untrash", blog, post_id=post_id,
                        restore_previous_status=restore_previous_status)

    def delete(self, post_id: int, blog: int = 1) -> dict[str, Any]:
        return self.run("delete", blog, post_id=post_id)

    def seed(self, count: int = 5, *, with_terms: bool = True, with_meta: bool = True,
             blog: int = 1) -> list[int]:
        """Published demo posts (terms, scalar and serialized meta), all in one PHP process."""
        result = self.run("seed", blog, count=count, with_terms=with_terms, with_meta=with_meta)
        return [int(i) for i in result["post_ids"]]

    def editor_new(self, blog: int = 1, *, type: str = "post") -> int:
        """Open "Add New" in the block editor: an auto-draft plus its post lock; returns its id."""
        return int(self.run("editor_new", blog, type=type)["post_id"])

    def rest_save(self, post_id: int, *, blog: int = 1, **fields: Any) -> dict[str, Any]:
        """The block editor's save: POST /wp/v2/posts/ID (title, content, status, tags, ...)."""
        return self.run("rest_save", blog, post_id=post_id, **fields)

    def metabox_save(self, post_id: int, *, blog: int = 1,
                     original_status: str | None = None) -> dict[str, Any]:
        """The editor's follow-up meta box POST to post.php (edit_post)."""
        args: dict[str, Any] = {"post_id": post_id}
        if original_status is not None:
            args["original_status"] = original_status
        return self.run("metabox_save", blog, **args)

    def upload_attachment(self, filename: str, *, parent_id: int | None = None,
                          set_thumbnail_of: int | None = None, blog: int = 1) -> int:
        """A file into uploads + its attachment post (+ featured image); returns the attachment id."""
        args: dict[str, Any] = {"filename": filename}
        if parent_id is not None:
            args["parent_id"] = parent_id
        if set_thumbnail_of is not None:
            args["set_thumbnail_of"] = set_thumbnail_of
        return int(self.run("upload_attachment", blog, **args)["attachment_id"])

    def permalinks(self, post_ids: list[int], blog: int = 1,
                   post_types: dict[str, dict[str, Any]] | None = None) -> dict[int, str | None]:
        """get_permalink() of each post, as an anonymous visitor gets it (None: no such post), with
        ``post_types`` ({name: {slug, hierarchical}}) registered as a plugin would."""
        links = self.run("permalinks", blog, post_ids=list(post_ids), post_types=post_types or {})["links"]
        return {int(k): (v if isinstance(v, str) else None) for k, v in dict(links).items()}

    def create_blog(self, slug: str, title: str | None = None) -> int:
        """A new blog at /<slug>/ on the network (idempotent); returns its id."""
        args: dict[str, Any] = {"slug": slug}
        if title is not None:
            args["title"] = title
        return int(self.run("create_blog", 1, **args)["blog_id"])


# Network-wide tables of a multisite (no blog number in their name).
_GLOBAL_TABLES = frozenset({"users", "usermeta", "blogs", "blogmeta", "site", "sitemeta",
                            "signups", "registration_log", "sitecategories"})


# ---------------------------------------------------------------------------------- install


@dataclass(frozen=True)
class _Site:
    """What distinguishes the two installs."""

    name: str
    database: str
    prefix: str
    url: str
    title: str
    network: bool

    def required_tables(self) -> list[str]:
        tables = ["options", "posts", "postmeta", "terms", "term_taxonomy",
                  "term_relationships", "users", "usermeta"]
        names = [self.prefix + t for t in tables]
        if self.network:
            names += [self.prefix + t for t in ("blogs", "site", "sitemeta")]
            names += [f"{self.prefix}{SECOND_BLOG_ID}_{t}" for t in ("options", "posts", "postmeta")]
        return names


SITES = (
    _Site("multisite", MULTISITE_DATABASE, MULTISITE_PREFIX, f"http://{NETWORK_DOMAIN}",
          "wpcdc", network=True),
    _Site("single", SINGLE_DATABASE, SINGLE_PREFIX, "http://wpsingle.localhost",
          "wpcdc single", network=False),
)


def default_root() -> Path:
    """``<stack state dir>/wordpress``, where stack.py's ``wordpress_up`` installs."""
    import stack  # deploy/local/stack.py; imported lazily, it imports us lazily too

    return stack.STATE / "wordpress"


def _site_dir(root: Path | None, name: str) -> Path:
    return (Path(root) if root is not None else default_root()) / name


def install(root: Path, mysql_port: int) -> None:
    """Install the network and the single site under ``root`` unless they are already there.

    Fast path (two ``mariadb`` client calls, ~20 ms): the marker file ``root/installed.json``
    names an install token per site, and the database still has that site's tables and token
    option. Anything else - first run, a recreated database, a half-finished install, a new
    LAYOUT_VERSION - reinstalls that site from scratch (its tables are dropped first; the network
    lives in the shared ``wordpress`` database, so only ``wp_*`` tables go, while ``wpsingle``
    is ours alone and is recreated). The wp-config.php files are rewritten on every call, so a
    MariaDB that came back on another port is picked up without reinstalling.
    """
    root = Path(root).resolve()
    root.mkdir(parents=True, exist_ok=True)
    with _lock(root / ".install.lock"):
        marker_path = root / "installed.json"
        marker = _read_json(marker_path)
        if marker.get("layout") != LAYOUT_VERSION or not isinstance(marker.get("sites"), dict):
            marker = {"layout": LAYOUT_VERSION, "sites": {}}
        salts = _salts(root)
        installed = _installed_tokens()
        for site in SITES:
            site_dir = root / site.name
            _prepare_site_dir(site_dir)
            final_config = _config(site, site_dir, mysql_port, salts, multisite=site.network)
            token = marker["sites"].get(site.name, {}).get("token")
            if token and installed.get(site.name) == token:
                _write_if_changed(site_dir / "wp-config.php", final_config)
                continue
            started = time.monotonic()
            token = _install_site(site, site_dir, root, mysql_port, salts)
            marker["sites"][site.name] = {
                "token": token,
                "database": site.database,
                "prefix": site.prefix,
                "installed_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
                "seconds": round(time.monotonic() - started, 2),
            }
            marker_path.write_text(json.dumps(marker, indent=2) + "\n")


def headless_site(http_port: int) -> _Site:
    """The site PHP's built-in server serves on ``http_port``: its home is that address."""
    return _Site("headless", HEADLESS_DATABASE, HEADLESS_PREFIX, f"http://127.0.0.1:{int(http_port)}",
                 "wpcdc headless", network=False)


def install_headless(root: Path, mysql_port: int, http_port: int) -> Path:
    """Install the headless site under ``root/headless`` unless it is there; returns its wp-config.php.

    Like :func:`install` (same marker file, token and fast path). Its ``home`` and ``siteurl``
    must be the address it is served at, since WordPress makes every link and REST URL from them:
    when the HTTP port changed since the install, both options are updated (through WordPress, so
    the binlog shows it like any settings change), not reinstalled.
    """
    root = Path(root).resolve()
    root.mkdir(parents=True, exist_ok=True)
    site = headless_site(http_port)
    site_dir = root / site.name
    config = site_dir / "wp-config.php"
    with _lock(root / ".install.lock"):
        marker_path = root / "installed.json"
        marker = _read_json(marker_path)
        if marker.get("layout") != LAYOUT_VERSION or not isinstance(marker.get("sites"), dict):
            marker = {"layout": LAYOUT_VERSION, "sites": {}}
        salts = _salts(root)
        _prepare_site_dir(site_dir)
        entry = marker["sites"].get(site.name, {})
        token = entry.get("token")
        if token and _installed_tokens((site,)).get(site.name) == token:
            _write_if_changed(config, _config(site, site_dir, mysql_port, salts, multisite=False))
            if entry.get("url") != site.url:
                wp = WordPress(config, site.database, site.prefix)
                for option in ("home", "siteurl"):
                    wp.run("update_option", name=option, value=site.url)
                entry["url"] = site.url
                marker_path.write_text(json.dumps(marker, indent=2) + "\n")
            return config
        started = time.monotonic()
        token = _install_site(site, site_dir, root, mysql_port, salts)
        marker["sites"][site.name] = {
            "token": token, "database": site.database, "prefix": site.prefix, "url": site.url,
            "installed_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "seconds": round(time.monotonic() - started, 2),
        }
        marker_path.write_text(json.dumps(marker, indent=2) + "\n")
    return config


@contextmanager
def _lock(path: Path) -> Iterator[None]:
    """Two test sessions starting at once must not install over each other."""
    with open(path, "a+") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _salts(root: Path) -> dict[str, str]:
    """WordPress's keys and salts, random once per root and then stable (cookies, nonces)."""
    path = root / "salts.json"
    salts = _read_json(path)
    names = [f"{kind}_{what}" for what in ("KEY", "SALT")
             for kind in ("AUTH", "SECURE_AUTH", "LOGGED_IN", "NONCE")]
    if sorted(salts) != sorted(names):
        salts = {name: secrets.token_urlsafe(48) for name in names}
        path.write_text(json.dumps(salts, indent=2) + "\n")
        os.chmod(path, 0o600)
    return salts


def _mysql(sql: str) -> str:
    import stack

    return stack.mysql_client(sql)


def _installed_tokens(sites: tuple[_Site, ...] = SITES) -> dict[str, str]:
    """Install tokens found in the database, for the sites whose tables are all present.

    Asked as root over the stack's socket (like stack.py does); the TCP port only goes into
    wp-config.php.
    """
    wanted = {site.name: site.required_tables() for site in sites}
    conditions = " OR ".join(
        f"(table_schema = '{site.database}' AND table_name IN "
        + "(" + ", ".join(f"'{t}'" for t in wanted[site.name]) + "))"
        for site in sites
    )
    rows = _mysql(f"SELECT table_schema, table_name FROM information_schema.tables WHERE {conditions};")
    present = {tuple(line.split("\t")) for line in rows.splitlines() if line.strip()}
    complete = [site for site in sites
                if all((site.database, t) in present for t in wanted[site.name])]
    if not complete:
        return {}
    selects = " UNION ALL ".join(
        f"SELECT '{site.name}', option_value FROM `{site.database}`.`{site.prefix}options` "
        f"WHERE option_name = '{TOKEN_OPTION}'"
        for site in complete
    )
    tokens: dict[str, str] = {}
    for line in _mysql(selects + ";").splitlines():
        name, _, value = line.partition("\t")
        if name:
            tokens[name] = value
    return tokens


def _prepare_site_dir(site_dir: Path) -> None:
    """wp-content of our own: writable uploads, the package's themes and plugins via symlink."""
    content = site_dir / "wp-content"
    (content / "uploads").mkdir(parents=True, exist_ok=True)
    themes = content / "themes"
    if not themes.exists():
        if themes.is_symlink():  # dangling
            themes.unlink()
        themes.symlink_to(ABSPATH / "wp-content" / "themes")


def _php_str(value: str) -> str:
    """A PHP single-quoted string literal."""
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def _config(site: _Site, site_dir: Path, mysql_port: int, salts: dict[str, str],
            multisite: bool) -> str:
    """Our wp-config.php for a site; ``multisite`` adds the network constants (final stage)."""
    lines = [
        "<?php",
        "/*",
        f" * wp-config.php of the local '{site.name}' WordPress, generated by deploy/local/wordpress.py",
        " * on every `stack.py up` - edits here are lost. Not Debian's /usr/share/wordpress/wp-config.php:",
        " * that one picks /etc/wordpress/config-<host>.php by HTTP host. Constants the driver may",
        " * define first (per simulated request) are guarded with defined().",
        " */",
        f"define( 'DB_NAME', {_php_str(site.database)} );",
        f"define( 'DB_USER', {_php_str(DB_USER)} );",
        f"define( 'DB_PASSWORD', {_php_str(DB_PASSWORD)} );",
        f"define( 'DB_HOST', {_php_str(f'127.0.0.1:{mysql_port}')} );",
        "define( 'DB_CHARSET', 'utf8mb4' );",
        "define( 'DB_COLLATE', '' );",
        "",
        *[f"define( {_php_str(name)}, {_php_str(value)} );" for name, value in sorted(salts.items())],
        "",
        f"$table_prefix = {_php_str(site.prefix)};",
        "",
        f"define( 'WPCDC_SITE_DIR', {_php_str(str(site_dir))} );",
        f"define( 'WP_CONTENT_DIR', {_php_str(str(site_dir / 'wp-content'))} );",
        f"define( 'WP_PLUGIN_DIR', {_php_str(str(ABSPATH / 'wp-content' / 'plugins'))} );",
        f"define( 'WPMU_PLUGIN_DIR', {_php_str(str(MU_PLUGINS))} );",
        "defined( 'DISABLE_WP_CRON' ) || define( 'DISABLE_WP_CRON', true );",
        "define( 'AUTOMATIC_UPDATER_DISABLED', true );",
        "define( 'WP_AUTO_UPDATE_CORE', false );",
        "define( 'WP_ENVIRONMENT_TYPE', 'local' );",
        "defined( 'WP_DEBUG' ) || define( 'WP_DEBUG', false );",
    ]
    if multisite:
        lines += [
            "",
            "define( 'WP_ALLOW_MULTISITE', true );",
            "define( 'MULTISITE', true );",
            "define( 'SUBDOMAIN_INSTALL', false );",
            f"define( 'DOMAIN_CURRENT_SITE', {_php_str(NETWORK_DOMAIN)} );",
            "define( 'PATH_CURRENT_SITE', '/' );",
            "define( 'SITE_ID_CURRENT_SITE', 1 );",
            "define( 'BLOG_ID_CURRENT_SITE', 1 );",
        ]
    elif site.network:
        lines += ["", "define( 'WP_ALLOW_MULTISITE', true );  // network tables not created yet"]
    lines += [
        "",
        f"defined( 'ABSPATH' ) || define( 'ABSPATH', {_php_str(str(ABSPATH) + '/')} );",
        "require_once ABSPATH . 'wp-settings.php';",
        "",
    ]
    return "\n".join(lines)


def _write_if_changed(path: Path, text: str) -> None:
    if not path.exists() or path.read_text() != text:
        tmp = path.with_suffix(".tmp")
        tmp.write_text(text)
        tmp.replace(path)


def _install_site(site: _Site, site_dir: Path, root: Path, mysql_port: int,
                  salts: dict[str, str]) -> str:
    """Fresh install of one site; returns its new token. Logs to ``root/install-<site>.log``."""
    log = root / f"install-{site.name}.log"
    log.write_text(f"# {time.strftime('%Y-%m-%dT%H:%M:%S')} installing {site.name} "
                   f"into {site.database}.{site.prefix}*\n")
    _reset_database(site)
    shutil.rmtree(site_dir / "wp-content" / "uploads", ignore_errors=True)
    (site_dir / "wp-content" / "uploads").mkdir(parents=True, exist_ok=True)
    config = site_dir / "wp-config.php"

    # Stage 1: a plain single site (for the network: not yet MULTISITE), installed by wp_install.
    _write_if_changed(config, _config(site, site_dir, mysql_port, salts, multisite=False))
    result = _logged_php(
        [str(INSTALLER), f"--config={config}", f"--mode={'network' if site.network else 'single'}",
         f"--url={site.url}", f"--title={site.title}", f"--password={ADMIN_PASSWORD}",
         f"--timezone={TIMEZONE}"],
        f"install {site.name}", site_dir, log,
    )
    if int(result["user_id"]) != ADMIN_ID:
        raise WordPressError(f"install {site.name}", f"admin user is {result['user_id']}, not 1")

    wp = WordPress(config, site.database, site.prefix)
    if site.network:
        # Stage 2: the network exists in the database; from now on WordPress boots as multisite.
        _write_if_changed(config, _config(site, site_dir, mysql_port, salts, multisite=True))
        blog = wp.run("create_blog", slug=SECOND_BLOG_SLUG, title="Second blog")
        _log(log, "create_blog", blog, wp.last_timing)
        if int(blog["blog_id"]) != SECOND_BLOG_ID:
            raise WordPressError(f"install {site.name}",
                                 f"second blog got id {blog['blog_id']}, expected {SECOND_BLOG_ID}")
        # wp_initialize_site() does not copy the main blog's timezone; give blog 2 the same.
        wp.run("update_option", blog=SECOND_BLOG_ID, name="timezone_string", value=TIMEZONE)
    token = secrets.token_hex(8)
    wp.run("update_option", name=TOKEN_OPTION, value=token, autoload=False)
    info = [wp.run("info", blog=b) for b in ((1, SECOND_BLOG_ID) if site.network else (1,))]
    _log(log, "info", info, wp.last_timing)
    return token


def _reset_database(site: _Site) -> None:
    """Empty the site's tables: ours-only database recreated, shared one loses ``prefix*`` only."""
    if not site.network:
        _mysql(f"DROP DATABASE IF EXISTS `{site.database}`; "
               f"CREATE DATABASE `{site.database}` CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci;")
        return
    _mysql(f"CREATE DATABASE IF NOT EXISTS `{site.database}` CHARACTER SET utf8mb4;")
    like = site.prefix.replace("_", "\\\\_") + "%"
    tables = _mysql(f"SELECT table_name FROM information_schema.tables "
                    f"WHERE table_schema = '{site.database}' AND table_name LIKE '{like}';")
    names = [t for t in tables.split() if t]
    if names:
        _mysql("DROP TABLE IF EXISTS " + ", ".join(f"`{site.database}`.`{t}`" for t in names) + ";")


def _log(log: Path, what: str, data: Any, timing: dict[str, Any] | None = None) -> None:
    with open(log, "a", encoding="utf-8") as out:
        out.write(f"## {what} {json.dumps(timing or {})}\n{json.dumps(data, indent=2)}\n")


def _logged_php(cmd_args: list[str], what: str, cwd: Path, log: Path) -> dict[str, Any]:
    """An installer run whose stdout/stderr end up in the install log, failed or not."""
    try:
        payload = _php_call(cmd_args, {}, what, cwd, 300.0, log)
    except WordPressError as exc:
        _log(log, f"{what} FAILED", {"error": str(exc)})
        raise
    _log(log, what, payload.get("result"), payload.get("timing"))
    return dict(payload["result"])


if __name__ == "__main__":  # python deploy/local/wordpress.py  -> install into the stack
    import sys

    sys.path.insert(0, str(HERE))
    import stack as _stack

    _ports = _stack.up(["mariadb"])
    _t0 = time.monotonic()
    install(_stack.STATE / "wordpress", _ports.mysql)
    print(f"WordPress installed under {_stack.STATE / 'wordpress'} "
          f"({time.monotonic() - _t0:.2f}s)")
