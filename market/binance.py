"""Binance USD-M futures (fapi): public REST endpoints and the `!forceOrder@arr` stream."""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import TypeVar

import aiohttp

from engine.types import DAY_MS, HOUR_MS, LiquidationEvent, Side, Venue
from market.errors import MarketDataError, RequestRejectedError, UnknownSymbolError
from market.http import DEFAULT_POLICY, HttpPolicy, JsonValue, Params, get_json
from market.intervals import Interval
from market.paging import windowed
from market.points import FundingPoint, Kline, MarkPrice, OpenInterestPoint, RatioPoint
from market.symbols import Symbol, from_instrument, resolve
from market.validate import Timed, Where

VENUE = Venue.BINANCE

KLINES = "/fapi/v1/klines"
PREMIUM_INDEX = "/fapi/v1/premiumIndex"  # mark, index and the current funding rate
FUNDING_RATE = "/fapi/v1/fundingRate"  # settled funding history, oldest first
OPEN_INTEREST_HIST = "/futures/data/openInterestHist"  # only the last 30 days
LONG_SHORT_ACCOUNT_RATIO = "/futures/data/globalLongShortAccountRatio"  # last 30 days too
FORCE_ORDER_STREAM = "!forceOrder@arr"

KLINES_LIMIT = 1500
STATS_LIMIT = 500
FUNDING_LIMIT = 1000
FUNDING_STEP_MS = FUNDING_LIMIT * HOUR_MS  # funding can settle hourly on some symbols
STATS_HISTORY_MS = 30 * DAY_MS
STAT_PERIODS = (Interval.M5, Interval.M15, Interval.M30, Interval.H1, Interval.H2, Interval.H4,
                Interval.H6, Interval.H12, Interval.D1)
INVALID_SYMBOL = -1121

_T = TypeVar("_T", bound=Timed)
_Parser = Callable[[JsonValue], list[_T]]


def error_of(payload: JsonValue, *, endpoint: str, instrument: str) -> MarketDataError | None:
    """Binance `{"code": -1121, "msg": "Invalid symbol."}` and other error bodies as errors."""
    if not isinstance(payload, dict) or "code" not in payload or "msg" not in payload:
        return None
    code, msg = payload["code"], payload["msg"]
    if code == INVALID_SYMBOL:
        return UnknownSymbolError(instrument, f"no such instrument {instrument!r} ({msg})",
                                  venue=VENUE, endpoint=endpoint)
    return RequestRejectedError(f"code {code}: {msg}", venue=VENUE, endpoint=endpoint)


def parse_klines(payload: JsonValue) -> list[Kline]:
    """`[[openTime,"o","h","l","c","vol",closeTime,"quoteVol",n,"takerBase",...]]`, oldest first."""
    where = Where(VENUE, KLINES)
    klines = [where.kline(row, "kline", time="open time", taker_buy_at=9)
              for row in where.items(payload, "klines")]
    return where.oldest_first(klines)


def parse_open_interest(payload: JsonValue) -> list[OpenInterestPoint]:
    """`[{"sumOpenInterestValue": "...", "timestamp": ms}]` in USD, oldest first."""
    where = Where(VENUE, OPEN_INTEREST_HIST)
    points = []
    for item in where.items(payload, "open interest"):
        obj = where.mapping(item, "open interest point")
        points.append(OpenInterestPoint(
            time_ms=where.time(where.field(obj, "timestamp")),
            usd=where.number(where.field(obj, "sumOpenInterestValue"), "sumOpenInterestValue"),
        ))
    return where.oldest_first(points)


def parse_funding_history(payload: JsonValue) -> list[FundingPoint]:
    """`[{"fundingRate": "...", "fundingTime": ms}]`, oldest first."""
    where = Where(VENUE, FUNDING_RATE)
    points = []
    for item in where.items(payload, "funding history"):
        obj = where.mapping(item, "funding point")
        points.append(FundingPoint(
            time_ms=where.time(where.field(obj, "fundingTime"), "fundingTime"),
            rate=where.number(where.field(obj, "fundingRate"), "fundingRate", signed=True),
        ))
    return where.oldest_first(points)


def parse_long_short_ratio(payload: JsonValue) -> list[RatioPoint]:
    """`[{"longAccount": "0.6", "shortAccount": "0.4", "timestamp": ms}]`, oldest first."""
    where = Where(VENUE, LONG_SHORT_ACCOUNT_RATIO)
    points = []
    for item in where.items(payload, "long/short ratio"):
        obj = where.mapping(item, "ratio point")
        share = where.number(where.field(obj, "longAccount"), "longAccount")
        if share > 1:
            raise where.bad(f"longAccount is {share}, expected a share in [0, 1]")
        points.append(RatioPoint(time_ms=where.time(where.field(obj, "timestamp")),
                                 long_share=share))
    return where.oldest_first(points)


def parse_mark(payload: JsonValue) -> MarkPrice:
    """`{"markPrice": "...", "indexPrice": "...", "lastFundingRate": "...", "time": ms}`."""
    where = Where(VENUE, PREMIUM_INDEX)
    obj = where.mapping(payload, "premium index")
    return MarkPrice(
        time_ms=where.time(where.field(obj, "time"), "time"),
        mark=where.number(where.field(obj, "markPrice"), "markPrice", positive=True),
        index=where.number(where.field(obj, "indexPrice"), "indexPrice", positive=True),
        funding_rate=where.number(where.field(obj, "lastFundingRate"), "lastFundingRate",
                                  signed=True),
    )


