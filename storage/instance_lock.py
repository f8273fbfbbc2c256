"""One active service per database: a PostgreSQL advisory lock, or a lock file beside SQLite.

Two services on one database would both poll the same Telegram token, both send every alert
and requeue each other's deliveries. The lock lets exactly one run; another started on the same
database waits as a standby and takes over when the first stops or dies (the operating system
drops a dead process's file lock, and PostgreSQL a dead session's advisory lock).
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path
from typing import Protocol

from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine
from sqlalchemy.pool import NullPool

from storage.urls import sqlite_file

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows has no flock; SQLite runs unguarded there
    fcntl = None  # type: ignore[assignment]

# pg_try_advisory_lock takes a bigint: the bytes of "liqradar" (one key per database).
ADVISORY_KEY = int.from_bytes(b"liqradar", "big") & 0x7FFF_FFFF_FFFF_FFFF


class InstanceLock(Protocol):
    """The database's single-service lock, held by at most one process at a time."""

    async def try_acquire(self) -> bool:
        """Take the lock if it is free; True when this process holds it."""
        ...

    async def held(self) -> bool:
        """Whether the lock is still held (False once its connection is gone)."""
        ...

    async def release(self) -> None:
        """Give the lock up (idempotent)."""
        ...


def instance_lock(url: str) -> InstanceLock:
    """The lock for a database URL: advisory for PostgreSQL, a file for a SQLite file, none
    for an in-memory SQLite database (no other process can open it)."""
    if make_url(url).get_backend_name() == "postgresql":
        return AdvisoryLock(url)
    db = sqlite_file(url)
    return NoLock() if db is None else FileLock(Path(f"{db}.lock"))


class NoLock:
    """A database only this process can reach: always held."""

    async def try_acquire(self) -> bool:
        """Always free."""
        return True

    async def held(self) -> bool:
        """Always held."""
        return True

    async def release(self) -> None:
        """Nothing to give up."""


class FileLock:
    """An exclusive flock on a file beside the SQLite database; it holds the owner's pid."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._fd: int | None = None

    async def try_acquire(self) -> bool:
        """Lock the file without waiting; the file itself is never deleted (that would race)."""
        if self._fd is not None:
            return True
        if fcntl is None:  # pragma: no cover
            return True
        try:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as exc:
            raise OSError(exc.errno, f"cannot open the database's lock file {self.path}: "
                                     f"{exc.strerror}") from exc
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return False
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        self._fd = fd
        return True

    async def held(self) -> bool:
        """A flock lasts as long as the descriptor."""
        return self._fd is not None

    async def release(self) -> None:
        """Unlock and close."""
        if self._fd is not None:
            fd, self._fd = self._fd, None
            if fcntl is not None:
                fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)


class AdvisoryLock:
    """A session-level PostgreSQL advisory lock on a connection of its own, in autocommit (no
    transaction is left open for the service's lifetime)."""

    def __init__(self, url: str) -> None:
        self.url = url
        self._engine: AsyncEngine | None = None
        self._conn: AsyncConnection | None = None

    async def try_acquire(self) -> bool:
        """pg_try_advisory_lock on a fresh connection, kept while the lock is held."""
        if self._conn is not None:
            return True
        engine = create_async_engine(self.url, poolclass=NullPool,
                                     isolation_level="AUTOCOMMIT")
        conn: AsyncConnection | None = None
        got = False
        try:
            conn = await engine.connect()
            got = bool(await conn.scalar(text("SELECT pg_try_advisory_lock(:key)"),
                                         {"key": ADVISORY_KEY}))
        finally:
            if not got:  # taken by another session, or the database could not be reached
                if conn is not None:
                    await conn.close()
                await engine.dispose()
        if got:
            self._engine, self._conn = engine, conn
        return got

    async def held(self) -> bool:
        """The lock lives as long as its session: ask the session."""
        if self._conn is None:
            return False
        try:
            await self._conn.scalar(text("SELECT 1"))
        except (SQLAlchemyError, OSError):
            return False
        return True

    async def release(self) -> None:
        """Unlock and close the connection (closing alone would release it too)."""
        conn, engine = self._conn, self._engine
        self._conn = self._engine = None
        if conn is not None:
            with contextlib.suppress(SQLAlchemyError, OSError):
                await conn.execute(text("SELECT pg_advisory_unlock(:key)"),
                                   {"key": ADVISORY_KEY})
            with contextlib.suppress(SQLAlchemyError, OSError):
                await conn.close()
        if engine is not None:
            await engine.dispose()
