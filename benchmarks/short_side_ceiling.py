"""How far can signals known before the hour lift the hourly sweep test's short side?

    PYTHONPATH=. python benchmarks/short_side_ceiling.py [--bars FILE]

Two re-weightings of the map, each fitted by a coordinate search that maximises the short
Spearman on the FIRST half of the test hours only; the second half shows whether it generalises.

1. Per hour: the predicted swept short USD is multiplied by exp(Σ β_i·z_i), z_i standardised
   pre-hour signals (realized liquidation EWMAs, recent range, funding, returns, open interest).
   That is the most any frame-level term (like the intensity) could add. The same search on the
   hour's own down move (look-ahead, never usable) is printed for reference.
2. Per distance: the map's short USD in [open, high] is split into distance buckets above the
   open (0–0.1 %, 0.1–0.2 %, … 5 %+), each with its own weight: the most a change of the map's
   shape along price could add.
"""

from __future__ import annotations

import argparse
from itertools import pairwise
from pathlib import Path

import numpy as np
from fit_model import HOURLY, load_bars

from engine.backtest import mass_between, spearman, sweep_predictions
from engine.frame_terms import ewma
from engine.mapping import factors_for
from engine.model import simulate
from engine.params import DEFAULT_PARAMS, nice_step
from engine.types import Bars, FloatArray, Venue

DISTANCE_EDGES = (0.0, 0.001, 0.002, 0.003, 0.005, 0.0075, 0.01, 0.015, 0.02, 0.03, 0.05, 1.0)


def _log(x: FloatArray) -> FloatArray:
    return np.asarray(np.log(np.maximum(x, 1e-12)), dtype=np.float64)


def signals(bars: Bars, hours: np.ndarray) -> dict[str, FloatArray]:
    """Standard pre-hour signals per test hour (bars before the hour only)."""
    prev = hours - 1
    o, hi, lo, c = bars.open, bars.high, bars.low, bars.close
    oi = bars.open_interest_usd
    longs = np.nan_to_num(bars.long_liquidations_usd)
    shorts = np.nan_to_num(bars.short_liquidations_usd)
    rng = (hi - lo) / o
    per_oi = {f"short liq ewma {h}h": ewma(shorts, h) for h in (1, 4, 24)}
    per_oi |= {f"long liq ewma {h}h": ewma(longs, h) for h in (1, 24)}
    out = {k: _log(v[prev] / oi[prev] + 1e-6) for k, v in per_oi.items()}
    out["range ewma 4h"] = _log(ewma(rng, 4)[prev])
    out["range ewma 24h"] = _log(ewma(rng, 24)[prev])
    out["funding"] = np.nan_to_num(bars.funding_rate[prev])
    out["return 1h"] = ((c - o) / o)[prev]
    out["return 24h"] = (c[prev] - o[hours - 24]) / o[hours - 24]
    out["open interest"] = _log(oi[prev])
    return out


def search(base: FloatArray, real: FloatArray, feats: dict[str, FloatArray],
           fit: np.ndarray) -> dict[str, float]:
    """β maximising the Spearman of base + Σ β·z over the `fit` hours (coordinate search)."""
    z = {k: (v - v[fit].mean()) / v[fit].std() for k, v in feats.items()}
    beta = dict.fromkeys(z, 0.0)

    def score(b: dict[str, float]) -> float:
        s = base + sum(b[k] * z[k] for k in z)
        return spearman(s[fit], real[fit])

    best = score(beta)
    for step in (0.5, 0.2, 0.1, 0.05, 0.02):
        improved = True
        while improved:
            improved = False
            for k in z:
                for d in (step, -step):
                    trial = {**beta, k: beta[k] + d}
                    value = score(trial)
                    if value > best + 1e-5:
                        best, beta, improved = value, trial, True
    return beta


def short_mass_by_distance(bars: Bars, hours: np.ndarray) -> FloatArray:
    """Per test hour and distance bucket: the map's short USD in [open, high] within it (the
    map from bars before the hour, as the fitting sweep builds it)."""
    params = DEFAULT_PARAMS
    step = nice_step(float(np.median(bars.close)), params.bin_bps)
    bin_range = (int(np.floor(bars.low.min() * 0.8 / step)),
                 int(np.ceil(bars.high.max() * 1.2 / step)))
    long_f, short_f = factors_for(Venue.BINANCE, "BTC", params)
    sim = simulate(bars, params, long_f, short_f, step, bars.time + bars.interval_ms,
                   bin_range=bin_range)
    o, hi = bars.open[hours], bars.high[hours]
    cols = []
    for near, far in pairwise(DISTANCE_EDGES):
        low = o * (1 + near)
        high = np.maximum(np.minimum(hi, o * (1 + far)), low)
        cols.append(mass_between(sim.short_usd[hours - 1], sim.bin_lo, step, low, high))
    return np.column_stack(cols)


def reweight_by_distance(mass: FloatArray, real: FloatArray, fit: np.ndarray) -> FloatArray:
    """Log weights per bucket maximising the Spearman of mass @ exp(w) over the `fit` hours."""
    w = np.zeros(mass.shape[1])

    def score(trial: FloatArray) -> float:
        return spearman(mass[fit] @ np.exp(trial), real[fit])

    best = score(w)
    for step in (1.0, 0.5, 0.25, 0.1, 0.05):
        improved = True
        while improved:
            improved = False
            for i in range(w.size):
                for d in (step, -step):
                    trial = w.copy()
                    trial[i] += d
                    value = score(trial)
                    if value > best + 1e-5:
                        best, w, improved = value, trial, True
    return w


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bars", type=Path, default=HOURLY)
    args = parser.parse_args()
    bars = load_bars(args.bars)
    pred = sweep_predictions(bars, DEFAULT_PARAMS)
    m = pred.hours.size
    ok = np.isfinite(pred.real_short)
    first = np.zeros(m, bool)
    first[: m // 2] = True
    fit, held = first & ok, ~first & ok
    base = _log(pred.model_short)
    feats = signals(bars, pred.hours)
    z = {k: (v - v[fit].mean()) / v[fit].std() for k, v in feats.items()}

    def halves(beta: dict[str, float], zz: dict[str, FloatArray]) -> str:
        s = base + sum(b * zz[k] for k, b in beta.items())
        return (f"first half {spearman(s[fit], pred.real_short[fit]):.3f}, "
                f"second half {spearman(s[held], pred.real_short[held]):.3f}")

    print(f"map alone:                        {halves({}, z)}")
    beta = search(base, pred.real_short, feats, fit)
    print(f"map × pre-hour multiplier:        {halves(beta, z)}")
    print("  β: " + ", ".join(f"{k} {b:+.2f}" for k, b in beta.items() if b))
    down = {"down move": _log((bars.open - bars.low)[pred.hours] / bars.open[pred.hours] + 1e-5)}
    zd = {k: (v - v[fit].mean()) / v[fit].std() for k, v in down.items()}
    beta_d = search(base, pred.real_short, down, fit)
    print(f"look-ahead reference (own down):  {halves(beta_d, zd)}")
    mass = short_mass_by_distance(bars, pred.hours)
    w = reweight_by_distance(mass, pred.real_short, fit)
    scored = mass @ np.exp(w)
    print(f"map re-weighted by distance:      first half "
          f"{spearman(scored[fit], pred.real_short[fit]):.3f}, second half "
          f"{spearman(scored[held], pred.real_short[held]):.3f}")
    print("  weights: " + ", ".join(f"{a * 100:g}%+ {x:.2f}"
                                     for a, x in zip(DISTANCE_EDGES, np.exp(w), strict=False)))


if __name__ == "__main__":
    main()
