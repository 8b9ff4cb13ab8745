"""Run ``python -m cdc stream`` over a binlog range and measure it.

wpcdc starts at ``--start FILE:POS`` (the workload's start) with its own event topic and its own
compacted checkpoint topic, both created beforehand with broker append-time timestamps. It is done when a
committed checkpoint of this connector resumes at or past the workload's end: from then on every
row of the range is in a committed Kafka transaction. CPU and peak RSS come from /proc.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from bench.common import PY, REPO, Pos, ProcWatch, Stack, TopicScan, create_topics, scan_topics, stop_process
from bench.common import stack as stackmod


@dataclass
class RunResult:
    connector: str
    started: float  # wall clock (time.time) when the process was spawned
    ready: float | None  # wall clock when it began reading the binlog
    done: float | None  # wall clock when the last output of the range was committed in Kafka
    first_output: float | None
    cpu_seconds: float
    peak_rss: int
    events: int
    timed_out: bool = False
    cpu_at_ready: float = 0.0  # CPU seconds spent before it began reading (startup)
    extra: dict[str, Any] = field(default_factory=dict)
    rss_samples: list[tuple[float, int]] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        d = {k: v for k, v in self.__dict__.items() if k != "rss_samples"}
        return d


def _env(st: Stack, database: str) -> dict[str, str]:
    env = dict(os.environ)
    env.update(stackmod.env())
    env["WPCDC_MYSQL_DATABASE"] = database
    env["WPCDC_LOG_FORMAT"] = "text"
    env["PYTHONPATH"] = str(REPO)
    return env


def _failures(logfile: Path) -> list[str]:
    """Session failures wpcdc healed by restarting from its checkpoint ("…; retrying in …")."""
    try:
        text = logfile.read_text(errors="replace")
    except OSError:
        return []
    return [line for line in text.splitlines() if "retrying in" in line]


def checkpoint_topic(name: str) -> str:
    """Each run its own compacted checkpoint topic, as a connector has by default
    (``wpcdc.<name>.checkpoints``). One topic shared by every run made a run's start-up read the
    checkpoints of all runs before it: 28,000 records, 4-5 CPU s, after a day of benches."""
    return f"bench.{name}.checkpoints"


async def _wait_checkpoint(bootstrap: str, name: str, end: Pos, proc: subprocess.Popen[bytes],
                           timeout: float, logfile: Path, max_restarts: int) -> tuple[float | None, bool]:
    """Broker time (s) of the first committed checkpoint of ``name`` at or past ``end``."""
    from aiokafka import AIOKafkaConsumer, TopicPartition

    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, isolation_level="read_committed",
                                enable_auto_commit=False, auto_offset_reset="earliest")
    await consumer.start()
    tp = TopicPartition(checkpoint_topic(name), 0)
    consumer.assign([tp])
    await consumer.seek_to_beginning(tp)
    key = name.encode()
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise RuntimeError(f"wpcdc exited with {proc.returncode} before draining the range")
            failures = _failures(logfile)
            if len(failures) > max_restarts:
                raise RuntimeError(f"wpcdc restarted {len(failures)} times without draining the range; "
                                   f"last failure: {failures[-1][:600]}")
            batch = await consumer.getmany(tp, timeout_ms=200)
            for msg in batch.get(tp, []):
                if msg.key != key or msg.value is None:
                    continue
                resume = orjson.loads(msg.value)["resume"]
                if Pos.of(resume["file"], resume["pos"]) >= end:
                    return msg.timestamp / 1000, False
        return None, True
    finally:
        await consumer.stop()


def run(st: Stack, *, label: str, database: str, start: Pos, end: Pos | None, window: float = 0.5,
        max_pending_mb: int | None = None, timeout: float = 600.0, logdir: Path,
        extra_args: list[str] | None = None, during: Any = None, max_restarts: int = 2,
        ) -> tuple[RunResult, TopicScan]:
    """Stream [start, end) through wpcdc. With ``end`` None, ``during()`` writes the workload while
    wpcdc runs live and returns the end position itself (the latency bench)."""
    name = f"bench-{label}-{int(time.time())}"
    topic = f"bench.{name}.posts"
    create_topics(st.kafka, [topic])
    create_topics(st.kafka, [checkpoint_topic(name)], compact=True)
    logdir.mkdir(parents=True, exist_ok=True)
    logfile = logdir / f"wpcdc-{label}.log"
    cmd = [PY, "-m", "cdc", "--log-level", "info", "stream", "--name", name, "--window", str(window),
           "--start", f"{start.file}:{start.pos}", "--topic", topic, "--checkpoint-topic", checkpoint_topic(name),
           *(["--max-pending-mb", str(max_pending_mb)] if max_pending_mb else []), *(extra_args or [])]
    out = open(logfile, "wb")
    started = time.time()
    proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env=_env(st, database), cwd=REPO)
    watch = ProcWatch(proc.pid)
    ready = None
    cpu_ready = 0.0
    try:
        deadline = time.monotonic() + 60
        while ready is None and time.monotonic() < deadline:
            if proc.poll() is not None:
                raise RuntimeError(f"wpcdc exited with {proc.returncode}; see {logfile}")
            if b"streaming from" in logfile.read_bytes():
                ready = time.time()
                watch.sample()
                cpu_ready = watch.cpu
                break
            time.sleep(0.02)
        if during is not None:
            end = during()
        assert end is not None
        done, timed_out = asyncio.run(_wait_checkpoint(st.kafka, name, end, proc, timeout, logfile, max_restarts))
    finally:
        watch.finish()
        stop_process(proc, 30)
        out.close()
    scan = scan_topics(st.kafka, [topic], keep_values=during is not None)[topic]
    res = RunResult("wpcdc", started, ready, done, (scan.first_ts or 0) / 1000 or None, watch.cpu,
                    watch.peak_rss, scan.count, timed_out, cpu_ready,
                    extra={"topic": topic, "name": name, "window": window, "max_pending_mb": max_pending_mb,
                           "end": str(end)})
    res.rss_samples = watch.samples
    return res, scan
