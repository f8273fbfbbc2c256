"""Bands as they stood after every bar of a history, without look-ahead (for replays)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from engine.bands import DEFAULT_BAND_PARAMS, BandParams, find_bands
from engine.mapping import DISPLAY_SPAN, base_asset, factors_for, profile_grid
from engine.model import simulate
from engine.params import DEFAULT_PARAMS, ModelParams, nice_step
from engine.types import Band, Bars, Venue, Window


@dataclass(frozen=True, slots=True)
class BandSnapshot:
    """Bands known at `time_ms` (after the bar closing then) and the price at that time."""

    time_ms: int
    price: float
    bands: tuple[Band, ...]


def bands_over_time(
    symbol: str,
    bars: Bars,
    *,
    venue: Venue = Venue.BINANCE,
    window: Window = Window.H24,
    params: ModelParams = DEFAULT_PARAMS,
    band_params: BandParams = DEFAULT_BAND_PARAMS,
    start: int = 1,
    chunk: int = 256,
) -> Iterator[BandSnapshot]:
    """Bands after each bar from index `start` on; each snapshot uses only bars up to that bar.

    The model runs once per chunk of snapshots (earlier history in coarse blocks), so a
    six-month hourly replay costs a few dozen simulations rather than one per bar.
    """
    long_f, short_f = factors_for(venue, base_asset(symbol), params)
    step = nice_step(float(bars.close[0]), params.bin_bps)  # no look-ahead, even in the grid
    closes = bars.time + bars.interval_ms
    span = DISPLAY_SPAN[window]
    lo = int(np.floor(bars.low.min() * (1 - 2 * span) / step))
    hi = int(np.ceil(bars.high.max() * (1 + 2 * span) / step))
    for first in range(start, len(bars), chunk):
        last = min(first + chunk, len(bars))
        history = np.linspace(closes[0], closes[first], 33)[1:-1] if first > 0 else np.zeros(0)
        ends = np.unique(np.concatenate([history.astype(np.int64),
                                         closes[first:last].astype(np.int64)]))
        sim = simulate(bars.slice(0, last), params, long_f, short_f, step, ends,
                       bin_range=(lo, hi))
        wanted = set(closes[first:last].tolist())
        for k, end in enumerate(sim.frame_ends.tolist()):
            if end not in wanted:
                continue
            i = int(np.searchsorted(closes, end))
            price = float(bars.close[i])
            grid, lu, su = profile_grid(sim, price, span, frame=k)
            yield BandSnapshot(int(end), price, find_bands(grid, lu, su, price, band_params))
