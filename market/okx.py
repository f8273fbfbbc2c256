"""OKX v5 USDT swaps: public REST endpoints and the `liquidation-orders` stream."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping
from functools import partial
from typing import TypeVar

import aiohttp

from engine.types import LiquidationEvent, Side, Venue
from market.errors import MarketDataError, RequestRejectedError, UnknownSymbolError
from market.http import DEFAULT_POLICY, HttpPolicy, JsonValue, Params, get_json
from market.intervals import Interval
from market.paging import backward
from market.points import (
    FundingPoint,
    Kline,
    MarkPrice,
    OpenInterestPoint,
    RatioPoint,
    TakerVolumePoint,
)
from market.symbols import QUOTE, Symbol, resolve
from market.validate import Timed, Where

VENUE = Venue.OKX
INST_TYPE = "SWAP"

CANDLES = "/api/v5/market/candles"  # newest first; recent bars only
HISTORY_CANDLES = "/api/v5/market/history-candles"  # same rows, older bars
OPEN_INTEREST_HISTORY = "/api/v5/rubik/stat/contracts/open-interest-history"  # [ts,oi,oiCcy,oiUsd]
TAKER_VOLUME = "/api/v5/rubik/stat/taker-volume-contract"  # [ts,sellVol,buyVol]
LONG_SHORT_RATIO = "/api/v5/rubik/stat/contracts/long-short-account-ratio-contract"  # [ts,ratio]
FUNDING_RATE = "/api/v5/public/funding-rate"  # current period
FUNDING_HISTORY = "/api/v5/public/funding-rate-history"  # newest first
MARK_PRICE = "/api/v5/public/mark-price"
INDEX_TICKERS = "/api/v5/market/index-tickers"  # index of BTC-USDT, not of the swap
INSTRUMENTS = "/api/v5/public/instruments"  # ctVal: base units per contract (0.01 BTC)
LIQUIDATION_CHANNEL = "liquidation-orders"

CANDLES_LIMIT = 300
HISTORY_CANDLES_LIMIT = 100
RUBIK_LIMIT = 100
FUNDING_LIMIT = 100
TAKER_UNIT_BASE = "0"  # 0 = base currency, 1 = contracts, 2 = USD
BAR_CODES = {
    Interval.M1: "1m", Interval.M3: "3m", Interval.M5: "5m", Interval.M15: "15m",
    Interval.M30: "30m", Interval.H1: "1H", Interval.H2: "2H", Interval.H4: "4H",
    Interval.H6: "6Hutc", Interval.H12: "12Hutc", Interval.D1: "1Dutc",
}
# Longer rubik periods are cut at Hong Kong midnight, so they are not offered.
STAT_CODES = {
    Interval.M5: "5m", Interval.M15: "15m", Interval.M30: "30m", Interval.H1: "1H",
    Interval.H2: "2H", Interval.H4: "4H",
}
STAT_PERIODS = tuple(STAT_CODES)
NO_SUCH_INSTRUMENT = "51001"

_T = TypeVar("_T", bound=Timed)
_Parser = Callable[[JsonValue], list[_T]]


def error_of(payload: JsonValue, *, endpoint: str, instrument: str) -> MarketDataError | None:
    """A non-"0" `code` as an error; 51001 means the instrument does not exist."""
    if not isinstance(payload, dict) or str(payload.get("code", "0")) == "0":
        return None
    code, msg = str(payload["code"]), str(payload.get("msg", ""))
    if code == NO_SUCH_INSTRUMENT:
        return UnknownSymbolError(instrument, f"no such instrument {instrument!r} ({msg})",
                                  venue=VENUE, endpoint=endpoint)
    return RequestRejectedError(f"code {code}: {msg}", venue=VENUE, endpoint=endpoint)


def data_list(payload: JsonValue, where: Where) -> list[object]:
    """`data` of a `{"code":"0","msg":"","data":[...]}` envelope."""
    envelope = where.mapping(payload, "answer")
    if str(where.field(envelope, "code")) != "0":
        raise where.bad(f"code is {envelope['code']!r}, expected '0'")
    return where.items(where.field(envelope, "data"), "data")


def parse_candles(payload: JsonValue, endpoint: str = CANDLES) -> list[Kline]:
    """`[[ts,o,h,l,c,vol,volCcy,volCcyQuote,confirm]]` newest first -> oldest first; volume is
    volCcy (base units), not contracts."""
    where = Where(VENUE, endpoint)
    klines = [where.kline(row, "candle", time="ts", volume_at=6, volume_name="volCcy")
              for row in data_list(payload, where)]
    return where.oldest_first(klines, newest_first=True)


def parse_open_interest(payload: JsonValue) -> list[OpenInterestPoint]:
    """`[[ts, oi, oiCcy, oiUsd]]` newest first -> USD points oldest first."""
    where = Where(VENUE, OPEN_INTEREST_HISTORY)
    points = []
    for row in data_list(payload, where):
        cells = where.row(row, 4, "open interest row")
        points.append(OpenInterestPoint(time_ms=where.time(cells[0], "ts"),
                                        usd=where.number(cells[3], "oiUsd")))
    return where.oldest_first(points, newest_first=True)


def parse_taker_volume(payload: JsonValue) -> list[TakerVolumePoint]:
    """`[[ts, sellVol, buyVol]]` newest first -> taker buy volume oldest first."""
    where = Where(VENUE, TAKER_VOLUME)
    points = []
    for row in data_list(payload, where):
        cells = where.row(row, 3, "taker volume row")
        where.number(cells[1], "sellVol")
        points.append(TakerVolumePoint(time_ms=where.time(cells[0], "ts"),
                                       buy=where.number(cells[2], "buyVol")))
    return where.oldest_first(points, newest_first=True)


def parse_long_short_ratio(payload: JsonValue) -> list[RatioPoint]:
    """`[[ts, longShortAcctRatio]]` newest first -> long shares oldest first."""
    where = Where(VENUE, LONG_SHORT_RATIO)
    points = []
    for row in data_list(payload, where):
        cells = where.row(row, 2, "ratio row")
        ratio = where.number(cells[1], "longShortAcctRatio")
        points.append(RatioPoint(time_ms=where.time(cells[0], "ts"),
                                 long_share=ratio / (1.0 + ratio)))
    return where.oldest_first(points, newest_first=True)


def parse_funding_history(payload: JsonValue) -> list[FundingPoint]:
    """`[{"fundingRate","realizedRate","fundingTime"}]` newest first -> oldest first."""
    where = Where(VENUE, FUNDING_HISTORY)
    points = []
    for item in data_list(payload, where):
        obj = where.mapping(item, "funding point")
        raw = obj.get("realizedRate") or where.field(obj, "fundingRate")
        points.append(FundingPoint(
            time_ms=where.time(where.field(obj, "fundingTime"), "fundingTime"),
            rate=where.number(raw, "fundingRate", signed=True),
        ))
    return where.oldest_first(points, newest_first=True)


def parse_funding_rate(payload: JsonValue) -> float:
    """The current period's `fundingRate`."""
    where = Where(VENUE, FUNDING_RATE)
    obj = _first(payload, where, "funding rate")
    return where.number(where.field(obj, "fundingRate"), "fundingRate", signed=True)


