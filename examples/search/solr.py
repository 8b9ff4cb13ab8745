#!/usr/bin/env python3
"""A throwaway Apache Solr for the search recipe, beside the local stack.

Solr comes from Maven Central, not from a distribution: ``solr/pom.xml`` names ``solr-core``,
``solr-solrj`` and ``solr-test-framework`` (whose ``JettySolrRunner`` is Solr's own embedded
Jetty), Maven resolves them into ``~/.m2`` (deploy/local/deps.sh does it once, ahead of time), and
``solr/src/.../SolrMain.java`` (compiled here by the runtime's own compiler module: a JRE will
do) runs that runner on 127.0.0.1.

Everything it writes is under ``<stack dir>/solr/`` (``.stack/solr`` unless ``WPCDC_STACK_DIR``
says otherwise): the Solr home (``solr.xml`` and the core ``wpcdc``, its configuration copied from
``solr/conf/`` at each start, its index kept across restarts), the compiled class, the classpath
Maven resolved, the log, and ``solr.json`` (pid and port). The port is picked free at first start
and kept while it stays free.

Usage::

    python examples/search/solr.py up       # start (idempotent), wait until the core answers
    python examples/search/solr.py down     # stop
    python examples/search/solr.py status   # url, pid, whether it is up
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
STATE = Path(os.environ.get("WPCDC_STACK_DIR", REPO / ".stack")).resolve()
PROJECT = HERE / "solr"
CORE = "wpcdc"
MAIN_CLASS = "wpcdc.search.SolrMain"
HEAP = os.environ.get("WPCDC_SOLR_HEAP", "384m")
START_TIMEOUT = 180.0  # a cold JVM on two busy cores loads Solr in 10-40 s


class SolrError(RuntimeError):
    """The throwaway Solr could not be built, started or stopped; the message says why."""


def solr_dir() -> Path:
    return STATE / "solr"


def _state_file() -> Path:
    return solr_dir() / "solr.json"


def _log() -> Path:
    return solr_dir() / "solr.log"


def _read_state() -> dict[str, int]:
    try:
        data = json.loads(_state_file().read_text())
        return {"pid": int(data.get("pid") or 0), "port": int(data.get("port") or 0)}
    except (OSError, ValueError):
        return {"pid": 0, "port": 0}


def _write_state(pid: int, port: int) -> None:
    solr_dir().mkdir(parents=True, exist_ok=True)
    tmp = _state_file().with_suffix(".tmp")
    tmp.write_text(json.dumps({"pid": pid, "port": port}))
    tmp.replace(_state_file())


def _is_our_solr(pid: int) -> bool:
    """pid is alive and is SolrMain (not a reused pid); a zombie child of ours is reaped."""
    if pid <= 0:
        return False
    try:
        with contextlib.suppress(ChildProcessError):
            if os.waitpid(pid, os.WNOHANG)[0] == pid:
                return False
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return MAIN_CLASS.encode() in cmdline and stat.rsplit(")", 1)[1].split()[0] != "Z"


def _port_free(port: int) -> bool:
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as Jetty binds: TIME_WAIT is no obstacle
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def url(port: int | None = None, core: str = CORE) -> str:
    """A core's base URL: ``http://127.0.0.1:PORT/solr/wpcdc``."""
    port = port or _read_state()["port"]
    if not port:
        raise SolrError("Solr has never been started here: python examples/search/solr.py up")
    return f"http://127.0.0.1:{port}/solr/{core}"


def _answers(port: int, core: str = CORE) -> bool:
    try:
        with urllib.request.urlopen(f"{url(port, core)}/all?q=*:*&rows=0", timeout=5) as response:
            return bool(response.status == 200)
    except (OSError, urllib.error.URLError):
        return False


def _admin(query: str) -> None:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{_read_state()['port']}/solr/admin/cores?{query}",
                                    timeout=120) as response:
            response.read()
    except urllib.error.HTTPError as e:
        raise SolrError(f"Solr's core admin refused {query}: {e.read()[:500]!r}") from None


