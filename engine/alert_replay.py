"""Replay history through the alert rules: the pure core of `liqradar alerts replay`."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime

from engine.alerts import AlertRule, AlertState, Decision, evaluate_range
from engine.types import Band

Step = tuple[datetime, float, float, float, Sequence[Band]]


def replay(steps: Iterable[Step], rule: AlertRule, *,
           state: AlertState | None = None) -> list[Decision]:
    """Every decision (fired or not) for steps of (time, bar low, bar high, bar close, bands at
    that time).

    Pass the same number three times for a single price. The close is the settled price that
    may re-arm a band (a wick never does). Bands are taken as given, so the caller decides how
    they were computed (without look-ahead).
    """
    current = AlertState() if state is None else state
    out: list[Decision] = []
    for now, a, b, close, bands in steps:
        current, decisions = evaluate_range(current, bands, min(a, b), max(a, b), now, rule,
                                            close=close)
        out.extend(decisions)
    return out
