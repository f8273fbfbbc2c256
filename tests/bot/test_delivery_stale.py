"""Rows orphaned in 'sending' while the worker runs are requeued after STALE_SENDING."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlmodel import select

from bot.delivery import STALE_SENDING
from storage import outbox, repo
from storage.db import make_engine, session_factory, upgrade
from storage.models import Delivery

T0 = datetime(2026, 3, 5, 7, 0, tzinfo=UTC)


async def test_only_rows_claimed_long_ago_are_requeued(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'o.db'}"
    await upgrade(url)
    engine = make_engine(url)
    sessions = session_factory(engine)
    async with sessions.begin() as db:
        chat = await repo.upsert_chat(db, "console", "c1")
        for key in ("old", "new"):
            await outbox.enqueue(db, key, chat.id or 0, "approach", {"title": key}, now=T0)
    async with sessions.begin() as db:
        claimed = await outbox.claim_due(db, T0, 10, "console")
        assert len(claimed) == 2
    async with sessions.begin() as db:
        row = (await db.exec(select(Delivery).where(Delivery.key == "new"))).one()
        row.claimed_at = T0 + STALE_SENDING
        db.add(row)
    later = T0 + STALE_SENDING + timedelta(minutes=1)
    async with sessions.begin() as db:
        assert await outbox.requeue_sending(db, later, claimed_before=later - STALE_SENDING) == 1
    async with sessions.begin() as db:
        status = {d.key: d.status for d in (await db.exec(select(Delivery))).all()}
    assert status == {"old": "pending", "new": "sending"}
    await engine.dispose()
