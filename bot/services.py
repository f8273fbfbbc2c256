"""What command handlers receive: the map service, the database, settings and a clock."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime

from sqlmodel.ext.asyncio.session import AsyncSession

from bot.mapservice import MapService
from bot.settings import Settings
from storage.db import SessionFactory


def utc_now() -> datetime:
    """The wall clock, UTC-aware."""
    return datetime.now(UTC)


@dataclass(slots=True)
class Services:
    """Shared dependencies of every command, built once by the composition root."""

    maps: MapService
    sessions: SessionFactory
    settings: Settings
    clock: Callable[[], datetime] = utc_now
    map_sent_at: dict[tuple[str, str], datetime] = field(default_factory=dict)

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[AsyncSession]:
        """A session committed on success and rolled back on error."""
        async with self.sessions.begin() as session:
            yield session
