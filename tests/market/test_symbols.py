"""Symbol resolution and intervals."""

from __future__ import annotations

import pytest

from engine.types import HOUR_MS, MINUTE_MS, Venue
from market.errors import UnknownSymbolError
from market.intervals import Interval, pick_period
from market.symbols import Symbol, from_instrument, resolve


@pytest.mark.parametrize("text", [
    "BTC", "btc", " Btc ", "BTCUSDT", "btcusdt", "BTC-USDT-SWAP", "BTC/USDT", "BTC-USDT",
    "BTC/USDT:USDT", "BTC_USDT", "BTCUSDT.P",
])
def test_resolve_btc_spellings(text: str) -> None:
    assert resolve(text) == Symbol("BTC")


@pytest.mark.parametrize(("venue", "instrument"), [
    (Venue.BINANCE, "BTCUSDT"), (Venue.BYBIT, "BTCUSDT"), (Venue.OKX, "BTC-USDT-SWAP"),
])
def test_instrument_per_venue(venue: Venue, instrument: str) -> None:
    assert resolve("btc").instrument(venue) == instrument
    assert from_instrument(venue, instrument) == Symbol("BTC")


def test_numeric_bases_are_kept() -> None:
    assert resolve("1000PEPEUSDT").instrument(Venue.OKX) == "1000PEPE-USDT-SWAP"


@pytest.mark.parametrize("text", [
    "", "   ", "B!TC", "USDT", "BTC--USDT", "BTC USDT SWAP", "ÄBC", "A" * 30, "BTC/USDC",
    "BTC-USD-SWAP",
])
def test_garbage_is_an_unknown_symbol(text: str) -> None:
    with pytest.raises(UnknownSymbolError) as info:
        resolve(text)
    message = str(info.value)
    assert "\n" not in message
    assert repr(text) in message


@pytest.mark.parametrize(("venue", "instrument"), [
    (Venue.BINANCE, "BTCUSDC"), (Venue.BYBIT, "ETHPERP"), (Venue.OKX, "BTC-USD-SWAP"),
    (Venue.OKX, "BTC-USDT-250328"), (Venue.BINANCE, "USDT"),
])
def test_other_instruments_have_no_symbol(venue: Venue, instrument: str) -> None:
    assert from_instrument(venue, instrument) is None


@pytest.mark.parametrize(("text", "interval", "ms"), [
    ("1m", Interval.M1, MINUTE_MS), ("5M", Interval.M5, 5 * MINUTE_MS),
    ("1H", Interval.H1, HOUR_MS), (" 4h ", Interval.H4, 4 * HOUR_MS),
    ("1d", Interval.D1, 24 * HOUR_MS),
])
def test_interval_parse(text: str, interval: Interval, ms: int) -> None:
    assert Interval.parse(text) is interval
    assert interval.ms == ms


def test_interval_parse_names_choices() -> None:
    with pytest.raises(ValueError, match="1m, 3m"):
        Interval.parse("7m")


STATS = (Interval.M5, Interval.M15, Interval.M30, Interval.H1, Interval.H4, Interval.D1)


@pytest.mark.parametrize(("bar", "span_ms", "max_points", "expected"), [
    (Interval.M1, 24 * HOUR_MS, 1000, Interval.M5),  # finer than any period: the finest
    (Interval.H1, 24 * HOUR_MS, 1000, Interval.H1),  # same as the bar
    (Interval.H2, 24 * HOUR_MS, 1000, Interval.H1),  # not offered: the next finer one
    (Interval.M1, 7 * 24 * HOUR_MS, 1000, Interval.M15),  # too many points: coarser
    (Interval.M1, 400 * 24 * HOUR_MS, 10, Interval.D1),  # never beyond the coarsest
])
def test_pick_period(bar: Interval, span_ms: int, max_points: int, expected: Interval) -> None:
    assert pick_period(STATS, bar, span_ms, max_points) is expected
