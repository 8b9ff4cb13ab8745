"""Debezium's MariaDB connector in Kafka Connect standalone, against the same MariaDB, Kafka and
binlog range as wpcdc.

The jars come from Maven Central like any dependency (bench/connect/pom.xml, copied into
``~/.cache/wpcdc/debezium-<version>/lib`` once); nothing of Debezium is in the repository. The first
version of ``VERSIONS`` that resolves is used: Maven Central has no ``debezium-connector-mariadb``
3.6.1.Final nor 3.6.0.Final (the MySQL connector and Debezium's common modules exist in 3.6.1), so
3.6.1.Final is tried first and 3.5.0.Final, the newest MariaDB connector served, is what runs today.

Starting Debezium at a given binlog position: Connect standalone keeps source offsets in a file
(a Java-serialized map of JSON key → JSON value; bench/connect/OffsetFile.java reads and writes it
through the JDK's source launcher). The bench *primes* the connector once per workload database,
before the workload's start position: a ``snapshot.mode=no_data`` start records the tables' schema
in the schema history file and commits an offset. Then the workload is written, and for the
measured run the offset's file/pos are replaced by the workload's start. Debezium then reads the
same range as wpcdc. Done = the connector's topics hold one record per captured row in the range
(counted independently by mariadb-binlog); the time is the broker's append time of the newest.

The JVM runs with the heap and GC flags of Kafka's own ``connect-standalone.sh``
(-Xms256M -Xmx2G, G1, MaxGCPauseMillis=20). JSON converters without schemas (wpcdc's events carry
none either), ``tombstones.on.delete=false`` so one row is exactly one record.
"""

from __future__ import annotations

import asyncio
import json
import random
import shutil
import subprocess
import time
from pathlib import Path

from bench.common import CACHE, REPO, ProcWatch, Stack, create_topics, log, stop_process
from bench.wpcdc_run import RunResult

VERSIONS = ("3.6.1.Final", "3.5.0.Final")
KAFKA_VERSION = "4.1.1"
POM = REPO / "bench" / "connect" / "pom.xml"
OFFSET_TOOL = REPO / "bench" / "connect" / "OffsetFile.java"
JVM = ["-Xms256M", "-Xmx2G", "-server", "-XX:+UseG1GC", "-XX:MaxGCPauseMillis=20",
       "-XX:InitiatingHeapOccupancyPercent=35", "-XX:+ExplicitGCInvokesConcurrent", "-Djava.awt.headless=true"]
KINDS = ("posts", "postmeta", "term_relationships", "terms", "term_taxonomy")

LOG4J = """status = warn
appender.file.type = File
appender.file.name = file
appender.file.fileName = {log}
appender.file.layout.type = PatternLayout
appender.file.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = INFO
rootLogger.appenderRef.file.ref = file
"""


_resolved: tuple[str, Path] | None = None


def resolve() -> tuple[str, Path]:
    """(Debezium version, lib dir): the first of VERSIONS that Maven Central serves."""
    global _resolved
    if _resolved is None:
        _resolved = _resolve()
    return _resolved


