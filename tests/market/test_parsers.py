"""Venue parsers on recorded payloads, and on the same payloads broken in typical ways."""

from __future__ import annotations

import copy
import json
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from engine.types import LiquidationEvent, Side, Venue
from market import binance, bybit, okx
from market.errors import BadResponseError, RequestRejectedError, UnknownSymbolError
from market.points import (
    FundingPoint,
    Kline,
    MarkPrice,
    OpenInterestAmount,
    OpenInterestPoint,
    RatioPoint,
    TakerVolumePoint,
)

FIXTURES = Path(__file__).parent / "fixtures"


def load(name: str) -> Any:
    """A recorded payload."""
    return json.loads((FIXTURES / name).read_text())


def first_list(payload: Any) -> list[Any]:
    """The list of items inside any venue's envelope."""
    if isinstance(payload, list):
        return payload
    if "result" in payload:
        return payload["result"]["list"]  # type: ignore[no-any-return]
    return payload["data"]  # type: ignore[no-any-return]


# parser, fixture, number of items, first item (oldest)
PARSED: list[tuple[Callable[[Any], Any], str, int, object]] = [
    (binance.parse_klines, "binance_klines.json", 3,
     Kline(1772651640000, 73906.4, 73981.9, 73792.0, 73842.8, 475.878, 291.786)),
    (binance.parse_open_interest, "binance_open_interest.json", 3,
     OpenInterestPoint(1772651700000, 6734488537.0)),
    (binance.parse_funding_history, "binance_funding_rate.json", 3,
     FundingPoint(1772611200000, -0.00004887)),
    (binance.parse_long_short_ratio, "binance_long_short_ratio.json", 3,
     RatioPoint(1772651700000, 0.6523)),
    (bybit.parse_klines, "bybit_kline.json", 3,
     Kline(1772651640000, 73906.4, 73981.9, 73792.0, 73842.8, 475.878)),
    (lambda p: bybit.parse_open_interest(p)[0], "bybit_open_interest.json", 3,
     OpenInterestAmount(1772651700000, 52341.277)),
    (bybit.parse_funding_history, "bybit_funding_history.json", 3,
     FundingPoint(1772611200000, -0.00003512)),
    (lambda p: bybit.parse_account_ratio(p)[0], "bybit_account_ratio.json", 3,
     RatioPoint(1772651700000, 0.6012)),
    (okx.parse_candles, "okx_candles.json", 3,
     Kline(1772651640000, 73906.4, 73981.9, 73792.0, 73842.8, 475.878)),
    (okx.parse_open_interest, "okx_open_interest_history.json", 3,
     OpenInterestPoint(1772651700000, 2559105644.06)),
    (okx.parse_taker_volume, "okx_taker_volume.json", 3, TakerVolumePoint(1772651700000, 221.5)),
    (okx.parse_long_short_ratio, "okx_long_short_ratio.json", 3,
     RatioPoint(1772651700000, 1.87 / 2.87)),
    (okx.parse_funding_history, "okx_funding_rate_history.json", 3,
     FundingPoint(1772611200000, 0.0000412)),
]


@pytest.mark.parametrize(("parse", "name", "count", "first"), PARSED)
def test_parse_recorded_payload(parse: Callable[[Any], Any], name: str, count: int,
                                first: object) -> None:
    items = parse(load(name))
    assert len(items) == count
    assert items[0] == first
    times = [item.time_ms for item in items]
    assert times == sorted(times)


def test_bybit_cursor_is_returned() -> None:
    _, cursor = bybit.parse_open_interest(load("bybit_open_interest.json"))
    assert cursor.startswith("lastid")
    _, cursor = bybit.parse_account_ratio(load("bybit_account_ratio.json"))
    assert cursor == ""


def test_ratio_point_long_short_ratio() -> None:
    point = okx.parse_long_short_ratio(load("okx_long_short_ratio.json"))[0]
    assert point.long_short_ratio == pytest.approx(1.87)
    assert RatioPoint(0, 1.0).long_short_ratio == math.inf


@pytest.mark.parametrize(("parse", "name", "expected"), [
    (binance.parse_mark, "binance_premium_index.json",
     MarkPrice(1772651699000, 73842.8, 73871.61234783, -0.00004887)),
    (bybit.parse_mark, "bybit_tickers.json",
     MarkPrice(1772651880123, 73841.2, 73869.55, -0.00003512)),
])
def test_parse_mark(parse: Callable[[Any], MarkPrice], name: str, expected: MarkPrice) -> None:
    assert parse(load(name)) == expected


