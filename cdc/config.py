"""Settings: one frozen dataclass per concern, validated once, with messages an operator can act on.

Values come from the CLI, ``WPCDC_*`` environment variables and an optional TOML file, in that
order of precedence (click applies it: command line > env > ``default_map`` from the file >
default). Secrets can be given as files (``--mysql-password-file``), the way Kubernetes mounts them.
"""

from __future__ import annotations

import re
import tomllib
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cdc.errors import ConfigError
from cdc.wordpress import DEFAULT_EXCLUDED_POST_TYPES, DEFAULT_IGNORED_META, Capture, KeyPattern

NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}")


LEGACY_CHECKPOINT_TOPIC = "wpcdc.checkpoints"  # shared by every connector before per-connector topics


def default_checkpoint_topic(connector: str) -> str:
    """Each connector's own checkpoint topic: no other producer's transaction can hide its records."""
    return f"wpcdc.{connector}.checkpoints"


@dataclass(frozen=True)
class MysqlSettings:
    host: str = "127.0.0.1"
    port: int = 3306
    user: str = "wpcdc"
    password: str = field(default="", repr=False)
    database: str = "wordpress"
    ssl_ca: str | None = None
    ssl_cert: str | None = None
    ssl_key: str | None = None
    connect_timeout: float = 10.0

    def pymysql_kwargs(self) -> dict[str, Any]:
        kw: dict[str, Any] = {
            "host": self.host,
            "port": self.port,
            "user": self.user,
            "password": self.password,
            "connect_timeout": self.connect_timeout,
            "charset": "utf8mb4",
        }
        if self.ssl_ca or self.ssl_cert:
            kw["ssl"] = {k: v for k, v in (("ca", self.ssl_ca), ("cert", self.ssl_cert), ("key", self.ssl_key)) if v}
        return kw


@dataclass(frozen=True)
class KafkaSettings:
    bootstrap: str = "127.0.0.1:9092"
    security_protocol: str = "PLAINTEXT"
    sasl_mechanism: str | None = None
    sasl_username: str | None = None
    sasl_password: str | None = field(default=None, repr=False)
    ssl_cafile: str | None = None
    request_timeout_ms: int = 30_000

    def client_kwargs(self) -> dict[str, Any]:
        kw: dict[str, Any] = {
            "bootstrap_servers": self.bootstrap,
            "security_protocol": self.security_protocol,
            "request_timeout_ms": self.request_timeout_ms,
        }
        if self.sasl_mechanism:
            kw["sasl_mechanism"] = self.sasl_mechanism
            kw["sasl_plain_username"] = self.sasl_username
            kw["sasl_plain_password"] = self.sasl_password
        if self.security_protocol in ("SSL", "SASL_SSL"):
            from aiokafka.helpers import create_ssl_context

            kw["ssl_context"] = create_ssl_context(cafile=self.ssl_cafile)
        return kw


@dataclass(frozen=True)
class SnapshotSettings:
    """What ``wpcdc backfill`` (or ``--snapshot``) reads, and how fast."""

    blog_ids: frozenset[int] | None = None
    post_types: frozenset[str] | None = None
    id_min: int = 0
    id_max: int | None = None
    chunk_size: int = 500
    rows_per_second: float | None = None
    max_chunks_ahead: int = 8
    # Posts documented ahead of the stream's resume point: each carries a mark in the checkpoint
    # record (about 12 bytes), so this bounds the record (~50 KB) whatever the chunk size.
    max_posts_ahead: int = 4_000

    def __post_init__(self) -> None:
        if not 1 <= self.chunk_size <= 10_000:
            raise ConfigError(f"--snapshot-chunk-size {self.chunk_size}: must be 1..10000 (every post of a "
                              "chunk carries a mark in the checkpoint until the stream passes the chunk)")
        if self.rows_per_second is not None and self.rows_per_second <= 0:
            raise ConfigError(f"--snapshot-rows-per-second {self.rows_per_second}: must be > 0")
        if self.id_max is not None and self.id_max < self.id_min:
            raise ConfigError(f"--snapshot-id-range {self.id_min}:{self.id_max}: the range is empty")


