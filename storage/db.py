"""Async engine factory, session factory and programmatic alembic upgrade."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from sqlalchemy import event
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker, create_async_engine
from sqlmodel.ext.asyncio.session import AsyncSession

DEFAULT_URL = "sqlite+aiosqlite:///./liqradar.db"
MIGRATIONS = Path(__file__).resolve().parent / "migrations"
SQLITE_PRAGMAS = ("journal_mode=WAL", "synchronous=NORMAL", "foreign_keys=ON",
                  "busy_timeout=5000")

SessionFactory = async_sessionmaker[AsyncSession]


def make_engine(url: str = DEFAULT_URL, **kwargs: Any) -> AsyncEngine:
    """Async engine for a URL; SQLite gets WAL, NORMAL sync, foreign keys and a busy timeout."""
    engine = create_async_engine(url, **kwargs)
    if engine.dialect.name == "sqlite":
        event.listen(engine.sync_engine, "connect", _sqlite_pragmas)
    return engine


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    """Set the SQLite pragmas on every new connection."""
    cursor = dbapi_connection.cursor()
    for pragma in SQLITE_PRAGMAS:
        cursor.execute(f"PRAGMA {pragma}")
    cursor.close()


def session_factory(engine: AsyncEngine) -> SessionFactory:
    """Session factory whose objects stay readable after commit."""
    return async_sessionmaker(engine, class_=AsyncSession, expire_on_commit=False)


def alembic_config(url: str) -> Config:
    """Alembic config pointing at the packaged migrations (no alembic.ini needed)."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return config


async def upgrade(url: str, revision: str = "head") -> None:
    """Run the migrations on `url` up to `revision` (the service calls this on start)."""
    engine = make_engine(url)
    try:
        async with engine.begin() as conn:
            await conn.run_sync(_upgrade_sync, url, revision)
    finally:
        await engine.dispose()


def _upgrade_sync(connection: Connection, url: str, revision: str) -> None:
    """Alembic upgrade on an already open connection (env.py picks it up)."""
    config = alembic_config(url)
    config.attributes["connection"] = connection
    command.upgrade(config, revision)
