"""Every configuration option, declared once: name, type, default, allowed values, help, commands.

The click options of ``wpcdc`` (cdc/cli.py), the keys a ``--config`` TOML file may hold and the
range checks in cdc/config.py are all read from :data:`OPTIONS`, so a default or a bound said in
one place cannot disagree with another. What involves two options at once (``--max-delay`` >=
``--window``, SASL given completely, TLS files readable) stays as code in :func:`cdc.config.validate`.
A repeatable option (``--kafka-option``) may also be a table of the file (``[kafka_options]``), each
entry one ``KEY=VALUE``.

This module knows nothing of click or of the settings classes: it is data plus the one check each
option's own value must pass.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from cdc.errors import ConfigError

GLOBAL = ("wpcdc",)  # options of the command group itself, before the command's name
SOURCE = ("stream", "backfill", "check", "status", "offsets", "verify")  # every command that connects
# Commands shaped like the stream: `verify` compares under the connector's capture policy, and its
# --repair runs the connector's own session.
STREAMING = ("stream", "backfill", "verify")
COMMANDS = SOURCE


@dataclass(frozen=True)
class Option:
    """One option. ``name`` is the parameter name ("mysql_port"): ``--mysql-port`` on the command
    line, ``WPCDC_MYSQL_PORT`` in the environment, ``mysql_port`` or ``[mysql] port`` in the file."""

    name: str
    default: Any = None
    type: type = str  # str, int or float: what the command line's text is converted to
    help: str | None = None  # "{allowed}" in it is replaced by the allowed range
    commands: tuple[str, ...] = SOURCE
    choices: tuple[str, ...] = ()
    case_sensitive: bool = True
    low: float | None = None  # inclusive, unless low_open
    low_open: bool = False
    high: float | None = None  # inclusive
    pattern: str | None = None  # the whole value must match
    pattern_rule: str = ""  # the pattern in words, for its error message
    note: str = ""  # said after the allowed range when a value is refused
    file: bool = False  # the value names a file to read
    secret: bool = False  # a password: warned about on the command line, masked in logs
    in_file: bool = True  # may be set in the --config file
    setting: str | None = None  # where the value lands unchanged in StreamSettings ("mysql.port")
    multiple: bool = False  # repeatable on the command line; a list in the file (or ``table``)
    table: str | None = None  # the file's table of KEY = VALUE entries, each one occurrence ("KEY=VALUE")

    @property
    def flag(self) -> str:
        return "--" + self.name.replace("_", "-")

    @property
    def envvar(self) -> str:
        return "WPCDC_" + self.name.upper()

    @property
    def show_default(self) -> bool:
        """Defaults that say something are shown in --help; None and "" mean "not set"."""
        return self.default not in (None, "")

    @property
    def help_text(self) -> str | None:
        return self.help.replace("{allowed}", self.allowed) if self.help else None

    @property
    def allowed(self) -> str:
        """The allowed values in words: "1..65535", ">= 0", "> 0", "a, b or c"; "" if any value goes."""
        if self.choices:
            return _either(self.choices)
        if self.low is not None and self.high is not None:
            return f"{_number(self.low)}..{_number(self.high)}"
        if self.low is not None:
            return f"{'>' if self.low_open else '>='} {_number(self.low)}"
        if self.high is not None:
            return f"<= {_number(self.high)}"
        return ""

    def check(self, value: Any) -> None:
        """Raise ConfigError naming the option and what it accepts; None (not set) always passes."""
        if value is None:
            return
        if self.choices:
            known = self.choices if self.case_sensitive else tuple(c.lower() for c in self.choices)
            if (value if self.case_sensitive else str(value).lower()) not in known:
                raise ConfigError(f"{self.flag} {value!r}: must be {self.allowed}")
        too_low = self.low is not None and (value < self.low or (self.low_open and value == self.low))
        too_high = self.high is not None and value > self.high
        if too_low or too_high:
            raise ConfigError(f"{self.flag} {value}: must be {self.allowed}{self.note}")
        if self.pattern is not None and not re.fullmatch(self.pattern, value):
            raise ConfigError(f"{self.flag} {value!r}: {self.pattern_rule}")


def _number(x: float) -> str:
    return str(int(x)) if float(x).is_integer() else str(x)


def _either(words: Iterable[str]) -> str:
    *head, last = words
    return f"{', '.join(head)} or {last}" if head else last


OPTIONS: tuple[Option, ...] = (
    # ------------------------------------------------ the group: wpcdc [these] <command>
    Option("config", file=True, commands=GLOBAL, in_file=False,
           help="TOML file with option defaults ([mysql] host = … or mysql_host = …)."),
    Option("log_level", "info", commands=GLOBAL, choices=("debug", "info", "warning", "error"),
           case_sensitive=False),
    Option("log_format", "auto", commands=GLOBAL, choices=("auto", "json", "text"),
           help="auto: one JSON object per line unless stderr is a terminal."),
    # ------------------------------------------------ where to read, where to write: every command
    Option("name", "wordpress", setting="name", pattern=r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}",
           pattern_rule="use 1-100 letters, digits, '.', '_' or '-'",
           help="Connector name: keys the checkpoint, names topics and the transactional id."),
    Option("mysql_host", "127.0.0.1", setting="mysql.host"),
    Option("mysql_port", 3306, int, setting="mysql.port", low=1, high=65535),
    Option("mysql_user", "wpcdc", setting="mysql.user"),
    Option("mysql_password", "", setting="mysql.password", secret=True,
           help="Prefer WPCDC_MYSQL_PASSWORD or --mysql-password-file."),
    Option("mysql_password_file", file=True, help="File holding the password (a mounted Kubernetes Secret)."),
    Option("mysql_database", "wordpress", setting="mysql.database", help="WordPress's schema."),
    Option("mysql_ssl_ca", setting="mysql.ssl_ca", help="CA file: connect to MySQL over TLS."),
    Option("mysql_ssl_cert", setting="mysql.ssl_cert",
           help="Client certificate (PEM) for an account that REQUIREs X509; with --mysql-ssl-key."),
    Option("mysql_ssl_key", setting="mysql.ssl_key", help="Private key (PEM) of --mysql-ssl-cert."),
    Option("table_prefix", "wp_", setting="table_prefix", pattern=r"[A-Za-z0-9_]+",
           pattern_rule="letters, digits and '_' only", help="WordPress $table_prefix."),
    Option("blogs", "", help="Comma-separated blog ids to capture (default: all)."),
    Option("kafka_bootstrap", "127.0.0.1:9092", setting="kafka.bootstrap"),
    Option("kafka_security_protocol", "PLAINTEXT", setting="kafka.security_protocol",
           choices=("PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL")),
    Option("kafka_sasl_mechanism", setting="kafka.sasl_mechanism",
           choices=("PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512", "OAUTHBEARER")),
    Option("kafka_sasl_username", setting="kafka.sasl_username"),
    Option("kafka_sasl_password", setting="kafka.sasl_password", secret=True,
           help="Prefer the env var or --kafka-sasl-password-file."),
    Option("kafka_sasl_password_file", file=True),
    Option("kafka_sasl_oauth_token_endpoint", setting="kafka.oauth.token_endpoint",
           help="OAUTHBEARER: the identity provider's token URL (client credentials grant)."),
    Option("kafka_sasl_oauth_client_id", setting="kafka.oauth.client_id"),
    Option("kafka_sasl_oauth_client_secret", setting="kafka.oauth.client_secret", secret=True,
           help="Prefer the env var or --kafka-sasl-oauth-client-secret-file."),
    Option("kafka_sasl_oauth_client_secret_file", file=True),
    Option("kafka_sasl_oauth_scope", setting="kafka.oauth.scope", help="Scopes to ask for (space-separated)."),
    Option("kafka_sasl_oauth_audience", setting="kafka.oauth.audience",
           help="Sent as the token request's audience parameter (Auth0, Okta, Keycloak)."),
    Option("kafka_sasl_oauth_ca", setting="kafka.oauth.ca_file",
           help="CA file for an https token endpoint [default: the system's CAs]."),
    Option("kafka_sasl_oauth_token_file", setting="kafka.oauth.token_file",
           help="OAUTHBEARER: a file holding the token, read at every login (a projected service-account token)."),
    Option("kafka_ssl_ca", setting="kafka.ssl_cafile", help="CA file for Kafka over TLS."),
    Option("kafka_ssl_cert", setting="kafka.ssl_certfile",
           help="Client certificate (PEM) for mutual TLS; with --kafka-ssl-key."),
    Option("kafka_ssl_key", setting="kafka.ssl_keyfile", help="Private key (PEM) of --kafka-ssl-cert."),
    Option("kafka_ssl_key_password_file", file=True, help="File holding the password of an encrypted --kafka-ssl-key."),
    Option("kafka_option", (), multiple=True, table="kafka_options",
           help="Another Kafka client setting by its Java name: KEY=VALUE, repeatable (request.timeout.ms=60000, "
           "linger.ms, batch.size, client.id ...; docs/operations.md lists them). In the file: a [kafka_options] table."),
    Option("topic", help="Event topic [default: wpcdc.<name>.posts]; a template with {name}, {blog_id} and "
           "{post_type} routes each blog or post type to its own topic (created as first needed)."),
    Option("checkpoint_topic",
           help="Compacted topic for this connector's position [default: wpcdc.<name>.checkpoints]."),
    Option("term_topic", help="Topic of term events (a term renamed, moved or deleted) [default: wpcdc.<name>.terms]."),
    # ------------------------------------------------ what shapes the stream: stream, backfill
    Option("server_id", type=int, commands=STREAMING, setting="server_id", low=1, high=2**32 - 1,
           note=" and unique among replicas", help="Replica server_id [default: derived from --name]."),
    Option("delivery", "exactly-once", commands=STREAMING, setting="delivery",
           choices=("exactly-once", "at-least-once"), help="at-least-once for brokers without transactions."),
    Option("window", 2.0, float, commands=STREAMING, setting="window", low=0,
           note=" seconds (0 = one event per transaction)",
           help="Seconds a post must be quiet before its event is emitted (0: one event per transaction)."),
    Option("max_delay", 30.0, float, commands=STREAMING, setting="max_delay",
           help="Longest a change waits, seconds."),
    Option("max_pending_mb", 64, int, commands=STREAMING,
           help="Memory bound of pending changes; past it the oldest are emitted early."),
    Option("max_message_bytes", 900_000, int, commands=(*STREAMING, "check"), setting="max_message_bytes",
           low=10_000, high=100 << 20,
           note=" (100 MiB); it must also be <= the broker's message.max.bytes and the topic's "
           "max.message.bytes, or Kafka refuses the larger events",
           help="Events larger than this get their largest text fields truncated (marked)."),
    Option("partitions", 1, int, commands=STREAMING, setting="partitions", low=1,
           help="Partitions of a new event topic."),
    Option("replication_factor", type=int, commands=(*STREAMING, "check", "offsets"), setting="replication_factor",
           low=1, high=32,
           help="Replicas of the topics wpcdc creates [default: the brokers' default.replication.factor]."),
    Option("compression", "none", commands=STREAMING, setting="compression",
           choices=("none", "gzip", "snappy", "lz4", "zstd"),
           help="Codec of the event batches. none and gzip are read by every client (KafkaJS has no "
           "snappy, lz4 or zstd without plugins); zstd is the cheapest compression when all your clients read it."),
    Option("term_fanout", 0, int, commands=STREAMING, setting="term_fanout", low=0, high=10_000,
           help="Also an update event (action term_changed) for each post of a renamed term, when it has at most "
           "this many posts (0: off; beyond: a warning and the term event only)."),
    Option("ignore_meta", "", commands=STREAMING,
           help="More meta keys to ignore (comma-separated, 'prefix*' allowed)."),
    Option("keep_meta", "", commands=STREAMING, help="Default-ignored meta keys to keep after all."),
    Option("exclude_post_types", "", commands=STREAMING, help="More post types to leave out."),
    Option("include_post_types", "", commands=STREAMING, help="Only these post types (overrides exclusions)."),
    Option("exclude_statuses", "", commands=STREAMING, help="Post statuses to leave out (e.g. draft,private)."),
    Option("revisions", "attach", commands=STREAMING, setting="capture.revisions",
           choices=("attach", "skip", "events"), help="attach: note saved revisions on the parent's event."),
    Option("start", "checkpoint", commands=STREAMING, setting="start",
           help="checkpoint (resume; new connectors start at the end), end, or FILE:POS."),
    Option("metrics_port", type=int, commands=STREAMING, setting="metrics_port", low=0, high=65535,
           help="Serve /metrics (Prometheus), /healthz (alive) and /readyz (connected, not stalled) on this port."),
    Option("metrics_host", "0.0.0.0", commands=STREAMING, setting="metrics_host",
           help="Address the metrics port listens on."),
    Option("stall_timeout", 60.0, float, commands=STREAMING, setting="stall_timeout", low=0, low_open=True,
           note=" seconds",
           help="Seconds without a binlog event, heartbeat or Kafka write before /readyz reports a stall."),
    Option("binlog_reader", "process", commands=STREAMING, setting="binlog_reader", choices=("process", "thread"),
           help="Where the binlog is read and decoded: a second process, so reading and the pipeline run on "
                "two cores, or a thread of the connector's own process (one core). "
                "See docs/performance.md."),
    Option("binlog_poll_interval", 30.0, float, commands=STREAMING, setting="binlog_poll_interval", low=1, high=3600,
           note=" seconds",
           help="How often SHOW BINARY LOGS is polled (own connection) for the binlog retention metrics ({allowed})."),
    # ------------------------------------------------ links (cdc/permalinks.py): stream, backfill
    Option("post_type_base", "", commands=STREAMING,
           help="URL base of custom post types, TYPE=BASE[:hierarchical],… (product=shop/product): the path "
           "before the slug in their URLs. Other custom types link as ?post_type=TYPE&p=ID."),
    Option("link_fanout", 1000, int, commands=STREAMING, setting="link_fanout", low=0, high=100_000,
           help="Descendants (child pages, attachments) whose URL moved with a post's get a 'moved' event each, "
           "up to this many per flush; past it the post's event says so (0: none)."),
    # ------------------------------------------------ what a backfill reads: stream, backfill
    Option("snapshot_blogs", "", commands=STREAMING, help="Backfill only these blog ids (comma-separated)."),
    Option("snapshot_post_types", "", commands=STREAMING, help="Backfill only these post types (comma-separated)."),
    Option("snapshot_id_range", "", commands=STREAMING,
           help="Backfill only post IDs in MIN:MAX (either side may be empty)."),
    Option("snapshot_chunk_size", 500, int, commands=STREAMING, setting="snapshot.chunk_size", low=1, high=10_000,
           note=" (every post of a chunk carries a mark in the checkpoint until the stream passes the chunk)",
           help="Posts per consistent read ({allowed})."),
    Option("snapshot_rows_per_second", type=float, commands=STREAMING, setting="snapshot.rows_per_second",
           low=0, low_open=True, help="Throttle the backfill's reads (posts + meta + term rows per second)."),
    Option("snapshot", "never", commands=("stream",), setting="snapshot_mode",
           choices=("never", "initial", "when_needed"),
           help="Backfill existing posts: initial (a new connector), when_needed (also after the saved position "
           "was purged). An interrupted backfill always resumes."),
    # ------------------------------------------------ verify: the topic against the database
    Option("verify_timeout", 120.0, float, commands=("verify",), setting="verify_timeout", low=0,
           note=" seconds (0 = do not wait)",
           help="Seconds to wait for the connector to checkpoint past the position verify compares at "
           "(0: compare the topic as it stands; changes not written yet then count as differences)."),
    Option("repair_timeout", 600.0, float, commands=("verify",), setting="repair_timeout", low=0,
           note=" seconds",
           help="verify --repair beside a running connector: seconds to wait for it to do the repair "
           "(after that the request stays pending, exit 52)."),
)

BY_NAME: dict[str, Option] = {o.name: o for o in OPTIONS}
FILE_KEYS: frozenset[str] = frozenset(o.name for o in OPTIONS if o.in_file)
TABLES: dict[str, Option] = {o.table: o for o in OPTIONS if o.table}  # the file's [kafka_options] → its option


def for_command(command: str) -> list[Option]:
    """The options of ``command`` ("stream", "offsets", or "wpcdc" for the group), in --help order."""
    return [o for o in OPTIONS if command in o.commands]


def default(name: str) -> Any:
    """The declared default of option ``name``: what the settings classes start from too."""
    return BY_NAME[name].default


def defaults() -> dict[str, Any]:
    """Every option at its default: what a command that lacks an option builds its settings from."""
    return {o.name: o.default for o in OPTIONS}
