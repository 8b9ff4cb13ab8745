"""Fixtures shared by every test: the real local stack, started once per session.

Pure-logic tests (tests/unit) never touch these; integration tests (tests/integration) ask for
``stack`` (ports of MariaDB and Kafka) and ``wordpress`` (a driver for the real WordPress install).
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

LOCAL = Path(__file__).resolve().parent.parent / "deploy" / "local"
sys.path.insert(0, str(LOCAL))

import stack as local_stack  # noqa: E402


@pytest.fixture(scope="session")
def stack() -> local_stack.Ports:
    """MariaDB, Kafka and WordPress up (idempotent; fast when already running)."""
    return local_stack.up()
