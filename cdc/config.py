"""Settings: one frozen dataclass per concern, validated once, with messages an operator can act on.

Values come from the CLI, ``WPCDC_*`` environment variables and an optional TOML file, in that
order of precedence (click applies it: command line > env > ``default_map`` from the file >
default). Secrets can be given as files (``--mysql-password-file``), the way Kubernetes mounts them.

Defaults, ranges and choices are those declared in cdc/options.py; this module checks them and the
rules that tie two options together (those of TLS and SASL in cdc/security.py).
"""

from __future__ import annotations

import difflib
import re
import ssl
import tomllib
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from cdc import kafka_options, security
from cdc.errors import ConfigError
from cdc.options import BY_NAME, FILE_KEYS, OPTIONS, TABLES, Option, default
from cdc.permalinks import PostTypeBase, parse_post_type_bases
from cdc.wordpress import DEFAULT_EXCLUDED_POST_TYPES, DEFAULT_IGNORED_META, Capture, KeyPattern

LEGACY_CHECKPOINT_TOPIC = "wpcdc.checkpoints"  # shared by every connector before per-connector topics
TOPIC_NAME = re.compile(r"[A-Za-z0-9._-]{1,249}")


def default_checkpoint_topic(connector: str) -> str:
    """Each connector's own checkpoint topic: no other producer's transaction can hide its records."""
    return f"wpcdc.{connector}.checkpoints"


@dataclass(frozen=True)
class MysqlSettings:
    host: str = default("mysql_host")
    port: int = default("mysql_port")
    user: str = default("mysql_user")
    password: str = field(default=default("mysql_password"), repr=False)
    database: str = default("mysql_database")
    ssl_ca: str | None = default("mysql_ssl_ca")
    ssl_cert: str | None = default("mysql_ssl_cert")
    ssl_key: str | None = default("mysql_ssl_key")
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
class OAuthSettings:
    """Where SASL/OAUTHBEARER tokens come from (cdc/oauth.py): a token endpoint, with a client's
    id and secret (client credentials), or a file someone else keeps fresh."""

    token_endpoint: str | None = default("kafka_sasl_oauth_token_endpoint")
    client_id: str | None = default("kafka_sasl_oauth_client_id")
    client_secret: str | None = field(default=default("kafka_sasl_oauth_client_secret"), repr=False)
    scope: str | None = default("kafka_sasl_oauth_scope")
    audience: str | None = default("kafka_sasl_oauth_audience")
    ca_file: str | None = default("kafka_sasl_oauth_ca")
    token_file: str | None = default("kafka_sasl_oauth_token_file")

    @property
    def configured(self) -> bool:
        return any(getattr(self, f.name) for f in fields(self))


@dataclass(frozen=True)
class KafkaSettings:
    bootstrap: str = default("kafka_bootstrap")
    security_protocol: str = default("kafka_security_protocol")
    sasl_mechanism: str | None = default("kafka_sasl_mechanism")
    sasl_username: str | None = default("kafka_sasl_username")
    sasl_password: str | None = field(default=default("kafka_sasl_password"), repr=False)
    oauth: OAuthSettings = field(default_factory=OAuthSettings)
    ssl_cafile: str | None = default("kafka_ssl_ca")
    ssl_certfile: str | None = default("kafka_ssl_cert")
    ssl_keyfile: str | None = default("kafka_ssl_key")
    ssl_key_password: str | None = field(default=None, repr=False)
    options: kafka_options.Pairs = ()  # --kafka-option, as given: (("linger.ms", "5"), ...)
    request_timeout_ms: int = 30_000

    @property
    def tls(self) -> bool:
        return self.security_protocol in ("SSL", "SASL_SSL")

    def client_kwargs(self, client: str | None = None) -> dict[str, Any]:
        """aiokafka's arguments for ``client`` ("producer", "consumer" or "admin"); with None, only
        what every client takes, so one dict can build an admin client and consumers alike.

        ``--kafka-option`` settings come last and win; a producer-only one (``linger.ms``) is only
        in the producer's.
        """
        kw: dict[str, Any] = {
            "bootstrap_servers": self.bootstrap,
            "security_protocol": self.security_protocol,
            "request_timeout_ms": self.request_timeout_ms,
        }
        if self.sasl_mechanism == "OAUTHBEARER":
            from cdc import oauth

            kw["sasl_mechanism"] = self.sasl_mechanism
            kw["sasl_oauth_token_provider"] = oauth.provider_for(self.oauth)
        elif self.sasl_mechanism:
            kw["sasl_mechanism"] = self.sasl_mechanism
            kw["sasl_plain_username"] = self.sasl_username
            kw["sasl_plain_password"] = self.sasl_password
        if self.tls:
            kw["ssl_context"] = self.ssl_context()
        return kw | kafka_options.arguments(self.options, client)

    def ssl_context(self) -> ssl.SSLContext:
        """TLS to the brokers: their CA (else the system's), our certificate for mutual TLS, and the
        hostname check unless ``--kafka-option ssl.endpoint.identification.algorithm=`` turns it off."""
        from aiokafka.helpers import create_ssl_context

        context = create_ssl_context(cafile=self.ssl_cafile, certfile=self.ssl_certfile, keyfile=self.ssl_keyfile,
                                     password=self.ssl_key_password)
        context.check_hostname = kafka_options.hostname_check(self.options)
        return context


