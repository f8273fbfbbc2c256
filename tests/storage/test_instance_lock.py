"""One active service per database: the lock on SQLite (file) and PostgreSQL (advisory)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from storage.instance_lock import AdvisoryLock, FileLock, NoLock, instance_lock


async def test_a_second_holder_waits_until_the_first_releases(database_url: str) -> None:
    first, second = instance_lock(database_url), instance_lock(database_url)
    try:
        assert await first.try_acquire()
        assert await first.try_acquire()  # idempotent for its holder
        assert not await second.try_acquire()
        assert await first.held() and not await second.held()
        await first.release()
        await first.release()  # idempotent
        assert not await first.held()
        assert await second.try_acquire()
        assert not await first.try_acquire()
    finally:
        await first.release()
        await second.release()


@pytest.mark.parametrize(("url", "kind"), [
    ("sqlite+aiosqlite:///./liqradar.db", FileLock),
    ("sqlite+aiosqlite:////data/x.db", FileLock),
    ("sqlite+aiosqlite://", NoLock),
    ("sqlite+aiosqlite:///:memory:", NoLock),
    ("sqlite+aiosqlite:///file:mem?mode=memory&uri=true", NoLock),
    ("postgresql+asyncpg://u@db:5432/liqradar", AdvisoryLock),
])
def test_the_lock_follows_the_database(url: str, kind: type) -> None:
    lock = instance_lock(url)
    assert isinstance(lock, kind)
    if isinstance(lock, FileLock):
        assert lock.path.name.endswith(".db.lock")


async def test_the_lock_file_names_its_holder(tmp_path: Path) -> None:
    lock = FileLock(tmp_path / "liqradar.db.lock")
    assert await lock.try_acquire()
    assert lock.path.read_text() == f"{os.getpid()}\n"
    await lock.release()


async def test_a_dropped_postgres_session_loses_the_lock_to_a_standby(pg_url: str) -> None:
    active, standby = AdvisoryLock(pg_url), AdvisoryLock(pg_url)
    try:
        assert await active.try_acquire()
        assert not await standby.try_acquire()
        admin = create_async_engine(pg_url, isolation_level="AUTOCOMMIT")
        async with admin.connect() as conn:  # what a network cut or a server restart does
            await conn.execute(text(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE datname = current_database() AND pid <> pg_backend_pid()"))
        await admin.dispose()
        assert not await active.held()
        assert await standby.try_acquire()
    finally:
        await active.release()
        await standby.release()


async def test_an_unopenable_lock_file_is_named_in_the_error(tmp_path: Path) -> None:
    lock = FileLock(tmp_path / "missing" / "liqradar.db.lock")
    with pytest.raises(OSError, match=r"cannot open the database's lock file .*missing"):
        await lock.try_acquire()