def parse_force_order(message: JsonValue) -> list[LiquidationEvent]:
    """A `forceOrder` push (raw or combined-stream) as events; `S` SELL = a long was liquidated.

    Returns [] for other events and for instruments that are not USDT perpetuals.
    """
    where = Where(VENUE, FORCE_ORDER_STREAM)
    obj = where.mapping(message, "message")
    if "data" in obj and "e" not in obj:
        obj = where.mapping(obj["data"], "data")
    if obj.get("e") != "forceOrder":
        return []
    order = where.mapping(where.field(obj, "o"), "order")
    symbol = from_instrument(VENUE, str(where.field(order, "s")))
    if symbol is None:
        return []
    sides = {"SELL": Side.LONG, "BUY": Side.SHORT}
    raw_side = where.field(order, "S")
    if raw_side not in sides:
        raise where.bad(f"side is {raw_side!r}, expected BUY or SELL")
    price = where.number(order.get("ap", "0"), "ap")
    if price <= 0:
        price = where.number(where.field(order, "p"), "p", positive=True)
    quantity = where.number(order.get("z", "0"), "z")
    if quantity <= 0:
        quantity = where.number(where.field(order, "q"), "q", positive=True)
    return [LiquidationEvent(
        time_ms=where.time(order.get("T", obj.get("E")), "T"),
        venue=VENUE,
        symbol=symbol.base,
        side=sides[str(raw_side)],
        price=price,
        quantity=quantity,
        usd=price * quantity,
    )]


async def fetch_klines(session: aiohttp.ClientSession, base_url: str, symbol: str | Symbol,
                       interval: Interval, since_ms: int, until_ms: int, *,
                       policy: HttpPolicy = DEFAULT_POLICY) -> list[Kline]:
    """Klines opening in [since_ms, until_ms), oldest first, in pages of 1500."""
    return await _windows(session, base_url, symbol, KLINES, {"interval": interval.value},
                          since_ms, until_ms, KLINES_LIMIT, KLINES_LIMIT * interval.ms,
                          parse_klines, policy)


async def fetch_open_interest(session: aiohttp.ClientSession, base_url: str,
                              symbol: str | Symbol, period: Interval, since_ms: int,
                              until_ms: int, *, policy: HttpPolicy = DEFAULT_POLICY,
                              ) -> list[OpenInterestPoint]:
    """Open interest (USD) stamped in [since_ms, until_ms); Binance keeps only 30 days."""
    return await _windows(session, base_url, symbol, OPEN_INTEREST_HIST,
                          {"period": period.value}, since_ms, until_ms, STATS_LIMIT,
                          STATS_LIMIT * period.ms, parse_open_interest, policy)


async def fetch_long_short_ratio(session: aiohttp.ClientSession, base_url: str,
                                 symbol: str | Symbol, period: Interval, since_ms: int,
                                 until_ms: int, *, policy: HttpPolicy = DEFAULT_POLICY,
                                 ) -> list[RatioPoint]:
    """Global long/short account ratio stamped in [since_ms, until_ms) (30 days kept)."""
    return await _windows(session, base_url, symbol, LONG_SHORT_ACCOUNT_RATIO,
                          {"period": period.value}, since_ms, until_ms, STATS_LIMIT,
                          STATS_LIMIT * period.ms, parse_long_short_ratio, policy)


async def fetch_funding_history(session: aiohttp.ClientSession, base_url: str,
                                symbol: str | Symbol, since_ms: int, until_ms: int, *,
                                policy: HttpPolicy = DEFAULT_POLICY) -> list[FundingPoint]:
    """Settled funding rates with funding time in [since_ms, until_ms), oldest first."""
    return await _windows(session, base_url, symbol, FUNDING_RATE, {}, since_ms, until_ms,
                          FUNDING_LIMIT, FUNDING_STEP_MS, parse_funding_history, policy)


async def fetch_mark(session: aiohttp.ClientSession, base_url: str, symbol: str | Symbol, *,
                     policy: HttpPolicy = DEFAULT_POLICY) -> MarkPrice:
    """Current mark price, index price and funding rate."""
    instrument = resolve(symbol).instrument(VENUE)
    payload = await _get(session, base_url, PREMIUM_INDEX, {"symbol": instrument}, instrument,
                         policy)
    return parse_mark(payload)


async def _windows(session: aiohttp.ClientSession, base_url: str, symbol: str | Symbol,
                   endpoint: str, query: Params, since_ms: int, until_ms: int, limit: int,
                   span_ms: int, parse: _Parser[_T], policy: HttpPolicy) -> list[_T]:
    """Walk a time-ranged endpoint (oldest first, `limit` rows) in windows of `span_ms`."""
    instrument = resolve(symbol).instrument(VENUE)

    async def window(start: int, end: int) -> list[_T]:
        params: Params = {"symbol": instrument, **query, "startTime": start,
                          "endTime": end - 1, "limit": limit}
        return parse(await _get(session, base_url, endpoint, params, instrument, policy))

    return await windowed(window, since_ms, until_ms, span_ms, Where(VENUE, endpoint))


async def _get(session: aiohttp.ClientSession, base_url: str, endpoint: str, params: Params,
               instrument: str, policy: HttpPolicy) -> JsonValue:
    """GET with Binance's error bodies mapped to typed errors."""
    check = partial(error_of, endpoint=endpoint, instrument=instrument)
    return await get_json(session, base_url, endpoint, params, venue=VENUE, policy=policy,
                          check=check)
