"""Alert state in the database: subscriptions as rules, per-band memories, and committing a tick.

`record_decisions` is the one place where decisions become outbox rows: the alert state and
the rows are written in the caller's transaction, so after a crash either both exist (the
worker delivers the row) or neither (the next evaluation recomputes the same idempotency key).
`AlertLedger` is the one alert pipeline: the in-memory book, evaluated and committed this way.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import delete
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from engine.alerts import (
    AlertBook,
    AlertKind,
    AlertRule,
    BandMemory,
    Decision,
    HeldEvent,
    Memory,
    build_book,
    evaluate_book,
)
from engine.types import Band, Side
from storage.db import SessionFactory
from storage.models import AlertBandState, AlertCounter, Chat, Subscription, utcnow
from storage.outbox import enqueue
from storage.repo import active_subscriptions, parse_hhmm, parse_kinds

PayloadFor = Callable[[Decision], dict[str, Any]]


def rule_for(sub: Subscription, chat: Chat) -> AlertRule:
    """The engine rule of a subscription row (its chat gives the time zone)."""
    return AlertRule.from_sensitivity(
        sub.id or 0, chat.id or 0, sub.symbol, sub.sensitivity,
        min_strength=sub.min_strength, kinds=parse_kinds(sub.kinds), daily_cap=sub.daily_cap,
        quiet_start=None if sub.quiet_start is None else parse_hhmm(sub.quiet_start),
        quiet_end=None if sub.quiet_end is None else parse_hhmm(sub.quiet_end),
        timezone=chat.timezone,
    )


async def active_rules(session: AsyncSession) -> list[AlertRule]:
    """Rules of every active subscription of an active chat."""
    return [rule_for(sub, chat) for sub, chat in await active_subscriptions(session)]


def _held_to_json(event: HeldEvent) -> dict[str, Any]:
    """JSON form of a held event."""
    return {"kind": event.kind.value, "band_id": event.band_id, "side": event.side.value,
            "low": event.low, "high": event.high, "price": event.price,
            "at": event.at.isoformat(), "key": event.key}


def _held_from_json(data: Mapping[str, Any]) -> HeldEvent:
    """Held event from its JSON form."""
    return HeldEvent(AlertKind(data["kind"]), str(data["band_id"]), Side(data["side"]),
                     float(data["low"]), float(data["high"]), float(data["price"]),
                     datetime.fromisoformat(data["at"]), str(data["key"]))


def _band_from_row(row: AlertBandState) -> BandMemory:
    """Engine band memory from its row."""
    return BandMemory(row.band_key, Side(row.side), row.low, row.high, row.peak, row.epoch,
                      None if row.last_kind is None else AlertKind(row.last_kind),
                      row.last_fired_at, row.fired_count, row.fired_day)


async def load_memories(session: AsyncSession,
                        subscription_ids: Iterable[int] | None = None) -> dict[int, Memory]:
    """Stored memories by subscription id (only subscriptions with stored state appear)."""
    ids = None if subscription_ids is None else list(subscription_ids)
    bands_q = select(AlertBandState).order_by(col(AlertBandState.id))
    counters_q = select(AlertCounter)
    if ids is not None:
        bands_q = bands_q.where(col(AlertBandState.subscription_id).in_(ids))
        counters_q = counters_q.where(col(AlertCounter.subscription_id).in_(ids))
    bands: dict[int, dict[str, BandMemory]] = {}
    for row in (await session.exec(bands_q)).all():
        bands.setdefault(row.subscription_id, {})[row.band_key] = _band_from_row(row)
    counters = {c.subscription_id: c for c in (await session.exec(counters_q)).all()}
    out: dict[int, Memory] = {}
    for sid in set(bands) | set(counters):
        counter = counters.get(sid)
        out[sid] = Memory(
            bands=bands.get(sid, {}),
            day="" if counter is None else counter.day,
            fired_today=0 if counter is None else counter.fired_today,
            held=() if counter is None else tuple(_held_from_json(h) for h in counter.held),
        )
    return out


async def save_memory(session: AsyncSession, subscription_id: int, memory: Memory,
                      now: datetime | None = None) -> None:
    """Replace one subscription's stored memory with `memory`."""
    rows = (await session.exec(
        select(AlertBandState).where(AlertBandState.subscription_id == subscription_id)
    )).all()
    existing = {r.band_key: r for r in rows}
    gone = [k for k in existing if k not in memory.bands]
    if gone:
        await session.exec(
            delete(AlertBandState)
            .where(col(AlertBandState.subscription_id) == subscription_id,
                   col(AlertBandState.band_key).in_(gone))
            .execution_options(synchronize_session=False)
        )
    for key, m in memory.bands.items():
        row = existing.get(key) or AlertBandState(
            subscription_id=subscription_id, band_key=key, side=m.side.value,
            low=m.low, high=m.high, peak=m.peak)
        row.side, row.low, row.high, row.peak = m.side.value, m.low, m.high, m.peak
        row.armed, row.epoch = m.armed, m.epoch
        row.last_kind = None if m.last_kind is None else m.last_kind.value
        row.last_fired_at = m.last_fired_at
        row.fired_count, row.fired_day = m.fired_count, m.fired_day
        session.add(row)
    counter = await session.get(AlertCounter, subscription_id) or AlertCounter(
        subscription_id=subscription_id)
    counter.day, counter.fired_today = memory.day, memory.fired_today
    counter.held = [_held_to_json(h) for h in memory.held]
    counter.updated_at = now or utcnow()
    session.add(counter)
    await session.flush()


