"""Read a topic with each mainstream Kafka client, to check that wpcdc's consumers can.

wpcdc's readers are not all Python: a Next.js site reads with KafkaJS, a shell with kcat
(librdkafka, also what confluent-kafka-python and -go wrap), a JVM service with the Java client.
Each reader here runs the real client, read-committed and from the beginning, up to the end
offsets the broker reports at start, and returns the same :class:`Record` list, so a test can
compare what each client saw with what was produced.

The tools come from ``make deps`` (deploy/local/deps.sh): kcat from Debian, KafkaJS from
tests/clients/kafkajs/package-lock.json; the Java reader (tests/clients/java/ReadTopic.java) is
compiled here, once per version of its source, against the broker's own jars.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import shutil
import struct
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition

import stack as local_stack

REPO = Path(__file__).resolve().parents[2]
CLIENTS_DIR = REPO / "tests" / "clients"
TIMEOUT = 60.0


@dataclass(frozen=True)
class Record:
    """One record as a client saw it: key, value and header values decoded as UTF-8."""

    partition: int
    offset: int
    key: str | None
    value: str | None  # None: a tombstone
    headers: tuple[tuple[str, str | None], ...]


class ClientError(RuntimeError):
    """A client could not read the topic; the message is what the client said (its stderr)."""

    def __init__(self, client: str, message: str) -> None:
        super().__init__(f"{client}: {message}")
        self.client = client
        self.message = message


def _text(data: bytes | None) -> str | None:
    return None if data is None else data.decode("utf-8")


def _sorted(records: list[Record]) -> list[Record]:
    return sorted(records, key=lambda r: (r.partition, r.offset))


def _parse_lines(stdout: str, make: Callable[[dict[str, Any]], Record]) -> list[Record]:
    return _sorted([make(json.loads(line)) for line in stdout.splitlines() if line.strip()])


def _from_json(d: dict[str, Any]) -> Record:
    return Record(d["partition"], d["offset"], d["key"], d["value"],
                  tuple((k, v) for k, v in d["headers"]))


def _run(client: str, cmd: list[str], timeout: float, cwd: Path | None = None) -> str:
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout + 30, cwd=cwd)
    except FileNotFoundError as exc:
        raise ClientError(client, f"{cmd[0]} not found: make deps installs it") from exc
    except subprocess.TimeoutExpired as exc:
        raise ClientError(client, f"no end after {timeout + 30:.0f}s") from exc
    if proc.returncode != 0:
        errors = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
        raise ClientError(client, (errors[-1] if errors else proc.stderr.strip()[-2000:])
                          + f" (exit {proc.returncode})")
    return proc.stdout


# ------------------------------------------------------------------------------------- aiokafka


async def _read_aiokafka(topic: str, bootstrap: str, timeout: float) -> list[Record]:
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, isolation_level="read_committed",
                                enable_auto_commit=False, auto_offset_reset="earliest")
    await consumer.start()
    try:
        await consumer._client.force_metadata_update()  # noqa: SLF001
        tps = [TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic) or ())]
        if not tps:
            raise ClientError("aiokafka", f"topic {topic} not found")
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        ends = await consumer.end_offsets(tps)
        out: list[Record] = []
        async with asyncio.timeout(timeout):
            for tp in tps:
                while await consumer.position(tp) < ends[tp]:
                    for m in (await consumer.getmany(tp, timeout_ms=500)).get(tp, []):
                        out.append(Record(m.partition, m.offset, _text(m.key), _text(m.value),
                                          tuple((k, _text(v)) for k, v in m.headers)))
        return _sorted(out)
    finally:
        await consumer.stop()


def read_aiokafka(topic: str, bootstrap: str, timeout: float = TIMEOUT) -> list[Record]:
    """aiokafka, what wpcdc itself and Python consumers use."""
    try:
        return asyncio.run(_read_aiokafka(topic, bootstrap, timeout))
    except ClientError:
        raise
    except Exception as exc:  # a codec it cannot decode, a timeout: reported like the others
        raise ClientError("aiokafka", f"{type(exc).__name__}: {exc}") from exc


# ----------------------------------------------------------------------------------------- kcat


def _from_kcat(d: dict[str, Any]) -> Record:
    flat = d.get("headers") or []  # kcat -J: ["k1", "v1", "k2", "v2", ...]
    return Record(d["partition"], d["offset"], d["key"], d["payload"],
                  tuple(zip(flat[0::2], flat[1::2])))


def read_kcat(topic: str, bootstrap: str, timeout: float = TIMEOUT) -> list[Record]:
    """kcat (librdkafka), with its JSON envelope; -e stops at each partition's end."""
    cmd = ["kcat", "-C", "-b", bootstrap, "-t", topic, "-o", "beginning", "-e", "-J", "-q",
           "-X", "isolation.level=read_committed"]
    return _parse_lines(_run("kcat", cmd, timeout), _from_kcat)


