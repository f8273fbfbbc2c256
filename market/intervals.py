"""Bar intervals and the statistic periods each venue offers for them."""

from __future__ import annotations

from collections.abc import Iterable
from enum import StrEnum

from engine.types import DAY_MS, HOUR_MS, MINUTE_MS


class Interval(StrEnum):
    """Bar lengths liqradar can fetch from every venue."""

    M1 = "1m"
    M3 = "3m"
    M5 = "5m"
    M15 = "15m"
    M30 = "30m"
    H1 = "1h"
    H2 = "2h"
    H4 = "4h"
    H6 = "6h"
    H12 = "12h"
    D1 = "1d"

    @property
    def ms(self) -> int:
        """Length in milliseconds."""
        number, unit = int(self.value[:-1]), self.value[-1]
        return number * {"m": MINUTE_MS, "h": HOUR_MS, "d": DAY_MS}[unit]

    @classmethod
    def parse(cls, text: str | Interval) -> Interval:
        """Parse `1m`, `1H`, `4h` ...; raise ValueError naming the choices."""
        key = text.strip().lower()
        for interval in cls:
            if interval.value == key:
                return interval
        raise ValueError(f"unknown interval {text!r}: use one of {', '.join(cls)}")


def pick_period(supported: Iterable[Interval], interval: Interval, span_ms: int,
                max_points: int) -> Interval:
    """Finest supported statistic period no finer than needed: at most `interval` (or the
    coarsest offered below it) unless `span_ms` would need more than `max_points` points."""
    periods = sorted(supported, key=lambda p: p.ms)
    if not periods:
        raise ValueError("no supported periods")
    fitting = [p for p in periods if p.ms <= interval.ms]
    start = periods.index(fitting[-1]) if fitting else 0
    for period in periods[start:]:
        if span_ms // period.ms <= max_points:
            return period
    return periods[-1]
