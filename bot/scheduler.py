"""The service's one APScheduler 3.x AsyncIOScheduler: refreshes, reconciliation, daily briefs.

Jobs are plain coroutines owned by the composition root; none is persisted. `sync_symbols` and
`sync_briefs` make the job set equal to what the database says, so a restart (or a periodic
reconcile) rebuilds everything from the tables.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

from apscheduler.job import Job
from apscheduler.schedulers.asyncio import AsyncIOScheduler
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.interval import IntervalTrigger

logger = logging.getLogger(__name__)

JOB_DEFAULTS = {"coalesce": True, "max_instances": 1, "misfire_grace_time": 30}
REFRESH_PREFIX = "refresh:"
BRIEF_PREFIX = "brief:"


@dataclass(frozen=True, slots=True)
class BriefSchedule:
    """One chat's daily brief for one symbol at a local HH:MM in a time zone."""

    id: int
    chat_pk: int
    symbol: str
    local_time: str
    timezone: str

    @property
    def job_id(self) -> str:
        """Job id; changes when the time or zone changes, so a move replaces the job."""
        return f"{BRIEF_PREFIX}{self.id}:{self.local_time}:{self.timezone}"

    def hour_minute(self) -> tuple[int, int]:
        """Local hour and minute."""
        hours, minutes = self.local_time.split(":")
        return int(hours), int(minutes)

    def local_day(self, at: datetime) -> str:
        """The local calendar day of `at` in this schedule's zone."""
        return at.astimezone(ZoneInfo(self.timezone)).date().isoformat()


def due_briefs(schedules: Iterable[BriefSchedule], since: datetime,
               until: datetime) -> list[tuple[BriefSchedule, str]]:
    """Schedules whose local time fell in (since, until], with the local day it fell on.

    Used with a virtual clock (replay), where wall-clock cron triggers would be meaningless.
    """
    out: list[tuple[BriefSchedule, str]] = []
    if until <= since:
        return out
    for schedule in schedules:
        zone = ZoneInfo(schedule.timezone)
        hour, minute = schedule.hour_minute()
        day: date = since.astimezone(zone).date()
        last = until.astimezone(zone).date()
        while day <= last:
            at = datetime(day.year, day.month, day.day, hour, minute, tzinfo=zone)
            if since < at <= until:
                out.append((schedule, day.isoformat()))
            day += timedelta(days=1)
    return out


class ServiceScheduler:
    """Owns the AsyncIOScheduler; the app gives it the coroutines to run."""

    def __init__(self, refresh_seconds: float) -> None:
        self._scheduler = AsyncIOScheduler(timezone=UTC, job_defaults=dict(JOB_DEFAULTS))
        self._refresh: Callable[[str], Awaitable[None]] | None = None
        self._brief: Callable[[BriefSchedule], Awaitable[None]] | None = None
        self.refresh_seconds = refresh_seconds

    def bind(self, refresh: Callable[[str], Awaitable[None]],
             brief: Callable[[BriefSchedule], Awaitable[None]] | None) -> None:
        """The coroutines run per symbol and per daily brief (None: no cron briefs)."""
        self._refresh, self._brief = refresh, brief

    @property
    def scheduler(self) -> AsyncIOScheduler:
        """The APScheduler instance (for extra jobs)."""
        return self._scheduler

    def start(self) -> None:
        """Start firing jobs (inside the running loop)."""
        self._scheduler.start()

    def pause(self) -> None:
        """Stop starting jobs (those running go on)."""
        if self._scheduler.running:
            self._scheduler.pause()

    def shutdown(self) -> None:
        """Stop firing jobs; running ones finish on their own."""
        if self._scheduler.running:
            self._scheduler.shutdown(wait=False)

    def every(self, job_id: str, seconds: float, func: Callable[[], Awaitable[None]],
              *, first: datetime | None = None) -> Job:
        """An interval job (replaced if the id exists); first run after one interval unless
        `first` is given (APScheduler treats an explicit None as "paused")."""
        extra = {} if first is None else {"next_run_time": first}
        return self._scheduler.add_job(func, IntervalTrigger(seconds=seconds), id=job_id,
                                       replace_existing=True, **extra)

    def symbols(self) -> set[str]:
        """Symbols that currently have a refresh job."""
        return {j.id.removeprefix(REFRESH_PREFIX) for j in self._scheduler.get_jobs()
                if j.id.startswith(REFRESH_PREFIX)}

    def sync_symbols(self, wanted: Iterable[str]) -> tuple[set[str], set[str]]:
        """Refresh jobs exactly for `wanted`; new ones run at once. Returns (added, removed)."""
        if self._refresh is None:
            raise RuntimeError("bind() the refresh job first")
        target = set(wanted)
        have = self.symbols()
        for symbol in sorted(target - have):
            self._scheduler.add_job(self._refresh, IntervalTrigger(seconds=self.refresh_seconds),
                                    args=[symbol], id=REFRESH_PREFIX + symbol,
                                    next_run_time=datetime.now(UTC), replace_existing=True)
        for symbol in have - target:
            self._scheduler.remove_job(REFRESH_PREFIX + symbol)
        if target != have:
            logger.info("refreshing %s every %.1fs", ", ".join(sorted(target)) or "nothing",
                        self.refresh_seconds)
        return target - have, have - target

    def sync_briefs(self, schedules: Iterable[BriefSchedule]) -> int:
        """Cron jobs exactly for `schedules` at each chat's local time; returns how many."""
        if self._brief is None:
            return 0
        wanted = {s.job_id: s for s in schedules}
        have = {j.id for j in self._scheduler.get_jobs() if j.id.startswith(BRIEF_PREFIX)}
        for job_id in have - set(wanted):
            self._scheduler.remove_job(job_id)
        for job_id in set(wanted) - have:
            schedule = wanted[job_id]
            hour, minute = schedule.hour_minute()
            trigger = CronTrigger(hour=hour, minute=minute, timezone=ZoneInfo(schedule.timezone))
            self._scheduler.add_job(self._brief, trigger, args=[schedule], id=job_id)
        return len(wanted)