def test_okx_mark_parts() -> None:
    assert okx.parse_mark_price(load("okx_mark_price.json")) == (1772651880021, 73838.6)
    assert okx.parse_index_price(load("okx_index_tickers.json")) == 73869.2
    assert okx.parse_funding_rate(load("okx_funding_rate.json")) == -0.0000104
    assert okx.parse_contract_value(load("okx_instruments.json")) == 0.01


def _set_first(path: tuple[int | str, ...], value: object) -> Callable[[Any], Any]:
    """A mutation setting a cell of the first listed item."""
    def mutate(payload: Any) -> Any:
        target = first_list(payload)[0]
        for key in path[:-1]:
            target = target[key]
        target[path[-1]] = value
        return payload
    return mutate


def _drop_first(key: str) -> Callable[[Any], Any]:
    def mutate(payload: Any) -> Any:
        del first_list(payload)[0][key]
        return payload
    return mutate


def _swap_two(payload: Any) -> Any:
    items = first_list(payload)
    items[0], items[1] = items[1], items[0]
    return payload


def _duplicate(payload: Any) -> Any:
    items = first_list(payload)
    items[1] = copy.deepcopy(items[0])
    return payload


# parser, fixture, mutation, endpoint named in the error
BROKEN: list[tuple[Callable[[Any], Any], str, Callable[[Any], Any], str]] = [
    (binance.parse_klines, "binance_klines.json", _set_first((4,), "NaN"), binance.KLINES),
    (binance.parse_klines, "binance_klines.json", _set_first((1,), "-5"), binance.KLINES),
    (binance.parse_klines, "binance_klines.json", _set_first((2,), "1.0"), binance.KLINES),
    (binance.parse_klines, "binance_klines.json", _set_first((9,), "9999"), binance.KLINES),
    (binance.parse_klines, "binance_klines.json", _set_first((0,), "soon"), binance.KLINES),
    (binance.parse_klines, "binance_klines.json", _swap_two, binance.KLINES),
    (binance.parse_klines, "binance_klines.json", _duplicate, binance.KLINES),
    (binance.parse_klines, "binance_klines.json", lambda p: {"klines": p}, binance.KLINES),
    (binance.parse_klines, "binance_klines.json", lambda p: [r[:5] for r in p], binance.KLINES),
    (binance.parse_open_interest, "binance_open_interest.json",
     _set_first(("sumOpenInterestValue",), "-1"), binance.OPEN_INTEREST_HIST),
    (binance.parse_open_interest, "binance_open_interest.json",
     _set_first(("sumOpenInterestValue",), "Infinity"), binance.OPEN_INTEREST_HIST),
    (binance.parse_open_interest, "binance_open_interest.json",
     _drop_first("timestamp"), binance.OPEN_INTEREST_HIST),
    (binance.parse_funding_history, "binance_funding_rate.json",
     _set_first(("fundingRate",), None), binance.FUNDING_RATE),
    (binance.parse_long_short_ratio, "binance_long_short_ratio.json",
     _set_first(("longAccount",), "1.7"), binance.LONG_SHORT_ACCOUNT_RATIO),
    (binance.parse_mark, "binance_premium_index.json",
     lambda p: {**p, "markPrice": "0"}, binance.PREMIUM_INDEX),
    (binance.parse_mark, "binance_premium_index.json", lambda p: [p], binance.PREMIUM_INDEX),
    (bybit.parse_klines, "bybit_kline.json", _set_first((3,), "nan"), bybit.KLINE),
    (bybit.parse_klines, "bybit_kline.json", _swap_two, bybit.KLINE),
    (bybit.parse_klines, "bybit_kline.json", lambda p: {**p, "retCode": 1}, bybit.KLINE),
    (bybit.parse_klines, "bybit_kline.json", lambda p: {**p, "result": None}, bybit.KLINE),
    (bybit.parse_open_interest, "bybit_open_interest.json",
     _set_first(("openInterest",), "-3"), bybit.OPEN_INTEREST),
    (bybit.parse_funding_history, "bybit_funding_history.json", _swap_two,
     bybit.FUNDING_HISTORY),
    (bybit.parse_account_ratio, "bybit_account_ratio.json",
     _set_first(("buyRatio",), True), bybit.ACCOUNT_RATIO),
    (bybit.parse_mark, "bybit_tickers.json",
     lambda p: {**p, "result": {"list": []}}, bybit.TICKERS),
    (okx.parse_candles, "okx_candles.json", _set_first((2,), "-1"), okx.CANDLES),
    (okx.parse_candles, "okx_candles.json", _swap_two, okx.CANDLES),
    (okx.parse_candles, "okx_candles.json", lambda p: {**p, "data": "[]"}, okx.CANDLES),
    (okx.parse_open_interest, "okx_open_interest_history.json", _set_first((3,), ""),
     okx.OPEN_INTEREST_HISTORY),
    (okx.parse_taker_volume, "okx_taker_volume.json", _set_first((1,), "-2"), okx.TAKER_VOLUME),
    (okx.parse_long_short_ratio, "okx_long_short_ratio.json", _duplicate, okx.LONG_SHORT_RATIO),
    (okx.parse_funding_history, "okx_funding_rate_history.json",
     _set_first(("fundingTime",), "-1"), okx.FUNDING_HISTORY),
    (okx.parse_mark_price, "okx_mark_price.json", lambda p: {**p, "data": []}, okx.MARK_PRICE),
    (okx.parse_contract_value, "okx_instruments.json", _set_first(("ctVal",), "0"),
     okx.INSTRUMENTS),
]


