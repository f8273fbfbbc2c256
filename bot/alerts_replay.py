"""`liqradar alerts replay`: every alert that would have fired over a history, with reasons."""

from __future__ import annotations

import argparse
import json
import sys
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from engine.alert_replay import Step, replay
from engine.alerts import AlertRule, Decision
from engine.timeline import bands_over_time
from engine.types import HOUR_MS, Bars


def replay_steps(symbol: str, bars: Bars, warmup_ms: int) -> Iterator[Step]:
    """(bar close time, bar low, bar high, bar close, bands as of the previous bar) per bar."""
    start = max(1, int(warmup_ms // bars.interval_ms))
    closes = bars.time + bars.interval_ms
    previous = None
    for snap in bands_over_time(symbol, bars, start=start - 1):
        if previous is not None:
            i = int(np.searchsorted(closes, snap.time_ms))
            yield (datetime.fromtimestamp(snap.time_ms / 1000, UTC), float(bars.low[i]),
                   float(bars.high[i]), float(bars.close[i]), previous.bands)
        previous = snap


def replay_decisions(symbol: str, bars: Bars, sensitivity: str,
                     fired_only: bool = True) -> list[Decision]:
    """Decisions of one subscription with the given sensitivity over the whole history."""
    rule = AlertRule.from_sensitivity(1, 1, symbol.upper(), sensitivity, daily_cap=1000)
    warmup = 24 * HOUR_MS if bars.interval_ms >= HOUR_MS else 2 * HOUR_MS
    decisions = replay(replay_steps(symbol, bars, warmup), rule)
    return [d for d in decisions if d.fired] if fired_only else decisions


def per_day(decisions: list[Decision]) -> tuple[float, int]:
    """Average and largest number of alerts per UTC day over the days the replay spans."""
    if not decisions:
        return 0.0, 0
    counts = Counter(d.at.strftime("%Y-%m-%d") for d in decisions)
    days = max((decisions[-1].at - decisions[0].at).total_seconds() / 86400.0, 1.0)
    return len(decisions) / days, max(counts.values())


def decision_json(d: Decision) -> dict[str, Any]:
    """One decision as JSON."""
    band = d.band
    return {
        "time": d.at.strftime("%Y-%m-%dT%H:%M:%SZ"), "kind": d.kind.value,
        "reason": d.reason.value, "price": d.price, "band_id": d.band_id,
        "band": None if band is None else {
            "side": band.side.value, "low": band.low, "high": band.high, "usd": band.usd,
            "strength": round(band.strength, 3)},
    }


def run_replay(args: argparse.Namespace) -> int:
    """CLI body: load the bars, replay, print a table or JSON."""
    from market import files

    bars = files.load_bench_bars(Path(args.bars))
    decisions = replay_decisions(args.symbol, bars, args.sensitivity)
    rows = [decision_json(d) for d in decisions]
    if args.json:
        text = json.dumps({"schema": "liqradar.alerts/1", "symbol": args.symbol.upper(),
                           "sensitivity": args.sensitivity, "alerts": rows})
        if args.json == "-":
            sys.stdout.write(text + "\n")
            return 0
        Path(args.json).write_text(text + "\n", encoding="utf-8")
    for r in rows:
        b = r["band"]
        where = "" if b is None else f"{b['side']} {b['low']:,.0f}-{b['high']:,.0f} " \
                                     f"${b['usd'] / 1e6:,.1f}M"
        print(f"{r['time']}  {r['kind']:<8} {where:<36} {r['reason']}")
    average, most = per_day(decisions)
    print(f"{len(rows)} alerts fired ({average:.1f} a day on average, at most {most} in a day)")
    return 0

