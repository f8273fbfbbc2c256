"""Outbox of deliveries: idempotent enqueue, claiming due rows, and recording outcomes.

Functions take an open session and never commit: the caller owns the transaction, so an
alert-state update and its outbox row commit together.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from storage.models import Chat, Delivery, DeliveryStatus, utcnow

PENDING = DeliveryStatus.PENDING.value
SENDING = DeliveryStatus.SENDING.value
SENT = DeliveryStatus.SENT.value
FAILED = DeliveryStatus.FAILED.value
HELD = DeliveryStatus.HELD.value
_NO_SYNC = {"synchronize_session": False}


@dataclass(frozen=True, slots=True)
class Claimed:
    """A delivery claimed for sending, with its chat's address."""

    id: int
    key: str
    kind: str
    payload: dict[str, Any]
    attempts: int
    chat_pk: int
    platform: str
    chat_id: str


async def enqueue(session: AsyncSession, key: str, chat_pk: int, kind: str,
                  payload: dict[str, Any], *, now: datetime | None = None) -> bool:
    """Insert a pending delivery; an existing key is left untouched. True when inserted."""
    at = now or utcnow()
    values = {"key": key, "chat_pk": chat_pk, "kind": kind, "payload": payload,
              "status": PENDING, "attempts": 0, "next_attempt_at": at, "created_at": at}
    dialect = session.get_bind().dialect.name
    insert = pg_insert if dialect == "postgresql" else sqlite_insert
    stmt = insert(Delivery).values(**values).on_conflict_do_nothing(index_elements=["key"])
    result = await session.exec(stmt)
    return bool(getattr(result, "rowcount", 0))


async def claim_due(session: AsyncSession, now: datetime, limit: int = 50,
                    platform: str | None = None) -> list[Claimed]:
    """Mark up to `limit` due pending rows (of one platform) as sending and return them.

    Each claim counts as an attempt. On PostgreSQL concurrent workers skip each other's rows.
    """
    due = (
        select(Delivery.id)
        .where(Delivery.status == PENDING, col(Delivery.next_attempt_at) <= now)
        .order_by(col(Delivery.next_attempt_at), col(Delivery.id))
        .limit(limit)
        .with_for_update(skip_locked=True, of=Delivery)
    )
    if platform is not None:
        due = due.join(Chat, col(Chat.id) == col(Delivery.chat_pk)).where(
            Chat.platform == platform)
    ids = [i for i in (await session.exec(due)).all() if i is not None]
    if not ids:
        return []
    # RETURNING gives exactly the rows this statement moved, so two workers racing on SQLite
    # (which has no SKIP LOCKED) can never both claim one row.
    moved = await session.exec(
        update(Delivery)
        .where(col(Delivery.id).in_(ids), col(Delivery.status) == PENDING)
        .values(status=SENDING, attempts=col(Delivery.attempts) + 1, claimed_at=now)
        .returning(col(Delivery.id))
        .execution_options(**_NO_SYNC)
    )
    ids = [row[0] for row in moved.all()]
    if not ids:
        return []
    rows = await session.exec(
        select(Delivery, Chat)
        .join(Chat, col(Chat.id) == col(Delivery.chat_pk))
        .where(col(Delivery.id).in_(ids), col(Delivery.status) == SENDING)
        .order_by(col(Delivery.next_attempt_at), col(Delivery.id))
        .execution_options(populate_existing=True)
    )
    return [
        Claimed(d.id or 0, d.key, d.kind, d.payload, d.attempts, c.id or 0, c.platform, c.chat_id)
        for d, c in rows.all()
    ]


async def _set(session: AsyncSession, delivery_id: int, from_status: Sequence[str],
               **values: Any) -> bool:
    """Update one row if it is in one of `from_status`; True when it was."""
    result = await session.exec(
        update(Delivery)
        .where(col(Delivery.id) == delivery_id, col(Delivery.status).in_(from_status))
        .values(**values)
        .execution_options(**_NO_SYNC)
    )
    return bool(getattr(result, "rowcount", 0))