async def record_decisions(session: AsyncSession, memories: Mapping[int, Memory],
                           decisions: Sequence[Decision], payload_for: PayloadFor,
                           now: datetime | None = None) -> int:
    """Save the memories of subscriptions whose decisions changed them (fired, held, covered),
    and enqueue the fired ones; returns how many rows were new. Run inside one transaction."""
    at = now or utcnow()
    touched = {d.subscription_id for d in decisions if d.remembered}
    for sid in sorted(touched):
        if sid in memories:
            await save_memory(session, sid, memories[sid], at)
    inserted = 0
    for d in decisions:
        if d.fired:
            inserted += await enqueue(session, d.key, d.chat_id, d.kind.value, payload_for(d),
                                      now=at)
    return inserted


COMMIT_CHUNK = 25  # subscriptions per transaction: short write locks (SQLite)

Step = tuple[datetime, float, float, bool]  # (when, from price, to price, ends settled)


class AlertLedger:
    """The in-memory `AlertBook` backed by the database: the one path from price moves to
    outbox rows (the service's `bot.alerting.AlertPipeline` drives it).

    `advance` evaluates a symbol over a price path, commits every changed memory with its
    outbox rows (each subscription's memory and rows in one transaction, `chunk` subscriptions
    per transaction), and adopts the new book only after every commit: if a commit fails, the
    next call starts from the old book and recomputes the same decisions and keys, and rows
    already committed are not enqueued twice (the outbox is keyed by them).
    """

    def __init__(self, sessions: SessionFactory, book: AlertBook, payload_for: PayloadFor, *,
                 on_commit: Callable[[], None] | None = None, chunk: int = COMMIT_CHUNK) -> None:
        self._sessions = sessions
        self._payload_for = payload_for
        self._on_commit = on_commit
        self._chunk = max(chunk, 1)
        self._lock = asyncio.Lock()
        self.book = book

    @classmethod
    async def load(cls, sessions: SessionFactory, payload_for: PayloadFor, now: datetime, *,
                   on_commit: Callable[[], None] | None = None,
                   chunk: int = COMMIT_CHUNK) -> AlertLedger:
        """Book of every active subscription, seeded from the stored memories."""
        ledger = cls(sessions, build_book((), {}, now), payload_for, on_commit=on_commit,
                     chunk=chunk)
        await ledger.reload(now)
        return ledger

    async def reload(self, now: datetime) -> int:
        """Pick up added, changed or paused subscriptions, keeping tracks and zones; returns
        how many subscriptions are active."""
        async with self._sessions() as session:
            rules = await active_rules(session)
            memories = await load_memories(session, [r.subscription_id for r in rules])
        async with self._lock:
            self.book = build_book(rules, memories, now, previous=self.book)
        return len(rules)

    async def advance(self, symbol: str, bands: Sequence[Band], steps: Sequence[Step], *,
                      stale: bool = False,
                      swept: Sequence[Band] = ()) -> tuple[list[Decision], int]:
        """Evaluate `symbol` along `steps` (swept bands reported on the first), commit, adopt;
        returns every decision and how many outbox rows were new."""
        async with self._lock:
            book = self.book
            decisions: list[Decision] = []
            for i, (at, a, b, settled) in enumerate(steps):
                book, made = evaluate_book(book, symbol, bands, b, a, at, stale=stale,
                                           swept=swept if i == 0 else (), settled=settled)
                decisions.extend(made)
                if len(steps) > 1:
                    await asyncio.sleep(0)  # thousands of subscriptions: let the loop breathe
            inserted = await self._commit(book, decisions, steps[-1][0]) if steps else 0
            self.book = book
            return decisions, inserted

    async def tick(self, symbol: str, bands: Sequence[Band], price: float, prev_price: float,
                   now: datetime, *, stale: bool = False,
                   swept: Sequence[Band] = ()) -> list[Decision]:
        """Evaluate one settled price tick of `symbol`, commit, adopt; returns every decision."""
        decisions, _ = await self.advance(symbol, bands, [(now, prev_price, price, True)],
                                          stale=stale, swept=swept)
        return decisions

    async def _commit(self, book: AlertBook, decisions: Sequence[Decision], now: datetime) -> int:
        """Store the memories changed by `decisions` with their outbox rows, `chunk`
        subscriptions per transaction; wakes `on_commit` after each chunk that added rows."""
        by_sub: dict[int, list[Decision]] = {}
        for d in decisions:
            by_sub.setdefault(d.subscription_id, []).append(d)
        touched = sorted(sid for sid, ds in by_sub.items() if any(d.remembered for d in ds))
        inserted = 0
        for start in range(0, len(touched), self._chunk):
            mine = [d for sid in touched[start:start + self._chunk] for d in by_sub[sid]]
            async with self._sessions() as session, session.begin():
                added = await record_decisions(session, book.memories, mine, self._payload_for,
                                               now)
            inserted += added
            if added and self._on_commit is not None:
                self._on_commit()
        return inserted
