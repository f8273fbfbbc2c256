"""build_map: output shapes, JSON-able values, venue sums and no look-ahead."""

from __future__ import annotations

import dataclasses
import json
import math
from enum import Enum
from typing import Any

import numpy as np
import pytest
from engine_data import bars_1h, bars_1m, prints_okx, synthetic_bars

from engine.mapping import base_asset, build_map
from engine.types import HOUR_MS, LiquidationMap, Side, Venue, Window


def to_jsonable(value: Any) -> Any:
    """Plain JSON types: arrays to lists, enums to values, NaN context fields to None."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: to_jsonable(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, np.ndarray):
        return [to_jsonable(v) for v in value.tolist()]
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, tuple | list):
        return [to_jsonable(v) for v in value]
    if isinstance(value, float | np.floating):
        return None if math.isnan(value) else float(value)
    if isinstance(value, np.integer):
        return int(value)
    return value


def _check_shapes(m: LiquidationMap) -> None:
    grid = m.profile.grid
    assert grid.count > 10 and grid.step > 0
    assert m.profile.long_usd.shape == m.profile.short_usd.shape == (grid.count,)
    columns = m.heatmap.times.shape[0]
    assert columns > 0
    assert m.heatmap.long_usd.shape == m.heatmap.short_usd.shape == (columns, grid.count)
    for line in (m.heatmap.price_close, m.heatmap.price_high, m.heatmap.price_low):
        assert line.shape == (columns,)
    assert np.all(np.diff(m.heatmap.times) > 0) and m.heatmap.times[-1] == m.as_of_ms
    assert m.heatmap.times[0] > m.as_of_ms - m.window.ms
    for arr in (m.profile.long_usd, m.profile.short_usd, m.heatmap.long_usd,
                m.heatmap.short_usd):
        assert np.all(np.isfinite(arr)) and np.all(arr >= 0)
    assert grid.low < m.price < grid.low + grid.step * grid.count
    for band in m.bands + m.swept:
        assert math.isfinite(band.usd) and band.low <= band.high
    for band in m.bands:
        assert (band.high <= m.price) if band.side is Side.LONG else (band.low >= m.price)
    payload = json.dumps(to_jsonable(m), allow_nan=False)
    assert json.loads(payload)["symbol"] == m.symbol


@pytest.mark.parametrize("window", list(Window))
def test_real_minute_bars_every_window(window: Window) -> None:
    m = build_map("BTCUSDT", {Venue.BINANCE: bars_1m()}, window,
                  prints={Venue.BINANCE: prints_okx()})
    _check_shapes(m)
    assert m.symbol == "BTCUSDT" and m.venues == (Venue.BINANCE,)
    assert m.profile.long_usd.sum() > 0 and m.profile.short_usd.sum() > 0


def test_real_hourly_bars_have_bands_and_context() -> None:
    bars = bars_1h()
    m = build_map("BTC", {Venue.BINANCE: bars}, Window.D7)
    _check_shapes(m)
    assert m.bands, "a week of real hourly bars should show pockets"
    assert m.context.open_interest_usd == pytest.approx(float(bars.open_interest_usd[-1]))
    assert math.isfinite(m.context.price_change_pct_24h)


def test_synthetic_month_of_minutes() -> None:
    bars = synthetic_bars(43_200)
    for window in (Window.H24, Window.D30):
        m = build_map("BTC", {Venue.BINANCE: bars}, window)
        _check_shapes(m)
        assert m.heatmap.times.shape[0] == 288


def test_map_as_of_a_past_instant_ignores_later_bars() -> None:
    bars = bars_1m()
    as_of = int(bars.time[600])  # bar 599 closed then
    past = build_map("BTC", {Venue.BINANCE: bars}, Window.H12, as_of_ms=as_of)
    cut = build_map("BTC", {Venue.BINANCE: bars.slice(0, 600)}, Window.H12)
    assert past.as_of_ms == cut.as_of_ms == as_of and past.price == cut.price
    np.testing.assert_array_equal(past.profile.long_usd, cut.profile.long_usd)
    np.testing.assert_array_equal(past.profile.short_usd, cut.profile.short_usd)
    np.testing.assert_array_equal(past.heatmap.long_usd, cut.heatmap.long_usd)
    assert past.bands == cut.bands


def test_venues_are_modelled_separately_and_summed() -> None:
    bars = bars_1m()
    one = build_map("BTC", {Venue.BINANCE: bars}, Window.H24)
    other = build_map("BTC", {Venue.BYBIT: bars}, Window.H24)
    both = build_map("BTC", {Venue.BINANCE: bars, Venue.BYBIT: bars}, Window.H24)
    assert both.venues == (Venue.BINANCE, Venue.BYBIT)
    assert both.profile.grid == one.profile.grid == other.profile.grid
    np.testing.assert_allclose(both.profile.long_usd,
                               one.profile.long_usd + other.profile.long_usd, rtol=1e-9,
                               atol=1e-6)


def test_data_age_and_too_little_data() -> None:
    bars = bars_1h()
    end = int(bars.time[-1] + bars.interval_ms)
    m = build_map("BTC", {Venue.OKX: bars}, Window.H24, now_ms=end + 2 * HOUR_MS)
    assert m.data_age_ms == 2 * HOUR_MS
    with pytest.raises(ValueError, match="two closed bars"):
        build_map("BTC", {Venue.BINANCE: bars.slice(0, 1)})


@pytest.mark.parametrize(
    ("symbol", "base"),
    [("BTC", "BTC"), ("BTCUSDT", "BTC"), ("ETH-USDT-SWAP", "ETH"), ("sol/usdc", "SOL"),
     ("USDT", "USDT")],
)
def test_base_asset(symbol: str, base: str) -> None:
    assert base_asset(symbol) == base
