"""The ``wpcdc`` command: parses options, builds settings, delegates. Nothing else lives here.

Every option can also come from ``WPCDC_<OPTION>`` (e.g. ``WPCDC_MYSQL_HOST``) or from the TOML
file named by ``--config`` / ``WPCDC_CONFIG``; the command line wins, then the environment, then
the file, then the default. The options themselves are declared in cdc/options.py.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import signal
import sys
from collections.abc import Callable
from typing import Any, TypeVar

import click

from cdc import __version__, logs, options
from cdc.config import (
    KafkaSettings,
    MysqlSettings,
    OAuthSettings,
    SnapshotSettings,
    StreamSettings,
    build_capture,
    build_post_type_bases,
    default_checkpoint_topic,
    default_server_id,
    load_toml,
    read_secret,
    validate,
)
from cdc.errors import RETRIED_BY_STREAM, ConfigError, Exit, WpcdcError, exit_table
from cdc.kafka_options import parse_assignments
from cdc.options import Option

log = logging.getLogger("wpcdc")
COMMANDS = options.COMMANDS
F = TypeVar("F", bound=Callable[..., Any])


def _click_option(o: Option, **extra: Any) -> Callable[[F], F]:
    """The click option of a declaration, with its WPCDC_* environment variable shown in --help."""
    kw: dict[str, Any] = {"envvar": o.envvar, "show_envvar": True, "default": o.default, "help": o.help_text}
    if o.show_default:
        kw["show_default"] = True
    if o.multiple:
        kw["multiple"] = True
    if o.choices:
        kw["type"] = click.Choice(o.choices, case_sensitive=o.case_sensitive)
    elif o.file:
        kw["type"] = click.Path(dir_okay=False)
    elif o.type is not str:
        kw["type"] = o.type
    return click.option(o.flag, **(kw | extra))


def declared(command: str, **extra: dict[str, Any]) -> Callable[[F], F]:
    """Every option declared for ``command``, in declaration order (``extra``: more click
    arguments for some of them, by option name)."""

    def decorate(f: F) -> F:
        for o in reversed(options.for_command(command)):
            f = _click_option(o, **extra.get(o.name, {}))(f)
        return f

    return decorate


def _blogs(text: str) -> frozenset[int] | None:
    try:
        ids = frozenset(int(b) for b in text.split(",") if b.strip())
    except ValueError:
        raise ConfigError(f"--blogs {text!r}: expected comma-separated blog ids like 1,2") from None
    return ids or None


def _secrets(kw: dict[str, Any]) -> dict[str, str | None]:
    """The passwords and the OAuth client secret, each from its option or its file, registered for
    masking in logs before anything can print them."""
    found: dict[str, str | None] = {
        "mysql": read_secret(kw["mysql_password"], kw["mysql_password_file"], "MySQL password"),
        "kafka": read_secret(kw["kafka_sasl_password"], kw["kafka_sasl_password_file"], "Kafka SASL password"),
        "oauth": read_secret(kw["kafka_sasl_oauth_client_secret"], kw["kafka_sasl_oauth_client_secret_file"],
                             "OAuth client secret"),
        "ssl_key": read_secret(None, kw["kafka_ssl_key_password_file"], "Kafka TLS key password"),
    }
    for value in found.values():
        logs.register_secret(value)
    ctx = click.get_current_context(silent=True)
    for o in options.OPTIONS:
        if o.secret and ctx is not None and ctx.get_parameter_source(o.name) is click.core.ParameterSource.COMMANDLINE:
            log.warning("%s on the command line is visible to every user of this machine (ps, /proc): "
                        "use %s or %s-file instead", o.flag, o.envvar, o.flag)
    return found


def _kafka_settings(kw: dict[str, Any], secrets: dict[str, str | None]) -> KafkaSettings:
    oauth = OAuthSettings(
        token_endpoint=kw["kafka_sasl_oauth_token_endpoint"], client_id=kw["kafka_sasl_oauth_client_id"],
        client_secret=secrets["oauth"] or None, scope=kw["kafka_sasl_oauth_scope"],
        audience=kw["kafka_sasl_oauth_audience"], ca_file=kw["kafka_sasl_oauth_ca"],
        token_file=kw["kafka_sasl_oauth_token_file"],
    )
    return KafkaSettings(
        bootstrap=kw["kafka_bootstrap"], security_protocol=kw["kafka_security_protocol"],
        sasl_mechanism=kw["kafka_sasl_mechanism"], sasl_username=kw["kafka_sasl_username"],
        sasl_password=secrets["kafka"] or None, oauth=oauth,
        ssl_cafile=kw["kafka_ssl_ca"], ssl_certfile=kw["kafka_ssl_cert"], ssl_keyfile=kw["kafka_ssl_key"],
        ssl_key_password=secrets["ssl_key"] or None,
        options=parse_assignments(kw["kafka_option"] or ()),
    )


def build_settings(kw: dict[str, Any]) -> StreamSettings:
    """Options (as click passes them) → validated StreamSettings.

    A command that lacks an option (``check`` has no --window) builds with its declared default.
    The settings are kept in the click context, for :func:`_failure_hint`.
    """
    kw = options.defaults() | kw
    name = kw["name"]
    secrets = _secrets(kw)
    mysql = MysqlSettings(
        host=kw["mysql_host"], port=kw["mysql_port"], user=kw["mysql_user"],
        password=secrets["mysql"] or "", database=kw["mysql_database"],
        ssl_ca=kw["mysql_ssl_ca"], ssl_cert=kw["mysql_ssl_cert"], ssl_key=kw["mysql_ssl_key"],
    )
    kafka = _kafka_settings(kw, secrets)
    capture = build_capture(
        kw["ignore_meta"], kw["keep_meta"], kw["exclude_post_types"],
        kw["include_post_types"], kw["exclude_statuses"], kw["revisions"],
    )
    settings = StreamSettings(
        name=name, mysql=mysql, kafka=kafka, table_prefix=kw["table_prefix"], blog_ids=_blogs(kw["blogs"]),
        server_id=default_server_id(name) if kw["server_id"] is None else kw["server_id"],
        topic=kw["topic"] or f"wpcdc.{name}.posts", checkpoint_topic=kw["checkpoint_topic"] or default_checkpoint_topic(name),
        term_topic=kw["term_topic"] or f"wpcdc.{name}.terms", term_fanout=kw["term_fanout"],
        partitions=kw["partitions"], replication_factor=kw["replication_factor"], compression=kw["compression"],
        delivery=kw["delivery"],
        window=kw["window"], max_delay=kw["max_delay"],
        max_pending_bytes=kw["max_pending_mb"] << 20,
        max_message_bytes=kw["max_message_bytes"],
        capture=capture, start=kw["start"], metrics_port=kw["metrics_port"],
        metrics_host=kw["metrics_host"], stall_timeout=kw["stall_timeout"],
        binlog_poll_interval=kw["binlog_poll_interval"], binlog_reader=kw["binlog_reader"],
        snapshot_mode=kw["snapshot"], snapshot=_snapshot_settings(kw), verify_timeout=kw["verify_timeout"],
        repair_timeout=kw["repair_timeout"],
        post_type_bases=build_post_type_bases(kw["post_type_base"]), link_fanout=kw["link_fanout"],
    )
    validate(settings)
    ctx = click.get_current_context(silent=True)
    if ctx is not None:
        ctx.meta["wpcdc.settings"] = settings
    return settings


def _failure_hint(code: int) -> str | None:
    """After a failure with exit ``code``: what a refused login the client libraries could not see
    would explain (cdc/login.py), when the server still refuses; else None."""
    from cdc import login

    ctx = click.get_current_context(silent=True)
    settings = ctx.meta.get("wpcdc.settings") if ctx is not None else None
    if not isinstance(settings, StreamSettings):
        return None
    if code in (Exit.KAFKA, Exit.SINK, Exit.CHECKPOINT):
        return login.explain(settings.kafka)
    if code == Exit.MYSQL_CONNECT:
        return login.explain_mysql(settings.mysql)
    return None


def _snapshot_settings(kw: dict[str, Any]) -> SnapshotSettings:
    kw = options.defaults() | kw
    id_min, id_max = 0, None
    text = kw["snapshot_id_range"]
    if text:
        low, sep, high = text.partition(":")
        try:
            id_min = int(low) if low else 0
            id_max = int(high) if high else None
        except ValueError:
            raise ConfigError(f"--snapshot-id-range {text!r}: expected MIN:MAX, e.g. 1000:2000 or 5000:") from None
        if not sep:
            raise ConfigError(f"--snapshot-id-range {text!r}: expected MIN:MAX, e.g. 1000:2000 or 5000:")
    types = frozenset(t.strip() for t in kw["snapshot_post_types"].split(",") if t.strip())
    return SnapshotSettings(
        blog_ids=_blogs(kw["snapshot_blogs"]), post_types=types or None, id_min=id_min, id_max=id_max,
        chunk_size=kw["snapshot_chunk_size"], rows_per_second=kw["snapshot_rows_per_second"],
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
            hint = _failure_hint(exc.exit_code)
            if hint:
                log.error("%s", hint)
                click.echo(f"wpcdc: {logs.redact(hint)}", err=True)
            sys.exit(exc.exit_code)
        except (click.ClickException, click.exceptions.Exit, click.Abort):
            raise
        except Exception as exc:  # a bug: its traceback as one log record (JSON, secrets masked)
            log.critical("unexpected error, please report it: %r", exc, exc_info=True)
            click.echo(f"wpcdc: unexpected error: {logs.redact(repr(exc))}", err=True)
            sys.exit(1)
        sys.exit(code or 0)

    return wrapper


EPILOG = ("\b\nExit status:\n" + exit_table()
          + "\n`stream` retries " + ", ".join(str(int(c)) for c in RETRIED_BY_STREAM)
          + " by itself (with backoff, until it works) and exits on the others."
          + "\nRunbook, metrics, alerts: docs/operations.md.")


def _config_file(ctx: click.Context, param: click.Parameter, path: str | None) -> str | None:
    """Read --config first (it is eager), so that the file's values are the defaults of the options
    parsed after it: the group's own (--log-level) and, through default_map, every command's."""
    try:
        values = load_toml(path)
    except ConfigError as exc:
        raise click.UsageError(str(exc)) from None
    ctx.default_map = values | {cmd: values for cmd in COMMANDS} | {
        "offsets": {sub: values for sub in ("show", "set", "reset")}
    }
    return path


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100},
             epilog=EPILOG)
@click.version_option(__version__, prog_name="wpcdc")
@declared("wpcdc", config={"is_eager": True, "expose_value": False, "callback": _config_file})
@click.pass_context
def main(ctx: click.Context, log_level: str, log_format: str) -> None:
    """Stream WordPress post changes from the MySQL/MariaDB binlog to Kafka.

    One event per change of a post, rebuilt from the rows WordPress writes, keyed by
    blog:post, in order, exactly once.

    \b
      wpcdc check     is the server set up (grants, binlog settings, tables)?
      wpcdc stream    stream until SIGTERM/SIGINT; /metrics, /healthz, /readyz
      wpcdc backfill  snapshot every existing post into the topic, then exit
      wpcdc status    where a connector stands: checkpoint, lag, pending
      wpcdc offsets   show or move the saved position
      wpcdc verify    compare the topic with the database (--repair: re-emit what differs)

    Every option can also come from WPCDC_<OPTION> (WPCDC_MYSQL_HOST, ...) or from the TOML
    file given by --config: the command line wins, then the environment, then the file.
    Give passwords as WPCDC_MYSQL_PASSWORD / WPCDC_KAFKA_SASL_PASSWORD or as files
    (--mysql-password-file, --kafka-sasl-password-file), not on the command line.
    Logs go to stderr; results of check, status and offsets to stdout.
    """
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


@main.command(short_help="Stream post events to Kafka until SIGTERM/SIGINT.")
@declared("stream")
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
@declared("backfill")
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
@declared("check")
@run_command
def check(**kw: Any) -> int:
    """Check the server, the grants, the tables and the saved position; exit non-zero on failure.

    One line per check on stdout ("ok" or "FAIL" with the fix); the exit status names the first
    failed check (10-18, see `wpcdc --help`).
    """
    from cdc.commands.check import run_checks

    code = run_checks(build_settings(kw))
    hint = _failure_hint(code)
    if hint:
        click.echo(f"      {logs.redact(hint)}")
    return code


@main.command(short_help="Where a connector stands: checkpoint, lag, pending.")
@declared("status")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON document (for scripts).")
@run_command
def status(as_json: bool, **kw: Any) -> int:
    """Print where connector --name stands, read from Kafka (and MySQL when reachable).

    The committed checkpoint (resume position, when it was written, posts already emitted past
    it), the binlog after it on the server (lag, or that its file was purged) and the event topic
    (offsets committed and still in open transactions, the newest event). Read-only: safe
    while the connector runs. Exit 3 when the connector has no checkpoint yet.
    """
    from cdc.commands.status import show_status

    return show_status(build_settings(kw), as_json)


@main.command(short_help="Compare the topic with the database; --repair re-emits what differs.")
@declared("verify")
@click.option("--repair", is_flag=True,
              help="Re-emit the posts that differ through the backfill: asks the running connector to "
              "(then verifies again), or runs the repair itself when the connector is stopped.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON document (for scripts).")
@click.pass_obj
@run_command
def verify(obj: dict[str, str], repair: bool, as_json: bool, **kw: Any) -> int:
    """Fold the event topic as a consumer does and compare every post with the database.

    Give it the connector's own options (the same --name, --blogs, capture options, --config or
    WPCDC_* environment). While the connector runs, verify compares at one point the connector
    has passed, and checks again each post that differs, so changes in flight are not reported.
    Posts that differ are listed on stdout and the exit status is 50.

    With --repair the posts that differ get a new document (or a delete, for a post the database
    no longer has) through the backfill, in order with the stream. Beside a running connector
    verify writes a repair request to its checkpoint topic, waits until the connector did it (up
    to --repair-timeout; then exit 52, the request stays pending and the connector does it) and
    verifies again: exit 0 only when nothing differs then. With the connector stopped it runs the
    repair itself under the connector's name (changes made while the connector was stopped count
    as differences then, and are re-emitted too); start the connector again and verify to confirm.
    """
    from cdc.commands.verify import run_verify

    settings = build_settings(kw)
    logs.setup(obj["log_level"], obj["log_format"], settings.name)
    return run_verify(settings, repair, as_json)


@main.group()
def offsets() -> None:
    """Show or change the saved position (stop the connector first)."""


@offsets.command("show")
@declared("offsets")
@run_command
def offsets_show(**kw: Any) -> int:
    """Print the committed checkpoint as JSON."""
    from cdc.commands.offsets import show_offsets

    return show_offsets(build_settings(kw))


@offsets.command("set")
@declared("offsets")
@click.argument("position")
@run_command
def offsets_set(position: str, **kw: Any) -> int:
    """Resume from POSITION (FILE:POS, a transaction boundary) next time."""
    from cdc.commands.offsets import set_offsets
    from cdc.position import Position

    try:
        pos = Position.parse(position)
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
    return set_offsets(build_settings(kw), pos)


@offsets.command("reset")
@declared("offsets")
@run_command
def offsets_reset(**kw: Any) -> int:
    """Resume from the current end of the binlog next time (skips what happened meanwhile)."""
    from cdc.commands.offsets import set_offsets

    return set_offsets(build_settings(kw), None)
