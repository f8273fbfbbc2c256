"""Exchange liquidation formulas against published examples, and their invariants."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from engine.formulas import (
    BINANCE_BTC_TIERS,
    BYBIT_BTC_TIERS,
    Tier,
    binance_liquidation_price,
    bybit_liquidation_price,
    liquidation_factors,
    tier_for,
    tiers_from_caps,
)
from engine.types import Side, Venue

ONE_TIER_05 = (Tier(cap=float("inf"), mmr=0.005, deduction=0.0),)
ONE_TIER_04 = (Tier(cap=float("inf"), mmr=0.004, deduction=0.0),)


def test_bybit_doc_example_1_btc_at_20000_50x() -> None:
    # Bybit help centre: 1 BTC @ 20,000, 50x, MMR 0.5% -> long liquidation price 19,700.
    assert bybit_liquidation_price(Side.LONG, 20_000, 50, 1.0, ONE_TIER_05) == pytest.approx(
        19_700, abs=1e-9)
    assert bybit_liquidation_price(Side.SHORT, 20_000, 50, 1.0, ONE_TIER_05) == pytest.approx(
        20_300, abs=1e-9)


@pytest.mark.parametrize(
    ("side", "leverage", "expected"),
    [
        (Side.LONG, 10, 90_361.4),
        (Side.LONG, 100, 99_397.6),
        (Side.SHORT, 10, 109_561.8),
        (Side.SHORT, 100, 100_597.6),
    ],
)
def test_binance_exact_at_100000_mmr_04(side: Side, leverage: float, expected: float) -> None:
    # anchors.md §3 "Error of the common shortcuts": EP 100,000, MMR 0.4 %, tier 1.
    quantity = 0.1  # 10,000 USDT notional: first bracket of the BTCUSDT table
    for tiers in (ONE_TIER_04, BINANCE_BTC_TIERS):
        price = binance_liquidation_price(side, 100_000, leverage, quantity, tiers)
        assert round(price, 1) == expected


@pytest.mark.parametrize(
    ("side", "leverage", "shortcut"),
    [
        (Side.LONG, 10, 90_400.0),  # EP·(1 − 1/L + MMR): Bybit's form, ~0.04 % off Binance
        (Side.LONG, 100, 99_400.0),
    ],
)
def test_shortcut_is_bybit_formula_and_near_binance(side: Side, leverage: float,
                                                    shortcut: float) -> None:
    bybit = bybit_liquidation_price(side, 100_000, leverage, 0.1, ONE_TIER_04)
    binance = binance_liquidation_price(side, 100_000, leverage, 0.1, ONE_TIER_04)
    assert bybit == pytest.approx(shortcut, abs=1e-6)
    assert abs(binance - bybit) / binance < 5e-4


# anchors.md §3: historical BTCUSDT brackets, cum_n = floor_n·(MMR_n − MMR_n−1) + cum_n−1.
BINANCE_TABLE = [
    (50_000, 0.004, 0), (250_000, 0.005, 50), (1_000_000, 0.01, 1_300),
    (10_000_000, 0.025, 16_300), (20_000_000, 0.05, 266_300), (50_000_000, 0.10, 1_266_300),
    (100_000_000, 0.125, 2_516_300), (200_000_000, 0.15, 5_016_300),
    (300_000_000, 0.25, 25_016_300), (500_000_000, 0.50, 100_016_300),
]


@pytest.mark.parametrize(("index", "row"), list(enumerate(BINANCE_TABLE)))
def test_binance_maintenance_amounts(index: int, row: tuple[float, float, float]) -> None:
    cap, mmr, cum = row
    tier = BINANCE_BTC_TIERS[index]
    assert (tier.cap, tier.mmr) == (cap, mmr)
    assert tier.deduction == pytest.approx(cum, abs=1e-6)


def test_faq_maintenance_amount_1300() -> None:
    # Binance FAQ: 250,000·(1% − 0.5%) + 50 = 1,300.
    tiers = tiers_from_caps([(50_000, 0.004), (250_000, 0.005), (1_000_000, 0.01)])
    assert tiers[1].deduction == pytest.approx(50)
    assert tiers[2].deduction == pytest.approx(250_000 * (0.01 - 0.005) + 50)
    assert tiers[2].deduction == pytest.approx(1_300)


@pytest.mark.parametrize(
    ("notional", "cap"),
    [(0.0, 50_000), (50_000.0, 50_000), (50_000.01, 250_000), (250_000.0, 250_000),
     (999_999.0, 1_000_000), (1e12, 500_000_000)],
)
def test_tier_boundaries_are_inclusive_caps(notional: float, cap: float) -> None:
    assert tier_for(BINANCE_BTC_TIERS, notional).cap == cap


def test_maintenance_is_continuous_at_tier_boundaries() -> None:
    # The deduction makes maintenance margin Q·EP·MMR − cum continuous across a cap.
    for lower, upper in itertools.pairwise(BINANCE_BTC_TIERS):
        at_cap = lower.cap
        assert at_cap * lower.mmr - lower.deduction == pytest.approx(
            at_cap * upper.mmr - upper.deduction, rel=1e-12)


def test_binance_bracket_is_the_one_at_the_liquidation_price() -> None:
    # 3 BTC at 100,000 opens in the third bracket (300k notional) but liquidates near 50k,
    # where the notional (~150k) is in the second bracket: the price uses the second.
    price = binance_liquidation_price(Side.LONG, 100_000, 2, 3.0, BINANCE_BTC_TIERS)
    tier = tier_for(BINANCE_BTC_TIERS, 3.0 * price)
    assert tier.cap == 250_000 and tier_for(BINANCE_BTC_TIERS, 300_000).cap == 1_000_000
    expected = (3.0 * 100_000 / 2 + tier.deduction - 3.0 * 100_000) / (3.0 * tier.mmr - 3.0)
    assert price == pytest.approx(expected, rel=1e-12)


leverages = st.floats(min_value=1.5, max_value=100.0)


@given(entry=st.floats(min_value=0.01, max_value=1e6), a=leverages, b=leverages)
def test_liquidation_moves_toward_entry_as_leverage_rises(entry: float, a: float,
                                                          b: float) -> None:
    low, high = sorted((a, b))
    for formula in (binance_liquidation_price, bybit_liquidation_price):
        long_low = formula(Side.LONG, entry, low, 1.0, ONE_TIER_04)
        long_high = formula(Side.LONG, entry, high, 1.0, ONE_TIER_04)
        short_low = formula(Side.SHORT, entry, low, 1.0, ONE_TIER_04)
        short_high = formula(Side.SHORT, entry, high, 1.0, ONE_TIER_04)
        assert long_low <= long_high * (1 + 1e-12) and long_high < entry
        assert short_low >= short_high * (1 - 1e-12) and short_high > entry


@given(entry=st.floats(min_value=1.0, max_value=1e6), leverage=leverages)
def test_factors_are_the_formula_divided_by_entry(entry: float, leverage: float) -> None:
    notional = 25_000.0
    for venue, formula in ((Venue.BINANCE, binance_liquidation_price),
                           (Venue.BYBIT, bybit_liquidation_price)):
        tiers = BINANCE_BTC_TIERS if venue is Venue.BINANCE else BYBIT_BTC_TIERS
        for side in Side:
            factor = liquidation_factors(venue, side, [leverage], notional, tiers)[0]
            direct = formula(side, entry, leverage, notional / entry, tiers)
            assert factor * entry == pytest.approx(direct, rel=1e-9)


def test_factors_are_vectorised_in_leverage_order() -> None:
    lev = np.array([2.0, 5.0, 10.0, 50.0, 100.0])
    f = liquidation_factors(Venue.BINANCE, Side.LONG, lev, 10_000.0, BINANCE_BTC_TIERS)
    assert f.shape == lev.shape and np.all(np.diff(f) > 0) and np.all(f < 1)


@pytest.mark.parametrize("formula", [binance_liquidation_price, bybit_liquidation_price])
def test_invalid_inputs_are_rejected(formula: object) -> None:
    assert callable(formula)
    with pytest.raises(ValueError):
        formula(Side.LONG, 0.0, 10, 1.0, ONE_TIER_04)
    with pytest.raises(ValueError):
        formula(Side.SHORT, 100.0, 10, -1.0, ONE_TIER_04)
