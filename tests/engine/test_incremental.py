"""The incremental model equals the rebuild: state after N bars == last frame of `simulate`."""

from __future__ import annotations

import numpy as np
import pytest
from engine_data import bars_1h, bars_1m, prints_okx, synthetic_bars

from engine.incremental import ModelState, update, venue_factors
from engine.model import simulate
from engine.params import DEFAULT_PARAMS, ModelParams, nice_step
from engine.types import Bars, LiquidationPrints, Venue

NEUTRAL = ModelParams()
PARTIAL = ModelParams(consume_share=0.6, level_spread=0.3, turnover_per_hour=0.05)
CAPPED = ModelParams(oi_cap=0.002, diffuse_share=0.2, intensity_gamma=0.5, intensity_cross=0.3)
PARAMS = {"neutral": NEUTRAL, "fitted": DEFAULT_PARAMS, "partial": PARTIAL, "capped": CAPPED}


def _aligned(lo: int, values: np.ndarray, ref_lo: int, ref: np.ndarray) -> tuple[np.ndarray, ...]:
    first = min(lo, ref_lo)
    last = max(lo + values.size, ref_lo + ref.size)
    a, b = np.zeros(last - first), np.zeros(last - first)
    a[lo - first:lo - first + values.size] = values
    b[ref_lo - first:ref_lo - first + ref.size] = ref
    return a, b


def _rebuild_last_frame(bars: Bars, params: ModelParams, step: float,
                        prints: LiquidationPrints | None) -> tuple[int, np.ndarray, np.ndarray]:
    """simulate's last frame. With partial consumption the frames matter (a deposit consumed
    inside its own frame leaves nothing behind), so then every bar gets its own frame, which is
    what the incremental model is."""
    long_f, short_f = venue_factors(Venue.BINANCE, "BTCUSDT", params)
    closes = bars.time + bars.interval_ms
    ends = closes if params.consume_share < 1 else closes[-1:]
    sim = simulate(bars, params, long_f, short_f, step, ends, prints)
    return sim.bin_lo, sim.long_usd[-1], sim.short_usd[-1]


def _assert_same(state: ModelState, bars: Bars, params: ModelParams,
                 prints: LiquidationPrints | None = None) -> None:
    lo, long_usd, short_usd = state.profile()
    ref_lo, ref_long, ref_short = _rebuild_last_frame(bars, params, state.step, prints)
    assert ref_long.sum() > 0 and ref_short.sum() > 0
    for values, ref in ((long_usd, ref_long), (short_usd, ref_short)):
        got, want = _aligned(lo, values, ref_lo, ref)
        np.testing.assert_allclose(got, want, rtol=1e-9, atol=1e-9 * float(want.max()))


def _feed(bars: Bars, params: ModelParams, prints: LiquidationPrints | None = None,
          step: float | None = None) -> ModelState:
    step = step or nice_step(float(bars.close[-1]), params.bin_bps)
    state = ModelState.start(Venue.BINANCE, "BTCUSDT", step, bars.interval_ms, params)
    for i in range(len(bars)):
        update(state, bars.slice(i, i + 1), prints)
    return state


@pytest.mark.parametrize("name", sorted(PARAMS))
def test_real_1m_bars_with_prints_bar_by_bar(name: str) -> None:
    # Open interest only on the hour: 59 pending bars are replayed at every stamp.
    params = PARAMS[name]
    bars, prints = bars_1m().slice(0, 400), prints_okx()
    _assert_same(_feed(bars, params, prints), bars, params, prints)


@pytest.mark.parametrize("name", sorted(PARAMS))
def test_real_hourly_bars_bar_by_bar(name: str) -> None:
    params = PARAMS[name]
    bars = bars_1h().slice(0, 300)
    _assert_same(_feed(bars, params), bars, params)


@pytest.mark.parametrize("name", ["neutral", "fitted", "capped"])
def test_from_bars_then_updates_equals_rebuild(name: str) -> None:
    params = PARAMS[name]
    bars, prints = bars_1m(), prints_okx()
    step = nice_step(float(bars.close[-1]), params.bin_bps)
    state = ModelState.from_bars(Venue.BINANCE, "BTCUSDT", bars.slice(0, 700), params,
                                 step=step, prints=prints)
    _assert_same(state, bars.slice(0, 700), params, prints)
    state.update(bars.slice(700, len(bars)), prints)
    _assert_same(state, bars, params, prints)


