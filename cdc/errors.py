"""One exception root, families an operator can act on, and the exit code each one maps to.

Lower layers (pymysql, aiokafka) raise their own types; the stage that talks to them maps them to
these at its boundary, so the CLI only ever catches ``WpcdcError`` and prints ``str(exc)``, which is
always one actionable sentence. Exit codes are part of the CLI contract: :data:`EXIT_CODES` is
their one table, which ``wpcdc --help`` prints and docs/operations.md must match (a test checks).
"""

from __future__ import annotations

from enum import IntEnum


class Exit(IntEnum):
    OK = 0
    BUG = 1
    CONFIG = 2
    NO_CHECKPOINT = 3
    MYSQL_CONNECT = 10
    LOG_BIN = 11
    BINLOG_FORMAT = 12
    ROW_IMAGE = 13
    ROW_METADATA = 14
    PRIVILEGES = 15
    TABLES = 16
    COMPRESSION = 17
    KAFKA = 18
    SOURCE = 20
    BINLOG_PURGED = 21
    INVALID_POSITION = 22
    UNSUPPORTED_CHANGE = 23
    SINK = 30
    FENCED = 31
    RECORD_TOO_LARGE = 32
    CHECKPOINT = 40
    CHECKPOINT_MISSING = 41
    VERIFY_MISMATCH = 50
    VERIFY_BEHIND = 51
    REPAIR_PENDING = 52


# code → (what it means, in a line for --help; the commands that exit with it, as the docs list them)
EXIT_CODES: dict[Exit, tuple[str, str]] = {
    Exit.OK: ("success; `stream` stopped by SIGTERM/SIGINT after writing a last checkpoint", "all"),
    Exit.BUG: ("unexpected error (a bug: the traceback is in the log)", "all"),
    Exit.CONFIG: ("usage or configuration error (the message names the option)", "all"),
    Exit.NO_CHECKPOINT: ("no checkpoint for this connector", "`status`, `offsets show`, `verify`"),
    Exit.MYSQL_CONNECT: ("preflight: MySQL refused the login or the TLS handshake, or the database does not exist "
                         "(`stream` waits for an unreachable server instead)", "`check`, start of `stream`"),
    Exit.LOG_BIN: ("preflight: log_bin is off", "`check`, start of `stream`"),
    Exit.BINLOG_FORMAT: ("preflight: binlog_format is not ROW", "`check`, start of `stream`"),
    Exit.ROW_IMAGE: ("preflight: binlog_row_image is not FULL", "`check`, start of `stream`"),
    Exit.ROW_METADATA: ("preflight: binlog_row_metadata is not FULL", "`check`, start of `stream`"),
    Exit.PRIVILEGES: ("preflight: missing privileges (the message has the GRANT)", "`check`, start of `stream`"),
    Exit.TABLES: ("preflight: the WordPress tables are not there", "`check`, start of `stream`"),
    Exit.COMPRESSION: ("preflight: binlog transaction compression is on", "`check`, start of `stream`"),
    Exit.KAFKA: ("Kafka unreachable, refusing the login, or its topics contradict what wpcdc needs", "`check`"),
    Exit.SOURCE: ("MySQL failed during the command (retried by stream)", "`offsets set`, `offsets reset` (retried by `stream`)"),
    Exit.BINLOG_PURGED: ("the saved position is gone (binlog purged): see docs/operations.md",
                         "`stream`, `check`, `offsets set`"),
    Exit.INVALID_POSITION: ("the server refused the saved position", "`stream`"),
    Exit.UNSUPPORTED_CHANGE: ("the binlog holds a change wpcdc cannot turn into events (the message names "
                              "the position, the cause and the remedy)", "`stream`, `backfill`"),
    Exit.SINK: ("Kafka did not accept a write or could not be read (retried by stream)", "`offsets`, `status` (retried by `stream`)"),
    Exit.FENCED: ("fenced: another instance with the same --name took over, or another replica with the same "
                  "server_id (the message says how to tell them apart)", "`stream`, `backfill`"),
    Exit.RECORD_TOO_LARGE: ("Kafka refused an event as too large: the topic's max.message.bytes is below "
                            "--max-message-bytes (the message has the command to raise it)", "`stream`, `backfill`"),
    Exit.CHECKPOINT: ("the checkpoint record is unreadable, or hidden behind another producer's open "
                      "transaction (retried by stream)", "`stream`, `offsets`, `status`"),
    Exit.CHECKPOINT_MISSING: ("no checkpoint, but the event topic holds events: the checkpoint was lost "
                              "(resume with `offsets set`, --start end, or backfill)", "`stream`, `check`"),
    Exit.VERIFY_MISMATCH: ("verify found posts whose state in the topic differs from the database (listed on "
                           "stdout; `verify --repair` re-emits them)", "`verify`"),
    Exit.VERIFY_BEHIND: ("verify: the connector's checkpoint did not pass the position to compare at within "
                         "--verify-timeout (is `wpcdc stream` running?)", "`verify`"),
    Exit.REPAIR_PENDING: ("verify --repair: the repair is not done yet: the running connector did not finish it "
                          "within --repair-timeout (the request stays pending; the connector does it), the "
                          "stopped connector must finish a backfill first, or nothing was committed on the "
                          "server since the posts' last events", "`verify --repair`"),
}
RETRIED_BY_STREAM = (Exit.SOURCE, Exit.SINK, Exit.CHECKPOINT)