def _resolve() -> tuple[str, Path]:
    mvn = shutil.which("mvn")
    errors = []
    for version in VERSIONS:
        lib = CACHE / f"debezium-{version}" / "lib"
        if (lib / ".complete").exists():
            return version, lib
        if not mvn:
            raise SystemExit("bench: mvn not found; install Maven (make deps does)")
        lib.mkdir(parents=True, exist_ok=True)
        mlog = lib.parent / "mvn.log"
        with open(mlog, "wb") as out:
            rc = subprocess.run([mvn, "-B", "-q", "-f", str(POM), "dependency:copy-dependencies",
                                 f"-Ddebezium.version={version}", f"-Dkafka.version={KAFKA_VERSION}",
                                 f"-DoutputDirectory={lib}", "-DincludeScope=runtime"],
                                stdout=out, stderr=subprocess.STDOUT).returncode
        if rc == 0:
            (lib / ".complete").write_text(version)
            return version, lib
        errors.append(f"{version}: see {mlog}")
        shutil.rmtree(lib, ignore_errors=True)
        log(f"Debezium {version} does not resolve from Maven Central; trying the next version")
    raise SystemExit("bench: no Debezium version resolved: " + "; ".join(errors))


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Debezium:
    """One connector instance (one workdir: offsets, schema history, configs, log)."""

    def __init__(self, st: Stack, database: str, workdir: Path, label: str, blogs: tuple[int, ...] = (1,)) -> None:
        self.st = st
        self.database = database
        self.blogs = blogs
        self.workdir = workdir
        self.label = label
        self.version, self.lib = resolve()
        self.name = f"bench-dbz-{label}"
        self.prefix = f"bdz_{label.replace('-', '_')}_{int(time.time())}"
        self.server_id = random.randint(5_000_000, 5_999_999)
        shutil.rmtree(workdir, ignore_errors=True)
        workdir.mkdir(parents=True)
        self.offsets = workdir / "offsets.dat"
        self.history = workdir / "history.dat"
        self.logfile = workdir / "connect.log"

    def topics(self) -> list[str]:
        out = []
        for b in self.blogs:
            pre = "wp_" if b == 1 else f"wp_{b}_"
            out += [f"{self.prefix}.{self.database}.{pre}{k}" for k in KINDS]
        return out

    def _write_configs(self, snapshot_mode: str) -> tuple[Path, Path]:
        worker = self.workdir / "worker.properties"
        worker.write_text(f"""bootstrap.servers={self.st.kafka}
key.converter=org.apache.kafka.connect.json.JsonConverter
value.converter=org.apache.kafka.connect.json.JsonConverter
key.converter.schemas.enable=false
value.converter.schemas.enable=false
offset.storage.file.filename={self.offsets}
offset.flush.interval.ms=1000
listeners=http://127.0.0.1:{_free_port()}
plugin.path=
""")
        conn = self.workdir / "connector.properties"
        # Backslashes escape in a .properties file: "\\." reaches Debezium as the regex "\.".
        blogs = "|".join("" if b == 1 else f"{b}_" for b in self.blogs)
        tables = rf"{self.database}\\.wp_({blogs})({'|'.join(KINDS)})"
        conn.write_text(f"""name={self.name}
connector.class=io.debezium.connector.mariadb.MariaDbConnector
tasks.max=1
database.hostname=127.0.0.1
database.port={self.st.mysql_port}
database.user=admin
database.password=admin-pw
database.server.id={self.server_id}
topic.prefix={self.prefix}
database.include.list={self.database}
table.include.list={tables}
snapshot.mode={snapshot_mode}
snapshot.locking.mode=none
schema.history.internal=io.debezium.storage.file.history.FileSchemaHistory
schema.history.internal.file.filename={self.history}
schema.history.internal.store.only.captured.databases.ddl=true
include.schema.changes=false
tombstones.on.delete=false
topic.creation.default.replication.factor=1
topic.creation.default.partitions=1
""")
        (self.workdir / "log4j2.properties").write_text(LOG4J.format(log=self.logfile))
        return worker, conn

    def _spawn(self, snapshot_mode: str) -> subprocess.Popen[bytes]:
        worker, conn = self._write_configs(snapshot_mode)
        java = shutil.which("java") or "java"
        cmd = [java, *JVM, f"-Dlog4j2.configurationFile={self.workdir / 'log4j2.properties'}",
               "-cp", f"{self.lib}/*", "org.apache.kafka.connect.cli.ConnectStandalone", str(worker), str(conn)]
        self.logfile.unlink(missing_ok=True)
        return subprocess.Popen(cmd, stdout=open(self.workdir / "stdout.log", "ab"), stderr=subprocess.STDOUT,
                                cwd=self.workdir, start_new_session=True)

    def _streaming(self) -> bool:
        try:
            text = self.logfile.read_text(errors="replace")
        except OSError:
            return False
        if "ERROR" in text and ("Task threw an uncaught" in text or "Connector task" in text and "failed" in text):
            raise RuntimeError(f"Debezium failed; see {self.logfile}")
        return "binlog at" in text and "starting at" in text

    def _wait_streaming(self, proc: subprocess.Popen[bytes], timeout: float = 120) -> float:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise RuntimeError(f"Kafka Connect exited ({proc.returncode}); see {self.logfile}")
            if self._streaming():
                return time.time()
            time.sleep(0.05)
        raise RuntimeError(f"Debezium did not start streaming within {timeout}s; see {self.logfile}")

    def _offset_tool(self, *args: str) -> str:
        java = shutil.which("java") or "java"
        return subprocess.run([java, str(OFFSET_TOOL), *args], check=True, capture_output=True,
                              text=True).stdout

    def prime(self) -> None:
        """Record the tables' schema in the history file before the workload (no_data snapshot)."""
        create_topics(self.st.kafka, self.topics())
        proc = self._spawn("no_data")
        try:
            self._wait_streaming(proc)
        finally:
            stop_process(proc, 60)
        if not self.history.exists() or not self.history.stat().st_size:
            raise RuntimeError(f"Debezium recorded no schema history while priming; see {self.logfile}")

    def set_start(self, file: str, pos: int) -> None:
        """Connect's offset for this connector: resume at file/pos, with the GTID state there
        (MariaDB's BINLOG_GTID_POS; Debezium's MariaDB connector positions by GTID)."""
        conn = self.st.admin()
        with conn.cursor() as cur:
            cur.execute("SELECT BINLOG_GTID_POS(%s, %s)", (file, pos))
            gtids = cur.fetchone()[0]
        conn.close()
        key = json.dumps([self.name, {"server": self.prefix}], separators=(",", ":"))
        value = json.dumps({"ts_sec": int(time.time()), "file": file, "pos": pos, "gtids": gtids},
                           separators=(",", ":"))
        self._offset_tool("write", str(self.offsets), key, value)

    def run(self, expected: int, *, timeout: float = 900, during=None) -> RunResult:  # noqa: ANN001
        """Stream from the offset set by set_start until ``expected`` records are in its topics.

        With ``during``, Debezium runs live while ``during()`` writes the workload; ``during``
        returns the expected record count (the latency bench)."""
        topics = self.topics()
        proc = self._spawn("no_data")
        started = time.time()
        watch = ProcWatch(proc.pid)
        timed_out = False
        done = first = None
        cpu_ready = 0.0
        try:
            ready = self._wait_streaming(proc)
            watch.sample()
            cpu_ready = watch.cpu
            if during is not None:
                expected = during()
            done, first, timed_out = asyncio.run(_wait_count(self.st.kafka, topics, expected, proc, timeout))
        finally:
            watch.finish()
            stop_process(proc, 60)
        res = RunResult("debezium", started, ready, done, first, watch.cpu, watch.peak_rss, expected,
                        timed_out, cpu_ready, extra={"version": self.version, "prefix": self.prefix})
        res.rss_samples = watch.samples
        return res


    def snapshot(self, expected: int, *, mode: str = "initial_only", timeout: float = 1800) -> RunResult:
        """Debezium's own snapshot of the five captured tables (the counterpart of ``wpcdc
        backfill``): a fresh offset file, ``snapshot.mode=initial_only`` by default (snapshot, then
        stop), topics created beforehand. Done = its topics hold ``expected`` records (one per row
        of the five tables); timed from the moment the process was spawned (JVM start-up
        included, as the backfill's Python start-up is) to the broker append time of the newest."""
        topics = self.topics()
        create_topics(self.st.kafka, topics)
        proc = self._spawn(mode)
        started = time.time()
        watch = ProcWatch(proc.pid)
        done = first = None
        timed_out = False
        try:
            done, first, timed_out = asyncio.run(_wait_count(self.st.kafka, topics, expected, proc, timeout))
        finally:
            watch.finish()
            stop_process(proc, 60)
        res = RunResult("debezium", started, started, done, first, watch.cpu, watch.peak_rss, expected,
                        timed_out, 0.0, extra={"version": self.version, "prefix": self.prefix,
                                               "snapshot_mode": mode})
        res.rss_samples = watch.samples
        return res


