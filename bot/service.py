"""The running service: its parts kept together, and the jobs the scheduler runs on them.

`bot.app` builds a `Service` (the composition root) and starts it; the methods here are the
scheduled work: refresh a symbol (fetch, rebuild the map, evaluate alerts), reconcile jobs with
the database, replay ticks, daily briefs and the liquidation streams.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Coroutine
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import aiohttp

from bot.alerting import AlertPipeline
from bot.delivery import OutboxWorker
from bot.mapservice import MapService
from bot.metrics import Metrics, monotonic
from bot.scheduler import BriefSchedule, ServiceScheduler
from bot.services import Services
from bot.settings import Settings
from engine.types import LiquidationMap, Side, Window
from market.errors import MarketDataError, UnknownSymbolError
from market.symbols import resolve
from storage.db import SessionFactory

logger = logging.getLogger(__name__)

MAP_LOG_EVERY_S = 10.0


@dataclass(slots=True)
class Service:
    """The running parts, kept together so tests and the shutdown path can reach them."""

    settings: Settings
    sessions: SessionFactory
    maps: MapService
    services: Services
    pipeline: AlertPipeline
    worker: OutboxWorker
    scheduler: ServiceScheduler
    metrics: Metrics
    stop: asyncio.Event
    replay: Any = None  # bot.replay_source.ReplaySource in replay mode
    telegram: Any = None  # bot.telegram_bot.TelegramBot when configured
    discord: Any = None  # bot.discord_bot.DiscordBot when configured
    http: aiohttp.ClientSession | None = None
    web_url: str = ""
    announced_end: bool = False
    streams_for: frozenset[str] = frozenset()
    tasks: set[asyncio.Task[None]] = field(default_factory=set)
    refreshing: set[asyncio.Task[None]] = field(default_factory=set)
    briefs: list[BriefSchedule] = field(default_factory=list)
    stale: set[str] = field(default_factory=set)
    announced: dict[str, float] = field(default_factory=dict)
    venues_down: dict[str, set[str]] = field(default_factory=dict)
    brief_cursor: datetime | None = None

    def now(self) -> datetime:
        """Service time: the replay's virtual clock, else the wall clock (UTC)."""
        return self.services.clock()

    def symbols(self) -> list[str]:
        """Symbols being refreshed, sorted."""
        return sorted(self.scheduler.symbols())

    def spawn(self, coro: Coroutine[Any, Any, None], name: str) -> asyncio.Task[None]:
        """A background task kept referenced until it ends."""
        task = asyncio.create_task(coro, name=name)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)
        return task

    # ------------------------------------------------------------------ jobs

    async def refresh(self, symbol: str) -> None:
        """Fetch a symbol, rebuild its map, evaluate alerts on the new bars (scheduler job)."""
        task = asyncio.current_task()
        if task is not None:
            self.refreshing.add(task)
        started = monotonic()
        try:
            await self._refresh(symbol)
        finally:
            if task is not None:
                self.refreshing.discard(task)
            self.metrics.observe("liqradar_refresh_seconds", monotonic() - started,
                                 symbol=symbol)

    async def _refresh(self, symbol: str) -> None:
        try:
            snap = await self.maps.refresh(symbol)
        except UnknownSymbolError as exc:
            logger.warning("refresh %s: %s", symbol, exc)
            self.metrics.inc("liqradar_refresh_failures_total", symbol=symbol)
            return
        except MarketDataError as exc:
            logger.warning("refresh %s failed, keeping the previous map: %s", symbol, exc)
            self.metrics.inc("liqradar_refresh_failures_total", symbol=symbol)
            return
        down = {v.value for v in snap.failed}
        if down != self.venues_down.get(symbol, set()):
            for venue, why in snap.failed.items():
                logger.warning("%s: %s unavailable (%s); using the other venues", symbol,
                               venue.value, why)
            if not down:
                logger.info("%s: every venue answers again", symbol)
            self.venues_down[symbol] = down
        m: LiquidationMap = await self.maps.get_map(symbol, Window.H24)
        stale = self.maps.is_stale(snap)
        if stale != (symbol in self.stale):
            age_s = (self.maps.now_ms() - snap.last_close_ms) / 1000
            if stale:
                self.stale.add(symbol)
                logger.warning("%s data is stale (%.0f s old): no alerts until it is fresh",
                               symbol, age_s)
            else:
                self.stale.discard(symbol)
                logger.info("%s data is fresh again", symbol)
        bars = next(iter(snap.bars.values()))
        await self.pipeline.on_map(m, bars, stale=stale)
        self._announce(m)
        self.metrics.set("liqradar_price", m.price, symbol=symbol)
        self.metrics.set("liqradar_bands", float(len(m.bands)), symbol=symbol)
        self.metrics.inc("liqradar_refreshes_total", symbol=symbol)

    def _announce(self, m: LiquidationMap) -> None:
        """One log line per symbol every `MAP_LOG_EVERY_S`: price and the nearest bands."""
        now = time.monotonic()
        if now - self.announced.get(m.symbol, -MAP_LOG_EVERY_S) < MAP_LOG_EVERY_S:
            return
        self.announced[m.symbol] = now
        near = []
        for side in (Side.LONG, Side.SHORT):
            bands = [b for b in m.bands if b.side is side]
            if bands:
                b = min(bands, key=lambda x: abs(x.distance_pct))
                near.append(f"{side.value} {b.low:,.0f}-{b.high:,.0f} ({b.distance_pct:+.2f}%)")
        when = datetime.fromtimestamp(m.as_of_ms / 1000, UTC).strftime("%Y-%m-%d %H:%M")
        logger.info("map %s %s UTC: price %s, %d bands, nearest %s; %ss/%s", m.symbol, when,
                    f"{m.price:,.2f}", len(m.bands), ", ".join(near) or "none", self.web_url,
                    m.symbol)

    async def reconcile(self) -> None:
        """Make jobs match the database: refreshed symbols, daily briefs, alert rules."""
        from bot.daily import load_schedules

        now = self.now()
        await self.pipeline.reload(now)
        wanted = {resolve(s).base for s in self.settings.symbols} | self.pipeline.symbols()
        if self.replay is not None:  # only the replayed symbols have data
            wanted = set(self.replay.symbols)
        self.scheduler.sync_symbols(wanted)
        self.briefs = await load_schedules(self.services)
        if self.replay is None:
            self.scheduler.sync_briefs(self.briefs)
        if self.replay is None and not wanted <= self.streams_for:
            self._restart_streams(frozenset(wanted | self.streams_for))

    async def replay_tick(self) -> None:
        """Replay only: daily briefs whose local time the virtual clock just passed."""
        from bot.daily import run_due_briefs

        now = self.now()
        since, self.brief_cursor = self.brief_cursor or now, now
        if await run_due_briefs(self.services, since, now):
            self.worker.wake()
        if self.replay is not None and self.replay.finished() and not self.announced_end:
            self.announced_end = True
            logger.info("replay reached the end of its data; the maps now age into 'stale'")

    async def daily_brief(self, schedule: BriefSchedule) -> None:
        """Cron job at a chat's local time."""
        from bot.daily import run_daily_brief

        await run_daily_brief(self.services, schedule)
        self.worker.wake()

    # ------------------------------------------------------------------ streams

    def _restart_streams(self, symbols: frozenset[str]) -> None:
        """(Re)start the realized-liquidation websockets for `symbols`."""
        from bot.feeds import run_streams

        for task in [t for t in self.tasks if t.get_name() == "streams"]:
            task.cancel()
        self.streams_for = symbols
        buffer = getattr(self.maps.source, "prints", None)
        if buffer is None or self.http is None:
            return
        self.spawn(run_streams(self.http, self.settings, sorted(symbols), buffer, self.stop),
                   "streams")
