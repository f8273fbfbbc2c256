"""Daily briefs: the job run at each chat's local time; it enqueues one outbox row per brief.

The due-check is `bot.scheduler.due_briefs` (pure); this module turns due schedules into neutral
messages keyed by `engine.alerts.brief_key`, so a re-run on the same local day is a no-op.
"""

from __future__ import annotations

import logging
from datetime import datetime

from sqlmodel import col, select

from bot.alert_messages import image_key
from bot.commands import brief_of, brief_parts
from bot.notifier import Button, ImageRef, OutgoingMessage, to_payload
from bot.scheduler import BriefSchedule, due_briefs
from bot.services import Services
from engine.alerts import AlertKind, brief_key
from engine.types import Window
from storage import outbox
from storage.models import Chat, DailyBrief

logger = logging.getLogger(__name__)

BRIEF_WINDOW = Window.H24


async def load_schedules(services: Services) -> list[BriefSchedule]:
    """Active daily briefs of active chats."""
    async with services.sessions() as db:
        rows = (await db.exec(
            select(DailyBrief).join(Chat, col(Chat.id) == col(DailyBrief.chat_pk))
            .where(col(DailyBrief.active), col(Chat.active)).order_by(col(DailyBrief.id)))).all()
    return [BriefSchedule(b.id or 0, b.chat_pk, b.symbol, b.local_time, b.timezone)
            for b in rows]


async def brief_message(services: Services, symbol: str, now: datetime) -> OutgoingMessage:
    """The neutral daily-brief message for `symbol` (24h map, brief, image reference)."""
    m = await services.maps.get_map(symbol, BRIEF_WINDOW)
    title, sections = brief_parts(brief_of(services, m))
    image = ImageRef(image_key(m.symbol, BRIEF_WINDOW, now), m.symbol, BRIEF_WINDOW.value)
    return OutgoingMessage(title, sections, image=image,
                           buttons=(Button("Open map", action=f"map {m.symbol} 24h"),),
                           kind=AlertKind.DAILY_BRIEF.value)


async def enqueue_brief(services: Services, schedule: BriefSchedule, local_day: str,
                        now: datetime) -> bool:
    """Queue one schedule's brief for `local_day`; False when it was already queued."""
    key = brief_key(schedule.chat_pk, schedule.symbol, local_day)
    message = await brief_message(services, schedule.symbol, now)
    async with services.transaction() as db:
        return await outbox.enqueue(db, key, schedule.chat_pk, message.kind,
                                    to_payload(message), now=now)


async def run_daily_brief(services: Services, schedule: BriefSchedule) -> None:
    """Scheduler job for one schedule at its local time (uses the services clock)."""
    now = services.clock()
    await enqueue_brief(services, schedule, schedule.local_day(now), now)


async def run_due_briefs(services: Services, since: datetime, until: datetime) -> int:
    """Queue every brief whose local time fell in (since, until]; returns how many were new."""
    count = 0
    for schedule, day in due_briefs(await load_schedules(services), since, until):
        try:
            count += await enqueue_brief(services, schedule, day, until)
        except Exception:
            logger.exception("daily brief %s for chat %s failed", schedule.symbol,
                             schedule.chat_pk)
    return count
