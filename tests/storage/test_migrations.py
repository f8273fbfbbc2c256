"""Migrations: upgrade to head on SQLite and PostgreSQL, idempotently, matching the models."""

from __future__ import annotations

from typing import Any

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect, text
from sqlalchemy.engine import Connection
from sqlmodel import SQLModel

import storage.models  # noqa: F401
from storage.db import make_engine, upgrade

TABLES = {"chats", "subscriptions", "daily_briefs", "alert_states", "alert_counters", "outbox",
          "alembic_version"}


def _diff(conn: Connection) -> list[Any]:
    """Differences between the migrated schema and the models."""
    context = MigrationContext.configure(conn, opts={"compare_type": True})
    return list(compare_metadata(context, SQLModel.metadata))


async def test_upgrade_creates_tables_matching_models(database_url: str) -> None:
    await upgrade(database_url)
    await upgrade(database_url)  # a second start is a no-op
    engine = make_engine(database_url)
    try:
        async with engine.connect() as conn:
            names = await conn.run_sync(lambda c: set(inspect(c).get_table_names()))
            diff = await conn.run_sync(_diff)
            version = (await conn.execute(text("select version_num from alembic_version"))).all()
    finally:
        await engine.dispose()
    assert names >= TABLES
    assert diff == []
    assert version == [("0001",)]


async def test_sqlite_pragmas(tmp_path: Any) -> None:
    engine = make_engine(f"sqlite+aiosqlite:///{tmp_path / 'p.db'}")
    try:
        async with engine.connect() as conn:
            got = [(await conn.execute(text(f"PRAGMA {p}"))).scalar()
                   for p in ("journal_mode", "synchronous", "foreign_keys", "busy_timeout")]
    finally:
        await engine.dispose()
    assert got == ["wal", 1, 1, 5000]