def parse_mark_price(payload: JsonValue) -> tuple[int, float]:
    """`(ts, markPx)` of the first mark-price item."""
    where = Where(VENUE, MARK_PRICE)
    obj = _first(payload, where, "mark price")
    return (where.time(where.field(obj, "ts"), "ts"),
            where.number(where.field(obj, "markPx"), "markPx", positive=True))


def parse_index_price(payload: JsonValue) -> float:
    """`idxPx` of the first index ticker."""
    where = Where(VENUE, INDEX_TICKERS)
    obj = _first(payload, where, "index ticker")
    return where.number(where.field(obj, "idxPx"), "idxPx", positive=True)


def parse_contract_value(payload: JsonValue) -> float:
    """`ctVal` of the first instrument (base units per contract, 0.01 for BTC-USDT-SWAP)."""
    where = Where(VENUE, INSTRUMENTS)
    obj = _first(payload, where, "instrument")
    return where.number(where.field(obj, "ctVal"), "ctVal", positive=True)


def parse_liquidations(message: JsonValue,
                       contract_values: Mapping[str, float]) -> list[LiquidationEvent]:
    """A `liquidation-orders` push as events, sizes from contracts via `contract_values`
    (keyed by instId; other instruments are skipped). `posSide` long (or net with `side`
    sell) = a long was liquidated; `bkPx` is the bankruptcy price."""
    where = Where(VENUE, LIQUIDATION_CHANNEL)
    obj = where.mapping(message, "message")
    arg = obj.get("arg")
    if not isinstance(arg, dict) or arg.get("channel") != LIQUIDATION_CHANNEL or "data" not in obj:
        return []
    events = []
    for item in where.items(obj["data"], "data"):
        group = where.mapping(item, "liquidation group")
        instrument = str(where.field(group, "instId"))
        if instrument not in contract_values:
            continue
        symbol = resolve(instrument)
        for detail in where.items(where.field(group, "details"), "details"):
            row = where.mapping(detail, "detail")
            side = _liquidated_side(row, where)
            price = where.number(where.field(row, "bkPx"), "bkPx", positive=True)
            quantity = where.number(where.field(row, "sz"), "sz", positive=True)
            quantity *= contract_values[instrument]
            events.append(LiquidationEvent(
                time_ms=where.time(where.field(row, "ts"), "ts"),
                venue=VENUE,
                symbol=symbol.base,
                side=side,
                price=price,
                quantity=quantity,
                usd=price * quantity,
            ))
    return events


