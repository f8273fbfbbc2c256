"""Properties of the alert rules over random price paths and band recomputations."""

from __future__ import annotations

from collections import Counter
from dataclasses import replace
from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo

from hypothesis import given, settings
from hypothesis import strategies as st

from engine.alerts import (
    SUBSCRIBABLE_KINDS,
    AlertKind,
    AlertRule,
    AlertState,
    Decision,
    build_book,
    evaluate,
    evaluate_book,
)
from engine.types import Band, Side

T0 = datetime(2026, 1, 5, 12, 0, tzinfo=UTC)


def _bands(shift: float) -> tuple[Band, ...]:
    """Two long and two short bands around 100, shifted by a recomputation jitter."""
    return (
        Band(Side.LONG, 95 + shift, 97 + shift, 96 + shift, 5e6, 3.0, 0.8),
        Band(Side.LONG, 88 + shift, 90 + shift, 89 + shift, 9e6, 10.0, 1.0),
        Band(Side.SHORT, 103 + shift, 105 + shift, 104 + shift, 5e6, 3.0, 0.5),
        Band(Side.SHORT, 110 + shift, 111 + shift, 110.5 + shift, 2e6, 10.0, 0.3),
    )


ticks = st.lists(
    st.tuples(st.floats(85.0, 115.0), st.integers(1, 240), st.sampled_from([0.0, 0.3, -0.4])),
    min_size=1, max_size=60,
)

RULES = [
    AlertRule(1, 1, "BTC", kinds=SUBSCRIBABLE_KINDS),
    AlertRule(2, 1, "BTC", approach_pct=2.0, hysteresis_pct=1.0, min_strength=0.1),
    AlertRule(3, 2, "BTC", kinds=frozenset({AlertKind.CROSS}), daily_cap=2,
              quiet_start=time(22), quiet_end=time(6), timezone="America/New_York"),
    AlertRule(4, 2, "BTC", approach_pct=0.5, hysteresis_pct=0.3, min_strength=0.6,
              rearm_after=timedelta(minutes=30)),
]


def _path(steps: list[tuple[float, int, float]]) -> list[tuple[datetime, float, float,
                                                                tuple[Band, ...]]]:
    """(time, price, previous price, bands) per tick."""
    out = []
    now, prev = T0, 100.0
    for price, minutes, shift in steps:
        now += timedelta(minutes=minutes)
        out.append((now, price, prev, _bands(shift)))
        prev = price
    return out


@settings(max_examples=150, deadline=None)
@given(ticks)
def test_fired_keys_are_unique_and_a_band_crosses_once_per_epoch(
        steps: list[tuple[float, int, float]]) -> None:
    for r in RULES:
        state = AlertState()
        fired: list[Decision] = []
        for now, price, prev, bands in _path(steps):
            state, decisions = evaluate(state, bands, price, prev, now, r)
            fired.extend(d for d in decisions if d.fired)
            assert all(not d.fired or d.kind in r.kinds or d.kind is AlertKind.QUIET_SUMMARY
                       for d in decisions)
        keys = Counter(d.key for d in fired)
        assert all(n == 1 for n in keys.values()), keys
        per_day = Counter(d.at.astimezone(ZoneInfo(r.timezone)).date() for d in fired)
        assert all(n <= r.daily_cap + 1 for n in per_day.values())


# Cohorts of several members: copies of rules 1 and 3 (quiet hours) under other ids.
BOOK_RULES = [*RULES, replace(RULES[0], subscription_id=5, chat_id=9),
              replace(RULES[2], subscription_id=6, chat_id=8),
              replace(RULES[2], subscription_id=7, chat_id=7)]


@settings(max_examples=60, deadline=None)
@given(ticks, st.lists(st.booleans(), min_size=60, max_size=60))
def test_book_decides_like_one_subscription_at_a_time(
        steps: list[tuple[float, int, float]], settled: list[bool]) -> None:
    book = build_book(BOOK_RULES, {}, T0)
    assert sum(len(c) for c in book.cohorts["BTC"].values()) == len(RULES)
    states = {r.subscription_id: AlertState() for r in BOOK_RULES}
    for (now, price, prev, bands), settles in zip(_path(steps), settled, strict=False):
        book, together = evaluate_book(book, "BTC", bands, price, prev, now, settled=settles)
        alone: list[Decision] = []
        for r in BOOK_RULES:
            states[r.subscription_id], ds = evaluate(states[r.subscription_id], bands, price,
                                                     prev, now, r, settled=settles)
            alone.extend(ds)
        assert sorted(map(_ident, together)) == sorted(map(_ident, alone))


def _ident(d: Decision) -> tuple[int, str, str]:
    """What must agree between the book and single evaluation."""
    return (d.subscription_id, d.key, d.reason.value)


_RANK = {AlertKind.APPROACH: 1, AlertKind.ENTER: 2, AlertKind.CROSS: 3, AlertKind.SWEPT: 3}


@settings(max_examples=150, deadline=None)
@given(ticks)
def test_min_interval_per_band_and_per_side(steps: list[tuple[float, int, float]]) -> None:
    """A band repeats a kind only `min_interval` apart, and within `min_interval` of an alert
    on one side of price the next alert on that side is more severe."""
    for r in RULES:
        state = AlertState()
        last_by_band: dict[tuple[str | None, AlertKind], datetime] = {}
        last_by_side: dict[Side, tuple[datetime, int]] = {}
        for now, price, prev, bands in _path(steps):
            state, decisions = evaluate(state, bands, price, prev, now, r)
            for d in decisions:
                if not d.fired or d.band is None:
                    continue
                seen = last_by_band.get((d.band_id, d.kind))
                assert seen is None or d.at - seen >= r.min_interval
                last_by_band[(d.band_id, d.kind)] = d.at
                side = last_by_side.get(d.band.side)
                rank = _RANK[d.kind]
                assert side is None or d.at - side[0] >= r.min_interval or rank > side[1]
                last_by_side[d.band.side] = (d.at, rank)