async def _wait_count(bootstrap: str, topics: list[str], expected: int, proc: subprocess.Popen[bytes],
                      timeout: float) -> tuple[float | None, float | None, bool]:
    """Poll the topics' end offsets until they hold ``expected`` records; then the broker append
    time of the newest and oldest record."""
    from aiokafka import AIOKafkaConsumer, TopicPartition

    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    await consumer.start()
    tps = [TopicPartition(t, 0) for t in topics]
    try:
        deadline = time.monotonic() + timeout
        while True:
            ends = await consumer.end_offsets(tps)
            if sum(ends.values()) >= expected:
                break
            if proc.poll() is not None:
                raise RuntimeError(f"Kafka Connect exited ({proc.returncode}) before draining the range")
            if time.monotonic() > deadline:
                return None, None, True
            await asyncio.sleep(0.05)
        consumer.assign(tps)
        last, first = 0, None
        for tp in tps:
            if ends[tp] == 0:
                continue
            for off in (0, ends[tp] - 1):
                consumer.seek(tp, off)
                batch = await consumer.getmany(tp, timeout_ms=5000, max_records=1)
                for msg in batch.get(tp, []):
                    if off == 0:
                        first = msg.timestamp if first is None else min(first, msg.timestamp)
                    else:
                        last = max(last, msg.timestamp)
        return last / 1000, (first or 0) / 1000 or None, False
    finally:
        await consumer.stop()
