"""Geometry of one price against one band: the `Zone` it is in and how far it is.

Longs are below price, shorts above; the *near edge* is the one price meets first (a long
band's high, a short band's low) and distances are % of price to it.
"""

from __future__ import annotations

from enum import IntEnum

from engine.types import Band, Side


class Zone(IntEnum):
    """Where price is relative to one band, from harmless to traded through."""

    AWAY = 0  # farther than approach distance + hysteresis
    FAR = 1
    NEAR = 2  # within the approach distance of the near edge
    INSIDE = 3
    BEYOND = 4  # past the far edge


def zone_of(band: Band, price: float, approach_pct: float, hysteresis_pct: float) -> Zone:
    """Zone of one price against a band."""
    return classify(*core_zone(band, price), approach_pct, hysteresis_pct)


def core_zone(band: Band, price: float) -> tuple[Zone, float]:
    """Distance-independent part of the zone: BEYOND, INSIDE or FAR with a distance in %."""
    if band.side is Side.LONG:
        if price < band.low:
            return Zone.BEYOND, 0.0
        if price <= band.high:
            return Zone.INSIDE, 0.0
        return Zone.FAR, (price - band.high) / price * 100.0
    if price > band.high:
        return Zone.BEYOND, 0.0
    if price >= band.low:
        return Zone.INSIDE, 0.0
    return Zone.FAR, (band.low - price) / price * 100.0


def classify(core: Zone, dist: float, approach_pct: float, hysteresis_pct: float) -> Zone:
    """Refine a FAR core into NEAR, FAR or AWAY for one approach distance."""
    if core is not Zone.FAR:
        return core
    if dist <= approach_pct:
        return Zone.NEAR
    if dist > approach_pct + hysteresis_pct:
        return Zone.AWAY
    return Zone.FAR


def reached_beyond(band: Band, low: float, high: float) -> bool:
    """True when the traded range [low, high] went past the band's far edge."""
    return low < band.low if band.side is Side.LONG else high > band.high
