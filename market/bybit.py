"""Bybit v5 linear perpetuals: public REST endpoints and the `allLiquidation` stream."""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import TypeVar

import aiohttp

from engine.types import LiquidationEvent, Side, Venue
from market.errors import MarketDataError, RequestRejectedError, UnknownSymbolError
from market.http import DEFAULT_POLICY, HttpPolicy, JsonValue, Params, get_json
from market.intervals import Interval
from market.paging import backward, cursored
from market.points import FundingPoint, Kline, MarkPrice, OpenInterestAmount, RatioPoint
from market.symbols import Symbol, from_instrument, resolve
from market.validate import Timed, Where

VENUE = Venue.BYBIT
CATEGORY = "linear"

KLINE = "/v5/market/kline"  # newest first, no taker volume
OPEN_INTEREST = "/v5/market/open-interest"  # base-asset units, newest first, cursor pages
FUNDING_HISTORY = "/v5/market/funding/history"  # newest first
ACCOUNT_RATIO = "/v5/market/account-ratio"  # buyRatio = share of accounts long, cursor pages
TICKERS = "/v5/market/tickers"  # mark, index and the current funding rate
LIQUIDATION_TOPIC = "allLiquidation.{instrument}"

KLINE_LIMIT = 1000
OPEN_INTEREST_LIMIT = 200
FUNDING_LIMIT = 200
RATIO_LIMIT = 500
INTERVAL_CODES = {
    Interval.M1: "1", Interval.M3: "3", Interval.M5: "5", Interval.M15: "15",
    Interval.M30: "30", Interval.H1: "60", Interval.H2: "120", Interval.H4: "240",
    Interval.H6: "360", Interval.H12: "720", Interval.D1: "D",
}
STAT_CODES = {
    Interval.M5: "5min", Interval.M15: "15min", Interval.M30: "30min", Interval.H1: "1h",
    Interval.H4: "4h", Interval.D1: "1d",
}
STAT_PERIODS = tuple(STAT_CODES)
PARAMS_ERROR = 10001

_T = TypeVar("_T", bound=Timed)
_CursorParser = Callable[[JsonValue], tuple[list[_T], str]]


def error_of(payload: JsonValue, *, endpoint: str, instrument: str) -> MarketDataError | None:
    """A non-zero `retCode` as an error; 10001 about the symbol means the symbol is unknown."""
    if not isinstance(payload, dict) or payload.get("retCode", 0) == 0:
        return None
    code, msg = payload["retCode"], str(payload.get("retMsg", ""))
    if code == PARAMS_ERROR and "symbol" in msg.lower():
        return UnknownSymbolError(instrument, f"no such instrument {instrument!r} ({msg})",
                                  venue=VENUE, endpoint=endpoint)
    return RequestRejectedError(f"retCode {code}: {msg}", venue=VENUE, endpoint=endpoint)


def result_list(payload: JsonValue, where: Where) -> tuple[list[object], dict[str, object]]:
    """`result.list` and `result` of a `{"retCode":0,"result":{...}}` envelope."""
    envelope = where.mapping(payload, "answer")
    if where.field(envelope, "retCode") != 0:
        raise where.bad(f"retCode is {envelope['retCode']!r}, expected 0")
    result = where.mapping(where.field(envelope, "result"), "result")
    return where.items(where.field(result, "list"), "result.list"), result


def parse_klines(payload: JsonValue) -> list[Kline]:
    """`result.list=[["start","o","h","l","c","vol","turnover"]]` newest first -> oldest first."""
    where = Where(VENUE, KLINE)
    klines = [where.kline(row, "kline", time="start") for row in result_list(payload, where)[0]]
    return where.oldest_first(klines, newest_first=True)


def parse_open_interest(payload: JsonValue) -> tuple[list[OpenInterestAmount], str]:
    """`result.list=[{"openInterest","timestamp"}]` newest first, and `nextPageCursor`."""
    where = Where(VENUE, OPEN_INTEREST)
    items, result = result_list(payload, where)
    points = []
    for item in items:
        obj = where.mapping(item, "open interest point")
        points.append(OpenInterestAmount(
            time_ms=where.time(where.field(obj, "timestamp")),
            base=where.number(where.field(obj, "openInterest"), "openInterest"),
        ))
    return where.oldest_first(points, newest_first=True), str(result.get("nextPageCursor") or "")


