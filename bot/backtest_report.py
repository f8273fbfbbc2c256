"""`liqradar backtest`: the two real-data questions, model and baseline side by side."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np

from engine.backtest import band_hit_test, score, served_predictions
from engine.types import HOUR_MS, LiquidationPrints


def backtest_payload(bars_file: Path, liquidations_file: Path | None) -> dict[str, Any]:
    """Scores as a JSON-able dict; a question the files cannot answer is reported as skipped."""
    from market import files

    bars = files.load_bench_bars(bars_file)
    out: dict[str, Any] = {"schema": "liqradar.backtest/1", "bars": str(bars_file), "bars_count":
                           len(bars)}
    has_realized = bool(np.isfinite(bars.long_liquidations_usd).sum() > 0)
    hours_needed = 168 * HOUR_MS // bars.interval_ms + 24
    if has_realized and len(bars) > hours_needed and bars.interval_ms == HOUR_MS:
        result = score(served_predictions(bars))
        out["sweep"] = {
            "model": {k: {"long": _r(v.long), "short": _r(v.short), "hours": v.hours}
                      for k, v in result.model.items()},
            "baseline": {k: {"long": _r(v.long), "short": _r(v.short), "hours": v.hours}
                         for k, v in result.baseline.items()},
        }
    else:
        out["sweep"] = {"skipped": "needs hourly bars with realized liquidations and a 7-day "
                                   "warm-up"}
    if liquidations_file is not None:
        events = files.load_bench_liquidations(liquidations_file)
        prints = LiquidationPrints.from_events(events)
        inside = (prints.time >= bars.time[0]) & (prints.time < bars.time[-1] + bars.interval_ms)
        if events and bool(inside.any()):
            long_s, short_s = band_hit_test(bars, prints)
            out["band_hit"] = {
                s.side.value: {"capture": _r(s.capture), "coverage": _r(s.coverage),
                               "lift": _r(s.lift), "baseline_lift": 1.0, "events": s.events}
                for s in (long_s, short_s)
            }
        else:
            out["band_hit"] = {"skipped": "no liquidation falls inside the bars' time span"}
    else:
        out["band_hit"] = {"skipped": "no --liquidations file given"}
    return out


def _r(x: float) -> float | None:
    return None if not math.isfinite(x) else round(x, 3)


def _f(x: float | None) -> str:
    return "n/a" if x is None else f"{x:.3f}"


def backtest_table(payload: dict[str, Any]) -> str:
    """Markdown-free plain table of the payload (also pasted into the README)."""
    lines = [f"bars: {payload['bars']} ({payload['bars_count']} bars)", ""]
    sweep = payload["sweep"]
    lines.append("Hourly sweep test (Spearman, predicted vs realized swept liquidations)")
    if "skipped" in sweep:
        lines.append(f"  skipped: {sweep['skipped']}")
    else:
        lines.append(f"  {'hours':<20}{'model long':>11}{'model short':>12}"
                     f"{'base long':>11}{'base short':>12}")
        for part, m in sweep["model"].items():
            b = sweep["baseline"][part]
            lines.append(f"  {part + ' (' + str(m['hours']) + ')':<20}{_f(m['long']):>11}"
                         f"{_f(m['short']):>12}{_f(b['long']):>11}{_f(b['short']):>12}")
    lines.append("")
    lines.append("Band hit test (map as of the previous full hour)")
    hit = payload["band_hit"]
    if "skipped" in hit:
        lines.append(f"  skipped: {hit['skipped']}")
    else:
        lines.append(f"  {'side':<7}{'capture':>9}{'coverage':>10}{'lift':>7}{'baseline':>10}"
                     f"{'events':>8}")
        for side, s in hit.items():
            lines.append(f"  {side:<7}{_f(s['capture']):>9}{_f(s['coverage']):>10}"
                         f"{_f(s['lift']):>7}{s['baseline_lift']:>10.1f}{s['events']:>8}")
    return "\n".join(lines)
