"""A map skips bars beyond the model's memory horizon without changing what it shows."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest

from engine.mapping import build_map
from engine.params import DEFAULT_PARAMS
from engine.types import Venue, Window
from market.files import load_bench_bars

BARS_1H = Path(__file__).resolve().parents[2] / "data" / "bench" / \
    "btcusdt-1h-2025-12-04_2026-06-02.bars.csv"


@pytest.mark.parametrize("window", [Window.H24, Window.D7])
def test_memory_horizon_changes_nothing_visible(window: Window) -> None:
    bars = {Venue.BINANCE: load_bench_bars(BARS_1H).slice(0, 2500)}
    full = build_map("BTC", bars, window, skip_forgotten=False)
    short = build_map("BTC", bars, window)
    for a, b in ((full.profile.long_usd, short.profile.long_usd),
                 (full.profile.short_usd, short.profile.short_usd),
                 (full.heatmap.long_usd, short.heatmap.long_usd),
                 (full.heatmap.short_usd, short.heatmap.short_usd)):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5 * float(a.max()))
    assert [(x.side, x.low, x.high) for x in full.bands] == \
        [(x.side, x.low, x.high) for x in short.bands]


def test_horizon_follows_turnover() -> None:
    assert DEFAULT_PARAMS.memory_horizon_hours() == pytest.approx(np.log(1e6) / 0.1)
    assert dataclasses.replace(DEFAULT_PARAMS, turnover_per_hour=0.0).memory_horizon_hours() \
        is None
