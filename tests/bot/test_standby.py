"""One active service per database: a second one stands by and takes over when the first stops;
a service whose lock session is cut stops."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from bot.app import serve
from bot.service import Service
from bot.settings import Settings
from bot.standby import stand_by, watch_lock
from tests.bot.test_app import DEMO, service_settings, start
from tests.conftest import DatabaseFactory


def serve_in_task(settings: Settings) -> tuple[asyncio.Task[int], asyncio.Future[Service]]:
    """`serve` in a task, and a future set with the service once it is active."""
    ready: asyncio.Future[Service] = asyncio.get_running_loop().create_future()
    task = asyncio.create_task(serve(settings, replay=DEMO, speed=1200, install_signals=False,
                                     on_ready=ready.set_result))
    return task, ready


@pytest.fixture(params=["sqlite", "postgresql"])
def shared_url(request: pytest.FixtureRequest, make_database_url: DatabaseFactory) -> str:
    """The database both services use."""
    return make_database_url(request.param)


async def test_a_second_service_stands_by_and_takes_over_when_the_first_stops(
        tmp_path: Path, shared_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    settings = service_settings(tmp_path, database_url=shared_url, standby_retry_s=0.2,
                                delivery_journal=str(tmp_path / "sends.jsonl"))
    first_task, first = await start(settings, speed=1200)
    second_task, second_ready = serve_in_task(settings)
    try:
        await asyncio.sleep(1.5)
        assert not second_ready.done() and not second_task.done()
        out = capsys.readouterr().out
        assert out.count("liqradar: web page at") == 1
        assert "another liqradar service is active on this database; standing by" in out
        first.stop.set()
        assert await asyncio.wait_for(first_task, 60) == 0
        second = await asyncio.wait_for(second_ready, 30)
        assert "liqradar: web page at" in capsys.readouterr().out
        second.stop.set()
        assert await asyncio.wait_for(second_task, 60) == 0
    finally:
        first.stop.set()
        if second_ready.done():
            second_ready.result().stop.set()
        second_task.cancel()


async def test_a_standby_given_run_for_gives_up_without_starting_anything(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    settings = service_settings(tmp_path, standby_retry_s=0.2)
    first_task, first = await start(settings, speed=1200)
    try:
        code = await serve(settings, replay=DEMO, speed=1200, install_signals=False, run_for=1.0,
                           on_ready=lambda _: pytest.fail("the standby became active"))
        assert code == 0
        assert capsys.readouterr().out.count("liqradar: web page at") == 1
        assert not first.stop.is_set()  # the active service is untouched
    finally:
        first.stop.set()
        assert await asyncio.wait_for(first_task, 60) == 0


async def test_a_service_whose_lock_session_is_cut_stops_with_status_1(
        tmp_path: Path, pg_url: str) -> None:
    settings = service_settings(tmp_path, database_url=pg_url, standby_retry_s=0.2,
                                delivery_journal=str(tmp_path / "sends.jsonl"))
    task, service = await start(settings, speed=1200)
    admin = create_async_engine(settings.database_url, isolation_level="AUTOCOMMIT")
    try:
        async with admin.connect() as conn:  # a network cut or failover of that one session
            cut = await conn.scalar(text(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_locks "
                "WHERE locktype = 'advisory' AND database = (SELECT oid FROM pg_database "
                "WHERE datname = current_database())"))
        assert cut == 1
        assert await asyncio.wait_for(task, 60) == 1
    finally:
        service.stop.set()
        await admin.dispose()


class ScriptedLock:
    """A lock whose tries answer from a script: True, False, or an exception to raise."""

    def __init__(self, *answers: bool | Exception) -> None:
        self.answers = list(answers)
        self.tries = 0
        self.alive = True

    async def try_acquire(self) -> bool:
        self.tries += 1
        answer = self.answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer

    async def held(self) -> bool:
        return self.alive

    async def release(self) -> None:
        self.alive = False


async def test_a_standby_rides_out_a_database_outage(caplog: pytest.LogCaptureFixture) -> None:
    lock = ScriptedLock(False, OSError("connection refused"), False, True)
    assert await stand_by(lock, asyncio.Event(), retry_s=0.01)
    assert lock.tries == 4
    assert "standby: cannot reach the database (connection refused); retrying" in caplog.text


async def test_the_first_failure_to_reach_the_database_is_fatal() -> None:
    with pytest.raises(OSError, match="refused"):
        await stand_by(ScriptedLock(OSError("refused")), asyncio.Event(), retry_s=0.01)


async def test_the_lock_watch_stops_the_service_once_the_lock_is_gone() -> None:
    lock, stop, lost = ScriptedLock(), asyncio.Event(), asyncio.Event()
    watch = asyncio.create_task(watch_lock(lock, stop, lost, every_s=0.01))
    await asyncio.sleep(0.05)
    assert not stop.is_set()
    lock.alive = False
    await asyncio.wait_for(watch, 5)
    assert stop.is_set() and lost.is_set()
