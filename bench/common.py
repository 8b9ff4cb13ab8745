"""What every part of the bench shares: the local stack's addresses, SQL as admin, binlog
positions, Kafka helpers, and per-process CPU/RSS measurement through /proc (psutil).

Nothing here is timed by itself; bench/run.py composes it.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil
import pymysql

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "deploy" / "local"))
import stack  # noqa: E402  (deploy/local/stack.py: ports, state dir, binlog dir)

CACHE = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "wpcdc"
PY = os.environ.get("BENCH_WPCDC_PY") or (str(REPO / ".venv" / "bin" / "python") if (REPO / ".venv" / "bin" / "python").exists() else sys.executable)


def log(msg: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {msg}", flush=True)


# ----------------------------------------------------------------------------------- the stack


@dataclass(frozen=True)
class Stack:
    mysql_port: int
    kafka: str
    binlog_dir: Path
    socket: Path

    @classmethod
    def load(cls) -> Stack:
        ports = stack._load_ports()
        if not ports.mysql or not ports.kafka:
            raise SystemExit("bench: the local stack is not up (run `make up`)")
        d = stack.mariadb_dir()
        return cls(ports.mysql, f"127.0.0.1:{ports.kafka}", d / "binlog", d / "mysqld.sock")

    def admin(self, database: str | None = None, **kw: Any) -> pymysql.connections.Connection:
        kw.setdefault("autocommit", True)
        return pymysql.connect(host="127.0.0.1", port=self.mysql_port, user=stack.ADMIN_USER,
                               password=stack.ADMIN_PASSWORD, database=database, charset="utf8mb4", **kw)


@dataclass(frozen=True, order=True)
class Pos:
    number: int
    pos: int
    file: str = field(compare=False)

    @classmethod
    def of(cls, file: str, pos: int) -> Pos:
        return cls(int(file.rsplit(".", 1)[1]), int(pos), file)

    def __str__(self) -> str:
        return f"{self.file}:{self.pos}"


def binlog_end(conn: pymysql.connections.Connection) -> Pos:
    with conn.cursor() as cur:
        cur.execute("SHOW MASTER STATUS")
        file, pos = cur.fetchone()[:2]
    return Pos.of(file, pos)


def binlog_bytes(st: Stack, start: Pos, end: Pos) -> int:
    """Bytes of binlog between two positions (across rotations)."""
    if start.file == end.file:
        return end.pos - start.pos
    total = 0
    for n in range(start.number, end.number + 1):
        f = st.binlog_dir / f"{start.file.rsplit('.', 1)[0]}.{n:06d}"
        size = f.stat().st_size if f.exists() else 0
        total += (size - start.pos) if n == start.number else (end.pos if n == end.number else size)
    return total


_ROW_LINE = re.compile(rb"^### (?:INSERT INTO|UPDATE|DELETE FROM) `([^`]+)`\.`([^`]+)`$", re.M)


def count_rows(st: Stack, start: Pos, end: Pos, database: str, tables: re.Pattern[str]) -> dict[str, int]:
    """Rows per table of ``database`` matching ``tables`` in [start, end), counted by MariaDB's own
    mariadb-binlog (a referee independent of both connectors)."""
    tool = shutil.which("mariadb-binlog") or shutil.which("mysqlbinlog")
    if not tool:
        raise SystemExit("bench: mariadb-binlog not found (Debian's mariadb-client)")
    counts: dict[str, int] = {}
    base = start.file.rsplit(".", 1)[0]
    for n in range(start.number, end.number + 1):
        f = st.binlog_dir / f"{base}.{n:06d}"
        cmd = [tool, "--no-defaults", "--base64-output=decode-rows", "-v", f"--database={database}"]
        if n == start.number:
            cmd.append(f"--start-position={start.pos}")
        if n == end.number:
            cmd.append(f"--stop-position={end.pos}")
        cmd.append(str(f))
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
        assert proc.stdout is not None
        tail = b""
        while True:
            block = proc.stdout.read(1 << 22)
            if not block:
                break
            block = tail + block
            cut = block.rfind(b"\n")
            tail, block = block[cut + 1:], block[:cut + 1]
            for m in _ROW_LINE.finditer(block):
                if m.group(1).decode() == database:
                    t = m.group(2).decode()
                    if tables.fullmatch(t):
                        counts[t] = counts.get(t, 0) + 1
        proc.wait()
    return counts


WP_TABLES = re.compile(r"wp_(?:\d+_)?(posts|postmeta|term_relationships|terms|term_taxonomy)")


# ------------------------------------------------------------------------------------ processes


class ProcWatch:
    """CPU seconds and peak RSS of one process (and its children), sampled from /proc.

    Peak RSS is the kernel's high-water mark (VmHWM), which no sampling interval can miss; it is
    read just before the process is stopped. CPU is user+system of the process tree.
    """

    def __init__(self, pid: int, interval: float = 0.1) -> None:
        self.proc = psutil.Process(pid)
        self.interval = interval
        self.peak_rss = 0
        self.cpu = 0.0
        self.samples: list[tuple[float, int]] = []  # (monotonic, rss)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _tree(self) -> list[psutil.Process]:
        try:
            return [self.proc, *self.proc.children(recursive=True)]
        except psutil.Error:
            return []

    def _hwm(self, p: psutil.Process) -> int:
        try:
            for line in Path(f"/proc/{p.pid}/status").read_text().splitlines():
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
        except OSError:
            pass
        return 0

    def sample(self) -> None:
        cpu, rss, hwm = 0.0, 0, 0
        for p in self._tree():
            try:
                t = p.cpu_times()
                cpu += t.user + t.system
                rss += p.memory_info().rss
                hwm = max(hwm, self._hwm(p))
            except psutil.Error:
                continue
        if cpu:
            self.cpu = max(self.cpu, cpu)
        self.peak_rss = max(self.peak_rss, rss, hwm)
        self.samples.append((time.monotonic(), rss))

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self.sample()

    def finish(self) -> None:
        self.sample()
        self._stop.set()
        self._thread.join()


def stop_process(proc: subprocess.Popen[bytes], timeout: float) -> None:
    """SIGTERM (a clean stop for both connectors), then SIGKILL after ``timeout`` seconds."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