@pytest.mark.parametrize(("parse", "name", "mutate", "endpoint"), BROKEN)
def test_broken_payload_names_venue_and_endpoint(parse: Callable[[Any], Any], name: str,
                                                  mutate: Callable[[Any], Any],
                                                  endpoint: str) -> None:
    with pytest.raises(BadResponseError) as info:
        parse(mutate(load(name)))
    assert info.value.endpoint == endpoint
    assert info.value.venue is not None
    assert str(info.value).startswith(f"{info.value.venue} {endpoint}: ")
    assert "\n" not in str(info.value)


@pytest.mark.parametrize(("error_of", "name"), [
    (binance.error_of, "binance_invalid_symbol.json"),
    (bybit.error_of, "bybit_invalid_symbol.json"),
    (okx.error_of, "okx_invalid_instrument.json"),
])
def test_invalid_symbol_answers_are_unknown_symbols(error_of: Callable[..., Any],
                                                    name: str) -> None:
    error = error_of(load(name), endpoint="/x", instrument="XYZUSDT")
    assert isinstance(error, UnknownSymbolError)
    assert error.symbol == "XYZUSDT"
    assert "XYZUSDT" in str(error)


@pytest.mark.parametrize(("error_of", "payload"), [
    (binance.error_of, {"code": -1003, "msg": "Too many requests."}),
    (bybit.error_of, {"retCode": 10002, "retMsg": "invalid request"}),
    (bybit.error_of, {"retCode": 10001, "retMsg": "params error: limit invalid"}),
    (okx.error_of, {"code": "50011", "msg": "Too Many Requests", "data": []}),
])
def test_other_error_answers_are_rejections(error_of: Callable[..., Any],
                                            payload: object) -> None:
    assert isinstance(error_of(payload, endpoint="/x", instrument="BTCUSDT"),
                      RequestRejectedError)


@pytest.mark.parametrize(("error_of", "name"), [
    (binance.error_of, "binance_klines.json"),
    (binance.error_of, "binance_premium_index.json"),
    (bybit.error_of, "bybit_kline.json"),
    (okx.error_of, "okx_candles.json"),
])
def test_normal_answers_are_not_errors(error_of: Callable[..., Any], name: str) -> None:
    assert error_of(load(name), endpoint="/x", instrument="BTCUSDT") is None


def test_binance_force_orders() -> None:
    messages = load("binance_force_orders.json")
    events = [e for m in messages for e in binance.parse_force_order(m)]
    # three BTCUSDT orders, one SOLUSDT, BTCUSDC skipped, plus the combined-stream copy
    assert [e.symbol for e in events] == ["BTC", "BTC", "BTC", "SOL", "BTC"]
    first = events[0]
    assert first == LiquidationEvent(1750712382035, Venue.BINANCE, "BTC", Side.SHORT,
                                     104083.0, 0.010, pytest.approx(1040.83))
    assert events[2].side is Side.LONG  # SELL order = a long was liquidated
    assert events[4] == first