def create_core(name: str) -> str:
    """Another core with the recipe's schema (a test's own index, say), beside ``wpcdc``; returns
    its URL. Idempotent. Solr must be up."""
    if not name.replace("_", "").isalnum():
        raise SolrError(f"core name {name!r}: letters, digits and _ only")
    if _answers(_read_state()["port"], name):
        return url(core=name)
    conf = solr_dir() / "home" / name / "conf"
    conf.mkdir(parents=True, exist_ok=True)
    for item in (PROJECT / "conf").iterdir():
        shutil.copyfile(item, conf / item.name)
    _admin(f"action=CREATE&name={name}&instanceDir={name}")
    return url(core=name)


def drop_core(name: str) -> None:
    """Unload a core made by create_core and delete its directory (index included)."""
    if _answers(_read_state()["port"], name):
        _admin(f"action=UNLOAD&core={name}&deleteInstanceDir=true")


def running() -> bool:
    """Whether the Solr of this stack dir runs and its core answers."""
    state = _read_state()
    return _is_our_solr(state["pid"]) and bool(state["port"]) and _answers(state["port"])


@contextlib.contextmanager
def _locked() -> Iterator[None]:
    """One up/down at a time per stack dir (a test and a demo may start together)."""
    solr_dir().mkdir(parents=True, exist_ok=True)
    with open(solr_dir() / "lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def _tool(name: str) -> str:
    found = shutil.which(name)
    if not found:
        raise SolrError(f"{name} not found: the search recipe needs Java 17 and Maven "
                        "(bash deploy/local/deps.sh installs them on Debian)")
    return found


def _run(cmd: list[str], what: str) -> None:
    with open(_log(), "ab") as out:
        proc = subprocess.run(cmd, stdout=out, stderr=subprocess.STDOUT, cwd=PROJECT)
    if proc.returncode != 0:
        tail = _log().read_text(errors="replace")[-3000:]
        raise SolrError(f"{what} failed (exit {proc.returncode}); see {_log()}\n{tail}")


def resolve_jars() -> Path:
    """Maven resolves Solr's jars (into ~/.m2; from Maven Central the first time) and writes the
    classpath; done again only when pom.xml changed. Returns the classpath file."""
    classpath = solr_dir() / "classpath.txt"
    pom = PROJECT / "pom.xml"
    if classpath.exists() and classpath.stat().st_mtime >= pom.stat().st_mtime:
        return classpath
    solr_dir().mkdir(parents=True, exist_ok=True)
    _run([_tool("mvn"), "-B", "-q", "-f", str(pom), "dependency:build-classpath",
          f"-Dmdep.outputFile={classpath}"],
         "resolving Solr's jars with Maven (network access to Maven Central is needed the first time)")
    return classpath


def _compile(classpath: Path) -> Path:
    """SolrMain.java into <stack dir>/solr/classes (again when the source is newer)."""
    source = PROJECT / "src" / "main" / "java" / "wpcdc" / "search" / "SolrMain.java"
    classes = solr_dir() / "classes"
    compiled = classes / "wpcdc" / "search" / "SolrMain.class"
    if not compiled.exists() or compiled.stat().st_mtime < source.stat().st_mtime:
        # javac as a module of the runtime: Debian's openjdk-17-jre-headless has it (the jdk.compiler
        # module) but not the javac launcher, which comes with the JDK package
        _run([_tool("java"), "-m", "jdk.compiler/com.sun.tools.javac.Main", "--release", "17",
              "-cp", classpath.read_text().strip(), "-d", str(classes), str(source)], "compiling SolrMain.java")
    return classes


def _prepare_home() -> Path:
    """The Solr home: solr.xml and the core, whose configuration is refreshed from solr/conf."""
    home = solr_dir() / "home"
    conf = home / CORE / "conf"
    conf.mkdir(parents=True, exist_ok=True)
    (home / "solr.xml").write_text("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<solr/>\n")
    (home / CORE / "core.properties").write_text(f"name={CORE}\n")
    for item in (PROJECT / "conf").iterdir():
        shutil.copyfile(item, conf / item.name)
    log4j = solr_dir() / "log4j2.xml"
    log4j.write_text(  # Solr logs a lot at INFO: warnings and errors only, into solr.log
        '<?xml version="1.0" encoding="UTF-8"?>\n<Configuration>\n  <Appenders>\n'
        '    <Console name="out" target="SYSTEM_OUT"><PatternLayout pattern="%d{ISO8601} %-5p %c{1} %m%n"/>'
        '</Console>\n  </Appenders>\n  <Loggers>\n    <Root level="WARN"><AppenderRef ref="out"/></Root>\n'
        '  </Loggers>\n</Configuration>\n')
    return home


def up() -> int:
    """Start Solr unless it runs; wait until the core answers. Returns the port."""
    with _locked():
        state = _read_state()
        if _is_our_solr(state["pid"]) and state["port"]:
            _wait_ready(state["pid"], state["port"])
            return state["port"]
        classpath = resolve_jars()
        classes = _compile(classpath)
        home = _prepare_home()
        port = state["port"] if state["port"] and _port_free(state["port"]) else _free_port()
        port_file = solr_dir() / "port"
        port_file.unlink(missing_ok=True)
        cmd = [_tool("java"), f"-Xmx{HEAP}", "-XX:+UseSerialGC", "-XX:TieredStopAtLevel=1",
               "-Djetty.host=127.0.0.1", "-Dhost=127.0.0.1", f"-Dsolr.log.dir={solr_dir()}",
               f"-Dlog4j2.configurationFile={solr_dir() / 'log4j2.xml'}",
               "-cp", f"{classes}:{classpath.read_text().strip()}", MAIN_CLASS, str(home), str(port), str(port_file)]
        with open(_log(), "ab") as out:
            proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                    cwd=solr_dir(), start_new_session=True)
        _write_state(proc.pid, port)
        _wait_ready(proc.pid, port)
        return port