@pytest.mark.parametrize("oi_every", [1, 5, 17])
@pytest.mark.parametrize("name", ["neutral", "fitted", "partial"])
def test_synthetic_bars(name: str, oi_every: int) -> None:
    params = PARAMS[name]
    bars = synthetic_bars(600, seed=oi_every, oi_every=oi_every, liquidations=True)
    step = nice_step(float(bars.close[-1]), params.bin_bps)
    state = ModelState.from_bars(Venue.BYBIT, "BTCUSDT", bars.slice(0, 400), params, step=step)
    state.update(bars.slice(400, 600))
    long_f, short_f = venue_factors(Venue.BYBIT, "BTCUSDT", params)
    closes = bars.time + bars.interval_ms
    sim = simulate(bars, params, long_f, short_f, step, closes)
    lo, long_usd, short_usd = state.profile()
    for values, ref in ((long_usd, sim.long_usd[-1]), (short_usd, sim.short_usd[-1])):
        got, want = _aligned(lo, values, sim.bin_lo, ref)
        np.testing.assert_allclose(got, want, rtol=1e-9, atol=1e-9 * float(want.max()))


def test_open_interest_gaps_and_late_start() -> None:
    base = synthetic_bars(900, seed=7, oi_every=7)
    oi = base.open_interest_usd.copy()
    oi[:50] = np.nan  # no open interest yet
    oi[400:520] = np.nan  # feed outage
    bars = Bars.from_columns(base.time, base.open, base.high, base.low, base.close,
                             volume=base.volume, taker_buy_volume=base.taker_buy_volume,
                             open_interest_usd=oi)
    for params in (NEUTRAL, DEFAULT_PARAMS):
        _assert_same(_feed(bars, params), bars, params)


def test_without_open_interest_nothing_is_open() -> None:
    base = synthetic_bars(120, seed=3)
    bars = Bars.from_columns(base.time, base.open, base.high, base.low, base.close)
    _lo, long_usd, short_usd = _feed(bars, NEUTRAL).profile()
    assert long_usd.sum() == 0 and short_usd.sum() == 0


def test_each_state_is_the_rebuild_of_its_prefix() -> None:
    # Checked after every bar across several open interest stamps (pending windows of 59 bars).
    bars = bars_1m().slice(0, 200)
    step = nice_step(float(bars.close[-1]), NEUTRAL.bin_bps)
    state = ModelState.start(Venue.BINANCE, "BTCUSDT", step, bars.interval_ms, NEUTRAL)
    long_f, short_f = venue_factors(Venue.BINANCE, "BTCUSDT", NEUTRAL)
    for i in range(len(bars)):
        state.update(bars.slice(i, i + 1))
        if i % 7 and i != len(bars) - 1:
            continue
        prefix = bars.slice(0, i + 1)
        sim = simulate(prefix, NEUTRAL, long_f, short_f, step, prefix.time[-1:] + 60_000)
        lo, long_usd, _short = state.profile()
        got, want = _aligned(lo, long_usd, sim.bin_lo, sim.long_usd[-1])
        np.testing.assert_allclose(got, want, rtol=1e-9, atol=1e-9 * max(float(want.max()), 1))


def test_conservation_of_the_event_layer() -> None:
    bars = synthetic_bars(500, seed=11, oi_every=3)
    state = _feed(bars, NEUTRAL)
    totals = state.totals()
    assert totals["added"] > 0
    assert totals["added"] == pytest.approx(totals["remaining"] + totals["consumed"]
                                            + totals["closed"], rel=1e-12)
    assert totals["closed"] >= -1e-6 * totals["added"]


def test_bars_must_be_contiguous() -> None:
    bars = synthetic_bars(10, seed=2)
    state = ModelState.start(Venue.BINANCE, "BTCUSDT", 25.0, bars.interval_ms, NEUTRAL)
    state.update(bars.slice(0, 3))
    with pytest.raises(ValueError, match="gap"):
        state.update(bars.slice(4, 5))
    with pytest.raises(ValueError, match="gap"):
        state.update(bars.slice(1, 2))
    hourly = synthetic_bars(3, seed=2, interval_ms=3_600_000)
    with pytest.raises(ValueError, match="ms state"):
        state.update(hourly.slice(0, 1))
