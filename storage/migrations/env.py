"""Alembic environment: reuses a connection passed by storage.db.upgrade, else opens its own."""

from __future__ import annotations

import asyncio
import os

from alembic import context
from sqlalchemy.engine import Connection
from sqlmodel import SQLModel

import storage.models  # noqa: F401  (registers the tables on SQLModel.metadata)
from storage.db import make_engine

config = context.config
target_metadata = SQLModel.metadata


def _url() -> str:
    """URL from the config, else LIQRADAR_DATABASE_URL, else the default SQLite file."""
    url = config.get_main_option("sqlalchemy.url")
    return url or os.environ.get("LIQRADAR_DATABASE_URL", "sqlite+aiosqlite:///./liqradar.db")


def _configure(connection: Connection) -> None:
    """Configure alembic for a connection (batch mode on SQLite) and run the migrations."""
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


async def _run_async() -> None:
    """Open an async engine, run the migrations on it, dispose it."""
    engine = make_engine(_url())
    async with engine.connect() as conn:
        await conn.run_sync(_configure)
        await conn.commit()
    await engine.dispose()


def run_offline() -> None:
    """Emit SQL instead of running it."""
    context.configure(url=_url(), target_metadata=target_metadata, literal_binds=True,
                      render_as_batch=_url().startswith("sqlite"))
    with context.begin_transaction():
        context.run_migrations()


if context.is_offline_mode():
    run_offline()
elif (shared := config.attributes.get("connection")) is not None:
    _configure(shared)
else:
    asyncio.run(_run_async())
