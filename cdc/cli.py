"""The ``wpcdc`` command: parses options, builds settings, delegates. Nothing else lives here.

Every option can also come from ``WPCDC_<OPTION>`` (e.g. ``WPCDC_MYSQL_HOST``) or from the TOML
file named by ``--config`` / ``WPCDC_CONFIG``; the command line wins, then the environment, then
the file, then the default.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import signal
import sys
from collections.abc import Callable
from typing import Any

import click

from cdc import __version__, logs
from cdc.config import (
    KafkaSettings,
    MysqlSettings,
    SnapshotSettings,
    StreamSettings,
    build_capture,
    default_checkpoint_topic,
    default_server_id,
    load_toml,
    read_secret,
    validate,
)
from cdc.errors import ConfigError, WpcdcError

log = logging.getLogger("wpcdc")
COMMANDS = ("stream", "backfill", "check", "status", "offsets")


def opt(name: str, **kw: Any) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """An option with its WPCDC_* environment variable shown in --help."""
    env = "WPCDC_" + name.lstrip("-").replace("-", "_").upper()
    return click.option(name, envvar=env, show_envvar=True, **kw)


def source_options(f: Callable[..., Any]) -> Callable[..., Any]:
    for decorator in reversed([
        opt("--name", default="wordpress", show_default=True,
            help="Connector name: keys the checkpoint, names topics and the transactional id."),
        opt("--mysql-host", default="127.0.0.1", show_default=True),
        opt("--mysql-port", type=int, default=3306, show_default=True),
        opt("--mysql-user", default="wpcdc", show_default=True),
        opt("--mysql-password", default="", help="Prefer WPCDC_MYSQL_PASSWORD or --mysql-password-file."),
        opt("--mysql-password-file", type=click.Path(dir_okay=False), default=None,
            help="File holding the password (a mounted Kubernetes Secret)."),
        opt("--mysql-database", default="wordpress", show_default=True, help="WordPress's schema."),
        opt("--mysql-ssl-ca", default=None, help="CA file: connect to MySQL over TLS."),
        opt("--table-prefix", default="wp_", show_default=True, help="WordPress $table_prefix."),
        opt("--blogs", default="", help="Comma-separated blog ids to capture (default: all)."),
        opt("--kafka-bootstrap", default="127.0.0.1:9092", show_default=True),
        opt("--kafka-security-protocol", default="PLAINTEXT", show_default=True,
            type=click.Choice(["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"])),
        opt("--kafka-sasl-mechanism", default=None,
            type=click.Choice(["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"])),
        opt("--kafka-sasl-username", default=None),
        opt("--kafka-sasl-password", default=None, help="Prefer the env var or --kafka-sasl-password-file."),
        opt("--kafka-sasl-password-file", type=click.Path(dir_okay=False), default=None),
        opt("--kafka-ssl-ca", default=None, help="CA file for Kafka over TLS."),
        opt("--topic", default=None, help="Event topic [default: wpcdc.<name>.posts]."),
        opt("--checkpoint-topic", default=None,
            help="Compacted topic for this connector's position [default: wpcdc.<name>.checkpoints]."),
    ]):
        f = decorator(f)
    return f


def _blogs(text: str) -> frozenset[int] | None:
    try:
        ids = frozenset(int(b) for b in text.split(",") if b.strip())
    except ValueError:
        raise ConfigError(f"--blogs {text!r}: expected comma-separated blog ids like 1,2") from None
    return ids or None


def _secrets(kw: dict[str, Any]) -> tuple[str, str | None]:
    """The passwords, registered for masking in logs before anything can print them."""
    mysql_password = read_secret(kw["mysql_password"], kw["mysql_password_file"], "MySQL password")
    kafka_password = read_secret(kw["kafka_sasl_password"], kw["kafka_sasl_password_file"],
                                 "Kafka SASL password") or None
    logs.register_secret(mysql_password)
    logs.register_secret(kafka_password)
    ctx = click.get_current_context(silent=True)
    for param in ("mysql_password", "kafka_sasl_password"):
        if ctx is not None and ctx.get_parameter_source(param) is click.core.ParameterSource.COMMANDLINE:
            option = "--" + param.replace("_", "-")
            log.warning("%s on the command line is visible to every user of this machine (ps, /proc): "
                        "use WPCDC_%s or %s-file instead", option, param.upper(), option)
    return mysql_password, kafka_password


def build_settings(kw: dict[str, Any]) -> StreamSettings:
    """Options (as click passes them) → validated StreamSettings."""
    name = kw["name"]
    mysql_password, kafka_password = _secrets(kw)
    mysql = MysqlSettings(
        host=kw["mysql_host"], port=kw["mysql_port"], user=kw["mysql_user"],
        password=mysql_password,
        database=kw["mysql_database"], ssl_ca=kw.get("mysql_ssl_ca"),
    )
    kafka = KafkaSettings(
        bootstrap=kw["kafka_bootstrap"], security_protocol=kw["kafka_security_protocol"],
        sasl_mechanism=kw["kafka_sasl_mechanism"], sasl_username=kw["kafka_sasl_username"],
        sasl_password=kafka_password,
        ssl_cafile=kw["kafka_ssl_ca"],
    )
    capture = build_capture(
        kw.get("ignore_meta"), kw.get("keep_meta"), kw.get("exclude_post_types"),
        kw.get("include_post_types"), kw.get("exclude_statuses"), kw.get("revisions", "attach"),
    )
    settings = StreamSettings(
        name=name, mysql=mysql, kafka=kafka, table_prefix=kw["table_prefix"], blog_ids=_blogs(kw["blogs"]),
        server_id=kw.get("server_id") or default_server_id(name),
        topic=kw["topic"] or f"wpcdc.{name}.posts", checkpoint_topic=kw["checkpoint_topic"] or default_checkpoint_topic(name),
        partitions=kw.get("partitions", 1), delivery=kw.get("delivery", "exactly-once"),
        window=kw.get("window", 2.0), max_delay=kw.get("max_delay", 30.0),
        max_pending_bytes=kw.get("max_pending_mb", 64) << 20,
        max_message_bytes=kw.get("max_message_bytes", 900_000),
        capture=capture, start=kw.get("start", "checkpoint"), metrics_port=kw.get("metrics_port"),
        metrics_host=kw.get("metrics_host", "0.0.0.0"), stall_timeout=kw.get("stall_timeout", 60.0),
        snapshot_mode=kw.get("snapshot") or "never", snapshot=_snapshot_settings(kw),
    )
    return validate(settings)


def _snapshot_settings(kw: dict[str, Any]) -> SnapshotSettings:
    id_min, id_max = 0, None
    text = kw.get("snapshot_id_range") or ""
    if text:
        low, sep, high = text.partition(":")
        try:
            id_min = int(low) if low else 0
            id_max = int(high) if high else None
        except ValueError:
            raise ConfigError(f"--snapshot-id-range {text!r}: expected MIN:MAX, e.g. 1000:2000 or 5000:") from None
        if not sep:
            raise ConfigError(f"--snapshot-id-range {text!r}: expected MIN:MAX, e.g. 1000:2000 or 5000:")
    types = frozenset(t.strip() for t in (kw.get("snapshot_post_types") or "").split(",") if t.strip())
    return SnapshotSettings(
        blog_ids=_blogs(kw.get("snapshot_blogs") or ""), post_types=types or None, id_min=id_min, id_max=id_max,
        chunk_size=500 if kw.get("snapshot_chunk_size") is None else kw["snapshot_chunk_size"], rows_per_second=kw.get("snapshot_rows_per_second"),
    )


def run_command(fn: Callable[..., int | None]) -> Callable[..., None]:
    """Map WpcdcError to its message and exit code; everything else is a bug with a traceback."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> None:
        try:
            code = fn(*args, **kwargs)
        except WpcdcError as exc:
            log.error("%s", exc)
            click.echo(f"wpcdc: {logs.redact(str(exc))}", err=True)
            sys.exit(exc.exit_code)
        except (click.ClickException, click.exceptions.Exit, click.Abort):
            raise
        except Exception as exc:  # a bug: its traceback as one log record (JSON, secrets masked)
            log.critical("unexpected error, please report it: %r", exc, exc_info=True)
            click.echo(f"wpcdc: unexpected error: {logs.redact(repr(exc))}", err=True)
            sys.exit(1)
        sys.exit(code or 0)

    return wrapper


