"""Alignment of context points to bars: known from their stamp on, never earlier."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from market.assemble import align, assemble_bars, match
from market.points import (
    FundingPoint,
    Kline,
    OpenInterestAmount,
    OpenInterestPoint,
    RatioPoint,
    TakerVolumePoint,
)

M = 60_000
NAN = math.nan


def klines(count: int, *, taker: float = NAN) -> list[Kline]:
    """`count` one-minute klines opening at 0, 1, 2 ... minutes."""
    return [Kline(i * M, 100.0 + i, 102.0 + i, 99.0 + i, 101.0 + i, 10.0, taker)
            for i in range(count)]


@pytest.mark.parametrize(("stamps", "values", "expected"), [
    ([], [], [NAN, NAN, NAN, NAN]),
    ([0], [5.0], [5.0, 5.0, 5.0, 5.0]),  # stamped at a bar's open: known in that bar
    ([1], [5.0], [NAN, 5.0, 5.0, 5.0]),  # one ms later: only from the next bar
    ([30_000, M], [5.0, 6.0], [NAN, 6.0, 6.0, 6.0]),  # two in one bar: the later wins
    ([M + 1, 2 * M + 59_999], [5.0, 6.0], [NAN, NAN, 5.0, 6.0]),
    ([-M], [4.0], [4.0, 4.0, 4.0, 4.0]),  # before the first bar: carried in
    ([10 * M], [9.0], [NAN, NAN, NAN, NAN]),  # after the last bar: unused
])
def test_align_table(stamps: list[int], values: list[float], expected: list[float]) -> None:
    bar_times = np.arange(4, dtype=np.int64) * M
    got = align(np.array(stamps, dtype=np.int64), np.array(values, dtype=np.float64), bar_times)
    np.testing.assert_array_equal(got, expected)


def test_align_refuses_unsorted_points() -> None:
    with pytest.raises(ValueError, match="strictly increase"):
        align(np.array([2, 1], dtype=np.int64), np.array([1.0, 2.0]),
              np.array([0], dtype=np.int64))


@given(
    stamps=st.lists(st.integers(-10 * M, 30 * M), unique=True, max_size=40).map(sorted),
    bar_count=st.integers(0, 30),
    data=st.data(),
)
def test_align_never_looks_ahead(stamps: list[int], bar_count: int, data: st.DataObject) -> None:
    values = data.draw(st.lists(st.floats(0, 1e12), min_size=len(stamps), max_size=len(stamps)))
    bar_times = np.arange(bar_count, dtype=np.int64) * M
    got = align(np.array(stamps, dtype=np.int64), np.array(values, dtype=np.float64), bar_times)
    for bar, value in zip(bar_times, got, strict=True):
        known = [v for t, v in zip(stamps, values, strict=True) if t <= bar]
        if known:
            assert value == known[-1]
        else:
            assert math.isnan(value)


def test_match_only_exact_stamps() -> None:
    got = match(np.array([M, 3 * M + 1], dtype=np.int64), np.array([7.0, 8.0]),
                np.arange(4, dtype=np.int64) * M)
    np.testing.assert_array_equal(got, [NAN, 7.0, NAN, NAN])


def test_assemble_bars_columns() -> None:
    bars = assemble_bars(
        klines(4),
        M,
        open_interest=[OpenInterestPoint(M, 1e9)],
        funding=[FundingPoint(-8 * 60 * M, -0.0001), FundingPoint(2 * M, 0.0002)],
        ratio=[RatioPoint(0, 0.6)],
        taker_volume=[TakerVolumePoint(2 * M, 4.0)],
    )
    assert len(bars) == 4 and bars.interval_ms == M
    np.testing.assert_array_equal(bars.time, [0, M, 2 * M, 3 * M])
    np.testing.assert_array_equal(bars.open_interest_usd, [NAN, 1e9, 1e9, 1e9])
    np.testing.assert_array_equal(bars.funding_rate, [-0.0001, -0.0001, 0.0002, 0.0002])
    np.testing.assert_allclose(bars.long_short_ratio, [1.5] * 4)
    np.testing.assert_array_equal(bars.taker_buy_volume, [NAN, NAN, 4.0, NAN])
    assert np.isnan(bars.long_liquidations_usd).all()


def test_open_interest_in_base_units_is_valued_at_each_open() -> None:
    bars = assemble_bars(klines(3), M, open_interest_base=[OpenInterestAmount(M, 2.0)])
    np.testing.assert_array_equal(bars.open_interest_usd, [NAN, 2.0 * 101.0, 2.0 * 102.0])


def test_kline_taker_volume_wins_over_points() -> None:
    bars = assemble_bars(klines(2, taker=3.0), M, taker_volume=[TakerVolumePoint(0, 9.0)])
    np.testing.assert_array_equal(bars.taker_buy_volume, [3.0, 3.0])


def test_inconsistent_klines_are_refused() -> None:
    bad = [*klines(2), Kline(M, 1.0, 2.0, 0.5, 1.5, 1.0)]  # time goes back
    with pytest.raises(ValueError, match="strictly increase"):
        assemble_bars(bad, M)


def test_no_klines_no_bars() -> None:
    assert len(assemble_bars([], M)) == 0
