"""Reproducible fit of the model's parameters on the FIRST HALF of the hourly sweep test.

    PYTHONPATH=. python benchmarks/fit_model.py [--bars FILE] [--passes N]

Coordinate search: each parameter in turn is tried at every value of its grid while the others
stay fixed; the value with the best first-half objective (mean of the long and short Spearman
over the first half of the test hours) is kept. Only first-half scores steer the search; each
first-half prediction is itself made from bars strictly before its hour, so the second half is
never seen while fitting. At the end the chosen parameters are printed together with the scores
over all hours, the first half (fit) and the second half (held out), for model and baseline.
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np

from engine.backtest import SweepResult, score, sweep_predictions
from engine.params import DEFAULT_PARAMS, ModelParams
from engine.types import Bars

BENCH = Path("/work/shared/data/bench")
HOURLY = BENCH / "btcusdt-1h-2025-12-04_2026-06-02.bars.csv"

# Grids searched, in this order, on each pass.
GRID: dict[str, list[Any]] = {
    "diffuse_share": [0.03, 0.05, 0.1, 0.2, 0.3],
    "diffuse_shape": [1.5, 2.0, 3.0, 4.0],
    "diffuse_scale": [0.005, 0.0075, 0.01, 0.015, 0.02],
    "level_spread": [0.0, 0.3, 0.6, 0.9],
    "intensity_gamma": [0.0, 0.2, 0.4, 0.6, 0.8],
    "intensity_half_life_hours": [0.25, 0.5, 1.0, 2.0, 4.0, 12.0],
    "intensity_cross": [0.0, 0.25, 0.5, 1.0],
    "turnover_per_hour": [0.01, 0.02, 0.05, 0.1],
    "entry_points": [3, 5],
    "spread_nodes": [3, 5],
}


def _ts(text: str) -> int:
    return int(datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp() * 1000)


def _num(text: str) -> float:
    return float(text) if text != "" else float("nan")


def load_bars(path: Path) -> Bars:
    """Bench "bars" CSV -> Bars, open interest forward-filled (as the README prescribes)."""
    with path.open(newline="") as fh:
        rows = list(csv.DictReader(fh))
    cols = {k: np.array([_num(r[k]) for r in rows]) for k in rows[0] if k != "time"}
    oi = cols["open_interest_usd"]
    idx = np.where(np.isfinite(oi), np.arange(oi.size), 0)
    np.maximum.accumulate(idx, out=idx)
    oi = np.where(np.isfinite(oi[idx]), oi[idx], np.nan)
    return Bars.from_columns(
        [_ts(r["time"]) for r in rows], cols["open"], cols["high"], cols["low"], cols["close"],
        volume=cols["volume"], taker_buy_volume=cols["taker_buy_volume"],
        open_interest_usd=oi, funding_rate=cols["funding_rate"],
        long_liquidations_usd=cols["long_liquidations_usd"],
        short_liquidations_usd=cols["short_liquidations_usd"],
    )


def objective(result: SweepResult) -> float:
    """Mean of long and short Spearman over the first half of the test hours."""
    first = result.model["first half"]
    return 0.5 * (first.long + first.short)


def evaluate(bars: Bars, params: ModelParams) -> SweepResult:
    """Sweep-test scores of `params`."""
    return score(sweep_predictions(bars, params))


def fit(bars: Bars, start: ModelParams, passes: int) -> tuple[ModelParams, SweepResult]:
    """Coordinate search from `start`, steered only by the first-half objective."""
    best = start
    best_result = evaluate(bars, best)
    best_obj = objective(best_result)
    print(f"start: first-half objective {best_obj:.4f}", flush=True)
    for p in range(passes):
        improved = False
        for name, values in GRID.items():
            for value in values:
                if getattr(best, name) == value:
                    continue
                trial = dataclasses.replace(best, **{name: value})
                result = evaluate(bars, trial)
                obj = objective(result)
                if obj > best_obj + 1e-4:
                    best, best_result, best_obj, improved = trial, result, obj, True
                    print(f"pass {p + 1}: {name}={value} -> {obj:.4f}", flush=True)
        if not improved:
            break
    return best, best_result


def report(result: SweepResult) -> None:
    """Scores over all hours, first half (fit) and second half (held out)."""
    for label, table in (("model", result.model), ("baseline", result.baseline)):
        cells = "  ".join(f"{k}: {v.long:.3f} / {v.short:.3f} ({v.hours} h)"
                          for k, v in table.items())
        print(f"{label:9s} {cells}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bars", type=Path, default=HOURLY)
    parser.add_argument("--passes", type=int, default=2)
    parser.add_argument("--from-defaults", action="store_true",
                        help="start from DEFAULT_PARAMS instead of the neutral ModelParams()")
    args = parser.parse_args()
    bars = load_bars(args.bars)
    start = DEFAULT_PARAMS if args.from_defaults else ModelParams()
    t0 = time.perf_counter()
    params, result = fit(bars, start, args.passes)
    print(f"fit took {time.perf_counter() - t0:.0f} s")
    print("chosen parameters (differences from ModelParams()):")
    neutral = ModelParams()
    for field in dataclasses.fields(params):
        value = getattr(params, field.name)
        if value != getattr(neutral, field.name):
            print(f"  {field.name} = {value!r}")
    report(result)


if __name__ == "__main__":
    main()
