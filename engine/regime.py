"""The market regime read from the geometry of a liquidation map: a pure, table-tested classifier.

Each pocket pulls with its estimated USD divided by its distance from the price, so a pocket
counts for more when it is larger or nearer. Comparing the strongest pull below (longs) with the
strongest pull above (shorts) gives:

- between pockets: both sides pull about equally, so chop is likely until one side breaks;
- magnet up / magnet down: one side pulls at least `magnet_ratio` times harder (or is the only
  side with a pocket);
- just swept: a pocket was consumed in the last hours; this wins over the geometry because
  after a flush the forced orders are spent and the move is at risk of fading;
- no pockets: nothing on either side within the map.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum

from engine.types import Band, Side


class RegimeKind(StrEnum):
    """What the map geometry suggests for the next hours."""

    JUST_SWEPT = "just swept"
    MAGNET_UP = "magnet up"
    MAGNET_DOWN = "magnet down"
    BETWEEN_POCKETS = "between pockets"
    NO_POCKETS = "no pockets"


@dataclass(frozen=True, slots=True)
class RegimeParams:
    """Thresholds of the classifier."""

    magnet_ratio: float = 2.0
    """One side's pull over the other's from which the map counts as asymmetric."""
    min_distance_pct: float = 0.1
    """Distance floor in %, so a pocket touching the price does not pull infinitely hard."""
    swept_share: float = 0.25
    """A swept pocket counts when its USD is at least this share of the largest live pocket."""

    def __post_init__(self) -> None:
        if self.magnet_ratio < 1:
            raise ValueError("magnet_ratio must be at least 1")
        if self.min_distance_pct <= 0:
            raise ValueError("min_distance_pct must be positive")
        if self.swept_share < 0:
            raise ValueError("swept_share must not be negative")


DEFAULT_REGIME_PARAMS = RegimeParams()


@dataclass(frozen=True, slots=True)
class Regime:
    """The classification and the pockets it rests on."""

    kind: RegimeKind
    below: Band | None
    """The long pocket with the strongest pull (None when there is no long pocket)."""
    above: Band | None
    """The short pocket with the strongest pull (None when there is no short pocket)."""
    lean: Side | None
    """Side whose pocket pulls harder when the map is asymmetric (LONG = down, SHORT = up)."""
    pull_ratio: float | None
    """Stronger pull / weaker pull when both sides have a pocket."""
    swept: Band | None
    """The largest recently swept pocket that counts (see `RegimeParams.swept_share`)."""


def pull(band: Band, params: RegimeParams = DEFAULT_REGIME_PARAMS) -> float:
    """Estimated USD per % of distance: how hard a pocket attracts the price."""
    return band.usd / max(abs(band.distance_pct), params.min_distance_pct)


def key_pocket(
    bands: Sequence[Band], side: Side, params: RegimeParams = DEFAULT_REGIME_PARAMS
) -> Band | None:
    """The pocket of `side` with the strongest pull (ties go to the nearer one)."""
    candidates = [b for b in bands if b.side is side and b.usd > 0]
    if not candidates:
        return None
    return max(candidates, key=lambda b: (pull(b, params), -abs(b.distance_pct)))


def classify_regime(
    bands: Sequence[Band],
    swept: Sequence[Band] = (),
    params: RegimeParams = DEFAULT_REGIME_PARAMS,
) -> Regime:
    """Classify the map: just swept, magnet up/down, between pockets or no pockets."""
    below = key_pocket(bands, Side.LONG, params)
    above = key_pocket(bands, Side.SHORT, params)
    lean: Side | None = None
    ratio: float | None = None
    if below is not None and above is not None:
        pull_down, pull_up = pull(below, params), pull(above, params)
        ratio = max(pull_down, pull_up) / min(pull_down, pull_up)
        if ratio >= params.magnet_ratio:
            lean = Side.LONG if pull_down > pull_up else Side.SHORT
    elif below is not None:
        lean = Side.LONG
    elif above is not None:
        lean = Side.SHORT

    largest_live = max((b.usd for b in bands), default=0.0)
    counted = [s for s in swept if s.usd > 0 and s.usd >= params.swept_share * largest_live]
    swept_band = max(counted, key=lambda b: b.usd) if counted else None

    if swept_band is not None:
        kind = RegimeKind.JUST_SWEPT
    elif below is None and above is None:
        kind = RegimeKind.NO_POCKETS
    elif lean is Side.LONG:
        kind = RegimeKind.MAGNET_DOWN
    elif lean is Side.SHORT:
        kind = RegimeKind.MAGNET_UP
    else:
        kind = RegimeKind.BETWEEN_POCKETS
    return Regime(kind=kind, below=below, above=above, lean=lean, pull_ratio=ratio,
                  swept=swept_band)