def parse_funding_history(payload: JsonValue) -> list[FundingPoint]:
    """`result.list=[{"fundingRate","fundingRateTimestamp"}]` newest first -> oldest first."""
    where = Where(VENUE, FUNDING_HISTORY)
    points = []
    for item in result_list(payload, where)[0]:
        obj = where.mapping(item, "funding point")
        points.append(FundingPoint(
            time_ms=where.time(where.field(obj, "fundingRateTimestamp"), "fundingRateTimestamp"),
            rate=where.number(where.field(obj, "fundingRate"), "fundingRate", signed=True),
        ))
    return where.oldest_first(points, newest_first=True)


def parse_account_ratio(payload: JsonValue) -> tuple[list[RatioPoint], str]:
    """`result.list=[{"buyRatio","sellRatio","timestamp"}]` newest first, and the next cursor."""
    where = Where(VENUE, ACCOUNT_RATIO)
    items, result = result_list(payload, where)
    points = []
    for item in items:
        obj = where.mapping(item, "ratio point")
        share = where.number(where.field(obj, "buyRatio"), "buyRatio")
        if share > 1:
            raise where.bad(f"buyRatio is {share}, expected a share in [0, 1]")
        points.append(RatioPoint(time_ms=where.time(where.field(obj, "timestamp")),
                                 long_share=share))
    return where.oldest_first(points, newest_first=True), str(result.get("nextPageCursor") or "")


def parse_mark(payload: JsonValue) -> MarkPrice:
    """The first ticker's `markPrice`, `indexPrice`, `fundingRate`, stamped with `time`."""
    where = Where(VENUE, TICKERS)
    items, _ = result_list(payload, where)
    if not items:
        raise where.bad("no ticker in the answer")
    ticker = where.mapping(items[0], "ticker")
    envelope = where.mapping(payload, "answer")
    return MarkPrice(
        time_ms=where.time(where.field(envelope, "time"), "time"),
        mark=where.number(where.field(ticker, "markPrice"), "markPrice", positive=True),
        index=where.number(where.field(ticker, "indexPrice"), "indexPrice", positive=True),
        funding_rate=where.number(where.field(ticker, "fundingRate"), "fundingRate",
                                  signed=True),
    )


def parse_liquidations(message: JsonValue) -> list[LiquidationEvent]:
    """An `allLiquidation.*` push as events; `S` "Buy" = a long was liquidated (the position
    side, opposite to Binance). Returns [] for acks, pongs and other topics."""
    where = Where(VENUE, "allLiquidation")
    obj = where.mapping(message, "message")
    if not str(obj.get("topic", "")).startswith("allLiquidation."):
        return []
    sides = {"Buy": Side.LONG, "Sell": Side.SHORT}
    events = []
    for item in where.items(where.field(obj, "data"), "data"):
        row = where.mapping(item, "liquidation")
        symbol = from_instrument(VENUE, str(where.field(row, "s")))
        if symbol is None:
            continue
        raw_side = where.field(row, "S")
        if raw_side not in sides:
            raise where.bad(f"side is {raw_side!r}, expected Buy or Sell")
        price = where.number(where.field(row, "p"), "p", positive=True)
        quantity = where.number(where.field(row, "v"), "v", positive=True)
        events.append(LiquidationEvent(
            time_ms=where.time(row.get("T", obj.get("ts")), "T"),
            venue=VENUE,
            symbol=symbol.base,
            side=sides[str(raw_side)],
            price=price,
            quantity=quantity,
            usd=price * quantity,
        ))
    return events


async def fetch_klines(session: aiohttp.ClientSession, base_url: str, symbol: str | Symbol,
                       interval: Interval, since_ms: int, until_ms: int, *,
                       policy: HttpPolicy = DEFAULT_POLICY) -> list[Kline]:
    """Klines opening in [since_ms, until_ms), oldest first, walking back in pages of 1000."""
    instrument = resolve(symbol).instrument(VENUE)

    async def page(end: int) -> list[Kline]:
        params: Params = {"category": CATEGORY, "symbol": instrument,
                          "interval": INTERVAL_CODES[interval], "start": since_ms,
                          "end": end - 1, "limit": KLINE_LIMIT}
        return parse_klines(await _get(session, base_url, KLINE, params, instrument, policy))

    return await backward(page, since_ms, until_ms, Where(VENUE, KLINE))


