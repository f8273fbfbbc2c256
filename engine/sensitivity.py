"""Sensitivity profiles: how close is "near" a band and which bands are strong enough to alert."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

MAX_APPROACH_PCT = 20.0


class Sensitivity(StrEnum):
    """Named presets a user can pick instead of a percentage."""

    AGGRESSIVE = "aggressive"
    BALANCED = "balanced"
    CONSERVATIVE = "conservative"


@dataclass(frozen=True, slots=True)
class SensitivityProfile:
    """Approach distance and re-arm margin (% of price) and the weakest band that alerts.

    A band that alerted re-arms once a settled price (a bar's close) is farther than
    `approach_pct + hysteresis_pct` from the nearest its edge came since price was last that
    far (see `engine.alert_watch`).
    """

    approach_pct: float
    min_strength: float
    hysteresis_pct: float


PROFILES: dict[Sensitivity, SensitivityProfile] = {
    Sensitivity.AGGRESSIVE: SensitivityProfile(approach_pct=2.0, min_strength=0.15,
                                               hysteresis_pct=1.0),
    Sensitivity.BALANCED: SensitivityProfile(approach_pct=1.0, min_strength=0.35,
                                             hysteresis_pct=0.5),
    Sensitivity.CONSERVATIVE: SensitivityProfile(approach_pct=0.5, min_strength=0.6,
                                                 hysteresis_pct=0.3),
}


def parse_sensitivity(text: str) -> SensitivityProfile:
    """Profile for `balanced`/`aggressive`/`conservative` or a distance such as `1.5%`.

    A percentage overrides the approach distance of the balanced profile; the re-arm margin
    scales with it (half the distance, at least 0.1 %). Raises ValueError naming the choices.
    """
    key = text.strip().lower()
    for name, profile in PROFILES.items():
        if name.value == key:
            return profile
    try:
        pct = float(key.removesuffix("%"))
    except ValueError:
        choices = ", ".join(s.value for s in Sensitivity)
        raise ValueError(
            f"unknown sensitivity {text!r}: use one of {choices} or a percentage like 1.5%"
        ) from None
    if not 0.0 < pct <= MAX_APPROACH_PCT:
        raise ValueError(f"sensitivity {text!r} must be a percentage in (0, {MAX_APPROACH_PCT:g}]")
    base = PROFILES[Sensitivity.BALANCED]
    return SensitivityProfile(approach_pct=pct, min_strength=base.min_strength,
                              hysteresis_pct=max(pct / 2.0, 0.1))