def test_binance_force_order_prefers_average_price_and_filled_quantity() -> None:
    message = load("binance_force_orders.json")[3]  # SOL, has ap
    event = binance.parse_force_order(message)[0]
    assert event.price == float(message["o"]["ap"])
    assert event.quantity == float(message["o"]["z"])


def test_bybit_all_liquidation() -> None:
    messages = load("bybit_all_liquidation.json")
    events = [e for m in messages for e in bybit.parse_liquidations(m)]
    assert [(e.side, e.price, e.quantity) for e in events] == [
        (Side.LONG, 72388.2, 0.648), (Side.SHORT, 72460.1, 0.012)]  # Buy = long liquidated
    assert events[0].time_ms == 1772664345620
    assert events[0].usd == pytest.approx(72388.2 * 0.648)


def test_bybit_failed_subscription_is_reported() -> None:
    assert bybit.ack_error({"success": False, "ret_msg": "error:topic:bad", "op": "subscribe"})
    assert bybit.ack_error(load("bybit_all_liquidation.json")[0]) is None


def test_okx_liquidation_orders() -> None:
    messages = load("okx_liquidation_orders.json")
    values = {"BTC-USDT-SWAP": 0.01}
    events = [e for m in messages for e in okx.parse_liquidations(m, values)]
    assert len(events) == 5  # DOGE has no contract value here: skipped
    assert [e.side for e in events] == [Side.LONG] * 3 + [Side.SHORT] * 2
    first = events[0]
    assert (first.price, first.quantity) == (72431.4, pytest.approx(0.0021))
    assert first.usd == pytest.approx(152.10594)  # the corrected notional of the data set
    assert all(e.symbol == "BTC" and e.venue is Venue.OKX for e in events)


@pytest.mark.parametrize(("pos_side", "side", "expected"), [
    ("long", "sell", Side.LONG), ("short", "buy", Side.SHORT),
    ("net", "sell", Side.LONG), ("net", "buy", Side.SHORT), ("", "sell", Side.LONG),
])
def test_okx_liquidated_side(pos_side: str, side: str, expected: Side) -> None:
    message = load("okx_liquidation_orders.json")[1]
    message["data"][0]["details"] = [dict(message["data"][0]["details"][0],
                                          posSide=pos_side, side=side)]
    assert okx.parse_liquidations(message, {"BTC-USDT-SWAP": 0.01})[0].side is expected


@pytest.mark.parametrize(("parse", "message"), [
    (binance.parse_force_order, {"e": "forceOrder", "o": {"s": "BTCUSDT", "S": "HOLD",
                                                          "p": "1", "q": "1", "T": 1}}),
    (binance.parse_force_order, {"e": "forceOrder", "o": {"s": "BTCUSDT", "S": "SELL",
                                                          "p": "NaN", "q": "1", "T": 1}}),
    (binance.parse_force_order, {"e": "forceOrder", "o": "oops"}),
    (bybit.parse_liquidations, {"topic": "allLiquidation.BTCUSDT", "data": [
        {"T": 1, "s": "BTCUSDT", "S": "Buy", "v": "-1", "p": "1"}]}),
    (bybit.parse_liquidations, {"topic": "allLiquidation.BTCUSDT", "data": {"S": "Buy"}}),
    (lambda m: okx.parse_liquidations(m, {"BTC-USDT-SWAP": 0.01}), {
        "arg": {"channel": "liquidation-orders"}, "data": [{"instId": "BTC-USDT-SWAP",
                                                            "details": [{"posSide": "long",
                                                                         "side": "buy"}]}]}),
])
def test_malformed_liquidation_messages_raise_bad_response(
        parse: Callable[[Any], Any], message: object) -> None:
    with pytest.raises(BadResponseError):
        parse(message)


@pytest.mark.parametrize(("parse", "message"), [
    (binance.parse_force_order, {"e": "markPriceUpdate"}),
    (bybit.parse_liquidations, {"op": "pong"}),
    (lambda m: okx.parse_liquidations(m, {}), {"event": "subscribe"}),
])
def test_other_messages_have_no_events(parse: Callable[[Any], Any], message: object) -> None:
    assert parse(message) == []
