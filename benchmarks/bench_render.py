"""Benchmark the heatmap renderer (and the brief) on the real hourly bench data.

    python benchmarks/bench_render.py [--bars FILE] [--runs N] [--png DIR]

For every window the map is built once with `engine.mapping.build_map` from the six-month
hourly BTCUSDT file (bars loaded by the small CSV loader below), then rendered `--runs` times.
Prints the median and p90 wall time, the median CPU time (wall minus waiting for a busy
machine), the PNG size per window, and the median brief time.
Budget: median <= 150 ms per image. `--png DIR` also writes one image per window.
"""

from __future__ import annotations

import argparse
import csv
import statistics
import sys
import time
from datetime import datetime
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from engine.brief import build_brief
from engine.mapping import build_map
from engine.render import render_heatmap
from engine.types import Bars, Venue, Window

DEFAULT_BARS = Path("/work/shared/data/bench/btcusdt-1h-2025-12-04_2026-06-02.bars.csv")
COLUMNS = ("open", "high", "low", "close", "volume", "taker_buy_volume", "open_interest_usd",
           "funding_rate", "long_liquidations_usd", "short_liquidations_usd")
BUDGET_MS = 150.0


def load_bars(path: Path) -> Bars:
    """Bars from a bench "bars" CSV (ISO time with Z, blanks become NaN)."""
    times: list[int] = []
    cols: dict[str, list[float]] = {name: [] for name in COLUMNS}
    with path.open(newline="") as handle:
        for row in csv.DictReader(handle):
            stamp = datetime.fromisoformat(row["time"].replace("Z", "+00:00"))
            times.append(int(stamp.timestamp() * 1000))
            for name in COLUMNS:
                text = row.get(name) or ""
                cols[name].append(float(text) if text.strip() else float("nan"))
    a = {name: np.asarray(values, dtype=np.float64) for name, values in cols.items()}
    return Bars.from_columns(
        times, a["open"], a["high"], a["low"], a["close"], volume=a["volume"],
        taker_buy_volume=a["taker_buy_volume"], open_interest_usd=a["open_interest_usd"],
        funding_rate=a["funding_rate"], long_liquidations_usd=a["long_liquidations_usd"],
        short_liquidations_usd=a["short_liquidations_usd"],
    )


def percentile(values: list[float], q: float) -> float:
    return float(np.percentile(np.asarray(values), q))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bars", type=Path, default=DEFAULT_BARS)
    parser.add_argument("--runs", type=int, default=30)
    parser.add_argument("--png", type=Path, default=None, help="write one PNG per window here")
    args = parser.parse_args()

    bars = load_bars(args.bars)
    print(f"{len(bars)} bars from {args.bars.name}, {args.runs} runs per window")
    print(f"{'window':>6} {'columns×bins':>13} {'median ms':>10} {'p90 ms':>8} {'cpu ms':>7} "
          f"{'PNG KiB':>8} {'brief ms':>9}")
    worst = 0.0
    for window in Window:
        m = build_map("BTCUSDT", {Venue.BINANCE: bars}, window)
        png = render_heatmap(m)  # warm-up: fonts and LUTs are cached after the first call
        times, cpu = [], []
        for _ in range(args.runs):
            t0, c0 = time.perf_counter(), time.process_time()
            out = render_heatmap(m)
            times.append((time.perf_counter() - t0) * 1000)
            cpu.append((time.process_time() - c0) * 1000)
            if out != png:
                raise SystemExit(f"{window.value}: identical inputs gave different bytes")
        brief_times = []
        for _ in range(max(3, args.runs // 3)):
            t0 = time.perf_counter()
            build_brief(m)
            brief_times.append((time.perf_counter() - t0) * 1000)
        median = statistics.median(times)
        worst = max(worst, median)
        shape = f"{m.heatmap.times.size}×{m.heatmap.grid.count}"
        print(f"{window.value:>6} {shape:>13} {median:>10.1f} {percentile(times, 90):>8.1f} "
              f"{statistics.median(cpu):>7.1f} {len(png) / 1024:>8.0f} "
              f"{statistics.median(brief_times):>9.2f}")
        if args.png is not None:
            args.png.mkdir(parents=True, exist_ok=True)
            (args.png / f"map_{window.value}.png").write_bytes(png)
    verdict = "within" if worst <= BUDGET_MS else "OVER"
    print(f"worst median {worst:.1f} ms: {verdict} the {BUDGET_MS:.0f} ms budget")


if __name__ == "__main__":
    main()
