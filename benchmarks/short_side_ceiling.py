"""How far can signals known before the hour lift the hourly sweep test's short side?

    PYTHONPATH=. python benchmarks/short_side_ceiling.py [--bars FILE]

The map's predicted swept short USD of each hour is multiplied by exp(Σ β_i·z_i), z_i being
standardised pre-hour signals (realized liquidation EWMAs, recent range, funding, returns,
open interest), with the β found by a coordinate search that maximises the short Spearman on
the FIRST half of the test hours only. A per-hour multiplier is the most any frame-level term
of the map could add; the second half shows whether it generalises. The same search on the
hour's own down move (look-ahead, never usable) is printed for reference.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from fit_model import HOURLY, load_bars

from engine.backtest import spearman, sweep_predictions
from engine.frame_terms import ewma
from engine.params import DEFAULT_PARAMS
from engine.types import Bars, FloatArray


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


if __name__ == "__main__":
    main()
