"""Synthetic bars shared by engine tests."""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np

from engine.types import HOUR_MS, Bars

START_MS = int(datetime(2026, 2, 1, tzinfo=UTC).timestamp() * 1000)


def trend_dump_bounce_bars(seed: int, days: int = 40) -> Bars:
    """Hourly bars: a random walk with a 3.5 % dump 30 h and a 2 % bounce 10 h before the end."""
    rng = np.random.default_rng(seed)
    n = 24 * days
    steps = rng.normal(0, 0.004, n)
    steps[n - 30] = -0.035
    steps[n - 10] = 0.02
    close = 80_000 * np.exp(np.cumsum(steps))
    open_ = np.concatenate([[80_000], close[:-1]])
    high = np.maximum(open_, close) * (1 + np.abs(rng.normal(0, 0.002, n)))
    low = np.minimum(open_, close) * (1 - np.abs(rng.normal(0, 0.002, n)))
    oi = 8e9 * np.exp(np.cumsum(rng.normal(0, 0.004, n)))
    t = START_MS + np.arange(n) * HOUR_MS
    return Bars.from_columns(t, open_, high, low, close, interval_ms=HOUR_MS,
                             open_interest_usd=oi, funding_rate=np.full(n, 0.0001))
