"""Chats, subscriptions and daily-brief schedules: small repository functions.

Functions take an open session and flush but never commit; the caller owns the transaction.
Inputs are validated here (symbols upper-cased, HH:MM times, IANA time zones, alert kinds and
sensitivities) and ValueError names what was wrong.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, time
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from sqlalchemy import delete, update
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from engine.alerts import SUBSCRIBABLE_KINDS, AlertKind
from engine.sensitivity import parse_sensitivity
from storage.models import Chat, DailyBrief, Platform, Subscription, utcnow
from storage.outbox import hold_chat, release_chat

_NO_SYNC = {"synchronize_session": False}
_KIND_ORDER = [AlertKind.APPROACH, AlertKind.ENTER, AlertKind.CROSS, AlertKind.SWEPT]


def parse_hhmm(text: str) -> time:
    """Time of day from `HH:MM` (24 h)."""
    try:
        hours, minutes = text.strip().split(":")
        return time(int(hours), int(minutes))
    except ValueError:
        raise ValueError(f"time {text!r} must look like HH:MM, e.g. 07:30") from None


def check_timezone(name: str) -> str:
    """The IANA time zone name, or ValueError."""
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        msg = f"unknown time zone {name!r}: use an IANA name such as Europe/Berlin"
        raise ValueError(msg) from None
    return name


def parse_kinds(text: str | Iterable[str]) -> frozenset[AlertKind]:
    """Alert kinds from `approach,cross` or an iterable of names."""
    names = text.split(",") if isinstance(text, str) else list(text)
    kinds: set[AlertKind] = set()
    for name in (n.strip().lower() for n in names):
        if not name:
            continue
        try:
            kind = AlertKind(name)
        except ValueError:
            kind = None
        if kind is None or kind not in SUBSCRIBABLE_KINDS:
            choices = ", ".join(k.value for k in _KIND_ORDER)
            raise ValueError(f"unknown alert kind {name!r}: use {choices}")
        kinds.add(kind)
    if not kinds:
        raise ValueError("choose at least one alert kind")
    return frozenset(kinds)


def format_kinds(kinds: Iterable[AlertKind]) -> str:
    """Canonical comma list of kinds, in severity order."""
    chosen = set(kinds)
    return ",".join(k.value for k in _KIND_ORDER if k in chosen)


def normalize_symbol(symbol: str) -> str:
    """Upper-case symbol without spaces."""
    text = symbol.strip().upper()
    if not text or len(text) > 32 or not text.replace("-", "").replace("_", "").isalnum():
        raise ValueError(f"invalid symbol {symbol!r}")
    return text


async def upsert_chat(session: AsyncSession, platform: str, chat_id: str, *,
                      title: str | None = None, timezone: str | None = None,
                      now: datetime | None = None) -> Chat:
    """The chat for (platform, chat_id), created if new; title and time zone updated if given."""
    Platform(platform)
    chat = await get_chat(session, platform, chat_id)
    at = now or utcnow()
    if chat is None:
        chat = Chat(platform=platform, chat_id=str(chat_id), created_at=at, updated_at=at)
    if title is not None:
        chat.title = title[:200]
    if timezone is not None:
        chat.timezone = check_timezone(timezone)
    chat.updated_at = at
    session.add(chat)
    await session.flush()
    return chat


async def get_chat(session: AsyncSession, platform: str, chat_id: str) -> Chat | None:
    """The chat for (platform, chat_id), if known."""
    result = await session.exec(
        select(Chat).where(Chat.platform == platform, Chat.chat_id == str(chat_id))
    )
    return result.first()


async def subscribe(session: AsyncSession, chat_pk: int, symbol: str, *,
                    kinds: str | Iterable[str] | None = None, sensitivity: str | None = None,
                    min_strength: float | None = None, daily_cap: int | None = None,
                    now: datetime | None = None) -> Subscription:
    """Add or update the chat's subscription to `symbol` (and reactivate it)."""
    sym = normalize_symbol(symbol)
    result = await session.exec(
        select(Subscription).where(Subscription.chat_pk == chat_pk, Subscription.symbol == sym)
    )
    sub = result.first() or Subscription(chat_pk=chat_pk, symbol=sym)
    if kinds is not None:
        sub.kinds = format_kinds(parse_kinds(kinds))
    if sensitivity is not None:
        parse_sensitivity(sensitivity)
        sub.sensitivity = sensitivity.strip().lower()
    if min_strength is not None:
        if not 0.0 <= min_strength <= 1.0:
            raise ValueError("minimum band strength must be between 0 and 1")
        sub.min_strength = min_strength
    if daily_cap is not None:
        if daily_cap < 0:
            raise ValueError("daily cap must not be negative")
        sub.daily_cap = daily_cap
    sub.active, sub.paused_reason, sub.updated_at = True, None, now or utcnow()
    session.add(sub)
    await session.flush()
    return sub


async def unsubscribe(session: AsyncSession, chat_pk: int, symbol: str) -> bool:
    """Remove the chat's subscription to `symbol` (and its alert state); True if it existed."""
    result = await session.exec(
        delete(Subscription)
        .where(col(Subscription.chat_pk) == chat_pk,
               col(Subscription.symbol) == normalize_symbol(symbol))
        .execution_options(**_NO_SYNC)
    )
    return bool(getattr(result, "rowcount", 0))


