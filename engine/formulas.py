"""Exact isolated-margin liquidation prices for Binance USD-M and Bybit linear perpetuals."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from engine.types import FloatArray, Side, Venue


@dataclass(frozen=True, slots=True)
class Tier:
    """One maintenance-margin tier: positions with notional up to `cap` use `mmr` and `deduction`.

    `deduction` is Binance's maintenance amount ("cum") or Bybit's mmDeduction, in quote currency.
    """

    cap: float
    mmr: float
    deduction: float


def tiers_from_caps(caps_and_mmrs: Sequence[tuple[float, float]]) -> tuple[Tier, ...]:
    """Build tiers, deriving each deduction as floor·(MMR_n − MMR_n−1) + deduction_n−1."""
    tiers: list[Tier] = []
    floor = 0.0
    prev_mmr = 0.0
    deduction = 0.0
    for cap, mmr in caps_and_mmrs:
        deduction = floor * (mmr - prev_mmr) + deduction
        tiers.append(Tier(cap=cap, mmr=mmr, deduction=deduction))
        floor, prev_mmr = cap, mmr
    return tuple(tiers)


# Historical BTCUSDT brackets (offline defaults; live tiers change). The Binance FAQ's
# "250,000·(1% − 0.5%) + 50 = 1,300" is the third row's maintenance amount.
BINANCE_BTC_TIERS = tiers_from_caps([
    (50_000, 0.004), (250_000, 0.005), (1_000_000, 0.01), (10_000_000, 0.025),
    (20_000_000, 0.05), (50_000_000, 0.10), (100_000_000, 0.125), (200_000_000, 0.15),
    (300_000_000, 0.25), (500_000_000, 0.50),
])
# Bybit BTCUSDT risk-limit shape: 0.5% minimum MMR, stepping up with the position value.
BYBIT_BTC_TIERS = tiers_from_caps([
    (2_000_000, 0.005), (10_000_000, 0.01), (20_000_000, 0.015), (40_000_000, 0.02),
    (80_000_000, 0.025), (160_000_000, 0.03), (300_000_000, 0.05),
])
# Alt-coin shape (both venues start higher): used when a symbol has no table of its own.
GENERIC_ALT_TIERS = tiers_from_caps([
    (5_000, 0.01), (25_000, 0.015), (100_000, 0.02), (250_000, 0.05),
    (1_000_000, 0.10), (5_000_000, 0.125), (10_000_000, 0.25),
])


def tier_for(tiers: Sequence[Tier], notional: float) -> Tier:
    """The tier whose cap is the first at or above `notional` (the last tier beyond)."""
    for tier in tiers:
        if notional <= tier.cap:
            return tier
    return tiers[-1]


def binance_liquidation_price(
    side: Side, entry: float, leverage: float, quantity: float, tiers: Sequence[Tier]
) -> float:
    """Binance isolated one-way liquidation price with wallet balance = notional / leverage.

    LP = (WB + cum − s·Q·EP) / (Q·MMR − s·Q), s = +1 long, −1 short; the bracket is the one
    the notional at the liquidation price falls into (recomputed once when it changes).
    """
    if entry <= 0 or leverage <= 0 or quantity <= 0:
        raise ValueError("entry, leverage and quantity must be positive")
    s = 1.0 if side is Side.LONG else -1.0
    wallet = quantity * entry / leverage
    tier = tier_for(tiers, quantity * entry)
    price = _binance_lp(s, entry, quantity, wallet, tier)
    for _ in range(len(tiers)):
        at_liq = tier_for(tiers, quantity * max(price, 0.0))
        if at_liq == tier:
            break
        tier = at_liq
        price = _binance_lp(s, entry, quantity, wallet, tier)
    return max(price, 0.0)


def _binance_lp(s: float, entry: float, q: float, wallet: float, tier: Tier) -> float:
    return (wallet + tier.deduction - s * q * entry) / (q * tier.mmr - s * q)


def bybit_liquidation_price(
    side: Side, entry: float, leverage: float, quantity: float, tiers: Sequence[Tier]
) -> float:
    """Bybit isolated liquidation price: EP ∓ (IM − MM)/Q.

    IM = Q·EP/L and MM = Q·EP·MMR − mmDeduction, with the tier of the position's notional.
    """
    if entry <= 0 or leverage <= 0 or quantity <= 0:
        raise ValueError("entry, leverage and quantity must be positive")
    tier = tier_for(tiers, quantity * entry)
    initial = quantity * entry / leverage
    maintenance = quantity * entry * tier.mmr - tier.deduction
    offset = (initial - maintenance) / quantity
    price = entry - offset if side is Side.LONG else entry + offset
    return max(price, 0.0)


def liquidation_factors(
    venue: Venue,
    side: Side,
    leverages: npt.ArrayLike,
    notional: float,
    tiers: Sequence[Tier],
) -> FloatArray:
    """Liquidation price as a multiple of entry for each leverage, at a representative notional.

    Both venues' formulas are homogeneous in price once the tier is fixed, so the engine
    multiplies entries by these factors instead of calling the scalar formula per position.
    """
    lev = np.asarray(leverages, dtype=np.float64)
    reference = 1.0
    quantity = notional / reference
    formula = binance_liquidation_price if venue is Venue.BINANCE else bybit_liquidation_price
    return np.array([formula(side, reference, float(x), quantity, tiers) for x in lev])


def default_tiers(venue: Venue, base: str) -> tuple[Tier, ...]:
    """Offline tier table for a venue and base asset (BTC tables, else a generic alt shape)."""
    if base.upper() == "BTC":
        return BINANCE_BTC_TIERS if venue is Venue.BINANCE else BYBIT_BTC_TIERS
    if base.upper() == "ETH":
        return BINANCE_BTC_TIERS if venue is Venue.BINANCE else BYBIT_BTC_TIERS
    return GENERIC_ALT_TIERS
