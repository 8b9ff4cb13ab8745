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


@pytest.fixture(scope="session")
def wordpress(stack: local_stack.Ports):  # type: ignore[no-untyped-def]
    """The multisite network (database ``wordpress``, prefix ``wp_``, blogs 1 and 2)."""
    from wordpress import WordPress

    return WordPress.multisite()


@pytest.fixture(scope="session")
def wp_single(stack: local_stack.Ports):  # type: ignore[no-untyped-def]
    """The single site (database ``wpsingle``, prefix ``site_``)."""
    from wordpress import WordPress

    return WordPress.single()


@pytest.fixture(scope="session")
def cdc_env(stack: local_stack.Ports) -> dict[str, str]:
    """WPCDC_* variables that point a connector at the local stack as the least-privilege user."""
    return local_stack.env(stack)


@pytest.fixture
def connectors(cdc_env: dict[str, str]):  # type: ignore[no-untyped-def]
    """A factory of `wpcdc stream` processes; all are stopped when the test ends."""
    from tests.integration.harness import Connector

    started: list[Connector] = []

    def make(**kw):  # type: ignore[no-untyped-def]
        c = Connector(cdc_env, **kw)
        started.append(c)
        return c

    yield make
    for c in started:
        if c.running:
            c.kill()