@dataclass(frozen=True)
class SnapshotSettings:
    """What ``wpcdc backfill`` (or ``--snapshot``) reads, and how fast."""

    blog_ids: frozenset[int] | None = None
    post_types: frozenset[str] | None = None
    id_min: int = 0
    id_max: int | None = None
    chunk_size: int = default("snapshot_chunk_size")
    rows_per_second: float | None = default("snapshot_rows_per_second")
    max_chunks_ahead: int = 8
    # Posts documented ahead of the stream's resume point: each carries a mark in the checkpoint
    # record (about 12 bytes), so this bounds the record (~50 KB) whatever the chunk size.
    max_posts_ahead: int = 4_000
    # Exactly these posts, per blog (``wpcdc verify --repair``): the filters above do not apply,
    # and a post not in the database gets its delete (cdc/backfill.py).
    ids: dict[int, tuple[int, ...]] | None = None

    def __post_init__(self) -> None:
        _check_declared(self, "snapshot.")
        if self.id_max is not None and self.id_max < self.id_min:
            raise ConfigError(f"--snapshot-id-range {self.id_min}:{self.id_max}: the range is empty")


@dataclass(frozen=True)
class StreamSettings:
    """Everything ``wpcdc stream`` needs; built by :func:`build_settings`."""

    name: str
    mysql: MysqlSettings
    kafka: KafkaSettings
    table_prefix: str = default("table_prefix")
    blog_ids: frozenset[int] | None = None
    server_id: int = 0  # 0: not set; build_settings derives one from the name
    topic: str = ""
    checkpoint_topic: str = ""
    term_topic: str = ""  # "": no term events (settings built in code without it)
    term_fanout: int = default("term_fanout")
    partitions: int = default("partitions")
    replication_factor: int | None = default("replication_factor")  # None: the cluster's default
    compression: str = default("compression")
    delivery: str = default("delivery")  # or "at-least-once"
    window: float = default("window")
    max_delay: float = default("max_delay")
    max_pending_bytes: int = default("max_pending_mb") << 20
    flush_interval: float = 0.1
    checkpoint_interval: float = 1.0
    checkpoint_keepalive: float = 5.0
    kafka_write_timeout: float = 60.0
    max_message_bytes: int = default("max_message_bytes")
    capture: Capture = field(default_factory=Capture)
    start: str = default("start")  # checkpoint | end | FILE:POS
    snapshot_mode: str = default("snapshot")  # never | initial | when_needed
    snapshot: SnapshotSettings = field(default_factory=SnapshotSettings)
    metrics_port: int | None = default("metrics_port")
    metrics_host: str = default("metrics_host")
    stall_timeout: float = default("stall_timeout")  # seconds without progress before /readyz says "stalled"
    binlog_poll_interval: float = default("binlog_poll_interval")  # SHOW BINARY LOGS for the retention metrics
    binlog_reader: str = default("binlog_reader")  # process | thread: cdc/source/reader_process.py
    post_type_bases: tuple[tuple[str, PostTypeBase], ...] = ()  # --post-type-base, parsed
    link_fanout: int = default("link_fanout")
    verify_timeout: float = default("verify_timeout")  # `wpcdc verify`: how long to wait for the connector
    repair_timeout: float = default("repair_timeout")  # `verify --repair`: how long to wait for the running connector

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
    """A TOML config file as click's default_map: keys are option names with '_' ("mysql_host").

    ``[mysql] host = …`` is ``mysql_host`` (tables nest: ``[kafka.sasl] username``), and '-' in a
    key reads as '_'. A key no command knows is refused with the nearest known one, because a typo
    would otherwise leave its option at the default without a word; keys of other commands than
    the one running are fine, since one file serves them all.
    """
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
    written: dict[str, str] = {}  # option name → the key as the file spells it
    for keys, value in _leaves(doc):
        name, shown = "_".join(keys).replace("-", "_"), ".".join(keys)
        table = _table_of(keys)
        if table is not None:
            option, entry = table
            if written.get(option.name, option.table) != option.table:
                raise ConfigError(f"config file {path}: {written[option.name]!r} and {option.table!r} both set "
                                  f"{option.flag}; keep one")
            written[option.name] = option.table or ""
            flat.setdefault(option.name, []).append(f"{entry}={_text(value)}")
            continue
        if name in BY_NAME and name not in FILE_KEYS:
            option = BY_NAME[name]
            raise ConfigError(f"config file {path}: {shown!r} cannot be set in the file; "
                              f"use {option.flag} or {option.envvar}")
        if name not in FILE_KEYS:
            raise ConfigError(f"config file {path}: unknown key {shown!r}{_nearest(keys)}")
        if name in written:
            raise ConfigError(f"config file {path}: {written[name]!r} and {shown!r} both set "
                              f"{BY_NAME[name].flag}; keep one")
        written[name] = shown
        flat[name] = value
    return flat