@dataclass(frozen=True)
class StreamSettings:
    """Everything ``wpcdc stream`` needs; built by :func:`build_settings`."""

    name: str
    mysql: MysqlSettings
    kafka: KafkaSettings
    table_prefix: str = "wp_"
    blog_ids: frozenset[int] | None = None
    server_id: int = 0
    topic: str = ""
    checkpoint_topic: str = ""
    partitions: int = 1
    delivery: str = "exactly-once"  # or "at-least-once"
    window: float = 2.0
    max_delay: float = 30.0
    max_pending_bytes: int = 64 << 20
    flush_interval: float = 0.1
    checkpoint_interval: float = 1.0
    checkpoint_keepalive: float = 5.0
    kafka_write_timeout: float = 60.0
    max_message_bytes: int = 900_000
    capture: Capture = field(default_factory=Capture)
    start: str = "checkpoint"  # checkpoint | end | FILE:POS
    snapshot_mode: str = "never"  # never | initial | when_needed
    snapshot: SnapshotSettings = field(default_factory=SnapshotSettings)
    metrics_port: int | None = None
    metrics_host: str = "0.0.0.0"
    stall_timeout: float = 60.0  # seconds without progress before /readyz says "stalled"

    @property
    def transactional_id(self) -> str:
        return f"wpcdc-{self.name}"


def default_server_id(name: str) -> int:
    """A replica server_id stable per connector, away from the small ids humans pick."""
    return 1_000_000 + zlib.crc32(name.encode()) % 1_000_000_000


def read_secret(value: str | None, file: str | None, what: str) -> str:
    if file:
        try:
            return Path(file).read_text().rstrip("\r\n")
        except OSError as exc:
            raise ConfigError(f"cannot read {what} file {file}: {exc.strerror}") from None
    return value or ""