EPILOG = """\b
Exit status:
  0      success; `stream` stopped by SIGTERM/SIGINT after writing a last checkpoint
  1      unexpected error (a bug: the traceback is in the log)
  2      usage or configuration error (the message names the option)
  3      no checkpoint for this connector (status, offsets show)
  10-18  a preflight check failed: 10 connect, 11 log_bin, 12 binlog_format,
         13 binlog_row_image, 14 binlog_row_metadata, 15 privileges, 16 tables,
         17 binlog compression, 18 Kafka
  20     the binlog could not be read
  21     the saved position is gone (binlog purged): see docs/operations.md
  22     the server refused the saved position
  23     the binlog holds a change wpcdc cannot turn into events (the message
         names the position, the cause and the remedy)
  30     Kafka did not accept a write or could not be read
  31     fenced: another instance with the same --name took over
  32     Kafka refused an event as too large: the topic's max.message.bytes is
         below --max-message-bytes (the message has the command to raise it)
  40     the checkpoint record is unreadable, or hidden behind another producer's
         open transaction (a shared checkpoint topic; retried by stream)
  41     no checkpoint, but the event topic holds events: the checkpoint was lost
         (resume with `offsets set`, or --start end, or backfill)
`stream` retries 20, 30 and a hidden checkpoint by itself (with backoff, until it works) and exits on the others.
Runbook, metrics, alerts: docs/operations.md."""


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100},
             epilog=EPILOG)
