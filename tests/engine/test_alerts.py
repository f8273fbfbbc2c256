"""Alert rules: table tests of every event kind and reason, with a fixed clock."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta
from typing import Any

import pytest

from engine.alert_replay import replay
from engine.alerts import (
    SUBSCRIBABLE_KINDS,
    AlertKind,
    AlertRule,
    AlertState,
    BandTrack,
    Decision,
    Reason,
    Zone,
    evaluate,
    in_quiet_hours,
    next_pocket,
    same_band,
    track_bands,
    zone_of,
)
from engine.sensitivity import PROFILES, Sensitivity, parse_sensitivity
from engine.types import Band, Side

T0 = datetime(2026, 1, 5, 12, 0, tzinfo=UTC)
LONG = Band(Side.LONG, 95.0, 97.0, 96.0, 5e6, 3.0, 0.8)
SHORT = Band(Side.SHORT, 103.0, 105.0, 104.0, 5e6, 3.0, 0.8)
DEEP = Band(Side.LONG, 88.0, 90.0, 89.0, 9e6, 10.0, 1.0)
BANDS = (LONG, SHORT, DEEP)
A, E, C, S, Q = (AlertKind.APPROACH, AlertKind.ENTER, AlertKind.CROSS, AlertKind.SWEPT,
                 AlertKind.QUIET_SUMMARY)
R = Reason
Step = tuple[Any, ...]


def rule(**kwargs: Any) -> AlertRule:
    """Balanced-like rule subscribed to every kind unless told otherwise."""
    base: dict[str, Any] = {"subscription_id": 7, "chat_id": 3, "symbol": "BTC",
                            "approach_pct": 1.0, "hysteresis_pct": 0.5, "min_strength": 0.35,
                            "kinds": SUBSCRIBABLE_KINDS}
    base.update(kwargs)
    return AlertRule(**base)


def run(steps: list[Step], r: AlertRule, state: AlertState | None = None,
        stale_at: frozenset[int] = frozenset()) -> tuple[AlertState, list[tuple[int, Decision]]]:
    """Feed (minute, price[, bands]) steps from price 100; decisions tagged with the step index."""
    st = state or AlertState()
    prev = 100.0
    out: list[tuple[int, Decision]] = []
    for i, step in enumerate(steps):
        minute, price = step[0], step[1]
        bands = step[2] if len(step) > 2 else BANDS
        swept = step[3] if len(step) > 3 else ()
        st, ds = evaluate(st, bands, price, prev, T0 + timedelta(minutes=minute), r,
                          stale=i in stale_at, swept=swept)
        out.extend((i, d) for d in ds)
        prev = price
    return st, out


def summary(decisions: list[tuple[int, Decision]]) -> list[tuple[int, AlertKind, Reason]]:
    """(step, kind, reason) of each decision."""
    return [(i, d.kind, d.reason) for i, d in decisions]


@pytest.mark.parametrize(("price", "side", "zone"), [
    (100.0, Side.LONG, Zone.AWAY), (98.2, Side.LONG, Zone.FAR), (97.5, Side.LONG, Zone.NEAR),
    (97.0, Side.LONG, Zone.INSIDE), (95.0, Side.LONG, Zone.INSIDE), (94.9, Side.LONG, Zone.BEYOND),
    (100.0, Side.SHORT, Zone.AWAY), (101.6, Side.SHORT, Zone.FAR), (102.5, Side.SHORT, Zone.NEAR),
    (104.0, Side.SHORT, Zone.INSIDE), (105.1, Side.SHORT, Zone.BEYOND),
])
def test_zone_of(price: float, side: Side, zone: Zone) -> None:
    band = LONG if side is Side.LONG else SHORT
    assert zone_of(band, price, 1.0, 0.5) is zone


@pytest.mark.parametrize(("start", "end", "local", "quiet"), [
    (None, None, time(3), False), (time(22), time(22), time(22), False),
    (time(1), time(5), time(1), True), (time(1), time(5), time(5), False),
    (time(22), time(7), time(23, 59), True), (time(22), time(7), time(6, 59), True),
    (time(22), time(7), time(7), False), (time(22), time(7), time(12), False),
])
def test_quiet_hours(start: time | None, end: time | None, local: time, quiet: bool) -> None:
    assert in_quiet_hours(start, end, local) is quiet


@pytest.mark.parametrize(("text", "approach", "strength"), [
    ("balanced", 1.0, 0.35), (" Aggressive ", 2.0, 0.15), ("conservative", 0.5, 0.6),
    ("1.5%", 1.5, 0.35), ("0.25", 0.25, 0.35),
])
def test_parse_sensitivity(text: str, approach: float, strength: float) -> None:
    profile = parse_sensitivity(text)
    assert (profile.approach_pct, profile.min_strength) == (approach, strength)


@pytest.mark.parametrize("text", ["wild", "0%", "-1", "25%", ""])
def test_parse_sensitivity_rejects(text: str) -> None:
    with pytest.raises(ValueError):
        parse_sensitivity(text)


def test_presets_are_ordered() -> None:
    a, b, c = (PROFILES[s] for s in Sensitivity)
    assert a.approach_pct > b.approach_pct > c.approach_pct
    assert a.min_strength < b.min_strength < c.min_strength


def test_rule_from_sensitivity_and_validation() -> None:
    r = AlertRule.from_sensitivity(1, 2, "ETH", "2%", min_strength=0.9, timezone="Asia/Tokyo")
    assert (r.approach_pct, r.min_strength, r.hysteresis_pct) == (2.0, 0.9, 1.0)
    for bad in ({"kinds": frozenset({AlertKind.DAILY_BRIEF})}, {"approach_pct": 0.0},
                {"daily_cap": -1}):
        with pytest.raises(ValueError):
            rule(**bad)
    with pytest.raises(Exception, match="Mars"):
        rule(timezone="Mars/Base")


def _band(side: Side, low: float, high: float, peak: float | None = None) -> Band:
    return Band(side, low, high, (low + high) / 2 if peak is None else peak, 1e6, 1.0, 0.5)


@pytest.mark.parametrize(("old", "new", "same"), [
    (_band(Side.LONG, 95, 97), _band(Side.LONG, 95.5, 97.5), True),  # 75 % overlap
    (_band(Side.LONG, 95, 97), _band(Side.LONG, 96, 98), True),  # exactly 50 %
    (_band(Side.LONG, 95, 97), _band(Side.LONG, 96.2, 98.2), False),  # 40 %, peak outside
    (_band(Side.LONG, 95, 97, peak=96.9), _band(Side.LONG, 96.5, 100), True),  # holds the peak
    (_band(Side.LONG, 95, 97), _band(Side.SHORT, 95, 97), False),  # other side
    (_band(Side.LONG, 90, 100), _band(Side.LONG, 94, 95.5), True),  # narrow inside wide
])
def test_same_band(old: Band, new: Band, same: bool) -> None:
    assert (same_band(old, new) > 0) is same


def test_track_keeps_ids_retains_missing_and_expires() -> None:
    track, gone = track_bands(BandTrack(), [LONG, SHORT], 100, 100, T0)
    ids = [t.id for t in track.bands]
    shifted = Band(Side.LONG, 95.4, 97.4, 96.3, 6e6, 2.8, 0.9)
    track, gone = track_bands(track, [shifted, SHORT], 100, 100, T0 + timedelta(minutes=1))
    assert [t.id for t in track.bands] == ids and gone == ()
    track, gone = track_bands(track, [SHORT], 100, 100, T0 + timedelta(minutes=2))
    assert gone == () and track.bands[1].missing_since is not None  # kept, not swept
    track, _ = track_bands(track, [shifted, SHORT], 100, 100, T0 + timedelta(minutes=30))
    assert [t.id for t in track.bands] == ids  # came back within the TTL
    track, _ = track_bands(track, [SHORT], 100, 100, T0 + timedelta(minutes=31))
    track, _ = track_bands(track, [SHORT, shifted], 100, 100, T0 + timedelta(hours=2))
    assert track.bands[1].id not in ids  # too late: a new band


def test_next_pocket() -> None:
    assert next_pocket(LONG, BANDS) is DEEP
    assert next_pocket(SHORT, BANDS) is None
    assert next_pocket(DEEP, BANDS) is None


SCENARIOS: list[tuple[str, dict[str, Any], list[Step], list[tuple[int, AlertKind, Reason]]]] = [
    ("approach fires first", {}, [(1, 97.5)], [(0, A, R.FIRED_FIRST)]),
    ("escalates approach, enter, cross", {}, [(1, 97.5), (2, 96.0), (3, 94.0)],
     [(0, A, R.FIRED_FIRST), (1, E, R.FIRED_ESCALATED), (2, C, R.FIRED_ESCALATED)]),
    ("a jump through fires only the cross", {}, [(1, 94.0)], [(0, C, R.FIRED_FIRST)]),
    ("a jump fires the most severe subscribed kind", {"kinds": frozenset({A, E})},
     [(1, 94.0)], [(0, E, R.FIRED_FIRST)]),
    ("kind not subscribed", {"kinds": frozenset({C})}, [(1, 97.5)],
     [(0, A, R.KIND_NOT_SUBSCRIBED)]),
    ("no repeat without re-arming", {}, [(1, 97.5), (2, 98.2), (3, 97.5)],
     [(0, A, R.FIRED_FIRST), (2, A, R.SUPPRESSED_NOT_REARMED)]),
    ("moving away re-arms", {}, [(1, 97.5), (2, 99.0), (130, 97.5)],
     [(0, A, R.FIRED_FIRST), (2, A, R.FIRED_REARMED)]),
    ("re-armed but inside min_interval", {}, [(1, 97.5), (2, 99.0), (100, 97.5)],
     [(0, A, R.FIRED_FIRST), (2, A, R.SUPPRESSED_COOLDOWN)]),
    ("re-armed by time alone", {"rearm_after": timedelta(hours=3)},
     [(1, 97.5), (2, 98.2), (150, 97.5), (151, 98.2), (182, 97.5)],
     [(0, A, R.FIRED_FIRST), (2, A, R.SUPPRESSED_NOT_REARMED), (4, A, R.FIRED_REARMED)]),
    ("weak band", {"min_strength": 0.9}, [(1, 97.5)], [(0, A, R.BELOW_MIN_STRENGTH)]),
    ("daily cap", {"daily_cap": 1}, [(1, 97.5), (2, 106.0)],
     [(0, A, R.FIRED_FIRST), (1, C, R.SUPPRESSED_DAILY_CAP)]),
    ("daily cap resets on the next local day", {"daily_cap": 1},
     [(1, 97.5), (2, 106.0), (3, 100.0), (24 * 60, 106.0)],
     [(0, A, R.FIRED_FIRST), (1, C, R.SUPPRESSED_DAILY_CAP), (3, C, R.FIRED_FIRST)]),
    ("quiet hours hold, then one summary", {"quiet_start": time(11), "quiet_end": time(13)},
     [(1, 97.5), (2, 96.0), (61, 97.5), (62, 98.2), (63, 97.5)],
     [(0, A, R.HELD_QUIET_HOURS), (1, E, R.HELD_QUIET_HOURS), (2, Q, R.FIRED_QUIET_SUMMARY),
      (4, A, R.SUPPRESSED_NOT_REARMED)]),
    ("quiet hours are local", {"quiet_start": time(20), "quiet_end": time(8),
                               "timezone": "Asia/Tokyo"},  # 12:00 UTC = 21:00 in Tokyo
     [(1, 97.5)], [(0, A, R.HELD_QUIET_HOURS)]),
    ("a sweep right after the cross is covered by it", {},
     [(1, 94.0), (2, 93.0, (SHORT, DEEP))], [(0, C, R.FIRED_FIRST), (1, S, R.SUPPRESSED_COVERED)]),
    ("a sweep after min_interval fires, with the next pocket", {},
     [(1, 94.0), (200, 93.0, (SHORT, DEEP))], [(0, C, R.FIRED_FIRST), (1, S, R.FIRED_FIRST)]),
    ("vanishing without being crossed is not a sweep", {}, [(1, 97.5), (2, 98.0, (SHORT,))],
     [(0, A, R.FIRED_FIRST)]),
    ("a recomputed, overlapping band keeps its alert state", {},
     [(1, 97.5), (2, 97.6, (Band(Side.LONG, 95.5, 97.2, 96.4, 6e6, 2.5, 0.9), SHORT))],
     [(0, A, R.FIRED_FIRST)]),
    ("a band is crossed once however price chops around its edge", {},
     [(1, 94.0), (2, 95.5), (3, 94.0), (4, 95.5), (5, 94.0)],
     [(0, C, R.FIRED_FIRST), (2, C, R.SUPPRESSED_NOT_REARMED),
      (4, C, R.SUPPRESSED_NOT_REARMED)]),
]


@pytest.mark.parametrize(("name", "kwargs", "steps", "expected"), SCENARIOS,
                         ids=[s[0] for s in SCENARIOS])
def test_rules(name: str, kwargs: dict[str, Any], steps: list[Step],
               expected: list[tuple[int, AlertKind, Reason]]) -> None:
    _, decisions = run(steps, rule(**kwargs))
    assert summary(decisions) == expected


def test_stale_data_never_fires_and_changes_nothing() -> None:
    r = rule()
    state, decisions = run([(1, 97.5)], r, stale_at=frozenset({0}))
    assert summary(decisions) == [(0, A, R.STALE_DATA)]
    assert not decisions[0][1].fired
    assert state == AlertState()
    _, decisions = run([(1, 97.5), (2, 97.5)], r, stale_at=frozenset({0}))
    assert summary(decisions) == [(0, A, R.STALE_DATA), (1, A, R.FIRED_FIRST)]


def test_swept_carries_realized_usd_and_next_pocket() -> None:
    # The swept pocket's `usd` is the model's estimate; only printed liquidations are "realized".
    swept = (Band(Side.LONG, 95.2, 96.8, 96.0, 4.2e6, 0.0, 0.0, realized_usd=1.5e6),)
    _, decisions = run([(1, 94.0), (200, 93.0, (SHORT, DEEP), swept)], rule())
    sweep = decisions[-1][1]
    assert sweep.fired
    assert (sweep.kind, sweep.realized_usd, sweep.next_band) == (S, 1.5e6, DEEP)


def test_swept_without_prints_has_no_realized_usd() -> None:
    swept = (Band(Side.LONG, 95.2, 96.8, 96.0, 4.2e6, 0.0, 0.0),)
    _, decisions = run([(1, 94.0), (200, 93.0, (SHORT, DEEP), swept)], rule())
    assert decisions[-1][1].realized_usd is None


def test_quiet_summary_lists_held_events() -> None:
    _, decisions = run([(1, 97.5), (2, 106.0), (61, 100.0)],
                       rule(quiet_start=time(11), quiet_end=time(13)))
    final = decisions[-1][1]
    assert final.kind is Q and final.fired
    assert [(h.kind, h.side) for h in final.held] == [(A, Side.LONG), (C, Side.SHORT)]


def test_keys_are_deterministic_across_recomputation() -> None:
    r = rule()
    state, _ = run([(1, 99.0)], r)
    args = ([LONG, SHORT], 97.5, 99.0, T0 + timedelta(minutes=2), r)
    first = evaluate(state, *args)
    again = evaluate(state, *args)  # e.g. after a crash before the commit
    assert first == again
    (decision,) = first[1]
    assert decision.key == f"approach:7:{decision.band_id}:0"


def test_rearm_starts_a_new_epoch_key() -> None:
    _, decisions = run([(1, 97.5), (2, 99.0), (130, 97.5)], rule())
    keys = [d.key for _, d in decisions]
    assert keys[0].endswith(":0") and keys[1].endswith(":1")


def test_naive_time_is_rejected() -> None:
    with pytest.raises(ValueError):
        evaluate(AlertState(), BANDS, 97.5, 100.0, datetime(2026, 1, 5), rule())


def test_replay_over_bars() -> None:
    steps = [(T0 + timedelta(minutes=i), lo, hi, (lo + hi) / 2, BANDS)
             for i, (lo, hi) in enumerate([(99.5, 100.5), (97.2, 99.6), (94.5, 97.3), (95, 96)])]
    fired = [(d.kind, d.reason) for d in replay(steps, rule()) if d.fired]
    assert fired == [(A, R.FIRED_FIRST), (C, R.FIRED_ESCALATED)]
