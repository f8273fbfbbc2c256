"""Live market data: venue REST snapshots plus realized liquidations from the websockets."""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Collection
from dataclasses import dataclass, field

import aiohttp

from bot.settings import Settings
from bot.sources import LiveSource, MarketSnapshot, prints_by_venue
from engine.types import DAY_MS, LiquidationEvent
from market.errors import MarketDataError
from market.streams import build_stream_specs, merge_streams

logger = logging.getLogger(__name__)

MAX_EVENTS_PER_SYMBOL = 200_000


@dataclass(slots=True)
class PrintBuffer:
    """Realized liquidations of the last `keep_ms`, per symbol (bounded)."""

    keep_ms: int = DAY_MS
    events: dict[str, deque[LiquidationEvent]] = field(default_factory=dict)
    received: int = 0

    def add(self, event: LiquidationEvent) -> None:
        """Keep one event; forget those older than `keep_ms`."""
        queue = self.events.setdefault(event.symbol,
                                       deque(maxlen=MAX_EVENTS_PER_SYMBOL))
        queue.append(event)
        self.received += 1
        horizon = event.time_ms - self.keep_ms
        while queue and queue[0].time_ms < horizon:
            queue.popleft()

    def of(self, symbol: str) -> list[LiquidationEvent]:
        """Events of one symbol, oldest first."""
        return list(self.events.get(symbol, ()))


@dataclass(slots=True)
class LiveFeedSource:
    """A `MarketSource`: venue bars from REST, with the buffered realized prints attached."""

    rest: LiveSource
    prints: PrintBuffer
    wide: LiveSource | None = None

    async def snapshot(self, symbol: str) -> MarketSnapshot:
        """REST snapshot (degrading to the venues that answer) plus realized prints."""
        snap = await self.rest.snapshot(symbol)
        events = self.prints.of(snap.symbol)
        if not events:
            return snap
        return MarketSnapshot(snap.symbol, snap.bars, prints_by_venue(events), snap.failed)


async def run_streams(session: aiohttp.ClientSession, settings: Settings,
                      symbols: Collection[str], buffer: PrintBuffer,
                      stop: asyncio.Event) -> None:
    """Feed `buffer` from every configured venue's liquidation stream until `stop` is set
    (each stream reconnects by itself; a venue that cannot be set up is skipped)."""
    try:
        specs = await build_stream_specs(session, settings, symbols)
    except (MarketDataError, aiohttp.ClientError, OSError, TimeoutError) as exc:
        logger.warning("liquidation streams unavailable: %s", exc)
        return
    async for event in merge_streams(session, specs, stop):
        buffer.add(event)
    logger.info("liquidation streams stopped after %d events", buffer.received)


def live_source(session: aiohttp.ClientSession, settings: Settings,
                buffer: PrintBuffer) -> LiveFeedSource:
    """The production source: every configured venue, sharing one HTTP session."""
    from market.venue import build_venue_clients

    clients = build_venue_clients(session, settings)
    return LiveFeedSource(LiveSource(clients, settings.history_days), buffer,
                          wide=LiveSource(clients, settings.wide_history_days,
                                          settings.wide_interval))

