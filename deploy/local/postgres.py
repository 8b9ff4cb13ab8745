#!/usr/bin/env python3
"""A throwaway PostgreSQL for the recipes under examples/ (examples/postgres/), beside the stack.

PostgreSQL comes from Debian's ``postgresql-15`` (deploy/local/deps.sh installs it); this script
runs its own cluster, not Debian's service: ``initdb`` and ``pg_ctl`` on 127.0.0.1, on a port picked
free at first start (kept while it stays free), data and log under ``<stack dir>/postgres/``, the
port in ``<stack dir>/postgres/postgres.json``. Connections from loopback are trusted (user
``postgres``, no password): it is a local sandbox, never a server to expose.

PostgreSQL refuses to run as root. As root (CI), the cluster runs as Debian's ``postgres`` system
user (created by ``postgresql-common``), or as a system user ``wpcdc-pg`` created here when there
is none. That user needs to reach the data directory: when the stack dir is somewhere it cannot
(under root's 0700 home, say), the data, log and socket go to ``/var/tmp/wpcdc-postgres-<hash>``
instead, and only ``postgres.json`` stays in the stack dir (``status`` says where).

Usage::

    python deploy/local/postgres.py up       # start (idempotent); prints the status
    python deploy/local/postgres.py down     # stop
    python deploy/local/postgres.py status   # port, DSN, whether it is up
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import pwd
import shutil
import socket
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
STATE = Path(os.environ.get("WPCDC_STACK_DIR", REPO / ".stack")).resolve()
USER = "postgres"  # the database superuser initdb creates (not the system user)
FALLBACK_OS_USER = "wpcdc-pg"


class PostgresError(RuntimeError):
    """The throwaway cluster could not be set up, started or stopped; the message says why."""


@functools.cache
def pg_dir() -> Path:
    """The cluster's data, log and socket: ``<stack dir>/postgres``, unless the system user that
    runs the server cannot reach it (a stack dir under root's 0700 home): then a directory of its
    own under /var/tmp, named after the stack dir (``status`` shows it)."""
    user = _os_user()
    reach = STATE
    while not reach.exists():
        reach = reach.parent
    if user is None or subprocess.run(["runuser", "-u", user, "--", "test", "-x", str(reach)]).returncode == 0:
        return STATE / "postgres"
    return Path("/var/tmp") / f"wpcdc-postgres-{hashlib.sha256(str(STATE).encode()).hexdigest()[:10]}"


def _data() -> Path:
    return pg_dir() / "data"


def _log() -> Path:
    return pg_dir() / "postgres.log"


def _state_file() -> Path:
    return STATE / "postgres" / "postgres.json"


def _bin(name: str) -> str:
    """A server program: WPCDC_PG_BIN, else the newest /usr/lib/postgresql/N/bin, else PATH."""
    if os.environ.get("WPCDC_PG_BIN"):
        return str(Path(os.environ["WPCDC_PG_BIN"]) / name)
    versions = sorted(Path("/usr/lib/postgresql").glob("*/bin"),
                      key=lambda p: int(p.parent.name) if p.parent.name.isdigit() else 0)
    for bindir in reversed(versions):
        if (bindir / name).exists():
            return str(bindir / name)
    found = shutil.which(name)
    if found:
        return found
    raise PostgresError(f"{name} not found: install Debian's postgresql-15 (bash deploy/local/deps.sh) "
                        "or point WPCDC_PG_BIN at a PostgreSQL bin directory")


def _os_user() -> str | None:
    """Whom the server runs as: None (ourselves) unless we are root."""
    if os.geteuid() != 0:
        return None
    for name in (os.environ.get("WPCDC_PG_OS_USER"), "postgres"):
        if name:
            try:
                pwd.getpwnam(name)
                return name
            except KeyError:
                continue
    try:
        pwd.getpwnam(FALLBACK_OS_USER)
    except KeyError:
        subprocess.run(["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin",
                        FALLBACK_OS_USER], check=True)
    return FALLBACK_OS_USER


def _as_user(cmd: list[str]) -> list[str]:
    user = _os_user()
    return cmd if user is None else ["runuser", "-u", user, "--", *cmd]


def _run(cmd: list[str], what: str) -> None:
    with open(_log(), "ab") as out:
        proc = subprocess.run(_as_user(cmd), stdout=out, stderr=subprocess.STDOUT, cwd="/")
    if proc.returncode != 0:
        tail = _log().read_text(errors="replace")[-2000:]
        raise PostgresError(f"{what} failed (exit {proc.returncode}); see {_log()}\n{tail}")


def _prepare_dir() -> None:
    """The state directory, owned by the user the server runs as, which must be able to reach it."""
    _state_file().parent.mkdir(parents=True, exist_ok=True)
    d = pg_dir()
    (d / "run").mkdir(parents=True, exist_ok=True)  # the Unix socket: not Debian's /var/run/postgresql
    _log().touch(exist_ok=True)
    user = _os_user()
    if user is None:
        return
    entry = pwd.getpwnam(user)
    for path in (d, d / "run", _log()):
        os.chown(path, entry.pw_uid, entry.pw_gid)
    if subprocess.run(["runuser", "-u", user, "--", "test", "-w", str(d)]).returncode != 0:
        raise PostgresError(f"the system user {user!r} that runs PostgreSQL (root may not) cannot write {d}: "
                            "make its parent directories searchable (chmod o+x)")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _port_free(port: int) -> bool:
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def _saved_port() -> int:
    try:
        return int(json.loads(_state_file().read_text())["port"])
    except (OSError, ValueError, KeyError):
        return 0


def running() -> bool:
    """True when our cluster's postmaster is alive (pg_ctl status)."""
    if not (_data() / "PG_VERSION").exists():
        return False
    return subprocess.run(_as_user([_bin("pg_ctl"), "status", "-D", str(_data())]), cwd="/",
                          stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL).returncode == 0


def dsn(database: str = "postgres", port: int | None = None) -> str:
    """A libpq connection string for ``database`` on the throwaway cluster."""
    return f"host=127.0.0.1 port={port or _saved_port()} user={USER} dbname={database}"


def up() -> int:
    """Start the cluster (initdb first when there is none); returns its port. Idempotent."""
    _prepare_dir()
    if running() and _saved_port():
        return _saved_port()
    if not (_data() / "PG_VERSION").exists():
        _run([_bin("initdb"), "-D", str(_data()), "-U", USER, "--auth=trust", "-E", "UTF8",
              "--no-locale", "--no-sync"], "initdb")
    port = _saved_port()
    if not port or not _port_free(port):
        port = _free_port()
    # A sandbox: the tests kill consumers, never PostgreSQL, so fsync buys nothing here. A real
    # deployment keeps the defaults: the recipe's exactly-once needs a durable COMMIT.
    options = (f"-c listen_addresses=127.0.0.1 -c port={port} -c unix_socket_directories={pg_dir() / 'run'} "
               "-c fsync=off -c full_page_writes=off -c max_connections=50")
    _run([_bin("pg_ctl"), "start", "-D", str(_data()), "-l", str(_log()), "-w", "-t", "60", "-o", options],
         "pg_ctl start")
    _state_file().write_text(json.dumps({"port": port, "host": "127.0.0.1", "user": USER,
                                         "dsn": dsn(port=port)}, indent=2))
    return port


def down() -> None:
    """Stop the cluster (fast shutdown); nothing to do when it is not running."""
    if running():
        _run([_bin("pg_ctl"), "stop", "-D", str(_data()), "-m", "fast", "-w", "-t", "60"], "pg_ctl stop")


def status() -> dict[str, object]:
    port = _saved_port()
    return {"up": running(), "port": port, "dsn": dsn(port=port) if port else None,
            "data": str(_data()), "log": str(_log()), "runs_as": _os_user() or "the current user"}


def main(argv: list[str]) -> int:
    cmd = argv[1] if len(argv) > 1 else "status"
    try:
        if cmd == "up":
            up()
        elif cmd == "down":
            down()
        elif cmd != "status":
            print(__doc__)
            return 2
        print(json.dumps(status(), indent=2))
    except (PostgresError, subprocess.CalledProcessError) as exc:
        print(f"postgres: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
