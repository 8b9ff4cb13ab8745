"""Fixtures shared by every test: the real local stack, started once per session.

Pure-logic tests (tests/unit) never touch these; integration tests (tests/integration) ask for
``stack`` (ports of MariaDB and Kafka) and ``wordpress`` (a driver for the real WordPress install);
tests marked ``cluster`` ask for ``kafka_cluster`` (three brokers).
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

LOCAL = Path(__file__).resolve().parent.parent / "deploy" / "local"
sys.path.insert(0, str(LOCAL))

import stack as local_stack  # noqa: E402


@pytest.fixture(scope="session")
def stack() -> local_stack.Ports:
    """MariaDB, Kafka and WordPress up (idempotent; fast when already running)."""
    return local_stack.up()


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Tests that use the three-broker cluster run last (in their own order).

    The session fixture stops the cluster when the session ends; run last, its three JVMs never
    take CPU from the rest of the suite on a two-core machine.
    """
    uses = [item for item in items if "kafka_cluster" in getattr(item, "fixturenames", ())]
    if uses:
        others = [item for item in items if item not in uses]
        items[:] = others + uses


@pytest.fixture(scope="session")
def kafka_cluster() -> Iterator[list[str]]:
    """The three-broker Kafka cluster (deploy/local/cluster.py): its bootstrap list.

    Started by the first test that asks and stopped at the end of the session (unless it ran
    before, e.g. from `make up KAFKA_BROKERS=3`), so a run without such tests never pays for three
    more JVMs. Tests that stop a broker start it again.
    """
    import cluster as local_cluster

    was_running = local_cluster.running()
    try:
        yield local_cluster.cluster_up()
    finally:
        if not was_running:
            local_cluster.cluster_down()


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
