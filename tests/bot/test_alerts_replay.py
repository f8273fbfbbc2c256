"""`liqradar alerts replay` over the six-month hourly bench file: alerts without spam."""

from __future__ import annotations

import itertools
import json
from collections import defaultdict
from datetime import timedelta
from pathlib import Path

import numpy as np
import pytest

from bot.alerts_replay import replay_decisions
from bot.cli import main
from engine.alerts import AlertKind, AlertRule
from market.files import load_bench_bars

BENCH = Path(__file__).resolve().parents[2] / "data" / "bench"
BARS_1H = BENCH / "btcusdt-1h-2025-12-04_2026-06-02.bars.csv"


@pytest.fixture(scope="module")
def hourly_fired() -> list:  # type: ignore[type-arg]
    return replay_decisions("BTC", load_bench_bars(BARS_1H), "balanced")


def test_no_band_alerts_twice_per_crossing(hourly_fired: list) -> None:  # type: ignore[type-arg]
    """A band repeats a kind only after re-arming: `rearm_after` passed, or a bar *closed*
    farther than approach + hysteresis from the band's near edge as it was when it last fired
    (a wick, or the edge drifting as the map is rebuilt, does not count); and never within
    `min_interval`."""
    bars = load_bench_bars(BARS_1H)
    closes_at = bars.time + bars.interval_ms
    rule = AlertRule.from_sensitivity(1, 1, "BTC", "balanced")
    away = rule.approach_pct + rule.hysteresis_pct
    by_band: dict[tuple[str | None, AlertKind], list] = defaultdict(list)  # type: ignore[type-arg]
    for d in hourly_fired:
        by_band[(d.band_id, d.kind)].append(d)
    assert by_band, "the replay fired nothing at all"
    for (_, kind), fired in by_band.items():
        if kind is AlertKind.SWEPT:
            assert len(fired) == 1, "a band is swept once"
            continue
        for first, second in itertools.pairwise(fired):
            gap = second.at - first.at
            assert gap >= rule.min_interval, f"{kind} repeated within min_interval"
            if gap >= rule.rearm_after:
                continue
            # Settled prices strictly between the two alerts' bars.
            i = int(np.searchsorted(closes_at, first.at.timestamp() * 1000))
            j = int(np.searchsorted(closes_at, second.at.timestamp() * 1000))
            assert closes_at[i] == first.at.timestamp() * 1000
            settled = bars.close[i + 1:j]
            band = first.band
            if band.side.value == "long":
                distance = (settled - band.high) / settled * 100
            else:
                distance = (band.low - settled) / settled * 100
            assert np.any(distance > away), (
                f"{kind} fired twice for {first.band_id} ({first.at} and {second.at}) "
                f"without price settling away")


def test_replay_is_not_spam(hourly_fired: list) -> None:  # type: ignore[type-arg]
    days = (hourly_fired[-1].at - hourly_fired[0].at) / timedelta(days=1)
    assert len(hourly_fired) / days < 12, "more than 12 alerts a day on average"
    per_day: dict[str, int] = defaultdict(int)
    for d in hourly_fired:
        per_day[d.at.strftime("%Y-%m-%d")] += 1
    assert max(per_day.values()) <= 20


def test_cli_prints_every_alert_with_reason(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["alerts", "replay", "BTC", "--bars", str(BENCH / "btcusdt-1m-2026-03-04_05"
                 ".bars.csv"), "--sensitivity", "aggressive", "--json", "-"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["schema"] == "liqradar.alerts/1"
    for row in doc["alerts"]:
        assert row["time"].endswith("Z") and row["kind"] and row["reason"].startswith("fired")


def test_cli_rejects_bad_sensitivity(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["alerts", "replay", "BTC", "--bars", str(BARS_1H), "--sensitivity", "loud"]) == 2
    assert "sensitivity" in capsys.readouterr().err
