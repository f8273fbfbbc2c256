"""One client per venue behind a small Protocol: `fetch_bars` and `fetch_mark`."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Callable, Coroutine, Iterable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Protocol, TypeVar

import aiohttp

from engine.types import DAY_MS, Bars, Venue
from market import binance, bybit, okx
from market.assemble import assemble_bars
from market.errors import BadResponseError, MarketDataError
from market.http import DEFAULT_POLICY, HttpPolicy
from market.intervals import Interval, pick_period
from market.points import Kline, MarkPrice
from market.symbols import Symbol, resolve

logger = logging.getLogger(__name__)
T = TypeVar("T")

FUNDING_LOOKBACK_MS = DAY_MS  # reach back so the first bar already has a settled rate


class VenueClient(Protocol):
    """What the bot needs from an exchange."""

    @property
    def venue(self) -> Venue: ...

    async def fetch_bars(self, symbol: str | Symbol, interval: str | Interval, since_ms: int,
                         until_ms: int) -> Bars:
        """Bars opening in [since_ms, until_ms) with OI, funding and long/short ratio."""
        ...

    async def fetch_mark(self, symbol: str | Symbol) -> MarkPrice:
        """Latest mark and index price with the current funding rate."""
        ...


class VenueSettings(Protocol):
    """The part of `bot.settings.Settings` that builds the clients."""

    @property
    def venues(self) -> list[str]: ...
    @property
    def binance_api_url(self) -> str: ...
    @property
    def bybit_api_url(self) -> str: ...
    @property
    def okx_api_url(self) -> str: ...
    @property
    def http_timeout_s(self) -> float: ...
    @property
    def http_retries(self) -> int: ...


def now_ms() -> int:
    """Wall-clock epoch milliseconds."""
    return time.time_ns() // 1_000_000


@dataclass(frozen=True, slots=True)
class _Request:
    """A validated fetch_bars request with the ranges of its context queries."""

    symbol: Symbol
    interval: Interval
    since_ms: int
    until_ms: int
    period: Interval

    @classmethod
    def make(cls, symbol: str | Symbol, interval: str | Interval, since_ms: int, until_ms: int,
             periods: Iterable[Interval], max_points: int) -> _Request:
        if since_ms >= until_ms:
            raise ValueError(f"empty range: since_ms {since_ms} >= until_ms {until_ms}")
        bar = Interval.parse(interval)
        period = pick_period(periods, bar, until_ms - since_ms, max_points)
        return cls(resolve(symbol), bar, since_ms, until_ms, period)

    @property
    def stats_since_ms(self) -> int:
        """Start of statistics queries: one period early, so the first bar has a value."""
        return self.since_ms - self.period.ms


def _bars(venue: Venue, endpoint: str, klines: list[Kline], request: _Request,
          build: Callable[[list[Kline]], Bars]) -> Bars:
    """Assembled bars, or a BadResponseError when there are none or they are inconsistent."""
    if not klines:
        raise BadResponseError(
            f"no {request.interval} klines for {request.symbol} in "
            f"[{request.since_ms}, {request.until_ms})", venue=venue, endpoint=endpoint)
    try:
        return build(klines)
    except ValueError as exc:
        raise BadResponseError(str(exc), venue=venue, endpoint=endpoint) from exc


@dataclass(frozen=True, slots=True)
class BinanceClient:
    """Binance USD-M: klines with taker volume, 30 days of OI and ratio, funding history."""

    session: aiohttp.ClientSession
    base_url: str
    policy: HttpPolicy = DEFAULT_POLICY
    clock: Callable[[], int] = now_ms
    max_stat_points: int = 3000
    venue: Venue = field(default=Venue.BINANCE, init=False)

    async def fetch_bars(self, symbol: str | Symbol, interval: str | Interval, since_ms: int,
                         until_ms: int) -> Bars:
        """Bars opening in [since_ms, until_ms); OI and ratio stay NaN beyond 30 days back."""
        req = _Request.make(symbol, interval, since_ms, until_ms, binance.STAT_PERIODS,
                            self.max_stat_points)
        stats_since = max(req.stats_since_ms,
                          self.clock() - binance.STATS_HISTORY_MS + req.period.ms)
        args = (self.session, self.base_url, req.symbol)
        has_stats = stats_since < until_ms
        async with _together() as group:
            klines = group.create_task(binance.fetch_klines(
                *args, req.interval, since_ms, until_ms, policy=self.policy))
            oi = group.create_task(_maybe(has_stats, binance.fetch_open_interest(
                *args, req.period, stats_since, until_ms, policy=self.policy)))
            funding = group.create_task(binance.fetch_funding_history(
                *args, since_ms - FUNDING_LOOKBACK_MS, until_ms, policy=self.policy))
            ratio = group.create_task(_maybe(has_stats, binance.fetch_long_short_ratio(
                *args, req.period, stats_since, until_ms, policy=self.policy)))
        return _bars(self.venue, binance.KLINES, klines.result(), req, lambda k: assemble_bars(
            k, req.interval.ms, open_interest=oi.result(), funding=funding.result(),
            ratio=ratio.result()))

    async def fetch_mark(self, symbol: str | Symbol) -> MarkPrice:
        """Mark, index and funding from premiumIndex."""
        return await binance.fetch_mark(self.session, self.base_url, symbol, policy=self.policy)


@dataclass(frozen=True, slots=True)
class BybitClient:
    """Bybit linear: klines (no taker volume), OI in base units valued at bar opens."""

    session: aiohttp.ClientSession
    base_url: str
    policy: HttpPolicy = DEFAULT_POLICY
    max_stat_points: int = 3000
    venue: Venue = field(default=Venue.BYBIT, init=False)

    async def fetch_bars(self, symbol: str | Symbol, interval: str | Interval, since_ms: int,
                         until_ms: int) -> Bars:
        """Bars opening in [since_ms, until_ms) with OI, funding and account ratio."""
        req = _Request.make(symbol, interval, since_ms, until_ms, bybit.STAT_PERIODS,
                            self.max_stat_points)
        args = (self.session, self.base_url, req.symbol)
        async with _together() as group:
            klines = group.create_task(bybit.fetch_klines(
                *args, req.interval, since_ms, until_ms, policy=self.policy))
            oi = group.create_task(bybit.fetch_open_interest(
                *args, req.period, req.stats_since_ms, until_ms, policy=self.policy))
            funding = group.create_task(bybit.fetch_funding_history(
                *args, since_ms - FUNDING_LOOKBACK_MS, until_ms, policy=self.policy))
            ratio = group.create_task(bybit.fetch_long_short_ratio(
                *args, req.period, req.stats_since_ms, until_ms, policy=self.policy))
        return _bars(self.venue, bybit.KLINE, klines.result(), req, lambda k: assemble_bars(
            k, req.interval.ms, open_interest_base=oi.result(), funding=funding.result(),
            ratio=ratio.result()))

    async def fetch_mark(self, symbol: str | Symbol) -> MarkPrice:
        """Mark, index and funding from the ticker."""
        return await bybit.fetch_mark(self.session, self.base_url, symbol, policy=self.policy)


@dataclass(frozen=True, slots=True)
class OkxClient:
    """OKX swaps: candles, rubik OI / ratio / taker volume, funding history."""

    session: aiohttp.ClientSession
    base_url: str
    policy: HttpPolicy = DEFAULT_POLICY
    taker_volume: bool = True
    max_stat_points: int = 1000  # rubik answers 100 rows per call and is rate limited
    venue: Venue = field(default=Venue.OKX, init=False)

    async def fetch_bars(self, symbol: str | Symbol, interval: str | Interval, since_ms: int,
                         until_ms: int) -> Bars:
        """Bars opening in [since_ms, until_ms); taker buy volume when the bar length is a
        rubik period, else NaN."""
        req = _Request.make(symbol, interval, since_ms, until_ms, okx.STAT_PERIODS,
                            self.max_stat_points)
        args = (self.session, self.base_url, req.symbol)
        with_taker = self.taker_volume and req.interval in okx.STAT_CODES
        async with _together() as group:
            klines = group.create_task(okx.fetch_klines(
                *args, req.interval, since_ms, until_ms, policy=self.policy))
            oi = group.create_task(okx.fetch_open_interest(
                *args, req.period, req.stats_since_ms, until_ms, policy=self.policy))
            funding = group.create_task(okx.fetch_funding_history(
                *args, since_ms - FUNDING_LOOKBACK_MS, until_ms, policy=self.policy))
            ratio = group.create_task(okx.fetch_long_short_ratio(
                *args, req.period, req.stats_since_ms, until_ms, policy=self.policy))
            taker = group.create_task(_maybe(with_taker, okx.fetch_taker_volume(
                *args, req.interval, since_ms, until_ms, policy=self.policy)))
        return _bars(self.venue, okx.CANDLES, klines.result(), req, lambda k: assemble_bars(
            k, req.interval.ms, open_interest=oi.result(), funding=funding.result(),
            ratio=ratio.result(), taker_volume=taker.result()))

    async def fetch_mark(self, symbol: str | Symbol) -> MarkPrice:
        """Mark, index and funding from three public endpoints."""
        return await okx.fetch_mark(self.session, self.base_url, symbol, policy=self.policy)


@asynccontextmanager
async def _together() -> AsyncIterator[asyncio.TaskGroup]:
    """A TaskGroup that cancels the other calls on the first failure and raises that failure
    itself (not an ExceptionGroup)."""
    try:
        async with asyncio.TaskGroup() as group:
            yield group
    except ExceptionGroup as errors:
        first: BaseException = errors
        while isinstance(first, BaseExceptionGroup):
            first = first.exceptions[0]
        raise first from None


async def _maybe(wanted: bool, call: Coroutine[object, object, list[T]]) -> list[T]:
    """Await `call` when wanted; otherwise close it unawaited and return []."""
    if wanted:
        return await call
    call.close()
    return []


async def fetch_bars_by_venue(clients: Mapping[Venue, VenueClient], symbol: str | Symbol,
                              interval: str | Interval, since_ms: int, until_ms: int,
                              ) -> dict[Venue, Bars | MarketDataError]:
    """Bars of every venue fetched together; a venue that fails gets its error instead, so one
    outage does not hide the others. An unparseable symbol raises at once."""
    resolved = resolve(symbol)

    async def one(client: VenueClient) -> Bars | MarketDataError:
        try:
            return await client.fetch_bars(resolved, interval, since_ms, until_ms)
        except MarketDataError as exc:
            logger.warning("%s", exc)
            return exc

    results = await asyncio.gather(*(one(c) for c in clients.values()))
    return dict(zip(clients, results, strict=True))


def build_venue_clients(
    session: aiohttp.ClientSession,
    settings: VenueSettings | None = None,
    *,
    venues: Iterable[str | Venue] | None = None,
    binance_api_url: str = "https://fapi.binance.com",
    bybit_api_url: str = "https://api.bybit.com",
    okx_api_url: str = "https://www.okx.com",
    timeout_s: float = 10.0,
    retries: int = 3,
) -> dict[Venue, VenueClient]:
    """Clients sharing one session, from a Settings object or plain arguments."""
    if settings is not None:
        venues = settings.venues
        binance_api_url, bybit_api_url = settings.binance_api_url, settings.bybit_api_url
        okx_api_url = settings.okx_api_url
        timeout_s, retries = settings.http_timeout_s, settings.http_retries
    policy = HttpPolicy(timeout_s=timeout_s, retries=retries)
    wanted = [Venue(v.strip().lower()) for v in (venues if venues is not None else Venue)]
    clients: dict[Venue, VenueClient] = {}
    for venue in wanted:
        if venue is Venue.BINANCE:
            clients[venue] = BinanceClient(session, binance_api_url, policy)
        elif venue is Venue.BYBIT:
            clients[venue] = BybitClient(session, bybit_api_url, policy)
        else:
            clients[venue] = OkxClient(session, okx_api_url, policy)
    return clients