@click.version_option(__version__, prog_name="wpcdc")
@click.option("--config", envvar="WPCDC_CONFIG", type=click.Path(dir_okay=False),
              help="TOML file with option defaults ([mysql] host = … or mysql_host = …).")
@click.option("--log-level", envvar="WPCDC_LOG_LEVEL", default="info", show_default=True,
              type=click.Choice(["debug", "info", "warning", "error"], case_sensitive=False))
@click.option("--log-format", envvar="WPCDC_LOG_FORMAT", default="auto", show_default=True,
              type=click.Choice(["auto", "json", "text"]),
              help="auto: one JSON object per line unless stderr is a terminal.")
@click.pass_context
def main(ctx: click.Context, config: str | None, log_level: str, log_format: str) -> None:
    """Stream WordPress post changes from the MySQL/MariaDB binlog to Kafka.

    One event per change of a post, rebuilt from the rows WordPress writes, keyed by
    blog:post, in order, exactly once.

    \b
      wpcdc check     is the server set up (grants, binlog settings, tables)?
      wpcdc stream    stream until SIGTERM/SIGINT; /metrics, /healthz, /readyz
      wpcdc backfill  snapshot every existing post into the topic, then exit
      wpcdc status    where a connector stands: checkpoint, lag, pending
      wpcdc offsets   show or move the saved position

    Every option can also come from WPCDC_<OPTION> (WPCDC_MYSQL_HOST, ...) or from the TOML
    file given by --config: the command line wins, then the environment, then the file.
    Give passwords as WPCDC_MYSQL_PASSWORD / WPCDC_KAFKA_SASL_PASSWORD or as files
    (--mysql-password-file, --kafka-sasl-password-file), not on the command line.
    Logs go to stderr; results of check, status and offsets to stdout.
    """
    try:
        defaults = load_toml(config)
    except ConfigError as exc:
        raise click.UsageError(str(exc)) from None
    ctx.default_map = {cmd: defaults for cmd in COMMANDS} | {
        "offsets": {sub: defaults for sub in ("show", "set", "reset")}
    }
    ctx.obj = {"log_level": log_level, "log_format": log_format}
    logs.setup(log_level, log_format)


def _run(settings: StreamSettings, backfill_now: bool = False) -> None:
    """The event loop, with SIGINT/SIGTERM asking for a clean stop (flush, checkpoint)."""
    from cdc.pipeline import run_stream

    async def main_task() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        await run_stream(settings, stop, backfill_now=backfill_now)

    asyncio.run(main_task())


STREAM_OPTIONS = [
    opt("--server-id", type=int, default=None, help="Replica server_id [default: derived from --name]."),
    opt("--delivery", type=click.Choice(["exactly-once", "at-least-once"]), default="exactly-once",
        show_default=True, help="at-least-once for brokers without transactions."),
    opt("--window", type=float, default=2.0, show_default=True,
        help="Seconds a post must be quiet before its event is emitted (0: one event per transaction)."),
    opt("--max-delay", type=float, default=30.0, show_default=True, help="Longest a change waits, seconds."),
    opt("--max-pending-mb", type=int, default=64, show_default=True,
        help="Memory bound of pending changes; past it the oldest are emitted early."),
    opt("--max-message-bytes", type=int, default=900_000, show_default=True,
        help="Events larger than this get their largest text fields truncated (marked)."),
    opt("--partitions", type=int, default=1, show_default=True, help="Partitions of a new event topic."),
    opt("--ignore-meta", default="", help="More meta keys to ignore (comma-separated, 'prefix*' allowed)."),
    opt("--keep-meta", default="", help="Default-ignored meta keys to keep after all."),
    opt("--exclude-post-types", default="", help="More post types to leave out."),
    opt("--include-post-types", default="", help="Only these post types (overrides exclusions)."),
    opt("--exclude-statuses", default="", help="Post statuses to leave out (e.g. draft,private)."),
    opt("--revisions", type=click.Choice(["attach", "skip", "events"]), default="attach", show_default=True,
        help="attach: note saved revisions on the parent's event."),
    opt("--start", default="checkpoint", show_default=True,
        help="checkpoint (resume; new connectors start at the end), end, or FILE:POS."),
    opt("--metrics-port", type=int, default=None,
        help="Serve /metrics (Prometheus), /healthz (alive) and /readyz (connected, not stalled) on this port."),
    opt("--metrics-host", default="0.0.0.0", show_default=True, help="Address the metrics port listens on."),
    opt("--stall-timeout", type=float, default=60.0, show_default=True,
        help="Seconds without a binlog event, heartbeat or Kafka write before /readyz reports a stall."),
]


