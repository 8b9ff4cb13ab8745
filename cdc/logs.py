"""Logging: one JSON object per line when not on a terminal, readable lines on one.

Every record carries the connector name; records about a binlog place carry ``position``.
Secrets never reach a log: settings classes hide them from ``repr`` and messages name users and
hosts, never passwords.
"""

from __future__ import annotations

import logging
import sys

from pythonjsonlogger.json import JsonFormatter


class _Connector(logging.Filter):
    def __init__(self, connector: str) -> None:
        super().__init__()
        self.connector = connector

    def filter(self, record: logging.LogRecord) -> bool:
        record.connector = self.connector
        return True


def setup(level: str = "INFO", fmt: str = "auto", connector: str = "-") -> None:
    """``fmt``: json, text, or auto (json unless stderr is a terminal)."""
    if fmt == "auto":
        fmt = "text" if sys.stderr.isatty() else "json"
    handler = logging.StreamHandler(sys.stderr)
    if fmt == "json":
        handler.setFormatter(JsonFormatter(
            "{asctime}{levelname}{message}{connector}",
            style="{",
            rename_fields={"asctime": "ts", "levelname": "level"},
            datefmt="%Y-%m-%dT%H:%M:%S%z",
        ))
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)-7s %(connector)s: %(message)s"))
    handler.addFilter(_Connector(connector))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    for noisy in ("aiokafka", "pymysqlreplication"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, root.level))
