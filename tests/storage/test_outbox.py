"""Outbox: idempotent enqueue, claiming, retry, failure, crash requeue, on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from storage import outbox, repo
from storage.db import SessionFactory

NOW = datetime(2026, 1, 5, 12, 0, tzinfo=UTC)


async def _chat_pk(db: SessionFactory) -> int:
    async with db() as s, s.begin():
        chat = await repo.upsert_chat(s, "discord", "987654321012345678")
    assert chat.id is not None
    return chat.id


async def test_enqueue_same_key_is_a_no_op(db: SessionFactory) -> None:
    pk = await _chat_pk(db)
    async with db() as s, s.begin():
        assert await outbox.enqueue(s, "k", pk, "cross", {"title": "first"}, now=NOW)
        assert not await outbox.enqueue(s, "k", pk, "cross", {"title": "second"}, now=NOW)
    async with db() as s:
        row = await outbox.get_delivery(s, "k")
        assert row is not None and row.payload == {"title": "first"}
        assert (await outbox.depth(s))["pending"] == 1


async def test_claim_only_due_rows_in_order(db: SessionFactory) -> None:
    pk = await _chat_pk(db)
    async with db() as s, s.begin():
        await outbox.enqueue(s, "later", pk, "cross", {}, now=NOW + timedelta(minutes=5))
        await outbox.enqueue(s, "b", pk, "cross", {}, now=NOW)
        await outbox.enqueue(s, "a", pk, "cross", {}, now=NOW - timedelta(seconds=1))
    async with db() as s, s.begin():
        claimed = await outbox.claim_due(s, NOW, limit=10)
    assert [(c.key, c.attempts, c.platform, c.chat_id) for c in claimed] == [
        ("a", 1, "discord", "987654321012345678"), ("b", 1, "discord", "987654321012345678")]
    async with db() as s, s.begin():
        assert await outbox.claim_due(s, NOW, limit=10) == []
        assert (await outbox.depth(s))["sending"] == 2


async def test_outcomes(db: SessionFactory) -> None:
    pk = await _chat_pk(db)
    async with db() as s, s.begin():
        for key in ("ok", "retry", "bad"):
            await outbox.enqueue(s, key, pk, "approach", {}, now=NOW)
    async with db() as s, s.begin():
        ids = {c.key: c.id for c in await outbox.claim_due(s, NOW)}
        assert await outbox.mark_sent(s, ids["ok"], NOW, receipt="m1")
        assert await outbox.retry_later(s, ids["retry"], NOW, timedelta(seconds=30), "429")
        assert await outbox.mark_failed(s, ids["bad"], "chat not found")
        assert not await outbox.mark_sent(s, ids["ok"], NOW)  # already sent
    async with db() as s, s.begin():
        assert await outbox.claim_due(s, NOW + timedelta(seconds=29)) == []
        again = await outbox.claim_due(s, NOW + timedelta(seconds=30))
        assert [(c.key, c.attempts) for c in again] == [("retry", 2)]
        sent = await outbox.get_delivery(s, "ok")
        assert sent is not None and sent.receipt == "m1" and sent.sent_at == NOW
        assert (await outbox.depth(s)) == {"pending": 0, "sending": 1, "sent": 1, "failed": 1,
                                           "held": 0}


async def test_requeue_sending_after_crash(db: SessionFactory) -> None:
    pk = await _chat_pk(db)
    async with db() as s, s.begin():
        await outbox.enqueue(s, "k", pk, "cross", {}, now=NOW)
        await outbox.claim_due(s, NOW)
    async with db() as s, s.begin():
        assert await outbox.requeue_sending(s, NOW) == 1
        claimed = await outbox.claim_due(s, NOW)
    assert [(c.key, c.attempts) for c in claimed] == [("k", 2)]
