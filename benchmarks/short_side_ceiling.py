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
3. Any combination: a gradient-boosted learner over the map's prediction, the size of the move
   up and the same pre-hour signals (interactions included), trained on the first half. Any
   function of these that rises with the move can be drawn as a map (its cumulative short USD
   above the price), so this bounds what any map built from them could reach. The same learner
   also given the hour's own down move (look-ahead) shows where the missing information lies.
   Needs scikit-learn (`pip install -e ".[bench]"`); skipped with a note without it.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from itertools import pairwise
from pathlib import Path

import numpy as np
from fit_model import HOURLY, load_bars

from engine.backtest import mass_between, rankdata, spearman, sweep_hours, sweep_simulation
from engine.frame_terms import ewma
from engine.model import Simulation
from engine.params import DEFAULT_PARAMS
from engine.types import Bars, FloatArray

DISTANCE_EDGES = (0.0, 0.001, 0.002, 0.003, 0.005, 0.0075, 0.01, 0.015, 0.02, 0.03, 0.05, 1.0)
PER_HOUR_STEPS = (0.5, 0.2, 0.1, 0.05, 0.02)  # β per standardised signal
PER_DISTANCE_STEPS = (1.0, 0.5, 0.25, 0.1, 0.05)  # log weight per bucket


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


def standardised(columns: list[FloatArray], fit: np.ndarray) -> FloatArray:
    """Columns as z-scores over the `fit` hours, one per column of the returned matrix."""
    x = np.column_stack(columns)
    return np.asarray((x - x[fit].mean(axis=0)) / x[fit].std(axis=0), dtype=np.float64)


def coordinate_search(score: Callable[[FloatArray], float], size: int,
                      steps: tuple[float, ...]) -> FloatArray:
    """The vector (from zeros) maximising `score`: each coordinate in turn moves ± a step while
    that helps, for each step size in turn."""
    x = np.zeros(size)
    best = score(x)
    for step in steps:
        improved = True
        while improved:
            improved = False
            for i in range(size):
                for d in (step, -step):
                    trial = x.copy()
                    trial[i] += d
                    value = score(trial)
                    if value > best + 1e-5:
                        best, x, improved = value, trial, True
    return x


def short_mass_by_distance(sim: Simulation, bars: Bars, hours: np.ndarray) -> FloatArray:
    """Per test hour and distance bucket: the map's short USD in [open, high] within it."""
    o, hi = bars.open[hours], bars.high[hours]
    cols = []
    for near, far in pairwise(DISTANCE_EDGES):
        low = o * (1 + near)
        high = np.maximum(np.minimum(hi, o * (1 + far)), low)
        cols.append(mass_between(sim.short_usd[hours - 1], sim.bin_lo, sim.step, low, high))
    return np.column_stack(cols)


def learner_bound(columns: list[FloatArray], real: FloatArray, fit: np.ndarray,
                  held: np.ndarray) -> tuple[float, float] | None:
    """First- and second-half Spearman of a gradient-boosted learner trained on the first half
    (target: normal scores of the realized ranks); None without scikit-learn."""
    try:
        from sklearn.ensemble import HistGradientBoostingRegressor
    except ImportError:
        return None
    from scipy.stats import norm

    x = np.column_stack(columns)
    target = norm.ppf((rankdata(real[fit]) - 0.5) / int(fit.sum()))
    scores = []
    for seed in range(3):  # the learner's own randomness: average three seeds
        model = HistGradientBoostingRegressor(
            max_iter=200, learning_rate=0.05, max_leaf_nodes=15, min_samples_leaf=40,
            random_state=seed).fit(x[fit], target)
        scores.append((spearman(model.predict(x[fit]), real[fit]),
                       spearman(model.predict(x[held]), real[held])))
    first, second = np.mean(scores, axis=0)
    return float(first), float(second)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bars", type=Path, default=HOURLY)
    args = parser.parse_args()
    bars = load_bars(args.bars)
    sim = sweep_simulation(bars, DEFAULT_PARAMS)
    hours = sweep_hours(bars)
    o, hg = bars.open[hours], bars.high[hours]
    real = bars.short_liquidations_usd[hours]
    ok = np.isfinite(real)
    first = np.arange(hours.size) < hours.size // 2
    fit, held = first & ok, ~first & ok

    def halves(scored: FloatArray) -> str:
        return (f"first half {spearman(scored[fit], real[fit]):.3f}, "
                f"second half {spearman(scored[held], real[held]):.3f}")

    def fit_spearman(scored: FloatArray) -> float:
        return spearman(scored[fit], real[fit])

    base = _log(mass_between(sim.short_usd[hours - 1], sim.bin_lo, sim.step, o, hg))
    print(f"map alone:                        {halves(base)}")
    feats = signals(bars, hours)
    z = standardised(list(feats.values()), fit)
    beta = coordinate_search(lambda b: fit_spearman(base + z @ b), z.shape[1], PER_HOUR_STEPS)
    print(f"map × pre-hour multiplier:        {halves(base + z @ beta)}")
    print("  β: " + ", ".join(f"{k} {b:+.2f}" for k, b in zip(feats, beta, strict=True) if b))
    zd = standardised([_log((o - bars.low[hours]) / o + 1e-5)], fit)
    beta_d = coordinate_search(lambda b: fit_spearman(base + zd @ b), 1, PER_HOUR_STEPS)
    print(f"look-ahead reference (own down):  {halves(base + zd @ beta_d)}")
    mass = short_mass_by_distance(sim, bars, hours)
    w = coordinate_search(lambda lw: fit_spearman(mass @ np.exp(lw)), mass.shape[1],
                          PER_DISTANCE_STEPS)
    print(f"map re-weighted by distance:      {halves(mass @ np.exp(w))}")
    print("  weights: " + ", ".join(f"{a * 100:g}%+ {x:.2f}"
                                     for a, x in zip(DISTANCE_EDGES, np.exp(w), strict=False)))
    up = _log((hg - o) / o + 1e-5)
    down = _log((o - bars.low[hours]) / o + 1e-5)
    plain = learner_bound([base, up, *feats.values()], real, fit, held)
    if plain is None:
        print("learner bound: skipped (pip install -e \".[bench]\" for scikit-learn)")
        return
    peek = learner_bound([base, up, *feats.values(), down], real, fit, held)
    assert peek is not None
    print(f"learner on map, move and signals: first half {plain[0]:.3f} (fit), "
          f"second half {plain[1]:.3f}")
    print(f"  the same, look-ahead own down:  first half {peek[0]:.3f} (fit), "
          f"second half {peek[1]:.3f}")


if __name__ == "__main__":
    main()