def stream_options(f: Callable[..., Any]) -> Callable[..., Any]:
    """What shapes the stream: shared by `stream` and `backfill` (which streams while it reads)."""
    for decorator in reversed(STREAM_OPTIONS):
        f = decorator(f)
    return f


def snapshot_options(f: Callable[..., Any]) -> Callable[..., Any]:
    for decorator in reversed([
        opt("--snapshot-blogs", default="", help="Backfill only these blog ids (comma-separated)."),
        opt("--snapshot-post-types", default="", help="Backfill only these post types (comma-separated)."),
        opt("--snapshot-id-range", default="", help="Backfill only post IDs in MIN:MAX (either side may be empty)."),
        opt("--snapshot-chunk-size", type=int, default=500, show_default=True,
            help="Posts per consistent read (1..10000)."),
        opt("--snapshot-rows-per-second", type=float, default=None,
            help="Throttle the backfill's reads (posts + meta + term rows per second)."),
    ]):
        f = decorator(f)
    return f


@main.command(short_help="Stream post events to Kafka until SIGTERM/SIGINT.")
@source_options
@stream_options
@snapshot_options
@opt("--snapshot", type=click.Choice(["never", "initial", "when_needed"]), default="never",
     show_default=True, help="Backfill existing posts: initial (a new connector), when_needed (also after "
     "the saved position was purged). An interrupted backfill always resumes.")
@click.pass_obj
@run_command
def stream(obj: dict[str, str], **kw: Any) -> int:
    """Stream post events to Kafka until SIGINT/SIGTERM (then flush, checkpoint, exit 0)."""
    settings = build_settings(kw)
    logs.setup(obj["log_level"], obj["log_format"], settings.name)
    _run(settings)
    log.info("stopped cleanly")
    return 0


@main.command(short_help="Snapshot every existing post into the topic, then exit.")
@source_options
@stream_options
@snapshot_options
@click.pass_obj
@run_command
def backfill(obj: dict[str, str], **kw: Any) -> int:
    """Emit every existing post as an `op: snapshot` event, streaming alongside, then exit 0.

    Run it in place of `wpcdc stream` (it takes over the connector's name, so stop the running
    stream first, or use `wpcdc stream --snapshot initial` instead). A killed backfill resumes
    where it stood at the next start of either command.
    """
    settings = build_settings(kw)
    logs.setup(obj["log_level"], obj["log_format"], settings.name)
    _run(settings, backfill_now=True)
    log.info("backfill done")
    return 0


@main.command(short_help="Check the server, grants, tables and saved position.")
@source_options
@run_command
def check(**kw: Any) -> int:
    """Check the server, the grants, the tables and the saved position; exit non-zero on failure.

    One line per check on stdout ("ok" or "FAIL" with the fix); the exit status names the first
    failed check (10-18, see `wpcdc --help`).
    """
    from cdc.checks import run_checks

    return run_checks(build_settings(kw))


@main.command(short_help="Where a connector stands: checkpoint, lag, pending.")
@source_options
@click.option("--json", "as_json", is_flag=True, help="Print one JSON document (for scripts).")
@run_command
def status(as_json: bool, **kw: Any) -> int:
    """Print where connector --name stands, read from Kafka (and MySQL when reachable).

    The committed checkpoint (resume position, when it was written, posts already emitted past
    it), the binlog after it on the server (lag, or that its file was purged) and the event topic
    (offsets committed and still in open transactions, the newest event). Read-only: safe
    while the connector runs. Exit 3 when the connector has no checkpoint yet.
    """
    from cdc.status import show_status

    return show_status(build_settings(kw), as_json)


@main.group()
def offsets() -> None:
    """Show or change the saved position (stop the connector first)."""


@offsets.command("show")
@source_options
@run_command
def offsets_show(**kw: Any) -> int:
    """Print the committed checkpoint as JSON."""
    from cdc.checks import show_offsets

    return show_offsets(build_settings(kw))


@offsets.command("set")
@source_options
@click.argument("position")
@run_command
def offsets_set(position: str, **kw: Any) -> int:
    """Resume from POSITION (FILE:POS, a transaction boundary) next time."""
    from cdc.checks import set_offsets
    from cdc.position import Position

    try:
        pos = Position.parse(position)
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
    return set_offsets(build_settings(kw), pos)


@offsets.command("reset")
@source_options
@run_command
def offsets_reset(**kw: Any) -> int:
    """Resume from the current end of the binlog next time (skips what happened meanwhile)."""
    from cdc.checks import set_offsets

    return set_offsets(build_settings(kw), None)
