"""One subscription evaluated on its own: the state it carries and one step of evaluation.

The bulk path (`engine.alert_book`) makes the same decisions for many subscriptions at once;
this is the reference it is tested against, and what replays use.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from engine.alert_identity import BandTrack, track_bands
from engine.alert_rules import Decision, Memory, decide
from engine.alert_settings import AlertRule, require_aware
from engine.alert_watch import Sight, measure, swept_triggers, watch_bands
from engine.types import Band


@dataclass(frozen=True, slots=True)
class AlertState:
    """Everything one subscription's evaluation carries from tick to tick."""

    track: BandTrack = field(default_factory=BandTrack)
    watch: Mapping[str, Sight] = field(default_factory=dict)
    memory: Memory = field(default_factory=Memory)
    settled_at: datetime | None = None  # when the last settled price was


def evaluate(
    state: AlertState,
    bands: Sequence[Band],
    price: float,
    prev_price: float,
    now: datetime,
    rule: AlertRule,
    *,
    stale: bool = False,
    swept: Sequence[Band] = (),
    settled: bool = True,
) -> tuple[AlertState, list[Decision]]:
    """Decisions for one subscription as price moved from `prev_price` to `price` (a settled
    price unless `settled` is False, as for `engine.alert_book.evaluate_book`)."""
    return evaluate_range(state, bands, min(price, prev_price), max(price, prev_price), now,
                          rule, close=price, stale=stale, swept=swept, settled=settled)


def evaluate_range(
    state: AlertState,
    bands: Sequence[Band],
    low: float,
    high: float,
    now: datetime,
    rule: AlertRule,
    *,
    close: float | None = None,
    stale: bool = False,
    swept: Sequence[Band] = (),
    settled: bool = True,
) -> tuple[AlertState, list[Decision]]:
    """Decisions for one subscription over a traded range (a bar's low and high).

    `close` is where price ended (a bar's close): it sets the zone the next tick starts from
    and, being settled (unless `settled` is False), is the only price that can re-arm a band.
    Without a settled close nothing re-arms this tick.
    """
    require_aware(now)
    track, gone = track_bands(state.track, bands, low, high, now, swept=swept)
    ids = track.ids()
    settled_price = close if settled else None
    watch, triggers = watch_bands(state.watch, measure(track, low, high, close), ids, now,
                                  rule.approach_pct, rule.hysteresis_pct, settled=settled_price,
                                  settled_at=state.settled_at, prune=track is not state.track)
    triggers.extend(swept_triggers(gone))
    price = close if close is not None else (low + high) / 2.0
    memory, decisions = decide(state.memory, triggers, rule, now, price, stale=stale,
                               track_ids=ids)
    if stale:
        return state, decisions
    return AlertState(track, watch, memory,
                      state.settled_at if settled_price is None else now), decisions