async def list_subscriptions(session: AsyncSession, chat_pk: int) -> list[Subscription]:
    """The chat's subscriptions, active or paused, by symbol."""
    result = await session.exec(
        select(Subscription).where(Subscription.chat_pk == chat_pk)
        .order_by(col(Subscription.symbol))
    )
    return list(result.all())


async def set_quiet_hours(session: AsyncSession, chat_pk: int, start: str | None,
                          end: str | None, *, symbol: str | None = None) -> int:
    """Set (or clear with None) quiet hours on the chat's subscriptions; returns rows changed."""
    if (start is None) != (end is None):
        raise ValueError("give both the start and the end of quiet hours, or neither")
    values = (None, None) if start is None or end is None else (
        parse_hhmm(start).strftime("%H:%M"), parse_hhmm(end).strftime("%H:%M"))
    stmt = update(Subscription).where(col(Subscription.chat_pk) == chat_pk)
    if symbol is not None:
        stmt = stmt.where(col(Subscription.symbol) == normalize_symbol(symbol))
    result = await session.exec(
        stmt.values(quiet_start=values[0], quiet_end=values[1], updated_at=utcnow())
        .execution_options(**_NO_SYNC)
    )
    return int(getattr(result, "rowcount", 0))


async def set_daily_brief(session: AsyncSession, chat_pk: int, symbol: str, local_time: str,
                          timezone: str = "UTC") -> DailyBrief:
    """Schedule (or move) the chat's daily brief for `symbol` at a local HH:MM."""
    sym = normalize_symbol(symbol)
    result = await session.exec(
        select(DailyBrief).where(DailyBrief.chat_pk == chat_pk, DailyBrief.symbol == sym)
    )
    brief = result.first() or DailyBrief(chat_pk=chat_pk, symbol=sym, local_time="00:00")
    brief.local_time = parse_hhmm(local_time).strftime("%H:%M")
    brief.timezone = check_timezone(timezone)
    brief.active = True
    session.add(brief)
    await session.flush()
    return brief


async def clear_daily_brief(session: AsyncSession, chat_pk: int, symbol: str | None = None) -> int:
    """Remove the chat's daily brief for `symbol` (or all of them); returns how many."""
    stmt = delete(DailyBrief).where(col(DailyBrief.chat_pk) == chat_pk)
    if symbol is not None:
        stmt = stmt.where(col(DailyBrief.symbol) == normalize_symbol(symbol))
    result = await session.exec(stmt.execution_options(**_NO_SYNC))
    return int(getattr(result, "rowcount", 0))


async def list_daily_briefs(session: AsyncSession) -> list[tuple[DailyBrief, Chat]]:
    """Active brief schedules of active chats."""
    result = await session.exec(
        select(DailyBrief, Chat)
        .join(Chat, col(Chat.id) == col(DailyBrief.chat_pk))
        .where(col(DailyBrief.active), col(Chat.active))
        .order_by(col(DailyBrief.id))
    )
    return list(result.all())


async def pause_chat(session: AsyncSession, chat_pk: int, reason: str) -> None:
    """Stop everything for a chat (blocked, gone): chat and subscriptions paused, rows held."""
    reason = reason[:200]
    await session.exec(
        update(Chat).where(col(Chat.id) == chat_pk)
        .values(active=False, paused_reason=reason, updated_at=utcnow())
        .execution_options(**_NO_SYNC)
    )
    await session.exec(
        update(Subscription).where(col(Subscription.chat_pk) == chat_pk, col(Subscription.active))
        .values(active=False, paused_reason=reason, updated_at=utcnow())
        .execution_options(**_NO_SYNC)
    )
    await hold_chat(session, chat_pk)


async def resume_chat(session: AsyncSession, chat_pk: int, now: datetime | None = None) -> None:
    """Undo `pause_chat`: chat and its paused subscriptions active again, held rows pending."""
    at = now or utcnow()
    await session.exec(
        update(Chat).where(col(Chat.id) == chat_pk)
        .values(active=True, paused_reason=None, updated_at=at)
        .execution_options(**_NO_SYNC)
    )
    await session.exec(
        update(Subscription)
        .where(col(Subscription.chat_pk) == chat_pk, col(Subscription.paused_reason).is_not(None))
        .values(active=True, paused_reason=None, updated_at=at)
        .execution_options(**_NO_SYNC)
    )
    await release_chat(session, chat_pk, at)


async def pause_subscription(session: AsyncSession, subscription_id: int, reason: str) -> None:
    """Pause one subscription with a reason."""
    await session.exec(
        update(Subscription).where(col(Subscription.id) == subscription_id)
        .values(active=False, paused_reason=reason[:200], updated_at=utcnow())
        .execution_options(**_NO_SYNC)
    )


async def active_subscriptions(session: AsyncSession) -> list[tuple[Subscription, Chat]]:
    """Every active subscription of an active chat, with its chat (for evaluation)."""
    result = await session.exec(
        select(Subscription, Chat)
        .join(Chat, col(Chat.id) == col(Subscription.chat_pk))
        .where(col(Subscription.active), col(Chat.active))
        .order_by(col(Subscription.id))
        .execution_options(populate_existing=True)
    )
    return list(result.all())
