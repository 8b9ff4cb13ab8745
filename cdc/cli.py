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
    StreamSettings,
    build_capture,
    default_server_id,
    load_toml,
    read_secret,
    validate,
)
from cdc.errors import ConfigError, WpcdcError

log = logging.getLogger("wpcdc")
COMMANDS = ("stream", "check", "offsets")


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
        opt("--checkpoint-topic", default="wpcdc.checkpoints", show_default=True),
    ]):
        f = decorator(f)
    return f


def _blogs(text: str) -> frozenset[int] | None:
    try:
        ids = frozenset(int(b) for b in text.split(",") if b.strip())
    except ValueError:
        raise ConfigError(f"--blogs {text!r}: expected comma-separated blog ids like 1,2") from None
    return ids or None


def build_settings(kw: dict[str, Any]) -> StreamSettings:
    """Options (as click passes them) → validated StreamSettings."""
    name = kw["name"]
    mysql = MysqlSettings(
        host=kw["mysql_host"], port=kw["mysql_port"], user=kw["mysql_user"],
        password=read_secret(kw["mysql_password"], kw["mysql_password_file"], "MySQL password"),
        database=kw["mysql_database"], ssl_ca=kw.get("mysql_ssl_ca"),
    )
    kafka = KafkaSettings(
        bootstrap=kw["kafka_bootstrap"], security_protocol=kw["kafka_security_protocol"],
        sasl_mechanism=kw["kafka_sasl_mechanism"], sasl_username=kw["kafka_sasl_username"],
        sasl_password=read_secret(kw["kafka_sasl_password"], kw["kafka_sasl_password_file"], "Kafka SASL password")
        or None,
        ssl_cafile=kw["kafka_ssl_ca"],
    )
    capture = build_capture(
        kw.get("ignore_meta"), kw.get("keep_meta"), kw.get("exclude_post_types"),
        kw.get("include_post_types"), kw.get("exclude_statuses"), kw.get("revisions", "attach"),
    )
    settings = StreamSettings(
        name=name, mysql=mysql, kafka=kafka, table_prefix=kw["table_prefix"], blog_ids=_blogs(kw["blogs"]),
        server_id=kw.get("server_id") or default_server_id(name),
        topic=kw["topic"] or f"wpcdc.{name}.posts", checkpoint_topic=kw["checkpoint_topic"],
        partitions=kw.get("partitions", 1), delivery=kw.get("delivery", "exactly-once"),
        window=kw.get("window", 2.0), max_delay=kw.get("max_delay", 30.0),
        max_pending_bytes=kw.get("max_pending_mb", 64) << 20,
        max_message_bytes=kw.get("max_message_bytes", 900_000),
        capture=capture, start=kw.get("start", "checkpoint"), metrics_port=kw.get("metrics_port"),
    )
    return validate(settings)


def run_command(fn: Callable[..., int | None]) -> Callable[..., None]:
    """Map WpcdcError to its message and exit code; everything else is a bug with a traceback."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> None:
        try:
            code = fn(*args, **kwargs)
        except WpcdcError as exc:
            log.error("%s", exc)
            click.echo(f"wpcdc: {exc}", err=True)
            sys.exit(exc.exit_code)
        sys.exit(code or 0)

    return wrapper


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, prog_name="wpcdc")
@click.option("--config", envvar="WPCDC_CONFIG", type=click.Path(dir_okay=False),
              help="TOML file with option defaults ([mysql] host = … or mysql_host = …).")
@click.option("--log-level", envvar="WPCDC_LOG_LEVEL", default="info", show_default=True,
              type=click.Choice(["debug", "info", "warning", "error"], case_sensitive=False))
@click.option("--log-format", envvar="WPCDC_LOG_FORMAT", default="auto", show_default=True,
              type=click.Choice(["auto", "json", "text"]), help="auto: JSON unless on a terminal.")
@click.pass_context
def main(ctx: click.Context, config: str | None, log_level: str, log_format: str) -> None:
    """Stream WordPress post changes from the MySQL/MariaDB binlog to Kafka.

    One event per change of a post, rebuilt from the rows WordPress writes, keyed by
    blog:post, in order, exactly once. Start with `wpcdc check`, then `wpcdc stream`.
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


@main.command()
@source_options
@opt("--server-id", type=int, default=None, help="Replica server_id [default: derived from --name].")
@opt("--delivery", type=click.Choice(["exactly-once", "at-least-once"]), default="exactly-once",
     show_default=True, help="at-least-once for brokers without transactions.")
@opt("--window", type=float, default=2.0, show_default=True,
     help="Seconds a post must be quiet before its event is emitted (0: one event per transaction).")
@opt("--max-delay", type=float, default=30.0, show_default=True, help="Longest a change waits, seconds.")
@opt("--max-pending-mb", type=int, default=64, show_default=True,
     help="Memory bound of pending changes; past it the oldest are emitted early.")
@opt("--max-message-bytes", type=int, default=900_000, show_default=True,
     help="Events larger than this get their largest text fields truncated (marked).")
@opt("--partitions", type=int, default=1, show_default=True, help="Partitions of a new event topic.")
@opt("--ignore-meta", default="", help="More meta keys to ignore (comma-separated, 'prefix*' allowed).")
@opt("--keep-meta", default="", help="Default-ignored meta keys to keep after all.")
@opt("--exclude-post-types", default="", help="More post types to leave out.")
@opt("--include-post-types", default="", help="Only these post types (overrides exclusions).")
@opt("--exclude-statuses", default="", help="Post statuses to leave out (e.g. draft,private).")
@opt("--revisions", type=click.Choice(["attach", "skip", "events"]), default="attach", show_default=True,
     help="attach: note saved revisions on the parent's event.")
@opt("--start", default="checkpoint", show_default=True,
     help="checkpoint (resume; new connectors start at the end), end, or FILE:POS.")
@opt("--metrics-port", type=int, default=None, help="Serve /metrics, /healthz, /readyz on this port.")
@click.pass_obj
@run_command
def stream(obj: dict[str, str], **kw: Any) -> int:
    """Stream post events to Kafka until SIGINT/SIGTERM (then flush, checkpoint, exit 0)."""
    from cdc.pipeline import run_stream

    settings = build_settings(kw)
    logs.setup(obj["log_level"], obj["log_format"], settings.name)

    async def main_task() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        await run_stream(settings, stop)

    asyncio.run(main_task())
    log.info("stopped cleanly")
    return 0


@main.command()
@source_options
@run_command
def check(**kw: Any) -> int:
    """Check the server, the grants, the tables and the saved position; exit non-zero on failure."""
    from cdc.checks import run_checks

    return run_checks(build_settings(kw))


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
