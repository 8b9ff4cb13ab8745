"""Logging: one JSON object per line when not on a terminal, readable lines on one.

Every record carries ``ts`` (UTC, RFC 3339), ``level``, ``message``, ``logger``, ``connector`` and
``position`` (the binlog place the record is about, else the last one read; null before the
first). Secrets never reach a log: settings classes hide them from ``repr``, messages name users
and hosts, never passwords, and as a last line of defence every password wpcdc was given is
registered here (:func:`register_secret`) and masked in whatever is written (tests/unit/test_logs.py
and tests/integration/test_operations.py check it).
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import sys

from pythonjsonlogger.json import JsonFormatter

MASK = "[redacted]"
_secrets: set[str] = set()
_position: object | None = None
_setup: tuple[str, str, str] | None = None  # the arguments of the last setup()


def register_secret(value: str | None) -> None:
    """Mask ``value`` in every log line and in :func:`redact` (values under 4 characters are not
    masked: that would mangle ordinary words, and such a password is no secret anyway)."""
    if value and len(value) >= 4:
        _secrets.add(value)
        _secrets.add(json.dumps(value)[1:-1])  # as it appears inside a JSON string


def redact(text: str) -> str:
    for secret in sorted(_secrets, key=len, reverse=True):
        if secret in text:
            text = text.replace(secret, MASK)
    return text


def set_position(position: object | None) -> None:
    """The binlog place the stream is at; records without their own ``position`` get it."""
    global _position
    _position = position


NOISY = ("aiokafka", "pymysqlreplication")


class _Throttle(logging.Filter):
    """Let a repeated message through once per ``seconds`` (aiokafka repeats connection errors
    several times a second while a broker is down; our own retry line says what is going on).

    On the handler, for records of the ``NOISY`` libraries and their child loggers (aiokafka logs
    as ``aiokafka.conn``, ``aiokafka.client`` ...: a filter on the parent logger would not see them).
    """

    def __init__(self, seconds: float = 30.0) -> None:
        super().__init__()
        self.seconds = seconds
        self._last: dict[str, float] = {}

    def filter(self, record: logging.LogRecord) -> bool:
        if not record.name.startswith(NOISY):
            return True
        now = record.created
        key = f"{record.name}:{record.msg}"
        if now - self._last.get(key, -1e9) < self.seconds:
            return False
        if len(self._last) > 1000:
            self._last.clear()
        self._last[key] = now
        return True


class _Context(logging.Filter):
    def __init__(self, connector: str) -> None:
        super().__init__()
        self.connector = connector

    def filter(self, record: logging.LogRecord) -> bool:
        record.connector = self.connector
        pos = getattr(record, "position", None) or _position
        record.position = str(pos) if pos is not None else None
        return True


class _Json(JsonFormatter):
    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:  # noqa: N802
        ts = dt.datetime.fromtimestamp(record.created, tz=dt.UTC)
        return ts.isoformat(timespec="milliseconds").replace("+00:00", "Z")


class _Text(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        position = getattr(record, "position", None)
        record.where = f" [{position}]" if position else ""
        return super().format(record)


class _Redacting(logging.Formatter):
    """Formats with ``inner``, then masks every registered secret in the result."""

    def __init__(self, inner: logging.Formatter) -> None:
        super().__init__()
        self.inner = inner

    def format(self, record: logging.LogRecord) -> str:
        return redact(self.inner.format(record))


def setup(level: str = "INFO", fmt: str = "auto", connector: str = "-") -> None:
    """``fmt``: json, text, or auto (json unless stderr is a terminal)."""
    global _setup
    _setup = (level, fmt, connector)
    if fmt == "auto":
        fmt = "text" if sys.stderr.isatty() else "json"
    handler = logging.StreamHandler(sys.stderr)
    inner: logging.Formatter
    if fmt == "json":
        inner = _Json(
            "{asctime}{levelname}{message}{name}{connector}{position}",
            style="{",
            rename_fields={"asctime": "ts", "levelname": "level", "name": "logger"},
        )
    else:
        inner = _Text("%(asctime)s %(levelname)-7s %(connector)s%(where)s: %(message)s",
                      datefmt="%Y-%m-%d %H:%M:%S")
    handler.setFormatter(_Redacting(inner))
    handler.addFilter(_Context(connector))
    handler.addFilter(_Throttle())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    for noisy in NOISY:
        logging.getLogger(noisy).setLevel(max(logging.WARNING, root.level))


def state() -> tuple[tuple[str, str, str] | None, list[str]]:
    """How logging is set up here, for a child process to do the same (:func:`restore`)."""
    return _setup, sorted(_secrets)


def restore(saved: tuple[tuple[str, str, str] | None, list[str]]) -> None:
    """In a child process: logging as :func:`state` found it in the parent, secrets masked alike."""
    setup_args, secrets = saved
    _secrets.update(secrets)
    if setup_args is not None:
        setup(*setup_args)