async def mark_sent(session: AsyncSession, delivery_id: int, now: datetime,
                    receipt: str | None = None) -> bool:
    """Record a successful send."""
    return await _set(session, delivery_id, (SENDING,), status=SENT, sent_at=now,
                      receipt=receipt, last_error=None)


async def mark_acknowledged(session: AsyncSession, receipts: Mapping[str, str | None],
                            now: datetime) -> list[str]:
    """Record as sent the rows (by key) a platform is known to have accepted, if they are still
    `sending` (claimed by the process that wrote the journal); returns the keys updated."""
    sending = await session.exec(select(Delivery.key).where(col(Delivery.status) == SENDING))
    done: list[str] = []
    for key in sorted(set(sending.all()) & receipts.keys()):  # a few rows, not the journal
        receipt = receipts[key]
        result = await session.exec(
            update(Delivery)
            .where(col(Delivery.key) == key, col(Delivery.status) == SENDING)
            .values(status=SENT, sent_at=now, receipt=receipt, last_error=None)
            .execution_options(**_NO_SYNC)
        )
        if getattr(result, "rowcount", 0):
            done.append(key)
    return done


async def retry_later(session: AsyncSession, delivery_id: int, now: datetime, delay: timedelta,
                      error: str) -> bool:
    """Put a row back to pending, due after `delay`."""
    return await _set(session, delivery_id, (SENDING,), status=PENDING,
                      next_attempt_at=now + delay, last_error=error[:500])


async def mark_failed(session: AsyncSession, delivery_id: int, error: str) -> bool:
    """Give up on a row."""
    return await _set(session, delivery_id, (SENDING, PENDING, HELD), status=FAILED,
                      last_error=error[:500])


async def hold_chat(session: AsyncSession, chat_pk: int) -> int:
    """Hold every pending row of a chat (its chat was paused); returns how many."""
    result = await session.exec(
        update(Delivery)
        .where(col(Delivery.chat_pk) == chat_pk, col(Delivery.status) == PENDING)
        .values(status=HELD)
        .execution_options(**_NO_SYNC)
    )
    return int(getattr(result, "rowcount", 0))


async def release_chat(session: AsyncSession, chat_pk: int, now: datetime) -> int:
    """Make a resumed chat's held rows pending again."""
    result = await session.exec(
        update(Delivery)
        .where(col(Delivery.chat_pk) == chat_pk, col(Delivery.status) == HELD)
        .values(status=PENDING, next_attempt_at=now)
        .execution_options(**_NO_SYNC)
    )
    return int(getattr(result, "rowcount", 0))


async def requeue_sending(
    session: AsyncSession, now: datetime, claimed_before: datetime | None = None
) -> int:
    """Return rows left in 'sending' to pending: all of them before a worker starts (a crash
    left them), or only those claimed before `claimed_before` (orphaned while running)."""
    stuck = col(Delivery.status) == SENDING
    if claimed_before is not None:
        stuck = stuck & (col(Delivery.claimed_at) < claimed_before)
    result = await session.exec(
        update(Delivery)
        .where(stuck)
        .values(status=PENDING, next_attempt_at=now)
        .execution_options(**_NO_SYNC)
    )
    return int(getattr(result, "rowcount", 0))


async def depth(session: AsyncSession) -> dict[str, int]:
    """Number of rows per status (statuses with no rows are 0)."""
    rows = await session.exec(
        select(Delivery.status, func.count()).group_by(col(Delivery.status))
    )
    counts = {s.value: 0 for s in DeliveryStatus}
    counts.update({status: int(n) for status, n in rows.all()})
    return counts


async def get_delivery(session: AsyncSession, key: str) -> Delivery | None:
    """The row with this idempotency key, if any."""
    result = await session.exec(
        select(Delivery).where(Delivery.key == key).execution_options(populate_existing=True)
    )
    return result.first()
