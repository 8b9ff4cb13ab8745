"""A Kafka Metadata request written by hand, so the stack scripts can see a cluster's state.

The stack scripts use only the standard library (they run before ``.venv`` exists), yet starting a
cluster needs more than an open port: a broker accepts connections before the controller has
unfenced it, and until then a topic with replication 3 cannot be created. The answer to one
Metadata request says what is true: a broker is listed only once it is unfenced, and each
partition carries its leader, replicas and in-sync replicas.

Metadata v4 (the oldest version Kafka 4 still answers) has no tagged fields, so encoding it takes
a few ``struct`` calls.
"""

from __future__ import annotations

import socket
import struct
from dataclasses import dataclass

_METADATA_API, _METADATA_VERSION = 3, 4


@dataclass(frozen=True)
class Partition:
    index: int
    leader: int  # -1 while the partition has no leader
    replicas: tuple[int, ...]
    isr: tuple[int, ...]
    error: int


@dataclass(frozen=True)
class Metadata:
    """One broker's view: live (unfenced) brokers by node id, the controller, topics' partitions."""

    brokers: dict[int, int]  # node id -> port
    controller: int
    topics: dict[str, tuple[Partition, ...]]
    topic_errors: dict[str, int]


class _Reader:
    def __init__(self, data: bytes) -> None:
        self.data, self.pos = data, 0

    def take(self, fmt: str) -> int:
        (value,) = struct.unpack_from(fmt, self.data, self.pos)
        self.pos += struct.calcsize(fmt)
        return int(value)

    def string(self) -> str | None:
        n = self.take(">h")
        if n < 0:
            return None
        self.pos += n
        return self.data[self.pos - n:self.pos].decode()

    def int_array(self) -> tuple[int, ...]:
        return tuple(self.take(">i") for _ in range(self.take(">i")))


def _request(topics: list[str] | None) -> bytes:
    client = b"wpcdc-stack"
    body = struct.pack(">hhih", _METADATA_API, _METADATA_VERSION, 1, len(client)) + client
    if topics is None:
        body += struct.pack(">i", -1)  # null: every topic
    else:
        body += struct.pack(">i", len(topics))
        for name in topics:
            raw = name.encode()
            body += struct.pack(">h", len(raw)) + raw
    body += b"\x00"  # allow_auto_topic_creation = false
    return struct.pack(">i", len(body)) + body


def _recv_exactly(sock: socket.socket, n: int) -> bytes:
    buf = bytearray()
    while len(buf) < n:
        chunk = sock.recv(n - len(buf))
        if not chunk:
            raise ConnectionError("the broker closed the connection")
        buf += chunk
    return bytes(buf)


def _parse(data: bytes) -> Metadata:
    r = _Reader(data)
    r.take(">i")  # correlation id
    r.take(">i")  # throttle time
    brokers: dict[int, int] = {}
    for _ in range(r.take(">i")):
        node = r.take(">i")
        r.string()  # host
        brokers[node] = r.take(">i")
        r.string()  # rack
    r.string()  # cluster id
    controller = r.take(">i")
    topics: dict[str, tuple[Partition, ...]] = {}
    errors: dict[str, int] = {}
    for _ in range(r.take(">i")):
        error = r.take(">h")
        name = r.string() or ""
        r.take(">b")  # is_internal
        parts = []
        for _ in range(r.take(">i")):
            p_error, index, leader = r.take(">h"), r.take(">i"), r.take(">i")
            parts.append(Partition(index, leader, r.int_array(), r.int_array(), p_error))
        topics[name] = tuple(sorted(parts, key=lambda p: p.index))
        errors[name] = error
    return Metadata(brokers, controller, topics, errors)


def metadata(port: int, topics: list[str] | None = None, timeout: float = 5.0) -> Metadata:
    """Ask the broker on 127.0.0.1:``port``; ``topics=None`` asks about every topic.

    Raises ``OSError`` when the broker does not answer (down, starting, or stopping).
    """
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        sock.sendall(_request(topics))
        (size,) = struct.unpack(">i", _recv_exactly(sock, 4))
        return _parse(_recv_exactly(sock, size))
