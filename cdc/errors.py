"""One exception root, families an operator can act on, and the exit code each one maps to.

Lower layers (pymysql, aiokafka) raise their own types; the stage that talks to them maps them to
these at its boundary, so the CLI only ever catches ``WpcdcError`` and prints ``str(exc)``, which is
always one actionable sentence. Exit codes are part of the CLI contract (docs/operations.md).
"""

from __future__ import annotations


class WpcdcError(Exception):
    """Root of every error wpcdc raises on purpose."""

    exit_code = 1


class ConfigError(WpcdcError):
    """A configuration value is missing or invalid."""

    exit_code = 2


class PreflightError(WpcdcError):
    """The source server is not set up for change data capture (one check failed)."""

    exit_code = 10

    def __init__(self, message: str, *, check: str, exit_code: int | None = None) -> None:
        super().__init__(message)
        self.check = check
        if exit_code is not None:
            self.exit_code = exit_code


class SourceError(WpcdcError):
    """The binlog could not be read; retriable unless a subclass says otherwise."""

    exit_code = 20
    retriable = True


class BinlogPurgedError(SourceError):
    """The position to resume from is no longer on the server (MySQL error 1236)."""

    exit_code = 21
    retriable = False


class InvalidPositionError(SourceError):
    """The server refused the position (MySQL error 1236 other than a purge)."""

    exit_code = 22
    retriable = False


class ReplicaReplacedError(SourceError):
    """Another replica with our server_id took the binlog stream: another instance runs."""

    exit_code = 31
    retriable = False


class SinkError(WpcdcError):
    """Kafka did not accept the events; retriable unless a subclass says otherwise."""

    exit_code = 30
    retriable = True


class FencedError(SinkError):
    """Another instance with the same connector name took over the transactional id."""

    exit_code = 31
    retriable = False


class RecordTooLargeError(SinkError):
    """Kafka refused a record as too large: the topic (or broker) accepts less than
    --max-message-bytes. Retrying cannot help; the operator raises the limit or lowers ours."""

    exit_code = 32
    retriable = False


class CheckpointError(WpcdcError):
    """The checkpoint topic could not be read or holds a record we cannot use."""

    exit_code = 40
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

    exit_code = 41


class UnsupportedChangeError(SourceError):
    """The binlog holds a change of a captured table that wpcdc cannot turn into correct events
    (a partial row image, a statement, a compressed event, a TRUNCATE/DROP/RENAME): the stream
    stops there, after writing everything before it, instead of skipping it in silence."""

    exit_code = 23
    retriable = False

    def __init__(self, message: str, *, position: object = None, end: object = None) -> None:
        super().__init__(message)
        self.position = position
        self.end = end
