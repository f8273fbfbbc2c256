"""Glue from a symbol's new map to outbox rows: the bars since the last map become a price path
for the alert ledger (`storage.alert_store.AlertLedger`), which decides and commits.

Every bar that closed since the last evaluation is walked as a price path (open, the nearer
extreme, the other extreme, close), so a band crossed inside a bar is not missed; only the
segment ending at the close is settled (may re-arm a band), the extremes are wicks. The alert
book (band identity, zones, memories) lives in the ledger and only advances after the
decisions and the alert state committed together.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
from collections.abc import Callable
from datetime import UTC, datetime

from sqlalchemy import func
from sqlmodel import col, select

from bot.metrics import Metrics
from engine.alerts import AlertBook, Decision, build_book
from engine.types import Bars, LiquidationMap
from storage.alert_store import AlertLedger, PayloadFor, Step
from storage.db import SessionFactory
from storage.models import Chat, Subscription

logger = logging.getLogger(__name__)

Segment = Step  # (when, from price, to price, ends settled)
_EPOCH = datetime.fromtimestamp(0, UTC)


def bar_path(bars: Bars, after_ms: int | None, prev_close: float | None) -> list[Segment]:
    """Price segments of bars closing after `after_ms` (only the last bar when None)."""
    closes = bars.time + bars.interval_ms
    start = len(bars) - 1 if after_ms is None else int((closes <= after_ms).sum())
    out: list[Segment] = []
    last = prev_close
    for i in range(max(start, 0), len(bars)):
        o, h, lo, c = (float(bars.open[i]), float(bars.high[i]), float(bars.low[i]),
                       float(bars.close[i]))
        path = [o, lo, h, c] if c >= o else [o, h, lo, c]
        if last is not None:
            path.insert(0, last)
        at = datetime.fromtimestamp(int(closes[i]) / 1000.0, UTC)
        moves = [(at, a, b, False) for a, b in itertools.pairwise(path) if a != b]
        # The path ends at the close: the bar's last move is the settled one (a bar that did
        # not move still settles where it is).
        moves[-1:] = [(at, moves[-1][1], moves[-1][2], True)] if moves else [(at, c, c, True)]
        out.extend(moves)
        last = c
    return out


class AlertPipeline:
    """Evaluates every active subscription of a symbol on each new map and enqueues alerts."""

    def __init__(self, sessions: SessionFactory, payload_for: PayloadFor,
                 on_enqueued: Callable[[], None], metrics: Metrics) -> None:
        self._sessions = sessions
        self._metrics = metrics
        self._lock = asyncio.Lock()
        self._fingerprint: tuple[object, ...] | None = None
        self.ledger = AlertLedger(sessions, build_book((), {}, _EPOCH), payload_for,
                                  on_commit=on_enqueued)
        self.cursor: dict[str, int] = {}
        self.last_price: dict[str, float] = {}

    @property
    def book(self) -> AlertBook:
        """The ledger's current alert book."""
        return self.ledger.book

    async def reload(self, now: datetime, *, force: bool = False) -> bool:
        """Rebuild the book when subscriptions or chats changed; True when rebuilt."""
        async with self._sessions() as session:
            subs = await session.exec(select(
                func.count(col(Subscription.id)), func.max(col(Subscription.updated_at)),
                func.sum(col(Subscription.id))))
            chats = await session.exec(select(
                func.count(col(Chat.id)), func.max(col(Chat.updated_at))))
            fingerprint = (*subs.one(), *chats.one())
        if not force and fingerprint == self._fingerprint:
            return False
        active = await self.ledger.reload(now)
        self._fingerprint = fingerprint
        self._metrics.set("liqradar_subscriptions_active", float(active))
        logger.info("alert book: %d active subscriptions", active)
        return True

    def symbols(self) -> set[str]:
        """Symbols someone subscribes to."""
        return set(self.ledger.book.groups)

    async def on_map(self, m: LiquidationMap, bars: Bars, *, stale: bool) -> list[Decision]:
        """Decide on the bars since the last call against `m`'s bands; commit, then wake."""
        symbol = m.symbol
        async with self._lock:
            if symbol not in self.ledger.book.groups:
                self.cursor[symbol] = int(bars.time[-1] + bars.interval_ms)
                self.last_price[symbol] = m.price
                return []
            segments = bar_path(bars, self.cursor.get(symbol), self.last_price.get(symbol))
            decisions, inserted = await self.ledger.advance(symbol, m.bands, segments,
                                                            stale=stale, swept=m.swept)
            self.cursor[symbol] = int(bars.time[-1] + bars.interval_ms)
            self.last_price[symbol] = float(bars.close[-1])
        for d in decisions:
            self._metrics.inc("liqradar_alerts_decided_total", kind=d.kind.value,
                              reason=d.reason.value)
        if inserted:
            logger.info("%s: %d alert(s) enqueued (%d decisions)", symbol, inserted,
                        len(decisions))
        return decisions
