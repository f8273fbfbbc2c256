"""Band cutting: pockets are local structure standing above the profile's smooth background."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from engine.bands import BandParams, find_bands
from engine.types import PriceGrid, Side

PRICE = 50_000.0
GRID = PriceGrid(low=45_000.0, step=10.0, count=1000)


def _ramp(side: Side) -> np.ndarray:
    """A smooth ramp growing with distance from the price (no cluster anywhere)."""
    c = GRID.centers()
    d = (PRICE - c) / PRICE if side is Side.LONG else (c - PRICE) / PRICE
    return np.asarray(np.where(d > 0, 1e6 * d / 0.02 * np.exp(-d / 0.02), 0.0), np.float64)


def _bump(center: float, width: float, usd: float) -> np.ndarray:
    c = GRID.centers()
    g = np.exp(-0.5 * ((c - center) / width) ** 2)
    return np.asarray(usd * g / g.sum(), np.float64)


def test_background_is_the_plain_neighbourhood_so_the_nearest_dense_edge_stands_out() -> None:
    # The background averages the whole neighbourhood, including the empty bins on the other
    # side of the price, so on a bare ramp the pocket is the dense edge nearest the price; with
    # background_pct = 0 the peak of the ramp itself (2 % away) is the strongest pocket.
    longs = _ramp(Side.LONG)
    shorts = _ramp(Side.SHORT)
    excess = find_bands(GRID, longs, shorts, PRICE)
    plain = find_bands(GRID, longs, shorts, PRICE, BandParams(background_pct=0.0))
    for side in (Side.LONG, Side.SHORT):
        nearest = min((b for b in excess if b.side is side), key=lambda b: abs(b.distance_pct))
        assert abs(nearest.distance_pct) < 1.0
        top = max((b for b in plain if b.side is side), key=lambda b: b.usd)
        assert top.low <= PRICE * (0.98 if side is Side.LONG else 1.02) <= top.high


def test_bump_on_ramp_is_cut_tightly_around_the_bump() -> None:
    longs = _ramp(Side.LONG) + _bump(49_500.0, 40.0, 5e7)
    shorts = _ramp(Side.SHORT) + _bump(50_800.0, 40.0, 5e7)
    bands = find_bands(GRID, longs, shorts, PRICE)
    for side, center in ((Side.LONG, 49_500.0), (Side.SHORT, 50_800.0)):
        near = [b for b in bands if b.side is side and b.low <= center <= b.high]
        assert len(near) == 1
        assert near[0].high - near[0].low < 0.006 * PRICE  # tight, not the whole ramp
        assert near[0].usd > 0.5 * 5e7  # profile USD inside the band is reported
    assert all(b.high <= PRICE for b in bands if b.side is Side.LONG)
    assert all(b.low >= PRICE for b in bands if b.side is Side.SHORT)


def test_no_background_cuts_the_smoothed_profile_itself() -> None:
    longs = _bump(49_500.0, 40.0, 5e7)
    shorts = _bump(50_500.0, 40.0, 5e7)
    wide = find_bands(GRID, longs, shorts, PRICE, BandParams(background_pct=0.0, edge_ratio=0.5))
    tight = find_bands(GRID, longs, shorts, PRICE, BandParams(background_pct=0.0, edge_ratio=0.7))
    assert len(wide) == len(tight) == 2
    for w, t in zip(wide, tight, strict=True):
        assert w.low <= t.low and t.high <= w.high  # a higher edge ratio gives narrower bands
        assert w.strength == 1.0 or w.strength > 0.9


def test_empty_profile_gives_no_bands() -> None:
    zeros = np.zeros(GRID.count)
    assert find_bands(GRID, zeros, zeros, PRICE) == ()


# ---------------------------------------------------------------- invariants (hypothesis)


@st.composite
def _profiles(draw: st.DrawFn) -> tuple[np.ndarray, np.ndarray, float]:
    """Random profiles: a few bumps on a ramp, each side, and a price inside the grid."""
    seed = draw(st.integers(0, 2**31 - 1))
    rng = np.random.default_rng(seed)
    price = float(GRID.low + GRID.step * draw(st.integers(50, GRID.count - 50)) + rng.random())
    c = GRID.centers()
    sides = []
    for _ in range(2):
        values = np.abs(rng.normal(0, 1e4, GRID.count)) * draw(st.sampled_from([0.0, 1.0]))
        for _ in range(draw(st.integers(0, 6))):
            center = rng.uniform(GRID.low, GRID.low + GRID.step * GRID.count)
            width = rng.uniform(5, 300)
            values = values + rng.uniform(1e5, 1e8) * np.exp(-0.5 * ((c - center) / width) ** 2)
        sides.append(values)
    return sides[0], sides[1], price


@settings(max_examples=80, deadline=None)
@given(profile=_profiles(), background=st.sampled_from([0.0, 0.005]))
def test_band_sides_strengths_and_one_strongest(profile: tuple[np.ndarray, np.ndarray, float],
                                                background: float) -> None:
    longs, shorts, price = profile
    bands = find_bands(GRID, longs, shorts, price, BandParams(background_pct=background))
    for b in bands:
        assert 0.0 < b.strength <= 1.0
        assert b.low < b.high and b.low - GRID.step <= b.peak <= b.high + GRID.step
        assert b.usd > 0
        if b.side is Side.LONG:
            assert b.high <= price and b.distance_pct <= 0
        else:
            assert b.low >= price and b.distance_pct >= 0
    if bands:
        assert sum(b.strength == 1.0 for b in bands) >= 1
        assert max(b.strength for b in bands) == 1.0
        top = max(bands, key=lambda b: b.usd)
        assert top.strength == 1.0


@settings(max_examples=40, deadline=None)
@given(profile=_profiles())
def test_bands_of_a_side_do_not_overlap(profile: tuple[np.ndarray, np.ndarray, float]) -> None:
    longs, shorts, price = profile
    bands = find_bands(GRID, longs, shorts, price)
    for side in Side:
        mine = sorted((b for b in bands if b.side is side), key=lambda b: b.low)
        for a, b in itertools.pairwise(mine):
            assert a.high <= b.low + 1e-9


def _flanked(center: float, flank: float) -> np.ndarray:
    """A sharp pocket whose one side falls off slowly (flank > 0: upward, < 0: downward)."""
    c = GRID.centers()
    beyond = (c - center) / flank
    tail = np.where(beyond > 0, np.exp(-beyond), 0.0)
    return np.asarray(5e7 * (np.exp(-0.5 * ((c - center) / 30.0) ** 2) + 0.8 * tail), np.float64)


@pytest.mark.parametrize(("center", "flank"), [
    (49_400.0, -300.0), (49_400.0, 300.0), (50_600.0, 300.0), (50_600.0, -300.0),
])
def test_a_pockets_flank_is_not_cut_as_a_second_pocket_flush_against_it(
        center: float, flank: float) -> None:
    profile = _flanked(center, flank)
    side = Side.LONG if center < PRICE else Side.SHORT
    longs, shorts = (profile, 0 * profile) if side is Side.LONG else (0 * profile, profile)
    bands = [b for b in find_bands(GRID, longs, shorts, PRICE, BandParams(background_pct=0.0))
             if b.side is side]
    assert len(bands) == 1
    assert bands[0].low <= center <= bands[0].high


def test_a_real_pocket_beyond_a_flank_is_still_cut() -> None:
    longs = _flanked(49_400.0, -300.0) + _bump(48_700.0, 30.0, 4e9)
    bands = find_bands(GRID, longs, 0 * longs, PRICE, BandParams(background_pct=0.0))
    assert [round(b.peak, -2) for b in bands] == [49_400.0, 48_700.0]
    assert bands[0].low > bands[1].high  # separate, not flush
