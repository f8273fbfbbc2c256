"""Chats, subscriptions, quiet hours, brief schedules and pausing, on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from sqlalchemy.exc import IntegrityError

from storage import repo
from storage.db import SessionFactory
from storage.models import Chat, Subscription
from storage.outbox import depth, enqueue

NOW = datetime(2026, 1, 5, 12, 0, tzinfo=UTC)


async def _chat(db: SessionFactory, chat_id: str = "-100123") -> Chat:
    async with db() as s, s.begin():
        return await repo.upsert_chat(s, "telegram", chat_id, title="Desk", now=NOW)


async def test_upsert_chat_is_idempotent_and_keeps_64bit_ids(db: SessionFactory) -> None:
    big = str(-(2**63) + 1)
    first = await _chat(db, big)
    async with db() as s, s.begin():
        again = await repo.upsert_chat(s, "telegram", big, timezone="Europe/Berlin")
    assert again.id == first.id
    assert again.chat_id == big and again.title == "Desk" and again.timezone == "Europe/Berlin"
    assert again.created_at.tzinfo is not None


@pytest.mark.parametrize(("platform", "tz"), [("whatsapp", None), ("telegram", "Mars/Base")])
async def test_upsert_chat_rejects_bad_input(db: SessionFactory, platform: str,
                                             tz: str | None) -> None:
    with pytest.raises(ValueError):
        async with db() as s, s.begin():
            await repo.upsert_chat(s, platform, "1", timezone=tz)


async def test_subscribe_upserts_and_lists(db: SessionFactory) -> None:
    chat = await _chat(db)
    assert chat.id is not None
    async with db() as s, s.begin():
        sub = await repo.subscribe(s, chat.id, " btc ", kinds="cross,approach")
        again = await repo.subscribe(s, chat.id, "BTC", sensitivity="1.5%", daily_cap=3)
        await repo.subscribe(s, chat.id, "eth")
    assert sub.id == again.id
    async with db() as s:
        subs = await repo.list_subscriptions(s, chat.id)
    assert [(x.symbol, x.kinds, x.sensitivity, x.daily_cap) for x in subs] == [
        ("BTC", "approach,cross", "1.5%", 3), ("ETH", "approach,cross,swept", "balanced", 20)]


@pytest.mark.parametrize("kwargs", [
    {"kinds": "approach,moon"}, {"kinds": ""}, {"sensitivity": "wild"}, {"sensitivity": "50%"},
    {"min_strength": 1.5}, {"daily_cap": -1},
])
async def test_subscribe_validates(db: SessionFactory, kwargs: dict[str, object]) -> None:
    chat = await _chat(db)
    assert chat.id is not None
    with pytest.raises(ValueError):
        async with db() as s, s.begin():
            await repo.subscribe(s, chat.id, "BTC", **kwargs)  # type: ignore[arg-type]


async def test_unsubscribe(db: SessionFactory) -> None:
    chat = await _chat(db)
    assert chat.id is not None
    async with db() as s, s.begin():
        await repo.subscribe(s, chat.id, "BTC")
    async with db() as s, s.begin():
        assert await repo.unsubscribe(s, chat.id, "btc") is True
        assert await repo.unsubscribe(s, chat.id, "btc") is False
        assert await repo.list_subscriptions(s, chat.id) == []


async def test_quiet_hours_set_and_clear(db: SessionFactory) -> None:
    chat = await _chat(db)
    assert chat.id is not None
    async with db() as s, s.begin():
        await repo.subscribe(s, chat.id, "BTC")
        await repo.subscribe(s, chat.id, "ETH")
        assert await repo.set_quiet_hours(s, chat.id, "22:00", "7:30") == 2
        assert await repo.set_quiet_hours(s, chat.id, None, None, symbol="eth") == 1
    async with db() as s:
        subs = await repo.list_subscriptions(s, chat.id)
    assert [(x.quiet_start, x.quiet_end) for x in subs] == [("22:00", "07:30"), (None, None)]
    with pytest.raises(ValueError):
        async with db() as s, s.begin():
            await repo.set_quiet_hours(s, chat.id, "25:00", "07:00")


async def test_daily_brief_schedule(db: SessionFactory) -> None:
    chat = await _chat(db)
    assert chat.id is not None
    async with db() as s, s.begin():
        await repo.set_daily_brief(s, chat.id, "btc", "08:00", "Asia/Tokyo")
        await repo.set_daily_brief(s, chat.id, "BTC", "9:15", "Asia/Tokyo")
        await repo.set_daily_brief(s, chat.id, "ETH", "07:00")
    async with db() as s:
        briefs = await repo.list_daily_briefs(s)
    assert [(b.symbol, b.local_time, b.timezone, c.chat_id) for b, c in briefs] == [
        ("BTC", "09:15", "Asia/Tokyo", "-100123"), ("ETH", "07:00", "UTC", "-100123")]
    async with db() as s, s.begin():
        assert await repo.clear_daily_brief(s, chat.id, "BTC") == 1
        assert await repo.clear_daily_brief(s, chat.id) == 1
        assert await repo.list_daily_briefs(s) == []


async def test_pause_and_resume_chat(db: SessionFactory) -> None:
    chat = await _chat(db)
    other = await _chat(db, "42")
    assert chat.id is not None and other.id is not None
    async with db() as s, s.begin():
        await repo.subscribe(s, chat.id, "BTC")
        await repo.subscribe(s, other.id, "BTC")
        await enqueue(s, "k1", chat.id, "approach", {"title": "x"}, now=NOW)
        await repo.set_daily_brief(s, chat.id, "BTC", "08:00")
    async with db() as s, s.begin():
        await repo.pause_chat(s, chat.id, "blocked by user")
    async with db() as s:
        active = await repo.active_subscriptions(s)
        assert [c.chat_id for _, c in active] == ["42"]
        assert await repo.list_daily_briefs(s) == []
        assert (await depth(s))["held"] == 1
        paused = await repo.list_subscriptions(s, chat.id)
        assert paused[0].paused_reason == "blocked by user" and not paused[0].active
    async with db() as s, s.begin():
        await repo.resume_chat(s, chat.id, NOW)
    async with db() as s:
        assert len(await repo.active_subscriptions(s)) == 2
        assert (await depth(s))["pending"] == 1


async def test_pause_single_subscription(db: SessionFactory) -> None:
    chat = await _chat(db)
    assert chat.id is not None
    async with db() as s, s.begin():
        sub = await repo.subscribe(s, chat.id, "BTC")
        assert sub.id is not None
        await repo.pause_subscription(s, sub.id, "too noisy")
    async with db() as s:
        assert await repo.active_subscriptions(s) == []


async def test_foreign_keys_enforced(db: SessionFactory) -> None:
    with pytest.raises(IntegrityError):
        async with db() as s, s.begin():
            s.add(Subscription(chat_pk=999, symbol="BTC"))
