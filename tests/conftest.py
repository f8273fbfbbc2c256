"""Shared fixtures: `database_url` runs a test on SQLite and on PostgreSQL; `db` upgrades it."""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import pytest

from storage.db import SessionFactory, make_engine, session_factory, upgrade

pytest_plugins = ["tests.leftover_threads"]

PG_SERVER = os.environ.get("LIQRADAR_TEST_PG", "postgresql+asyncpg://postgres@127.0.0.1:5432")
PG_DEFAULT_DB = "test"


async def _pg_execute(url: str, *statements: str) -> None:
    """Run statements in autocommit mode on a PostgreSQL URL."""
    from sqlalchemy import text
    from sqlalchemy.ext.asyncio import create_async_engine

    engine = create_async_engine(url, isolation_level="AUTOCOMMIT")
    try:
        async with engine.connect() as conn:
            for statement in statements:
                await conn.execute(text(statement))
    finally:
        await engine.dispose()


@pytest.fixture(scope="session")
def pg_database() -> Iterator[str]:
    """A private PostgreSQL database for this test session (skipped only off CI when down)."""
    name = f"liqradar_test_{uuid.uuid4().hex[:10]}"
    admin = f"{PG_SERVER}/{PG_DEFAULT_DB}"
    try:
        asyncio.run(_pg_execute(admin, f'CREATE DATABASE "{name}"'))
    except OSError as exc:
        if os.environ.get("CI"):
            raise
        pytest.skip(f"PostgreSQL at {PG_SERVER} unreachable ({exc}); set up the server or "
                    "run with CI=1 to fail instead")
    yield f"{PG_SERVER}/{name}"
    asyncio.run(_pg_execute(admin, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


DatabaseFactory = Callable[[str], str]

# A connection left behind (a killed child's, a test's undisposed engine) must not block the
# reset: end every other session on the private database, and never wait long for a lock.
PG_RESET = (
    "SET lock_timeout = '20s'",
    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
    "WHERE datname = current_database() AND pid <> pg_backend_pid()",
    "DROP SCHEMA public CASCADE",
    "CREATE SCHEMA public",
)


@pytest.fixture
def make_database_url(request: pytest.FixtureRequest, tmp_path: Path) -> DatabaseFactory:
    """Factory of empty databases: `sqlite` (a file in tmp_path) or `postgresql` (reset)."""

    def make(kind: str) -> str:
        if kind == "sqlite":
            return f"sqlite+aiosqlite:///{tmp_path / 'liqradar.db'}"
        url: str = request.getfixturevalue("pg_database")
        asyncio.run(_pg_execute(url, *PG_RESET))
        return url

    return make


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, make_database_url: DatabaseFactory) -> str:
    """An empty database: a SQLite file in tmp_path, or a reset private PostgreSQL database."""
    return make_database_url(request.param)


@pytest.fixture
def pg_url(make_database_url: DatabaseFactory) -> str:
    """An empty private PostgreSQL database (for tests of PostgreSQL-only behaviour)."""
    return make_database_url("postgresql")


@pytest.fixture
async def db(database_url: str) -> AsyncIterator[SessionFactory]:
    """Session factory on a database upgraded to the latest migration."""
    await upgrade(database_url)
    engine = make_engine(database_url)
    yield session_factory(engine)
    await engine.dispose()
