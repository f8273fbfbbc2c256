"""Klines plus context points -> one engine `Bars`, without look-ahead.

A point stamped at time t is known from t on: it fills the first bar whose open time is >= t
and is carried forward after that. Bars before the first point stay NaN.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TypeVar

import numpy as np

from engine.types import Bars, FloatArray, IntArray
from market.points import (
    FundingPoint,
    Kline,
    OpenInterestAmount,
    OpenInterestPoint,
    RatioPoint,
    TakerVolumePoint,
)
from market.validate import Timed

P = TypeVar("P", bound=Timed)


def align(point_times: IntArray, values: FloatArray, bar_times: IntArray) -> FloatArray:
    """For each bar, the value of the latest point stamped at or before its open time."""
    if point_times.shape != values.shape:
        raise ValueError("point times and values differ in length")
    if point_times.size > 1 and np.any(np.diff(point_times) <= 0):
        raise ValueError("point times must strictly increase")
    source = np.searchsorted(point_times, bar_times, side="right") - 1
    out = np.full(bar_times.shape, np.nan)
    known = source >= 0
    out[known] = values[source[known]]
    return out


def match(point_times: IntArray, values: FloatArray, bar_times: IntArray) -> FloatArray:
    """For each bar, the value of the point stamped exactly at its open time, else NaN."""
    out = np.full(bar_times.shape, np.nan)
    where = np.searchsorted(point_times, bar_times)
    inside = where < point_times.size
    hit = np.zeros(bar_times.shape, dtype=np.bool_)
    hit[inside] = point_times[where[inside]] == bar_times[inside]
    out[hit] = values[where[hit]]
    return out


def assemble_bars(
    klines: Sequence[Kline],
    interval_ms: int,
    *,
    open_interest: Sequence[OpenInterestPoint] = (),
    open_interest_base: Sequence[OpenInterestAmount] = (),
    funding: Sequence[FundingPoint] = (),
    ratio: Sequence[RatioPoint] = (),
    taker_volume: Sequence[TakerVolumePoint] = (),
) -> Bars:
    """Validated `Bars` from klines (oldest first) and context points.

    `open_interest_base` (base units) is valued at each bar's open price; `taker_volume` fills
    only bars whose open time matches a point exactly and that lack the kline's own value.
    `long_short_ratio` holds longs per short. Raises ValueError on inconsistent input.
    """
    time = np.array([k.time_ms for k in klines], dtype=np.int64)
    opens = np.array([k.open for k in klines], dtype=np.float64)
    taker = np.array([k.taker_buy_volume for k in klines], dtype=np.float64)
    if taker_volume:
        matched = match(*_columns(taker_volume, lambda p: p.buy), time)
        taker = np.where(np.isnan(taker), matched, taker)
    oi = align(*_columns(open_interest, lambda p: p.usd), time)
    if open_interest_base:
        valued = align(*_columns(open_interest_base, lambda p: p.base), time) * opens
        oi = np.where(np.isnan(oi), valued, oi)
    return Bars.from_columns(
        time,
        opens,
        [k.high for k in klines],
        [k.low for k in klines],
        [k.close for k in klines],
        interval_ms=interval_ms,
        volume=[k.volume for k in klines],
        taker_buy_volume=taker,
        open_interest_usd=oi,
        funding_rate=align(*_columns(funding, lambda p: p.rate), time),
        long_short_ratio=align(*_columns(ratio, lambda p: p.long_short_ratio), time),
    )


def _columns(points: Sequence[P], value: Callable[[P], float]) -> tuple[IntArray, FloatArray]:
    """Time and value columns of points."""
    return (np.array([p.time_ms for p in points], dtype=np.int64),
            np.array([value(p) for p in points], dtype=np.float64))
