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