# ----------------------------------------------------------------------------------------- Kafka


def run_async(coro: Any) -> Any:
    return asyncio.run(coro)


async def _admin(bootstrap: str):  # noqa: ANN202
    from aiokafka.admin import AIOKafkaAdminClient

    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    return admin


def create_topics(bootstrap: str, names: Iterable[str], *, compact: bool = False) -> None:
    """Topics whose record timestamps are the broker's append time: the moment a record reached
    Kafka, whichever client wrote it, which is what the bench measures against."""
    from aiokafka.admin import NewTopic
    from aiokafka.errors import TopicAlreadyExistsError

    async def go() -> None:
        admin = await _admin(bootstrap)
        try:
            cfg = {"message.timestamp.type": "LogAppendTime"}
            if compact:
                cfg["cleanup.policy"] = "compact"
            topics = [NewTopic(n, 1, 1, topic_configs=dict(cfg)) for n in names]
            try:
                await admin.create_topics(topics)
            except TopicAlreadyExistsError:
                pass
        finally:
            await admin.close()

    run_async(go())


def delete_topics(bootstrap: str, prefix_or_names: Iterable[str] | str) -> None:
    async def go() -> None:
        admin = await _admin(bootstrap)
        try:
            existing = set(await admin.list_topics())
            if isinstance(prefix_or_names, str):
                names = [t for t in existing if t.startswith(prefix_or_names)]
            else:
                names = [t for t in prefix_or_names if t in existing]
            if names:
                await admin.delete_topics(names)
        finally:
            await admin.close()

    try:
        run_async(go())
    except Exception as exc:  # noqa: BLE001 - cleanup only
        log(f"warning: could not delete topics: {exc!r}")


@dataclass
class TopicScan:
    count: int = 0
    first_ts: int | None = None  # ms, broker append time
    last_ts: int | None = None
    values: list[tuple[int, bytes | None]] = field(default_factory=list)


def scan_topics(bootstrap: str, topics: list[str], *, keep_values: bool = False,
                read_committed: bool = True, timeout: float = 120.0) -> dict[str, TopicScan]:
    """Read each topic from the beginning to its current end: counts and append-time range."""
    from aiokafka import AIOKafkaConsumer, TopicPartition

    async def go() -> dict[str, TopicScan]:
        consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False,
                                    isolation_level="read_committed" if read_committed else "read_uncommitted",
                                    auto_offset_reset="earliest", fetch_max_bytes=64 << 20,
                                    max_partition_fetch_bytes=16 << 20)
        await consumer.start()
        out: dict[str, TopicScan] = {t: TopicScan() for t in topics}
        try:
            tps = [TopicPartition(t, 0) for t in topics]
            consumer.assign(tps)
            await consumer.seek_to_beginning(*tps)
            ends = await consumer.end_offsets(tps)
            deadline = time.monotonic() + timeout
            for tp in tps:
                scan = out[tp.topic]
                while await consumer.position(tp) < ends[tp] and time.monotonic() < deadline:
                    batch = await consumer.getmany(tp, timeout_ms=1000, max_records=100_000)
                    for msg in batch.get(tp, []):
                        if msg.value is None and not keep_values:
                            continue
                        scan.count += 1
                        ts = msg.timestamp
                        scan.first_ts = ts if scan.first_ts is None else min(scan.first_ts, ts)
                        scan.last_ts = ts if scan.last_ts is None else max(scan.last_ts, ts)
                        if keep_values:
                            scan.values.append((ts, msg.value))
        finally:
            await consumer.stop()
        return out

    return run_async(go())


def topic_end(bootstrap: str, topic: str) -> int:
    from aiokafka import AIOKafkaConsumer, TopicPartition

    async def go() -> int:
        consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap)
        await consumer.start()
        try:
            tp = TopicPartition(topic, 0)
            return int((await consumer.end_offsets([tp]))[tp])
        finally:
            await consumer.stop()

    return run_async(go())


def write_json(path: Path, doc: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(doc, indent=2, sort_keys=False, default=str) + "\n")
