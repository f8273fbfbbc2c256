"""What a subscription asks for: alert kinds and one subscription's rule (`AlertRule`).

Pure data and validation; the rule is evaluated by `engine.alert_rules`.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, time, timedelta
from enum import StrEnum
from functools import lru_cache
from zoneinfo import ZoneInfo

from engine.sensitivity import parse_sensitivity


class AlertKind(StrEnum):
    """What an alert (or outbox message) is about; band kinds in increasing severity first."""

    APPROACH = "approach"
    ENTER = "enter"
    CROSS = "cross"
    SWEPT = "swept"
    QUIET_SUMMARY = "quiet_summary"
    DAILY_BRIEF = "daily_brief"


SUBSCRIBABLE_KINDS = frozenset({AlertKind.APPROACH, AlertKind.ENTER, AlertKind.CROSS,
                                AlertKind.SWEPT})
DEFAULT_KINDS = frozenset({AlertKind.APPROACH, AlertKind.CROSS, AlertKind.SWEPT})

GroupKey = tuple[str, float, float]


@lru_cache(maxsize=512)
def zoneinfo(name: str) -> ZoneInfo:
    """Cached time zone (raises ZoneInfoNotFoundError for unknown names)."""
    return ZoneInfo(name)


def require_aware(now: datetime) -> None:
    """Reject naive datetimes: every time here is UTC-aware."""
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware")


@dataclass(frozen=True, slots=True)
class AlertRule:
    """One subscription's alert settings; distances are % of price, strength is 0..1.

    `approach_pct` is how near a band's edge counts as approaching it; a band re-arms when a
    settled price is farther than `approach_pct + hysteresis_pct` from it, or `rearm_after`
    after its last alert. `min_interval` is the least time between two alerts about one band,
    and between two alerts about bands on one side of price unless the later is more severe.
    """

    subscription_id: int
    chat_id: int
    symbol: str
    approach_pct: float = 1.0
    min_strength: float = 0.35
    hysteresis_pct: float = 0.5
    kinds: frozenset[AlertKind] = DEFAULT_KINDS
    daily_cap: int = 20
    quiet_start: time | None = None
    quiet_end: time | None = None
    timezone: str = "UTC"
    rearm_after: timedelta = timedelta(hours=6)
    min_interval: timedelta = timedelta(hours=2)

    def __post_init__(self) -> None:
        if not self.kinds <= SUBSCRIBABLE_KINDS:
            raise ValueError(f"unsubscribable kinds: {sorted(self.kinds - SUBSCRIBABLE_KINDS)}")
        if self.approach_pct <= 0 or self.hysteresis_pct < 0:
            raise ValueError("approach_pct must be > 0 and hysteresis_pct >= 0")
        if self.daily_cap < 0:
            raise ValueError("daily_cap must be >= 0")
        zoneinfo(self.timezone)

    @classmethod
    def from_sensitivity(
        cls,
        subscription_id: int,
        chat_id: int,
        symbol: str,
        sensitivity: str = "balanced",
        *,
        min_strength: float | None = None,
        kinds: frozenset[AlertKind] = DEFAULT_KINDS,
        daily_cap: int = 20,
        quiet_start: time | None = None,
        quiet_end: time | None = None,
        timezone: str = "UTC",
    ) -> AlertRule:
        """Rule from a preset name or percentage; an explicit min_strength overrides the preset."""
        profile = parse_sensitivity(sensitivity)
        return cls(
            subscription_id=subscription_id, chat_id=chat_id, symbol=symbol,
            approach_pct=profile.approach_pct,
            min_strength=profile.min_strength if min_strength is None else min_strength,
            hysteresis_pct=profile.hysteresis_pct, kinds=kinds, daily_cap=daily_cap,
            quiet_start=quiet_start, quiet_end=quiet_end, timezone=timezone,
        )

    @property
    def group(self) -> GroupKey:
        """Rules in one group share band geometry and are evaluated together."""
        return (self.symbol, self.approach_pct, self.hysteresis_pct)
