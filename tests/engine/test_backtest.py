"""Backtest harness and the model's separable terms: ranks, no look-ahead, band test offsets."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from engine.backtest import (
    OKX_BANKRUPTCY_OFFSET,
    band_hit_test,
    rankdata,
    score,
    spearman,
    sweep_predictions,
)
from engine.frame_terms import diffuse_layer, ewma, intensity
from engine.model import spread_levels
from engine.params import DEFAULT_PARAMS, ModelParams
from engine.types import HOUR_MS, MINUTE_MS, Bars, LiquidationPrints


def _bars(n: int, seed: int = 1, interval: int = HOUR_MS) -> Bars:
    rng = np.random.default_rng(seed)
    close = 50_000 * np.exp(np.cumsum(rng.normal(0, 0.004, n)))
    open_ = np.concatenate([[50_000.0], close[:-1]])
    high = np.maximum(open_, close) * (1 + rng.uniform(0, 0.004, n))
    low = np.minimum(open_, close) * (1 - rng.uniform(0, 0.004, n))
    oi = 5e9 * np.exp(np.cumsum(rng.normal(0, 0.003, n)))
    return Bars.from_columns(
        np.arange(n, dtype=np.int64) * interval, open_, high, low, close, interval_ms=interval,
        open_interest_usd=oi, funding_rate=np.full(n, 1e-4),
        long_liquidations_usd=rng.lognormal(12, 1.5, n),
        short_liquidations_usd=rng.lognormal(12, 1.5, n),
    )


def test_rankdata_averages_ties() -> None:
    assert rankdata(np.array([3.0, 1.0, 3.0, 2.0])).tolist() == [3.5, 1.0, 3.5, 2.0]


def test_spearman_matches_scipy() -> None:
    stats = pytest.importorskip("scipy.stats")
    rng = np.random.default_rng(0)
    a = rng.integers(0, 20, 300).astype(np.float64)
    b = a + rng.normal(0, 5, 300)
    assert spearman(a, b) == pytest.approx(stats.spearmanr(a, b)[0], abs=1e-12)


def test_ewma_matches_recursion() -> None:
    x = np.random.default_rng(3).normal(size=3000)
    for hl in (0.5, 1.0, 37.0):
        alpha = 1 - 0.5 ** (1 / hl)
        s, ref = 0.0, np.empty_like(x)
        for i, v in enumerate(x):
            s += alpha * (v - s)
            ref[i] = s
        np.testing.assert_allclose(ewma(x, hl), ref, rtol=1e-9, atol=1e-12)


def test_spread_levels_keeps_weight_and_side() -> None:
    f = np.array([0.9, 0.99])
    w = np.array([0.25, 0.75])
    same_f, same_w = spread_levels(f, w, 0.0, 5)
    assert same_f.tolist() == f.tolist() and same_w.tolist() == w.tolist()
    sf, sw = spread_levels(f, w, 0.6, 5)
    assert sw.sum() == pytest.approx(1.0)
    assert np.all(sf < 1.0)  # long levels stay below entry
    # geometric mean distance is preserved per leverage
    d = np.log(1 - sf).reshape(2, 5)
    np.testing.assert_allclose((d * (sw.reshape(2, 5) / w[:, None])).sum(axis=1),
                               np.log(1 - f), rtol=1e-9)


def test_diffuse_layer_mass_and_side() -> None:
    params = dataclasses.replace(ModelParams(), diffuse_share=0.2, diffuse_shape=2.0,
                                 diffuse_scale=0.01)
    step = 5.0
    ref = np.array([50_000.0, np.nan])
    oi = np.array([1e9, 1e9])
    bin_lo = int(30_000 / step)
    nb = int(40_000 / step)
    longs = diffuse_layer(ref, oi, step, bin_lo, nb, params, True)
    shorts = diffuse_layer(ref, oi, step, bin_lo, nb, params, False)
    price = (bin_lo + np.arange(nb)) * step
    assert longs[0].sum() == pytest.approx(0.2e9, rel=0.01)
    assert shorts[0].sum() == pytest.approx(0.2e9, rel=0.01)
    assert np.all(longs[0][price >= 50_000] == 0) and np.all(shorts[0][price <= 50_000] == 0)
    assert not longs[1].any()  # no reference price -> no layer


def test_intensity_uses_past_only() -> None:
    bars = _bars(300)
    params = dataclasses.replace(ModelParams(), intensity_gamma=0.5, intensity_cross=0.3)
    base = intensity(bars, params, True)
    changed = dataclasses.replace(
        bars, long_liquidations_usd=np.where(np.arange(300) >= 200, 1e12,
                                             bars.long_liquidations_usd))
    after = intensity(changed, params, True)
    np.testing.assert_array_equal(base[:200], after[:200])
    assert after[200] > base[200]
    assert np.all(intensity(bars, ModelParams(), True) == 1.0)


@pytest.mark.parametrize("params", [ModelParams(), DEFAULT_PARAMS])
def test_sweep_has_no_look_ahead(params: ModelParams) -> None:
    """Changing bar m onwards (except bar m's open/low/high, which define hour m's interval)
    leaves every prediction for hours <= m unchanged."""
    n, m = 260, 200
    bars = _bars(n)
    rng = np.random.default_rng(9)
    later = np.arange(n) > m
    at_or_after = np.arange(n) >= m
    close = np.where(at_or_after, bars.close * (1 + rng.normal(0, 0.01, n)), bars.close)
    close = np.clip(close, bars.low, bars.high)  # bar m's low/high stay the same
    open_ = np.where(later, close * 1.01, bars.open)
    changed = dataclasses.replace(
        bars,
        close=close, open=open_,
        high=np.where(later, np.maximum(open_, close) * 1.02, bars.high),
        low=np.where(later, np.minimum(open_, close) * 0.97, bars.low),
        open_interest_usd=np.where(at_or_after, bars.open_interest_usd * 0.5,
                                   bars.open_interest_usd),
        long_liquidations_usd=np.where(at_or_after, 1e10, bars.long_liquidations_usd),
        short_liquidations_usd=np.where(at_or_after, 0.0, bars.short_liquidations_usd),
    )
    changed.validate()
    a = sweep_predictions(bars, params, warmup_hours=24)
    b = sweep_predictions(changed, params, warmup_hours=24)
    upto = a.hours <= m
    np.testing.assert_allclose(a.model_long[upto], b.model_long[upto], rtol=1e-9, atol=1e-6)
    np.testing.assert_allclose(a.model_short[upto], b.model_short[upto], rtol=1e-9, atol=1e-6)
    result = score(a)
    assert set(result.model) == {"all", "first half", "second half"}


def test_band_hit_offset_moves_prints_to_trigger_levels() -> None:
    bars = _bars(600, seed=4, interval=MINUTE_MS)
    t0 = int(bars.time[0]) + 2 * HOUR_MS  # hours 2..9 of the bars
    hour = (np.arange(400) * 60_000 + t0) // 1
    idx = np.searchsorted(bars.time, hour)
    is_long = np.arange(400) % 2 == 0
    # bankruptcy prints: 0.4 % beyond the bar's close (below for longs, above for shorts)
    price = bars.close[idx] * np.where(is_long, 1 - OKX_BANKRUPTCY_OFFSET,
                                       1 + OKX_BANKRUPTCY_OFFSET)
    prints = LiquidationPrints(hour.astype(np.int64), price, np.full(400, 1000.0), is_long)
    raw = band_hit_test(bars, prints, ModelParams(), bankruptcy_offset=0.0)
    adjusted = band_hit_test(bars, prints, ModelParams())
    for r, a in zip(raw, adjusted, strict=True):
        assert a.in_range == pytest.approx(1.0)
        assert r.in_range < a.in_range
        assert 0 <= a.coverage <= 1 and a.hours > 0


def test_mass_between_counts_partial_bins() -> None:
    from engine.backtest import mass_between

    usd = np.array([[0.0, 10.0, 20.0, 0.0]])  # bins 100..103 at step 1: bin 101 holds 10 USD
    one = np.array([1.0])
    # whole bins 101 and 102: [100.5, 102.5]
    assert mass_between(usd, 100, 1.0, one * 100.5, one * 102.5)[0] == pytest.approx(30.0)
    # half of bin 101 and a quarter of bin 102
    assert mass_between(usd, 100, 1.0, one * 101.0, one * 101.75)[0] == pytest.approx(5 + 5)
    # an empty or reversed interval holds nothing; outside the table holds nothing
    assert mass_between(usd, 100, 1.0, one * 101.2, one * 101.2)[0] == 0.0
    assert mass_between(usd, 100, 1.0, one * 200.0, one * 300.0)[0] == 0.0


def test_band_hit_hours_window_splits_the_score() -> None:
    bars = _bars(900, seed=5, interval=MINUTE_MS)
    t0 = int(bars.time[0]) + 2 * HOUR_MS
    times = t0 + np.arange(600, dtype=np.int64) * 60_000  # hours 2..11
    idx = np.searchsorted(bars.time, times)
    is_long = np.arange(600) % 2 == 0
    price = bars.low[idx] + (bars.high[idx] - bars.low[idx]) * 0.5
    prints = LiquidationPrints(times, price, np.full(600, 1000.0), is_long)
    whole = band_hit_test(bars, prints, ModelParams())
    mid = t0 + 5 * HOUR_MS
    first = band_hit_test(bars, prints, ModelParams(), hours=(0, mid))
    second = band_hit_test(bars, prints, ModelParams(), hours=(mid, 2**62))
    for w, a, b in zip(whole, first, second, strict=True):
        assert a.events + b.events == w.events
        assert a.hours + b.hours == w.hours


def test_fitting_proxy_ranks_like_the_served_model() -> None:
    """The single-pass sweep used for fitting must rank hours like per-hour served rebuilds."""
    from pathlib import Path

    from engine.backtest import served_predictions, spearman, sweep_predictions
    from market.files import load_bench_bars

    bars = load_bench_bars(Path(__file__).resolve().parents[2] / "data" / "bench"
                           / "btcusdt-1h-2025-12-04_2026-06-02.bars.csv").slice(0, 900)
    fast = sweep_predictions(bars)
    served = served_predictions(bars)
    assert spearman(fast.model_long, served.model_long) > 0.95
    assert spearman(fast.model_short, served.model_short) > 0.95
