"""The vectorised model against a per-deposit reference, and its invariants (hypothesis)."""

from __future__ import annotations

import numpy as np
import pytest
from engine_data import bars_1h, bars_1m, prints_okx, synthetic_bars
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from engine.incremental import venue_factors
from engine.model import (
    ROUND_BITS,
    Simulation,
    deposit_grid,
    deposits,
    flows,
    frame_ends_for,
    rint_shifted,
    simulate,
)
from engine.params import DEFAULT_PARAMS, ModelParams, nice_step
from engine.types import MINUTE_MS, Bars, LiquidationPrints, Venue, Window

# The event-sourced layer alone: no diffuse layer, intensity or open interest cap.
EVENT_ONLY = {"diffuse_share": 0.0, "intensity_gamma": 0.0, "oi_cap": 0.0}


def event_params(**kw: float) -> ModelParams:
    return ModelParams(**{**EVENT_ONLY, **kw})  # type: ignore[arg-type]


def reference(
    bars: Bars, params: ModelParams, step: float, frame_ends: np.ndarray,
    prints: LiquidationPrints | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, float, int]:
    """The model as documented, one deposit at a time: (long, short, long consumed, short
    consumed) per (frame, bin) from bin_lo, USD added and bin_lo."""
    closes = bars.time + bars.interval_ms
    bars = bars.slice(0, int(np.searchsorted(closes, frame_ends[-1], side="right")))
    closes = bars.time + bars.interval_ms
    k_count = frame_ends.size
    block = np.searchsorted(frame_ends, closes, side="left")
    fl = flows(bars, params)
    log_g = np.cumsum(np.bincount(fl.known_bar, weights=fl.log_survival, minlength=len(bars)))
    last = np.searchsorted(closes, frame_ends, side="right") - 1
    frame_log = np.where(last >= 0, log_g[np.maximum(last, 0)], 0.0)
    long_f, short_f = venue_factors(Venue.BINANCE, "BTCUSDT", params)
    deps = [deposits(bars, fl, params, f, step, side) for f, side in ((long_f, True),
                                                                     (short_f, False))]
    lo = min([int(np.floor(bars.low.min() / step))] + [int(d.bin.min()) for d in deps
                                                         if d.bin.size])
    hi = max([int(np.ceil(bars.high.max() / step))] + [int(d.bin.max()) for d in deps
                                                        if d.bin.size])
    nb = hi - lo + 1
    out = []
    added = 0.0
    tol = params.print_tolerance
    for dep, is_long in zip(deps, (True, False), strict=True):
        alive = np.zeros((k_count, nb))
        cons = np.zeros((k_count, nb))
        if prints is not None:
            pb = np.searchsorted(bars.time, prints.time, side="right") - 1
            ok = (pb >= 0) & (prints.time < bars.time[np.maximum(pb, 0)] + bars.interval_ms)
            ok &= prints.is_long == is_long
            p_bar, p_price = pb[ok], prints.price[ok]
            p_lo = np.floor(p_price * (1 - tol) / step)
            p_hi = np.ceil(p_price * (1 + tol) / step)
        for i, b, usd in zip(dep.bar.tolist(), dep.bin.tolist(), dep.usd.tolist(), strict=True):
            later = np.arange(i + 1, len(bars))
            if is_long:
                reached = b >= np.ceil(bars.low[later] / step)
            else:
                reached = b <= np.floor(bars.high[later] / step)
            if prints is not None:
                by_print = np.zeros(len(bars), bool)
                by_print[p_bar[(p_lo <= b) & (b <= p_hi)]] = True
                reached |= by_print[later]
            hit = later[reached]
            consumed_block = int(block[hit[0]]) if hit.size else k_count
            known = int(fl.known_bar[i])
            start = int(block[known])
            if consumed_block <= start:
                continue
            added += usd
            value = usd * np.exp(frame_log[start:] - log_g[known])
            rows = np.arange(start, k_count)
            before = rows < consumed_block
            alive[rows[before], b - lo] += value[before]
            if consumed_block < k_count:
                after = ~before
                alive[rows[after], b - lo] += (1 - params.consume_share) * value[after]
                cons[consumed_block, b - lo] += params.consume_share * value[~before][0]
        out.append((alive, cons))
    (la, lc), (sa, sc) = out
    return la, sa, lc, sc, added, lo