def _liquidated_side(row: dict[str, object], where: Where) -> Side:
    """The side of the liquidated position from `posSide`, or `side` in net mode."""
    pos_side, side = row.get("posSide"), row.get("side")
    if pos_side == "long" and side in ("sell", None):
        return Side.LONG
    if pos_side == "short" and side in ("buy", None):
        return Side.SHORT
    if pos_side in ("net", "", None) and side in ("sell", "buy"):
        return Side.LONG if side == "sell" else Side.SHORT
    raise where.bad(f"cannot tell the liquidated side from posSide {pos_side!r}, side {side!r}")


def _first(payload: JsonValue, where: Where, what: str) -> dict[str, object]:
    """The first item of `data`, which must not be empty."""
    items = data_list(payload, where)
    if not items:
        raise where.bad(f"no {what} in the answer")
    return where.mapping(items[0], what)


async def fetch_klines(session: aiohttp.ClientSession, base_url: str, symbol: str | Symbol,
                       interval: Interval, since_ms: int, until_ms: int, *,
                       policy: HttpPolicy = DEFAULT_POLICY) -> list[Kline]:
    """Candles opening in [since_ms, until_ms), oldest first; walks back through `candles`,
    then `history-candles` once the recent endpoint runs dry."""
    instrument = resolve(symbol).instrument(VENUE)
    endpoints = [(CANDLES, CANDLES_LIMIT), (HISTORY_CANDLES, HISTORY_CANDLES_LIMIT)]

    async def page(end: int) -> list[Kline]:
        while endpoints:
            endpoint, limit = endpoints[0]
            params: Params = {"instId": instrument, "bar": BAR_CODES[interval], "after": end,
                              "limit": limit}
            payload = await _get(session, base_url, endpoint, params, instrument, policy)
            klines = parse_candles(payload, endpoint)
            if klines:
                return klines
            endpoints.pop(0)
        return []

    return await backward(page, since_ms, until_ms, Where(VENUE, CANDLES))


async def fetch_open_interest(session: aiohttp.ClientSession, base_url: str,
                              symbol: str | Symbol, period: Interval, since_ms: int,
                              until_ms: int, *, policy: HttpPolicy = DEFAULT_POLICY,
                              ) -> list[OpenInterestPoint]:
    """Open interest (USD) stamped in [since_ms, until_ms), oldest first."""
    return await _rubik(session, base_url, symbol, OPEN_INTEREST_HISTORY, period, since_ms,
                        until_ms, parse_open_interest, {}, policy)


async def fetch_taker_volume(session: aiohttp.ClientSession, base_url: str,
                             symbol: str | Symbol, period: Interval, since_ms: int,
                             until_ms: int, *, policy: HttpPolicy = DEFAULT_POLICY,
                             ) -> list[TakerVolumePoint]:
    """Taker buy volume (base units) per period opening in [since_ms, until_ms)."""
    return await _rubik(session, base_url, symbol, TAKER_VOLUME, period, since_ms, until_ms,
                        parse_taker_volume, {"unit": TAKER_UNIT_BASE}, policy)


async def fetch_long_short_ratio(session: aiohttp.ClientSession, base_url: str,
                                 symbol: str | Symbol, period: Interval, since_ms: int,
                                 until_ms: int, *, policy: HttpPolicy = DEFAULT_POLICY,
                                 ) -> list[RatioPoint]:
    """Share of long accounts stamped in [since_ms, until_ms), oldest first."""
    return await _rubik(session, base_url, symbol, LONG_SHORT_RATIO, period, since_ms,
                        until_ms, parse_long_short_ratio, {}, policy)