# -------------------------------------------------------------------------------------- KafkaJS


def read_kafkajs(topic: str, bootstrap: str, timeout: float = TIMEOUT) -> list[Record]:
    """KafkaJS 2.2.4 (tests/clients/kafkajs/read.js), what most Next.js consumers use."""
    d = CLIENTS_DIR / "kafkajs"
    if not (d / "node_modules" / "kafkajs").is_dir():
        raise ClientError("kafkajs", f"{d}/node_modules is missing: make deps runs npm ci there")
    cmd = ["node", str(d / "read.js"), "--bootstrap", bootstrap, "--topic", topic,
           "--timeout-ms", str(int(timeout * 1000))]
    return _parse_lines(_run("kafkajs", cmd, timeout), _from_json)


# ----------------------------------------------------------------------------------------- Java

_LOG4J = """status = warn
appender.err.type = Console
appender.err.name = err
appender.err.target = SYSTEM_ERR
appender.err.layout.type = PatternLayout
appender.err.layout.pattern = %p %c: %m%n
rootLogger.level = WARN
rootLogger.appenderRef.err.ref = err
"""


def java_reader() -> tuple[Path, Path]:
    """(the broker's lib/, the directory of the compiled ReadTopic), compiled once per source."""
    lib = local_stack.kafka_lib()
    source = CLIENTS_DIR / "java" / "ReadTopic.java"
    digest = hashlib.sha256(source.read_bytes() + str(lib).encode()).hexdigest()[:16]
    out = local_stack.CACHE / "clients" / f"java-{digest}"
    if not (out / "ReadTopic.class").exists():
        javac = shutil.which("javac")
        if not javac:
            raise ClientError("java", "javac not found: install a Java 17 JDK")
        tmp = out.with_name(out.name + f".tmp{os.getpid()}")
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        _run("java", [javac, "-d", str(tmp), "-cp", f"{lib}/*", str(source)], TIMEOUT)
        (tmp / "log4j2.properties").write_text(_LOG4J)
        shutil.rmtree(out, ignore_errors=True)
        tmp.rename(out)  # last: a complete directory or none
    return lib, out


def read_java(topic: str, bootstrap: str, timeout: float = TIMEOUT) -> list[Record]:
    """The Java client (kafka-clients 4.1.1's KafkaConsumer) through tests/clients/java/ReadTopic."""
    lib, classes = java_reader()
    cmd = ["java", "-Xmx256m", "-XX:TieredStopAtLevel=1", "-Xshare:auto",
           f"-Dlog4j2.configurationFile={classes / 'log4j2.properties'}",
           "-cp", f"{lib}/*:{classes}", "ReadTopic", bootstrap, topic,
           str(2**62), str(int(timeout * 1000))]
    return _parse_lines(_run("java", cmd, timeout), _from_json)


# ------------------------------------------------------------------------------------ the log

_CODEC_NAMES = {0: "none", 1: "gzip", 2: "snappy", 3: "lz4", 4: "zstd"}


def log_codecs(topic: str) -> set[str]:
    """The codecs of the data batches in ``topic``'s log files on the local broker.

    Read from the segment files (the record batch header: base offset 8 bytes, length 4, leader
    epoch 4, magic 1, CRC 4, attributes 2), so a test knows the clients decoded the codec it
    meant, not batches the producer left uncompressed because compression did not pay.
    """
    codecs: set[str] = set()
    for log in sorted((local_stack.kafka_dir() / "data").glob(f"{topic}-*/*.log")):
        data, pos = log.read_bytes(), 0
        while pos + 23 <= len(data):
            length, magic = struct.unpack_from(">i", data, pos + 8)[0], data[pos + 16]
            attributes = struct.unpack_from(">h", data, pos + 21)[0]
            if length <= 0:
                break
            if magic == 2 and not attributes & 0x20:  # 0x20: a control batch (a commit or abort marker)
                codecs.add(_CODEC_NAMES.get(attributes & 0x07, f"unknown {attributes & 0x07}"))
            pos += 12 + length
    return codecs


# ------------------------------------------------------------------------------------ all of them

READERS: dict[str, Callable[[str, str], list[Record]]] = {
    "aiokafka": read_aiokafka,
    "kcat": read_kcat,
    "kafkajs": read_kafkajs,
    "java": read_java,
}


def read_all_clients(topic: str, bootstrap: str) -> dict[str, list[Record]]:
    """What each client reads of ``topic``; raises :class:`ClientError` naming the first that failed."""
    return {name: read(topic, bootstrap) for name, read in READERS.items()}
