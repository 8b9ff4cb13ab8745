"""Fixtures of the recipes' tests (examples/): servers the recipes write to, beside the stack."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest


@pytest.fixture(scope="session")
def postgres_port(stack) -> Iterator[int]:  # type: ignore[no-untyped-def]
    """The throwaway PostgreSQL of deploy/local/postgres.py; stopped at the end of the session
    unless it was running before (e.g. left up by `make demo-postgres --keep`)."""
    import postgres as local_postgres  # deploy/local, on sys.path through tests/conftest.py

    was_running = local_postgres.running()
    port = local_postgres.up()
    try:
        yield port
    finally:
        if not was_running:
            local_postgres.down()


@pytest.fixture
def pg_database(postgres_port: int) -> Iterator[str]:
    """A fresh database of the throwaway cluster for one test: its libpq DSN. Dropped afterwards."""
    import psycopg

    name = f"t_{uuid.uuid4().hex[:10]}"
    admin = f"host=127.0.0.1 port={postgres_port} user=postgres dbname=postgres"
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield f"host=127.0.0.1 port={postgres_port} user=postgres dbname={name}"
    finally:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _search_solr():  # type: ignore[no-untyped-def]
    """examples/search/solr.py under a name of its own (not importable as a package)."""
    import importlib.util
    import sys
    from pathlib import Path

    if "search_solr" not in sys.modules:
        path = Path(__file__).resolve().parents[2] / "examples" / "search" / "solr.py"
        spec = importlib.util.spec_from_file_location("search_solr", path)
        assert spec and spec.loader
        module = importlib.util.module_from_spec(spec)
        sys.modules[spec.name] = module
        spec.loader.exec_module(module)
    return sys.modules["search_solr"]


@pytest.fixture(scope="session")
def solr_server(stack) -> Iterator[int]:  # type: ignore[no-untyped-def]
    """The search recipe's Solr (examples/search/solr.py: Solr 9 from Maven Central, started once
    per session, ~20 s); stopped at the end of the session unless it was running before (e.g.
    left up by `make demo-search --keep`)."""
    solr = _search_solr()
    was_running = solr.running()
    port = solr.up()
    try:
        yield port
    finally:
        if not was_running:
            solr.down()


@pytest.fixture
def solr_core(solr_server: int) -> Iterator[str]:
    """A core of its own for one test (the recipe's schema): its URL. Unloaded and deleted afterwards."""
    solr = _search_solr()
    name = f"t_{uuid.uuid4().hex[:10]}"
    url = solr.create_core(name)
    try:
        yield url
    finally:
        solr.drop_core(name)