async def fetch_open_interest(session: aiohttp.ClientSession, base_url: str,
                              symbol: str | Symbol, period: Interval, since_ms: int,
                              until_ms: int, *, policy: HttpPolicy = DEFAULT_POLICY,
                              ) -> list[OpenInterestAmount]:
    """Open interest in base units stamped in [since_ms, until_ms), oldest first."""
    return await _cursored_stat(session, base_url, symbol, OPEN_INTEREST, period, since_ms,
                                until_ms, parse_open_interest, policy,
                                period_key="intervalTime", limit=OPEN_INTEREST_LIMIT)


async def fetch_long_short_ratio(session: aiohttp.ClientSession, base_url: str,
                                 symbol: str | Symbol, period: Interval, since_ms: int,
                                 until_ms: int, *, policy: HttpPolicy = DEFAULT_POLICY,
                                 ) -> list[RatioPoint]:
    """Share of long accounts stamped in [since_ms, until_ms), oldest first."""
    return await _cursored_stat(session, base_url, symbol, ACCOUNT_RATIO, period, since_ms,
                                until_ms, parse_account_ratio, policy,
                                period_key="period", limit=RATIO_LIMIT)


async def fetch_funding_history(session: aiohttp.ClientSession, base_url: str,
                                symbol: str | Symbol, since_ms: int, until_ms: int, *,
                                policy: HttpPolicy = DEFAULT_POLICY) -> list[FundingPoint]:
    """Settled funding rates stamped in [since_ms, until_ms), oldest first."""
    instrument = resolve(symbol).instrument(VENUE)

    async def page(end: int) -> list[FundingPoint]:
        params: Params = {"category": CATEGORY, "symbol": instrument, "startTime": since_ms,
                          "endTime": end - 1, "limit": FUNDING_LIMIT}
        payload = await _get(session, base_url, FUNDING_HISTORY, params, instrument, policy)
        return parse_funding_history(payload)

    return await backward(page, since_ms, until_ms, Where(VENUE, FUNDING_HISTORY))


async def fetch_mark(session: aiohttp.ClientSession, base_url: str, symbol: str | Symbol, *,
                     policy: HttpPolicy = DEFAULT_POLICY) -> MarkPrice:
    """Current mark price, index price and funding rate from the ticker."""
    instrument = resolve(symbol).instrument(VENUE)
    params: Params = {"category": CATEGORY, "symbol": instrument}
    return parse_mark(await _get(session, base_url, TICKERS, params, instrument, policy))


def ack_error(message: JsonValue) -> str | None:
    """The problem of a failed `subscribe` answer (`"success": false`), else None."""
    if isinstance(message, dict) and message.get("success") is False:
        return f"{message.get('op', 'request')} failed: {message.get('ret_msg', '')}"
    return None


def subscribe_message(symbols: list[Symbol]) -> dict[str, object]:
    """The `subscribe` request for the liquidation topics of `symbols`."""
    topics = [LIQUIDATION_TOPIC.format(instrument=s.instrument(VENUE)) for s in symbols]
    return {"op": "subscribe", "args": topics}


async def _cursored_stat(session: aiohttp.ClientSession, base_url: str, symbol: str | Symbol,
                         endpoint: str, period: Interval, since_ms: int, until_ms: int,
                         parse: _CursorParser[_T], policy: HttpPolicy, *, period_key: str,
                         limit: int) -> list[_T]:
    """Walk a statistics endpoint that pages newest first by `cursor` back to `since_ms`."""
    instrument = resolve(symbol).instrument(VENUE)

    async def page(cursor: str) -> tuple[list[_T], str]:
        params: dict[str, str | int] = {
            "category": CATEGORY, "symbol": instrument, period_key: STAT_CODES[period],
            "startTime": since_ms, "endTime": until_ms - 1, "limit": limit}
        if cursor:
            params["cursor"] = cursor
        return parse(await _get(session, base_url, endpoint, params, instrument, policy))

    return await cursored(page, since_ms, until_ms, Where(VENUE, endpoint))


async def _get(session: aiohttp.ClientSession, base_url: str, endpoint: str, params: Params,
               instrument: str, policy: HttpPolicy) -> JsonValue:
    """GET with Bybit's `retCode` errors mapped to typed errors."""
    check = partial(error_of, endpoint=endpoint, instrument=instrument)
    return await get_json(session, base_url, endpoint, params, venue=VENUE, policy=policy,
                          check=check)