def _wait_ready(pid: int, port: int) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    while not _answers(port):
        if not _is_our_solr(pid):
            tail = _log().read_text(errors="replace")[-3000:]
            raise SolrError(f"Solr (pid {pid}) exited while starting; see {_log()}\n{tail}")
        if time.monotonic() > deadline:
            raise SolrError(f"Solr (pid {pid}) did not answer on port {port} within {START_TIMEOUT:.0f}s; "
                            f"see {_log()}")
        time.sleep(0.3)


def down(timeout: float = 30.0) -> None:
    """Stop Solr (SIGTERM: Jetty closes the core, which commits; SIGKILL after timeout seconds);
    nothing to do when it does not run."""
    with _locked():
        pid = _read_state()["pid"]
        if not _is_our_solr(pid):
            return
        os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        while _is_our_solr(pid) and time.monotonic() < deadline:
            time.sleep(0.1)
        if _is_our_solr(pid):
            os.kill(pid, signal.SIGKILL)
            while _is_our_solr(pid):
                time.sleep(0.1)


def status() -> dict[str, object]:
    state = _read_state()
    return {"up": running(), "pid": state["pid"] or None, "port": state["port"] or None,
            "url": url(state["port"]) if state["port"] else None, "log": str(_log())}


def main(argv: list[str]) -> int:
    command = argv[1] if len(argv) > 1 else "status"
    try:
        if command == "up":
            up()
        elif command == "down":
            down()
        elif command != "status":
            print(__doc__)
            return 2
    except SolrError as e:
        print(f"solr.py {command}: {e}", file=sys.stderr)
        return 1
    print(json.dumps(status(), indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