async def fetch_funding_history(session: aiohttp.ClientSession, base_url: str,
                                symbol: str | Symbol, since_ms: int, until_ms: int, *,
                                policy: HttpPolicy = DEFAULT_POLICY) -> list[FundingPoint]:
    """Settled funding rates stamped in [since_ms, until_ms), oldest first."""
    instrument = resolve(symbol).instrument(VENUE)

    async def page(end: int) -> list[FundingPoint]:
        params: Params = {"instId": instrument, "after": end, "limit": FUNDING_LIMIT}
        payload = await _get(session, base_url, FUNDING_HISTORY, params, instrument, policy)
        return parse_funding_history(payload)

    return await backward(page, since_ms, until_ms, Where(VENUE, FUNDING_HISTORY))


async def fetch_mark(session: aiohttp.ClientSession, base_url: str, symbol: str | Symbol, *,
                     policy: HttpPolicy = DEFAULT_POLICY) -> MarkPrice:
    """Mark price, index price and current funding rate (three calls made together)."""
    resolved = resolve(symbol)
    instrument = resolved.instrument(VENUE)
    index_id = f"{resolved.base}-{QUOTE}"
    mark, index, funding = await asyncio.gather(
        _get(session, base_url, MARK_PRICE, {"instType": INST_TYPE, "instId": instrument},
             instrument, policy),
        _get(session, base_url, INDEX_TICKERS, {"instId": index_id}, instrument, policy),
        _get(session, base_url, FUNDING_RATE, {"instId": instrument}, instrument, policy),
    )
    time_ms, mark_px = parse_mark_price(mark)
    return MarkPrice(time_ms=time_ms, mark=mark_px, index=parse_index_price(index),
                     funding_rate=parse_funding_rate(funding))


async def fetch_contract_values(session: aiohttp.ClientSession, base_url: str,
                                symbols: list[Symbol], *,
                                policy: HttpPolicy = DEFAULT_POLICY) -> dict[str, float]:
    """`ctVal` per instId of `symbols`, needed to turn liquidation sizes into base units."""
    async def one(symbol: Symbol) -> float:
        instrument = symbol.instrument(VENUE)
        params: Params = {"instType": INST_TYPE, "instId": instrument}
        return parse_contract_value(
            await _get(session, base_url, INSTRUMENTS, params, instrument, policy))

    values = await asyncio.gather(*(one(s) for s in symbols))
    return {s.instrument(VENUE): v for s, v in zip(symbols, values, strict=True)}


def ack_error(message: JsonValue) -> str | None:
    """The problem of an `{"event": "error"}` answer, else None."""
    if isinstance(message, dict) and message.get("event") == "error":
        return f"error {message.get('code', '?')}: {message.get('msg', '')}"
    return None


def subscribe_message() -> dict[str, object]:
    """The `subscribe` request for swap liquidations (all instruments; filtered on receipt)."""
    return {"op": "subscribe", "args": [{"channel": LIQUIDATION_CHANNEL, "instType": INST_TYPE}]}


async def _rubik(session: aiohttp.ClientSession, base_url: str, symbol: str | Symbol,
                 endpoint: str, period: Interval, since_ms: int, until_ms: int,
                 parse: _Parser[_T], extra: Mapping[str, str], policy: HttpPolicy) -> list[_T]:
    """Walk a rubik statistics endpoint (`begin`/`end`, newest first, 100 rows) backwards."""
    instrument = resolve(symbol).instrument(VENUE)

    async def page(end: int) -> list[_T]:
        params: dict[str, str | int] = {"instId": instrument, "period": STAT_CODES[period],
                                        "begin": since_ms, "end": end - 1, "limit": RUBIK_LIMIT}
        params.update(extra)
        return parse(await _get(session, base_url, endpoint, params, instrument, policy))

    return await backward(page, since_ms, until_ms, Where(VENUE, endpoint))


async def _get(session: aiohttp.ClientSession, base_url: str, endpoint: str, params: Params,
               instrument: str, policy: HttpPolicy) -> JsonValue:
    """GET with OKX's `code` errors mapped to typed errors."""
    check = partial(error_of, endpoint=endpoint, instrument=instrument)
    return await get_json(session, base_url, endpoint, params, venue=VENUE, policy=policy,
                          check=check)