def exit_table(width: int = 100) -> str:
    """The exit codes as ``--help`` shows them."""
    import textwrap

    lines = []
    for code, (meaning, _) in EXIT_CODES.items():
        wrapped = textwrap.wrap(meaning, width - 8, break_on_hyphens=False) or [""]
        lines.append(f"  {int(code):<5} {wrapped[0]}")
        lines += [f"        {more}" for more in wrapped[1:]]
    return "\n".join(lines)


class WpcdcError(Exception):
    """Root of every error wpcdc raises on purpose."""

    exit_code: int = Exit.BUG


class ConfigError(WpcdcError):
    """A configuration value is missing or invalid."""

    exit_code: int = Exit.CONFIG


class LibraryVersionError(ConfigError):
    """The installed mysql-replication is not a release whose internals wpcdc was written for
    (another version, or a copy without a private name wpcdc patches or reads): see
    cdc/source/library.py."""


class PreflightError(WpcdcError):
    """The source server is not set up for change data capture (one check failed).

    ``retriable``: the check could not run because the server was unreachable (not because it
    answered no), so ``stream`` waits and tries again rather than exiting into a crash loop.
    """

    exit_code: int = Exit.MYSQL_CONNECT

    def __init__(self, message: str, *, check: str, exit_code: Exit | None = None, retriable: bool = False) -> None:
        super().__init__(message)
        self.check = check
        self.retriable = retriable
        if exit_code is not None:
            self.exit_code = exit_code


class SourceError(WpcdcError):
    """The binlog could not be read; retriable unless a subclass says otherwise."""

    exit_code: int = Exit.SOURCE
    retriable = True


class SourceUnreachableError(SourceError):
    """No connection to MySQL could be made (refused, timed out, unknown host, too many
    connections): the server may be back in a moment, unlike a refused login."""


class BinlogPurgedError(SourceError):
    """The position to resume from is no longer on the server (MySQL error 1236)."""

    exit_code: int = Exit.BINLOG_PURGED
    retriable = False


class InvalidPositionError(SourceError):
    """The server refused the position (MySQL error 1236 other than a purge)."""

    exit_code: int = Exit.INVALID_POSITION
    retriable = False


class ReplicaReplacedError(SourceError):
    """Another binlog client with our server_id connected and the server dropped us: a second
    instance of this connector, or another connector or replica using the same server_id."""

    exit_code: int = Exit.FENCED
    retriable = False


class SinkError(WpcdcError):
    """Kafka did not accept the events; retriable unless a subclass says otherwise."""

    exit_code: int = Exit.SINK
    retriable = True


class FencedError(SinkError):
    """Another instance with the same connector name took over the transactional id."""

    exit_code: int = Exit.FENCED
    retriable = False


class RecordTooLargeError(SinkError):
    """Kafka refused a record as too large: the topic (or broker) accepts less than
    --max-message-bytes. Retrying cannot help; the operator raises the limit or lowers ours."""

    exit_code: int = Exit.RECORD_TOO_LARGE
    retriable = False


class CheckpointError(WpcdcError):
    """The checkpoint topic could not be read or holds a record we cannot use."""

    exit_code: int = Exit.CHECKPOINT
    retriable = False


class CheckpointBlockedError(CheckpointError):
    """A transaction another producer left open on the checkpoint topic hides newer records
    (under read_committed nothing past its first offset is visible): resuming from what is
    visible would repeat events, so the connector waits and retries instead."""

    retriable = True


class CheckpointMissingError(CheckpointError):
    """No checkpoint for this connector, yet its event topic holds events: the checkpoint was lost
    (a deleted topic, another --checkpoint-topic or --name). Starting at the end would skip every
    change since in silence, so the connector stops unless told how to start."""

    exit_code: int = Exit.CHECKPOINT_MISSING


class UnsupportedChangeError(SourceError):
    """The binlog holds a change of a captured table that wpcdc cannot turn into correct events
    (a partial row image, a statement, a compressed event, a TRUNCATE/DROP/RENAME): the stream
    stops there, after writing everything before it, instead of skipping it in silence."""

    exit_code: int = Exit.UNSUPPORTED_CHANGE
    retriable = False

    def __init__(self, message: str, *, position: object = None, end: object = None) -> None:
        super().__init__(message)
        self.position = position
        self.end = end


class VerifyError(WpcdcError):
    """``wpcdc verify`` found differences, or could not compare at a consistent point."""

    exit_code: int = Exit.VERIFY_MISMATCH


class MismatchError(VerifyError):
    """Posts differ between the event topic and the database (the report lists them)."""


class NoCheckpointError(VerifyError):
    """The connector has no checkpoint: there is no position to wait for."""

    exit_code: int = Exit.NO_CHECKPOINT


class ConnectorBehindError(VerifyError):
    """The connector's checkpoint did not pass the position verify compares at, in time: verify
    would report every change still in flight as a mismatch, so it stops instead."""

    exit_code: int = Exit.VERIFY_BEHIND


class RepairPendingError(VerifyError):
    """``verify --repair`` is not done: the running connector did not finish its repair requests
    within ``--repair-timeout`` (they stay in the checkpoint topic and the connector does them:
    cdc/repair_requests.py), or the connector is stopped with a backfill of its own to finish
    first (verify would count every post it has not read yet as a difference), or the binlog did
    not move past the posts' last events within ``--repair-timeout`` (documents read there would
    repeat their ``seq``)."""

    exit_code: int = Exit.REPAIR_PENDING
