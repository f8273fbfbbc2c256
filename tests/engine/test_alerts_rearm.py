"""Spam rules in tables: re-arming on settled prices against a stable reference, same place,
one alert per side of price at a time."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from engine.alerts import (
    SUBSCRIBABLE_KINDS,
    AlertKind,
    AlertRule,
    AlertState,
    Decision,
    Reason,
    evaluate,
    evaluate_range,
)
from engine.types import Band, Side

T0 = datetime(2026, 1, 5, 12, 0, tzinfo=UTC)
LONG = Band(Side.LONG, 95.0, 97.0, 96.0, 5e6, 3.0, 0.8)
SHORT = Band(Side.SHORT, 103.0, 105.0, 104.0, 5e6, 3.0, 0.8)
DEEP = Band(Side.LONG, 88.0, 90.0, 89.0, 9e6, 10.0, 1.0)
BANDS = (LONG, SHORT, DEEP)
LOWER = Band(Side.LONG, 94.5, 96.0, 95.5, 5e6, 3.5, 0.8)  # LONG recomputed, edge 1 % lower
HIGHER = Band(Side.LONG, 95.5, 97.4, 96.4, 5e6, 2.6, 0.8)  # LONG recomputed, edge higher
A, E, C, S = AlertKind.APPROACH, AlertKind.ENTER, AlertKind.CROSS, AlertKind.SWEPT
R = Reason
Bar = tuple[Any, ...]  # (minute, low, high, close[, bands])


def rule(**kwargs: Any) -> AlertRule:
    """Balanced-like rule (1 % + 0.5 %, 6 h re-arm, 2 h min interval), every kind."""
    base: dict[str, Any] = {"subscription_id": 7, "chat_id": 3, "symbol": "BTC",
                            "approach_pct": 1.0, "hysteresis_pct": 0.5, "min_strength": 0.35,
                            "kinds": SUBSCRIBABLE_KINDS}
    base.update(kwargs)
    return AlertRule(**base)


def bars(steps: list[Bar], r: AlertRule) -> list[tuple[int, AlertKind, Reason]]:
    """(step, kind, reason) of every decision over bars of (minute, low, high, close[, bands])."""
    state = AlertState()
    out: list[tuple[int, AlertKind, Reason]] = []
    for i, step in enumerate(steps):
        minute, low, high, close = step[:4]
        band_set = step[4] if len(step) > 4 else BANDS
        state, ds = evaluate_range(state, band_set, low, high, T0 + timedelta(minutes=minute),
                                   r, close=close)
        out.extend((i, d.kind, d.reason) for d in ds)
    return out


REARM: list[tuple[str, list[Bar], list[tuple[int, AlertKind, Reason]]]] = [
    ("a wick away does not re-arm",
     [(0, 99.5, 100.5, 100.0), (60, 97.4, 98.4, 98.2), (120, 98.0, 99.8, 98.2),
      (240, 97.4, 98.4, 98.2)],
     [(1, A, R.FIRED_FIRST), (3, A, R.SUPPRESSED_NOT_REARMED)]),
    ("a bar closing away re-arms",
     [(0, 99.5, 100.5, 100.0), (60, 97.4, 98.4, 98.2), (120, 98.0, 99.8, 99.5),
      (240, 97.4, 98.4, 98.2)],
     [(1, A, R.FIRED_FIRST), (3, A, R.FIRED_REARMED)]),
    ("closing away re-arms, but not within min_interval of the alert",
     [(0, 99.5, 100.5, 100.0), (60, 97.4, 98.4, 98.2), (90, 98.0, 99.8, 99.5),
      (150, 97.4, 98.4, 98.2)],
     [(1, A, R.FIRED_FIRST), (3, A, R.SUPPRESSED_COOLDOWN)]),
    ("the edge drifting away from price does not re-arm",
     [(0, 99.5, 100.5, 100.0), (60, 97.4, 98.4, 98.2), (120, 97.9, 98.3, 98.1, (LOWER, SHORT)),
      (300, 97.3, 98.3, 98.2)],
     [(1, A, R.FIRED_FIRST), (3, A, R.SUPPRESSED_NOT_REARMED)]),
    ("settling away from the edge as it was when it fired re-arms, wherever the edge is now",
     [(0, 99.5, 100.5, 100.0), (60, 97.4, 98.4, 98.2), (120, 97.9, 98.7, 98.6, (LOWER, SHORT)),
      (300, 97.3, 98.3, 98.2)],
     [(1, A, R.FIRED_FIRST), (3, A, R.FIRED_REARMED)]),
    ("the reference is the nearest the edge came since price was last away",
     [(0, 99.5, 100.5, 100.0), (60, 97.4, 98.4, 98.2), (120, 97.9, 98.4, 98.2, (HIGHER, SHORT)),
      (180, 98.0, 98.8, 98.7), (300, 97.4, 98.4, 98.2)],
     [(1, A, R.FIRED_FIRST), (2, A, R.SUPPRESSED_NOT_REARMED),
      (4, A, R.SUPPRESSED_NOT_REARMED)]),  # 98.7 is away from 97.0, not from 97.4
    ("without a close nothing re-arms",
     [(0, 99.5, 100.5, 100.0), (60, 97.4, 98.4, 98.2), (120, 98.0, 99.8, None),
      (240, 97.4, 98.4, 98.2)],
     [(1, A, R.FIRED_FIRST), (3, A, R.SUPPRESSED_NOT_REARMED)]),
    ("a cross re-arms only after settling back away on the near side",
     [(0, 99.5, 100.5, 100.0), (60, 94.0, 97.8, 94.5), (180, 94.2, 97.5, 97.5),
      (300, 94.0, 97.6, 94.5), (400, 97.6, 99.0, 99.0), (520, 94.0, 99.0, 94.5)],
     [(1, C, R.FIRED_FIRST), (3, C, R.SUPPRESSED_NOT_REARMED), (5, C, R.FIRED_REARMED)]),
]


@pytest.mark.parametrize(("name", "steps", "expected"), REARM, ids=[s[0] for s in REARM])
def test_rearming(name: str, steps: list[Bar],
                  expected: list[tuple[int, AlertKind, Reason]]) -> None:
    assert bars(steps, rule()) == expected


def ticks(steps: list[tuple[Any, ...]], r: AlertRule
          ) -> tuple[AlertState, list[tuple[int, Decision]]]:
    """Feed (minute, price[, bands]) ticks from price 100; decisions tagged with the step."""
    state = AlertState()
    prev = 100.0
    out: list[tuple[int, Decision]] = []
    for i, step in enumerate(steps):
        band_set = step[2] if len(step) > 2 else BANDS
        state, ds = evaluate(state, band_set, step[1], prev, T0 + timedelta(minutes=step[0]), r)
        out.extend((i, d) for d in ds)
        prev = step[1]
    return state, out


def named(decisions: list[tuple[int, Decision]], names: dict[Band, str]
          ) -> list[tuple[int, str, AlertKind, Reason]]:
    """(step, band name, kind, reason) of each decision."""
    return [(i, names.get(d.band, "?"), d.kind, d.reason)
            for i, d in decisions]


SPLIT_OLD = Band(Side.LONG, 95.0, 96.0, 96.0, 5e6, 3.0, 0.8)  # keeps LONG's id (holds its peak)
SPLIT_NEW = Band(Side.LONG, 96.3, 97.0, 96.7, 3e6, 2.9, 0.8)  # a new id over LONG's place


def test_a_split_off_band_inherits_the_alert_state() -> None:
    split = (SPLIT_OLD, SPLIT_NEW, SHORT, DEEP)
    _, decisions = ticks([(1, 97.5), (2, 97.5, split), (3, 96.5, split)], rule())
    names = {LONG: "old", SPLIT_OLD: "old", SPLIT_NEW: "new"}
    assert named(decisions, names) == [
        (0, "old", A, R.FIRED_FIRST),
        (1, "new", A, R.SUPPRESSED_NOT_REARMED),  # not news: LONG's place was just told
        (2, "old", A, R.SUPPRESSED_NOT_REARMED),
        (2, "new", E, R.FIRED_ESCALATED),  # entering it is news
    ]


NEAR_A = Band(Side.LONG, 97.0, 97.2, 97.1, 5e6, 0.3, 0.8)
NEAR_B = Band(Side.LONG, 95.8, 96.3, 96.0, 9e6, 1.0, 0.8)
NEAR_S = Band(Side.SHORT, 97.8, 98.2, 98.0, 4e6, 0.3, 0.8)
SIDE = (NEAR_A, NEAR_B, SHORT)
SIDE_NAMES = {NEAR_A: "a", NEAR_B: "b", NEAR_S: "s", SHORT: "short"}


SIDES: list[tuple[str, list[tuple[Any, ...]], list[tuple[int, str, AlertKind, Reason]]]] = [
    ("one tick, one side: the biggest band leads, the other is covered",
     [(1, 97.25, SIDE)],
     [(0, "a", A, R.SUPPRESSED_COVERED), (0, "b", A, R.FIRED_FIRST)]),
    ("the other side of price is independent",
     [(0, 97.5, ()), (1, 97.5, (NEAR_A, NEAR_S))],
     [(1, "a", A, R.FIRED_FIRST), (1, "s", A, R.FIRED_FIRST)]),
    ("a band approached after another on its side is covered within min_interval",
     [(1, 97.8, SIDE), (60, 97.25, SIDE)],
     [(0, "a", A, R.FIRED_FIRST), (1, "b", A, R.SUPPRESSED_COVERED)]),
    ("... and fires after min_interval",
     [(1, 97.8, SIDE), (121, 97.25, SIDE)],
     [(0, "a", A, R.FIRED_FIRST), (1, "b", A, R.FIRED_FIRST)]),
    ("a more severe kind on the side is never covered",
     [(1, 97.25, SIDE), (10, 97.1, SIDE), (20, 96.1, SIDE)],
     [(0, "a", A, R.SUPPRESSED_COVERED), (0, "b", A, R.FIRED_FIRST),
      (1, "a", E, R.FIRED_ESCALATED),
      (2, "a", C, R.FIRED_ESCALATED), (2, "b", E, R.SUPPRESSED_COVERED)]),
]


@pytest.mark.parametrize(("name", "steps", "expected"), SIDES, ids=[s[0] for s in SIDES])
def test_one_alert_per_side_at_a_time(name: str, steps: list[tuple[Any, ...]],
                                      expected: list[tuple[int, str, AlertKind, Reason]]) -> None:
    _, decisions = ticks(steps, rule())
    assert named(decisions, SIDE_NAMES) == expected


def test_a_covered_band_counts_as_told_when_the_covering_alert_fired() -> None:
    state, decisions = ticks([(1, 97.8, SIDE), (60, 97.25, SIDE)], rule())
    covered = decisions[-1][1]
    assert covered.reason is R.SUPPRESSED_COVERED and not covered.fired
    assert covered.band_id is not None
    memory = state.memory.bands[covered.band_id]
    assert (memory.last_kind, memory.last_fired_at) == (A, T0 + timedelta(minutes=1))
    assert memory.fired_count == 0  # nothing was sent about it


def test_a_gone_band_still_covers_its_side_for_min_interval() -> None:
    _, decisions = ticks([(1, 94.0), (10, 93.9, (SHORT, DEEP)), (20, 89.5, (SHORT, DEEP)),
                          (200, 87.0, (SHORT, DEEP))], rule())
    assert [(i, d.kind, d.reason) for i, d in decisions] == [
        (0, C, R.FIRED_FIRST),
        (1, S, R.SUPPRESSED_COVERED),  # the sweep right after the cross
        (2, E, R.SUPPRESSED_COVERED),  # DEEP entered 19 min after LONG was crossed
        (3, C, R.FIRED_ESCALATED),  # later, DEEP's cross is news
    ]
