"""Data for the engine tests: the real excerpts in tests/engine/data and synthetic bars."""

from __future__ import annotations

from functools import cache
from pathlib import Path

import numpy as np

from engine.types import MINUTE_MS, Bars, LiquidationPrints
from market import load_bench_bars, load_bench_liquidations

DATA = Path(__file__).resolve().parent / "data"
BARS_1M = DATA / "btcusdt-1m-2026-03-04_05.bars.csv"
BARS_1H = DATA / "btcusdt-1h-2025-12-04_2025-12-29.bars.csv"
PRINTS_OKX = DATA / "btc-okx-liquidations-2026-03-04_05.csv"


@cache
def bars_1m() -> Bars:
    """982 real 1-minute BTCUSDT bars; open interest only on the hour."""
    return load_bench_bars(BARS_1M)


@cache
def bars_1h() -> Bars:
    """600 real hourly BTCUSDT bars; open interest and realized liquidations every hour."""
    return load_bench_bars(BARS_1H)


@cache
def prints_okx() -> LiquidationPrints:
    """1,611 real OKX BTC liquidation prints in the window of `bars_1m`."""
    return LiquidationPrints.from_events(load_bench_liquidations(PRINTS_OKX))


def synthetic_bars(
    n: int = 43_200,
    *,
    seed: int = 1,
    oi_every: int = 5,
    price: float = 70_000.0,
    sd: float = 0.00062,
    oi_start: float = 7.3e9,
    oi_sd: float = 0.0022,
    interval_ms: int = MINUTE_MS,
    liquidations: bool = False,
) -> Bars:
    """The timing protocol's series (anchors-measured §3): 1-minute log-returns with sd 0.062 %,
    wicks |N|·0.6·sd, open interest from $7.3 B updated every `oi_every` bars (sd 0.22 % per
    update) and forward-filled; lognormal volume with a taker-buy share in [0.3, 0.7]."""
    rng = np.random.default_rng(seed)
    r = rng.normal(0.0, sd, n)
    close = price * np.exp(np.cumsum(r))
    open_ = np.concatenate([[price], close[:-1]])
    high = np.maximum(open_, close) * (1 + np.abs(rng.normal(0.0, 1.0, n)) * 0.6 * sd)
    low = np.minimum(open_, close) * (1 - np.abs(rng.normal(0.0, 1.0, n)) * 0.6 * sd)
    stamps = np.arange(0, n, oi_every)
    values = oi_start * np.exp(np.cumsum(rng.normal(0.0, oi_sd, stamps.size)))
    oi = np.repeat(values, np.diff(np.concatenate([stamps, [n]])))
    volume = rng.lognormal(3.0, 1.0, n)
    taker = volume * rng.uniform(0.3, 0.7, n)
    extra = {}
    if liquidations:
        extra = {"long_liquidations_usd": rng.lognormal(10.0, 2.0, n),
                 "short_liquidations_usd": rng.lognormal(10.0, 2.0, n)}
    t = 1_700_000_000_000 + np.arange(n, dtype=np.int64) * interval_ms
    return Bars.from_columns(t, open_, high, low, close, interval_ms=interval_ms, volume=volume,
                             taker_buy_volume=taker, open_interest_usd=oi, **extra)