def _table_of(keys: tuple[str, ...]) -> tuple[Option, str] | None:
    """(option, "KEY") for an entry of a table option (``[kafka_options]`` or ``[kafka.options]``,
    ``request.timeout.ms = 5000``), else None. The entry's key keeps its dots: TOML reads a bare
    ``request.timeout.ms`` as nested tables, which join back to the Java name."""
    for i in range(1, len(keys)):
        option = TABLES.get("_".join(keys[:i]).replace("-", "_"))
        if option is not None:
            return option, ".".join(keys[i:])
    return None


def _text(value: Any) -> str:
    """A TOML value as the text a command-line KEY=VALUE would give (true, not True)."""
    return str(value).lower() if isinstance(value, bool) else str(value)


def _leaves(table: dict[str, Any], keys: tuple[str, ...] = ()) -> Iterator[tuple[tuple[str, ...], Any]]:
    """(keys, value) of every value that is not a table: ``[mysql] host`` → (("mysql", "host"), …)."""
    for key, value in table.items():
        if isinstance(value, dict):
            yield from _leaves(value, (*keys, key))
        else:
            yield (*keys, key), value


def _nearest(keys: tuple[str, ...]) -> str:
    """`` (did you mean 'mysql.host'?)``, spelt in the file's own form (table or flat), or ""."""
    name = "_".join(keys).replace("-", "_")
    match = difflib.get_close_matches(name, sorted(FILE_KEYS), n=1)
    if not match:
        return ""
    best = match[0]
    table = "_".join(keys[:-1]).replace("-", "_")
    if table and best.startswith(table + "_"):
        best = ".".join(keys[:-1]) + "." + best[len(table) + 1:]
    return f" (did you mean {best!r}?)"


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
    BY_NAME["revisions"].check(revisions)
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


def build_post_type_bases(text: str | None) -> tuple[tuple[str, PostTypeBase], ...]:
    """``--post-type-base`` parsed (cdc/permalinks.py), or ConfigError naming the bad entry."""
    try:
        return tuple(sorted(parse_post_type_bases(text).items()))
    except ValueError as exc:
        raise ConfigError(f"--post-type-base {exc}") from None


def validate(s: StreamSettings) -> StreamSettings:
    """Raise ConfigError naming the option and the fix for any value that cannot work."""
    _check_declared(s)
    if s.max_delay < s.window:
        raise ConfigError(f"--max-delay {s.max_delay} must be >= --window {s.window}")
    if s.start not in ("checkpoint", "end") and ":" not in s.start:
        raise ConfigError(f"--start {s.start!r}: use checkpoint, end, or FILE:POS")
    security.validate(s.mysql, s.kafka)
    from cdc.routing import TopicRouter  # here, not at the top: routing needs the event model

    TopicRouter(s.topic, s.name)  # the template's placeholders and characters
    if s.term_topic and not TOPIC_NAME.fullmatch(s.term_topic):
        raise ConfigError(f"--term-topic {s.term_topic!r}: a Kafka topic name takes letters, digits, '.', '_' "
                          "and '-' only (up to 249)")
    if s.term_topic and s.term_topic in (s.topic, s.checkpoint_topic):
        raise ConfigError(f"--term-topic {s.term_topic!r} is the event or checkpoint topic: term events need a "
                          "topic of their own (their keys are term ids, which would collide with post ids)")
    return s


def _check_declared(settings: object, prefix: str = "") -> None:
    """Each option that lands unchanged in ``settings`` (at its ``setting`` path, under ``prefix``)
    against its declared range, choices and pattern: the one place these are checked, whether the
    value came from the command line, the environment, the file or code."""
    for option in OPTIONS:
        if option.setting is None or not option.setting.startswith(prefix):
            continue
        value = settings
        for attr in option.setting[len(prefix):].split("."):
            value = getattr(value, attr)
        option.check(value)