def load_toml(path: str | None) -> dict[str, Any]:
    """A TOML config file as click's default_map (keys are option names with '_')."""
    if not path:
        return {}
    try:
        with open(path, "rb") as fh:
            doc = tomllib.load(fh)
    except OSError as exc:
        raise ConfigError(f"cannot read config file {path}: {exc.strerror}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"config file {path} is not valid TOML: {exc}") from None
    flat: dict[str, Any] = {}
    for key, value in doc.items():
        if isinstance(value, dict):  # [mysql] host = … → mysql_host
            for sub, v in value.items():
                flat[f"{key}_{sub}".replace("-", "_")] = v
        else:
            flat[key.replace("-", "_")] = value
    return flat


def _csv(value: str | None) -> list[str]:
    return [v.strip() for v in (value or "").split(",") if v.strip()]


def build_capture(
    ignore_meta: str | None,
    keep_meta: str | None,
    exclude_types: str | None,
    include_types: str | None,
    exclude_statuses: str | None,
    revisions: str,
    skip_auto_drafts: bool = True,
) -> Capture:
    if revisions not in ("attach", "skip", "events"):
        raise ConfigError(f"--revisions must be attach, skip or events, got {revisions!r}")
    keep = set(_csv(keep_meta))
    ignored = [k for k in (*DEFAULT_IGNORED_META, *_csv(ignore_meta)) if k not in keep]
    excluded = set(DEFAULT_EXCLUDED_POST_TYPES) | set(_csv(exclude_types))
    included = frozenset(_csv(include_types)) or None
    return Capture(
        ignored_meta=KeyPattern(ignored),
        excluded_post_types=frozenset(excluded),
        included_post_types=included,
        excluded_statuses=frozenset(_csv(exclude_statuses)),
        revisions=revisions,
        skip_auto_drafts=skip_auto_drafts,
    )


def validate(s: StreamSettings) -> StreamSettings:
    """Raise ConfigError naming the option and the fix for any value that cannot work."""
    if not NAME.fullmatch(s.name):
        raise ConfigError(f"--name {s.name!r}: use 1-100 letters, digits, '.', '_' or '-'")
    if not re.fullmatch(r"[A-Za-z0-9_]+", s.table_prefix):
        raise ConfigError(f"--table-prefix {s.table_prefix!r}: letters, digits and '_' only")
    if not 1 <= s.mysql.port <= 65535:
        raise ConfigError(f"--mysql-port {s.mysql.port}: must be 1-65535")
    if s.delivery not in ("exactly-once", "at-least-once"):
        raise ConfigError(f"--delivery {s.delivery!r}: must be exactly-once or at-least-once")
    if s.window < 0:
        raise ConfigError(f"--window {s.window}: must be >= 0 seconds (0 = one event per transaction)")
    if s.max_delay < s.window:
        raise ConfigError(f"--max-delay {s.max_delay} must be >= --window {s.window}")
    if s.partitions < 1:
        raise ConfigError(f"--partitions {s.partitions}: must be >= 1")
    if s.max_message_bytes < 10_000:
        raise ConfigError(f"--max-message-bytes {s.max_message_bytes}: must be >= 10000")
    if s.max_message_bytes > 100 << 20:
        raise ConfigError(f"--max-message-bytes {s.max_message_bytes}: must be 10000..104857600 (100 MiB); "
                          "it must also be <= the broker's message.max.bytes and the topic's max.message.bytes, "
                          "or Kafka refuses the larger events")
    if not 1 <= s.server_id < 2**32:
        raise ConfigError(f"--server-id {s.server_id}: must be 1..4294967295 and unique among replicas")
    if s.start not in ("checkpoint", "end") and ":" not in s.start:
        raise ConfigError(f"--start {s.start!r}: use checkpoint, end, or FILE:POS")
    if s.stall_timeout <= 0:
        raise ConfigError(f"--stall-timeout {s.stall_timeout}: must be > 0 seconds")
    if s.metrics_port is not None and not 0 <= s.metrics_port <= 65535:
        raise ConfigError(f"--metrics-port {s.metrics_port}: must be 0-65535")
    _validate_security(s.mysql, s.kafka)
    return s


def _readable(option: str, path: str | None) -> None:
    if path is None:
        return
    try:
        with open(path, "rb"):
            pass
    except OSError as exc:
        raise ConfigError(f"{option} {path}: cannot read it ({exc.strerror})") from None


def _validate_security(mysql: MysqlSettings, kafka: KafkaSettings) -> None:
    """TLS files readable, SASL complete; messages name options, never a password."""
    _readable("--mysql-ssl-ca", mysql.ssl_ca)
    _readable("--kafka-ssl-ca", kafka.ssl_cafile)
    sasl = kafka.security_protocol.startswith("SASL_")
    if sasl and not kafka.sasl_mechanism:
        raise ConfigError(f"--kafka-security-protocol {kafka.security_protocol} needs --kafka-sasl-mechanism "
                          "(PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512)")
    if kafka.sasl_mechanism and not sasl:
        raise ConfigError(f"--kafka-sasl-mechanism {kafka.sasl_mechanism} needs --kafka-security-protocol "
                          "SASL_SSL (or SASL_PLAINTEXT on a trusted network)")
    if sasl and not (kafka.sasl_username and kafka.sasl_password):
        raise ConfigError("Kafka SASL needs --kafka-sasl-username and a password (WPCDC_KAFKA_SASL_PASSWORD "
                          "or --kafka-sasl-password-file)")
    if kafka.ssl_cafile and kafka.security_protocol not in ("SSL", "SASL_SSL"):
        raise ConfigError(f"--kafka-ssl-ca is set but --kafka-security-protocol is {kafka.security_protocol}: "
                          "use SSL or SASL_SSL to connect over TLS")