def _on(sim: Simulation, table: np.ndarray, lo: int) -> np.ndarray:
    """A reference table moved onto the simulation's bins."""
    out = np.zeros((table.shape[0], sim.bin_count))
    a = max(lo, sim.bin_lo)
    b = min(lo + table.shape[1], sim.bin_lo + sim.bin_count)
    out[:, a - sim.bin_lo:b - sim.bin_lo] = table[:, a - lo:b - lo]
    assert np.all(table[:, :a - lo] == 0) and np.all(table[:, b - lo:] == 0)
    return out


@st.composite
def market(draw: st.DrawFn) -> tuple[Bars, LiquidationPrints, np.ndarray]:
    """Short volatile 1-minute histories with sparse open interest stamps, prints and frames."""
    n = draw(st.integers(3, 28))
    seed = draw(st.integers(0, 2**31 - 1))
    rng = np.random.default_rng(seed)
    close = 1_000.0 * np.exp(np.cumsum(rng.normal(0, 0.004, n)))
    open_ = np.concatenate([[1_000.0], close[:-1]])
    high = np.maximum(open_, close) * (1 + np.abs(rng.normal(0, 0.003, n)))
    low = np.minimum(open_, close) * (1 - np.abs(rng.normal(0, 0.003, n)))
    stamp = rng.random(n) < draw(st.sampled_from([0.15, 0.5, 1.0]))
    oi_walk = 1e7 * np.exp(np.cumsum(rng.normal(0, 0.02, n)))
    oi = np.where(stamp, oi_walk, np.nan)
    oi = np.array([oi[: i + 1][np.isfinite(oi[: i + 1])][-1] if np.isfinite(oi[: i + 1]).any()
                   else np.nan for i in range(n)])
    volume = np.where(rng.random(n) < 0.1, np.nan, rng.lognormal(2, 1, n))
    t = 1_700_000_000_000 + np.arange(n, dtype=np.int64) * MINUTE_MS
    bars = Bars.from_columns(t, open_, high, low, close, interval_ms=MINUTE_MS, volume=volume,
                             taker_buy_volume=volume * rng.uniform(0.2, 0.8, n),
                             open_interest_usd=oi)
    m = draw(st.integers(0, 12))
    pt = t[0] + rng.integers(0, n * MINUTE_MS, m)
    idx = np.clip((pt - t[0]) // MINUTE_MS, 0, n - 1)
    prints = LiquidationPrints(np.sort(pt), low[idx] + (high[idx] - low[idx]) * rng.random(m)
                               * 0.9, np.full(m, 1e4), rng.random(m) < 0.5)
    closes = t + MINUTE_MS
    k = draw(st.integers(1, n))
    ends = np.unique(np.sort(rng.choice(closes, k, replace=False)))
    if draw(st.booleans()):
        ends = np.unique(np.concatenate([ends, ends - 30_000]))  # ends between bar closes
    return bars, prints, ends


param_sets = st.builds(
    event_params,
    consume_share=st.sampled_from([1.0, 0.4]),
    entry_points=st.sampled_from([1, 3]),
    level_spread=st.sampled_from([0.0, 0.3]),
    turnover_per_hour=st.sampled_from([0.0, 1.0]),
    max_distance=st.sampled_from([0.6, 0.03]),
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=market(), params=param_sets, with_prints=st.booleans())
def test_simulate_equals_per_deposit_reference(
    data: tuple[Bars, LiquidationPrints, np.ndarray], params: ModelParams, with_prints: bool,
) -> None:
    bars, prints, ends = data
    step = nice_step(1_000.0, params.bin_bps)
    long_f, short_f = venue_factors(Venue.BINANCE, "BTCUSDT", params)
    used = prints if with_prints else None
    sim = simulate(bars, params, long_f, short_f, step, ends, used)
    la, sa, lc, sc, added, lo = reference(bars, params, step, ends, used)
    scale = max(float(np.abs(la).max(initial=0)), float(np.abs(sa).max(initial=0)), 1.0)
    for got, want in ((sim.long_usd, la), (sim.short_usd, sa), (sim.long_consumed, lc),
                      (sim.short_consumed, sc)):
        np.testing.assert_allclose(got, _on(sim, want, lo), rtol=1e-9, atol=1e-9 * scale)
    assert sim.added_usd == pytest.approx(added, rel=1e-9, abs=1e-6)


@settings(max_examples=40, deadline=None)
@given(data=market(), consume=st.sampled_from([1.0, 0.5]), churn=st.sampled_from([0.0, 0.5]))
def test_usd_added_is_remaining_plus_consumed_plus_closed(
    data: tuple[Bars, LiquidationPrints, np.ndarray], consume: float, churn: float,
) -> None:
    bars, prints, ends = data
    params = event_params(consume_share=consume, turnover_per_hour=churn)
    long_f, short_f = venue_factors(Venue.BINANCE, "BTCUSDT", params)
    sim = simulate(bars, params, long_f, short_f, 1.0, ends, prints)
    remaining = float(sim.long_usd[-1].sum() + sim.short_usd[-1].sum())
    consumed = float(sim.long_consumed.sum() + sim.short_consumed.sum())
    assert sim.added_usd == pytest.approx(remaining + consumed + sim.closed_usd, rel=1e-9,
                                          abs=1e-6)
    assert sim.closed_usd >= 0


@settings(max_examples=40, deadline=None)
@given(data=market(), consume=st.sampled_from([1.0, 0.5]))
def test_without_closes_or_churn_remaining_plus_consumed_is_added(
    data: tuple[Bars, LiquidationPrints, np.ndarray], consume: float,
) -> None:
    bars, prints, ends = data
    # Contracts (open interest / open price at each stamp) that never fall: nothing closes.
    raw = bars.open_interest_usd
    prev = np.concatenate([[np.nan], raw[:-1]])
    stamps = np.flatnonzero(np.isfinite(raw) & ~(prev == raw))
    contracts = np.maximum.accumulate(raw[stamps] / bars.open[stamps]) if stamps.size else raw[:0]
    oi = np.full(len(bars), np.nan)
    for k, s in enumerate(stamps.tolist()):
        oi[s:] = contracts[k] * bars.open[s] * (1 + 1e-9 * k)  # distinct values: still stamps
    bars = Bars.from_columns(bars.time, bars.open, bars.high, bars.low, bars.close,
                             volume=bars.volume, open_interest_usd=oi)
    params = event_params(consume_share=consume, turnover_per_hour=0.0)
    long_f, short_f = venue_factors(Venue.BINANCE, "BTCUSDT", params)
    sim = simulate(bars, params, long_f, short_f, 1.0, ends, prints)
    remaining = float(sim.long_usd[-1].sum() + sim.short_usd[-1].sum())
    consumed = float(sim.long_consumed.sum() + sim.short_consumed.sum())
    assert remaining + consumed == pytest.approx(sim.added_usd, rel=1e-9, abs=1e-6)


@settings(max_examples=40, deadline=None)
@given(data=market())
def test_no_level_survives_beyond_the_bar_that_reached_it(
    data: tuple[Bars, LiquidationPrints, np.ndarray],
) -> None:
    # One frame per bar: after bar k, longs at or above its low and shorts at or below its high
    # can only be bar k's own new positions (when they are known at once).
    bars, _prints, _ends = data
    params = event_params(level_spread=0.3)
    step = 1.0
    long_f, short_f = venue_factors(Venue.BINANCE, "BTCUSDT", params)
    closes = bars.time + bars.interval_ms
    sim = simulate(bars, params, long_f, short_f, step, closes)
    fl = flows(bars, params)
    own = [deposits(bars, fl, params, f, step, side) for f, side in ((long_f, True),
                                                                    (short_f, False))]
    bins = sim.bin_lo + np.arange(sim.bin_count)
    for k in range(len(bars)):
        mine = [np.bincount(d.bin[(d.bar == k) & (fl.known_bar[k] == k)] - sim.bin_lo,
                            weights=d.usd[(d.bar == k) & (fl.known_bar[k] == k)],
                            minlength=sim.bin_count) for d in own]
        reach_long = bins >= np.ceil(bars.low[k] / step)
        reach_short = bins <= np.floor(bars.high[k] / step)
        np.testing.assert_allclose(sim.long_usd[k][reach_long], mine[0][reach_long],
                                   rtol=1e-9, atol=1e-6)
        np.testing.assert_allclose(sim.short_usd[k][reach_short], mine[1][reach_short],
                                   rtol=1e-9, atol=1e-6)


def test_bars_after_the_last_frame_are_ignored() -> None:
    bars = bars_1m()
    params = DEFAULT_PARAMS
    long_f, short_f = venue_factors(Venue.BINANCE, "BTCUSDT", params)
    step = nice_step(float(bars.close[500]), params.bin_bps)
    ends = frame_ends_for(bars.slice(0, 500), int(bars.time[499] + 60_000), Window.H12.ms, 48)
    a = simulate(bars.slice(0, 500), params, long_f, short_f, step, ends, prints_okx())
    b = simulate(bars, params, long_f, short_f, step, ends, prints_okx())
    assert a.bin_lo == b.bin_lo
    np.testing.assert_array_equal(a.long_usd, b.long_usd)
    np.testing.assert_array_equal(a.short_usd, b.short_usd)


@pytest.mark.parametrize("params", [ModelParams(), DEFAULT_PARAMS], ids=["neutral", "fitted"])
def test_deposit_grid_matches_flat_deposits(params: ModelParams) -> None:
    bars = bars_1h().slice(0, 200)
    fl = flows(bars, params)
    step = nice_step(float(bars.close[-1]), params.bin_bps)
    long_f, _ = venue_factors(Venue.BINANCE, "BTCUSDT", params)
    grid = deposit_grid(bars, fl, params, long_f, True)
    flat = deposits(bars, fl, params, long_f, step, True)
    lo, hi = grid.bin_bounds(step)
    assert flat.bin.size == grid.size
    assert flat.bin.min() == lo and flat.bin.max() == hi
    assert flat.usd.sum() == pytest.approx(float(grid.usd().sum()), rel=1e-12)
    # USD at entry: opens (contracts) × entry price, split over points and leverages.
    assert np.all(flat.usd > 0)


def test_real_frames_are_finite_and_non_negative() -> None:
    bars = synthetic_bars(5_000, seed=5)
    long_f, short_f = venue_factors(Venue.BINANCE, "BTCUSDT", DEFAULT_PARAMS)
    step = nice_step(float(bars.close[-1]), DEFAULT_PARAMS.bin_bps)
    ends = frame_ends_for(bars, int(bars.time[-1] + 60_000), Window.D3.ms, 96)
    sim = simulate(bars, DEFAULT_PARAMS, long_f, short_f, step, ends)
    for table in (sim.long_usd, sim.short_usd, sim.long_consumed, sim.short_consumed):
        assert np.all(np.isfinite(table)) and np.all(table >= 0)
    assert sim.long_usd[-1].sum() > 0 and sim.short_usd[-1].sum() > 0


@given(st.lists(st.floats(0.0, 2.0**51 - 1.0, allow_nan=False), min_size=1, max_size=50),
       st.integers(0, 1_000_000))
def test_shifted_rounding_is_rint(values: list[float], tie: int) -> None:
    # Exact halves included: both must round half to even.
    x = np.array([*values, tie + 0.5, tie + 1.5])
    expected = np.rint(x).astype(np.int64)
    assert np.array_equal(rint_shifted(x.copy()) - ROUND_BITS, expected)
