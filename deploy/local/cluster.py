"""An optional three-broker Kafka cluster on loopback, beside the stack's single node.

The single node cannot show what replication does to the connector: a leader that dies under a
transactional producer, an ISR that shrinks below ``min.insync.replicas``, a broker that comes
back and catches up. This cluster can, at the price of three JVMs, so it starts only when asked
(``stack.py up cluster``, ``make up KAFKA_BROKERS=3``, or the tests' ``kafka_cluster`` fixture).

Three processes, each a combined broker and controller (``controller.quorum.voters`` lists all
three, so any one can die and the quorum holds); replication 3 and ``min.insync.replicas=2`` by
default and for the internal topics; PLAINTEXT only; small heaps and thread pools, since the
machines have two cores. State under ``<STATE>/kafka-cluster/broker-N``, ports picked free once
and kept in ``<STATE>/kafka-cluster/ports.json``.

Readiness is judged by the brokers' own Metadata answers (:mod:`kafka_meta`), not by open ports: a
broker listens before it is unfenced, and a broker that is not yet unfenced makes a topic with
replication 3 impossible to create.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import signal
import subprocess
import time
import uuid
from pathlib import Path

import kafka_meta
import stack
from stack import StackError

NODES = (1, 2, 3)
HEAP = ["-Xms128m", "-Xmx384m"]


def cluster_dir() -> Path:
    return stack.STATE / "kafka-cluster"


def broker_dir(n: int) -> Path:
    return cluster_dir() / f"broker-{n}"


def _pidfile(n: int) -> Path:
    return broker_dir(n) / "kafka.pid"


# ------------------------------------------------------------------------------------ ports


def _load_ports() -> dict[str, list[int]]:
    path = cluster_dir() / "ports.json"
    if path.exists():
        return dict(json.loads(path.read_text()))
    return {}


def _choose_ports() -> dict[str, list[int]]:
    """The saved ports while a broker still runs on them or they are all free; new ones otherwise.

    The controller ports are written into every broker's ``controller.quorum.voters``, so the six
    ports change together or not at all.
    """
    ports = _load_ports()
    saved = ports.get("brokers", []) + ports.get("controllers", [])
    if len(saved) == 2 * len(NODES) and (running() or all(stack._port_free(p) for p in saved)):
        return ports
    fresh: list[int] = []
    while len(fresh) < 2 * len(NODES):
        port = stack._free_port()
        if port not in fresh:
            fresh.append(port)
    ports = {"brokers": fresh[:len(NODES)], "controllers": fresh[len(NODES):]}
    cluster_dir().mkdir(parents=True, exist_ok=True)
    (cluster_dir() / "ports.json").write_text(json.dumps(ports, indent=2))
    return ports


def broker_port(n: int) -> int:
    return int(_load_ports()["brokers"][n - 1])


def bootstrap() -> list[str]:
    """``host:port`` of every broker, in node order (a client's bootstrap list)."""
    return [f"127.0.0.1:{p}" for p in _load_ports().get("brokers", [])]


def _voters(ports: dict[str, list[int]]) -> str:
    return ",".join(f"{n}@127.0.0.1:{ports['controllers'][n - 1]}" for n in NODES)


# ------------------------------------------------------------------------------- configuration


def _properties(n: int, ports: dict[str, list[int]]) -> str:
    port, controller = ports["brokers"][n - 1], ports["controllers"][n - 1]
    return f"""process.roles=broker,controller
node.id={n}
controller.quorum.voters={_voters(ports)}
listeners=PLAINTEXT://127.0.0.1:{port},CONTROLLER://127.0.0.1:{controller}
advertised.listeners=PLAINTEXT://127.0.0.1:{port}
controller.listener.names=CONTROLLER
inter.broker.listener.name=PLAINTEXT
listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT
log.dirs={broker_dir(n)}/data
default.replication.factor=3
min.insync.replicas=2
{stack.kafka_topic_defaults(replicas=3, min_isr=2)}num.network.threads=2
num.io.threads=2
background.threads=2
num.replica.fetchers=1
num.recovery.threads.per.data.dir=1
log.cleaner.threads=1
"""


def _java(n: int) -> list[str]:
    java = shutil.which("java")
    if not java:
        raise StackError("java not found: install a Java 17 runtime (make deps does)")
    d = broker_dir(n)
    # C1 only: three JVMs warming up at once on two cores start faster without C2 (here 11-14 s
    # instead of 18-25 s for the three), and a test cluster never runs long enough to miss it.
    return [java, *HEAP, "-XX:+UseSerialGC", "-XX:TieredStopAtLevel=1", "-Djava.awt.headless=true",
            f"-Dlog4j2.configurationFile={d / 'log4j2.properties'}", f"-Dkafka.logs.dir={d}",
            "-cp", f"{stack.kafka_lib()}/*"]


def _write_config(n: int, ports: dict[str, list[int]]) -> Path:
    d = broker_dir(n)
    d.mkdir(parents=True, exist_ok=True)
    (d / "log4j2.properties").write_text(stack._LOG4J.format(log=d / "server.log"))
    props = d / "server.properties"
    props.write_text(_properties(n, ports))
    return props


def _format(ports: dict[str, list[int]]) -> None:
    """Format the three data directories with one cluster id (in parallel: one JVM each)."""
    cid = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
    procs = []
    for n in NODES:
        d = broker_dir(n)
        shutil.rmtree(d / "data", ignore_errors=True)
        props = _write_config(n, ports)
        log = open(d / "format.log", "ab")  # closed below, once the tool has exited
        procs.append((n, log, subprocess.Popen(
            _java(n) + ["kafka.tools.StorageTool", "format", f"--cluster-id={cid}", "-c", str(props)],
            stdout=log, stderr=subprocess.STDOUT)))
    for n, log, proc in procs:
        rc = proc.wait()
        log.close()
        if rc != 0:
            raise StackError(f"formatting broker {n} failed ({rc}); see {broker_dir(n) / 'format.log'}")
    (cluster_dir() / "data.layout").write_text(_voters(ports))


def _formatted(ports: dict[str, list[int]]) -> bool:
    marker = cluster_dir() / "data.layout"
    return (marker.exists() and marker.read_text() == _voters(ports)
            and all((broker_dir(n) / "data" / "meta.properties").exists() for n in NODES))


# ---------------------------------------------------------------------------------- processes


def _sees(n: int, nodes: tuple[int, ...]) -> bool:
    """Broker ``n`` answers Metadata and lists ``nodes`` among its live (unfenced) brokers."""
    try:
        live = kafka_meta.metadata(broker_port(n), topics=[], timeout=2.0).brokers
    except OSError:
        return False
    return set(nodes) <= set(live)


def _spawn(n: int) -> subprocess.Popen[bytes]:
    d = broker_dir(n)
    with open(d / "kafka.stdout", "ab") as out:
        proc = subprocess.Popen(_java(n) + ["kafka.Kafka", str(d / "server.properties")],
                                stdout=out, stderr=out, start_new_session=True)
    _pidfile(n).write_text(str(proc.pid))
    return proc


def _wait_ready(started: dict[int, subprocess.Popen[bytes]], nodes: tuple[int, ...], timeout: float) -> None:
    """Until every broker in ``started`` lists ``nodes``; a broker that exits fails at once."""
    deadline = time.monotonic() + timeout
    pending = dict(started)
    while pending:
        for n, proc in list(pending.items()):
            if proc.poll() is not None:
                raise StackError(f"Kafka broker {n} exited with {proc.returncode}; "
                                 f"see {broker_dir(n) / 'kafka.stdout'} and {broker_dir(n) / 'server.log'}")
            if _sees(n, nodes):
                del pending[n]
        if pending and time.monotonic() > deadline:
            n = min(pending)
            log = broker_dir(n) / "server.log"
            tail = log.read_text(errors="replace")[-3000:] if log.exists() else "(no log)"
            raise StackError(f"Kafka broker {n} did not see brokers {list(nodes)} within {timeout:.0f}s; "
                             f"see {log}\n{tail}")
        time.sleep(0.2)


def broker_start(n: int, timeout: float = 120.0) -> None:
    """Start broker ``n`` (no-op if it runs) and wait until the cluster has unfenced it.

    Unfenced is not yet in sync: a test that needs the broker back in a partition's ISR waits
    for that with :func:`wait_in_sync`.
    """
    if stack._pid_alive(_pidfile(n)):
        return
    ports = _load_ports()
    if not ports:
        raise StackError("the cluster was never started: run `stack.py up cluster` first")
    _write_config(n, ports)
    _wait_ready({n: _spawn(n)}, (n,), timeout)


def broker_stop(n: int, hard: bool = True, timeout: float = 60.0) -> None:
    """Stop broker ``n``: ``kill -9`` when ``hard`` (a crash), else SIGTERM (controlled shutdown)."""
    pidfile = _pidfile(n)
    pid = stack._pid_alive(pidfile)
    if pid is None:
        pidfile.unlink(missing_ok=True)
        return
    if not hard:
        stack._stop_pid(pidfile, timeout=timeout)
        return
    os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + 10
    while stack._pid_alive(pidfile) and time.monotonic() < deadline:
        time.sleep(0.05)
    pidfile.unlink(missing_ok=True)


def running() -> bool:
    """Whether any broker of the cluster has a live process."""
    return any(stack._pid_alive(_pidfile(n)) for n in NODES)


def cluster_up(timeout: float = 180.0) -> list[str]:
    """Start the three brokers (idempotent) and return the bootstrap list once each sees all three."""
    ports = _choose_ports()
    if not _formatted(ports):
        cluster_down()
        _format(ports)
    started: dict[int, subprocess.Popen[bytes]] = {}
    for n in NODES:
        if stack._pid_alive(_pidfile(n)) is None:
            _write_config(n, ports)
            started[n] = _spawn(n)
    _wait_ready(started, NODES, timeout)
    # Brokers that were already running: they must see the whole cluster too.
    deadline = time.monotonic() + timeout
    while not all(_sees(n, NODES) for n in NODES):
        if time.monotonic() > deadline:
            raise StackError(f"the cluster did not come together within {timeout:.0f}s; see {cluster_dir()}")
        time.sleep(0.2)
    return bootstrap()


def cluster_down(timeout: float = 30.0) -> None:
    """SIGTERM all three at once (the data is disposable), SIGKILL what is left after ``timeout``.

    A broker shutting down alone waits for the controller to move its leaders away; with every
    broker going, the last ones can wait long for a quorum that is gone, hence the short timeout.
    """
    pids = {n: stack._pid_alive(_pidfile(n)) for n in NODES}
    for pid in pids.values():
        if pid is not None:
            os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and any(stack._pid_alive(_pidfile(n)) for n in NODES):
        time.sleep(0.1)
    for n in NODES:
        pid = stack._pid_alive(_pidfile(n))
        if pid is not None:
            os.kill(pid, signal.SIGKILL)
            while stack._pid_alive(_pidfile(n)):
                time.sleep(0.05)
        _pidfile(n).unlink(missing_ok=True)


# ----------------------------------------------------------------------------------- topics


def partitions(topic: str) -> tuple[kafka_meta.Partition, ...]:
    """The topic's partitions as the first broker that answers sees them (empty if unknown)."""
    for n in NODES:
        try:
            meta = kafka_meta.metadata(broker_port(n), topics=[topic], timeout=2.0)
        except OSError:
            continue
        return meta.topics.get(topic, ())
    raise StackError("no broker of the cluster answers")


def leader(topic: str, partition: int = 0) -> int:
    """Node id of the partition's leader (-1 while there is none)."""
    for p in partitions(topic):
        if p.index == partition:
            return p.leader
    raise StackError(f"topic {topic} has no partition {partition}")


def wait_in_sync(topic: str, timeout: float = 120.0) -> None:
    """Until every partition of ``topic`` has a leader and all its replicas in the ISR."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            parts = partitions(topic)
        except StackError:
            parts = ()
        if parts and all(p.leader >= 0 and set(p.isr) == set(p.replicas) for p in parts):
            return
        if time.monotonic() > deadline:
            raise StackError(f"topic {topic} not fully in sync within {timeout:.0f}s: {parts}")
        time.sleep(0.2)


def status() -> dict[str, object]:
    ports = _load_ports()
    brokers = []
    for i, n in enumerate(NODES):
        port = ports["brokers"][i] if ports else 0
        brokers.append({"node": n, "port": port, "up": bool(port) and _sees(n, (n,)),
                        "pid": stack._pid_alive(_pidfile(n)), "log": str(broker_dir(n) / "server.log")})
    return {"bootstrap": ",".join(bootstrap()), "brokers": brokers}
