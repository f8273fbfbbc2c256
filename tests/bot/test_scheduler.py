"""The service scheduler: due briefs on a virtual clock, refresh and cron jobs from the database."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest

from bot.scheduler import BriefSchedule, ServiceScheduler, due_briefs

BERLIN = BriefSchedule(1, 10, "BTC", "08:00", "Europe/Berlin")
TOKYO = BriefSchedule(2, 11, "ETH", "23:30", "Asia/Tokyo")


@pytest.mark.parametrize(("since", "until", "expected"), [
    # 08:00 Berlin is 07:00 UTC in winter, 06:00 UTC in summer.
    (datetime(2026, 3, 5, 6, 0, tzinfo=UTC), datetime(2026, 3, 5, 7, 0, tzinfo=UTC),
     [(1, "2026-03-05")]),
    (datetime(2026, 3, 5, 7, 0, tzinfo=UTC), datetime(2026, 3, 5, 8, 0, tzinfo=UTC), []),
    (datetime(2026, 7, 1, 5, 59, tzinfo=UTC), datetime(2026, 7, 1, 6, 0, tzinfo=UTC),
     [(1, "2026-07-01")]),
    # 23:30 Tokyo is 14:30 UTC the same local day; two days give two briefs.
    (datetime(2026, 3, 5, 0, 0, tzinfo=UTC), datetime(2026, 3, 7, 0, 0, tzinfo=UTC),
     [(1, "2026-03-05"), (1, "2026-03-06"), (2, "2026-03-05"), (2, "2026-03-06")]),
    (datetime(2026, 3, 5, 9, 0, tzinfo=UTC), datetime(2026, 3, 5, 9, 0, tzinfo=UTC), []),
])
def test_due_briefs(since: datetime, until: datetime, expected: list[tuple[int, str]]) -> None:
    due = due_briefs([BERLIN, TOKYO], since, until)
    assert sorted((s.id, day) for s, day in due) == expected


async def test_jobs_follow_the_database_and_run() -> None:
    refreshed: list[str] = []
    ticks = asyncio.Event()

    async def refresh(symbol: str) -> None:
        refreshed.append(symbol)

    async def brief(schedule: BriefSchedule) -> None:
        """Not fired here."""

    async def tick() -> None:
        ticks.set()

    scheduler = ServiceScheduler(refresh_seconds=3600)
    scheduler.bind(refresh, brief)
    scheduler.start()
    try:
        assert scheduler.sync_symbols({"BTC", "ETH"}) == ({"BTC", "ETH"}, set())
        assert scheduler.sync_symbols({"BTC"}) == (set(), {"ETH"})
        scheduler.every("tick", 0.05, tick)
        await asyncio.wait_for(ticks.wait(), 5)  # interval jobs are not added paused
        await asyncio.sleep(0.05)
        assert "BTC" in refreshed  # new symbols refresh at once
        assert scheduler.sync_briefs([BERLIN, TOKYO]) == 2
        jobs = {j.id: j for j in scheduler.scheduler.get_jobs()}
        berlin = jobs[BERLIN.job_id].next_run_time.astimezone(ZoneInfo("Europe/Berlin"))
        assert (berlin.hour, berlin.minute) == (8, 0)
        assert scheduler.sync_briefs([TOKYO]) == 1
        assert BERLIN.job_id not in {j.id for j in scheduler.scheduler.get_jobs()}
    finally:
        scheduler.shutdown()
