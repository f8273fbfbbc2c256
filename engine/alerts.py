"""Alert rules as pure functions: when is price nearing, entering, crossing or sweeping a band news.

This module is the public face; the work is done in small modules, one job each:

* `engine.alert_settings`: alert kinds and one subscription's `AlertRule`.
* `engine.alert_zones`: geometry of a price against one band (`Zone`).
* `engine.alert_identity`: stable band ids across map recomputations, swept bands.
* `engine.alert_watch`: zones over time per approach distance and the `Trigger`s of a tick.
* `engine.alert_rules`: per-subscription decisions (`decide`, `Decision`, `Reason`, `Memory`).
* `engine.alert_evaluate`: one subscription on its own (`evaluate`, `evaluate_range`).
* `engine.alert_book`: every subscription of a symbol on one tick (`evaluate_book`).

Nothing here does I/O or reads a clock: `now` is always passed in. Evaluation has three steps,
each a pure function, so one subscription (`evaluate`) and ten thousand (`evaluate_book`) share
the same code:

1. `track_bands` (once per symbol): give bands a stable id across recomputations by overlap
   matching, and report tracked bands that disappeared after price traded through them (SWEPT).
2. `watch_bands` (once per symbol and approach distance): classify price against every band
   into a `Zone` and emit a `Trigger` when the zone gets more severe than at the last tick.
3. `decide` (per subscription, only when there are triggers or held events): apply kinds,
   strength, re-arming, cooldown, daily cap and quiet hours; every outcome is a `Decision`
   with a `Reason`, fired or not.

Spam control (details in `engine.alert_rules` and `engine.alert_watch`): each band and kind
fires at most once per *arming epoch*. A later, more severe kind in the same epoch (approach ->
enter -> cross) escalates; a repeat needs re-arming, which happens when a *settled* price (a
bar's close, never a wick) went farther than the approach distance plus a hysteresis margin
from the band's re-arm reference (the nearest its edge came to price since price was last
away, so a recomputed edge jittering away from price does not count), or `rearm_after` passed
since the last alert. Even re-armed, a band stays quiet for `min_interval` after it fired. A
band overlapping one the subscription was told about inherits its memory, and on each side of
price an alert covers other bands' alerts of the same or lower severity for `min_interval`.
The idempotency key (kind, subscription, band id, epoch) is a function of the committed state,
so recomputing after a crash yields the same key.
"""

from __future__ import annotations

from engine.alert_book import AlertBook, Cohort, build_book, evaluate_book
from engine.alert_evaluate import AlertState, evaluate, evaluate_range
from engine.alert_identity import (
    TRACK_TTL,
    BandTrack,
    SweptBand,
    TrackedBand,
    band_id,
    next_pocket,
    same_band,
    seed_track,
    track_bands,
)
from engine.alert_rules import (
    FIRED_REASONS,
    MAX_HELD,
    REMEMBERED_REASONS,
    BandMemory,
    Decision,
    HeldEvent,
    Memory,
    Outcome,
    Reason,
    alert_key,
    brief_key,
    choose,
    decide,
    decide_shared,
    in_quiet_hours,
)
from engine.alert_settings import (
    DEFAULT_KINDS,
    SUBSCRIBABLE_KINDS,
    AlertKind,
    AlertRule,
    GroupKey,
)
from engine.alert_watch import Sight, Trigger, measure, swept_triggers, watch_bands
from engine.alert_zones import Zone, zone_of

__all__ = [
    "DEFAULT_KINDS",
    "FIRED_REASONS",
    "MAX_HELD",
    "REMEMBERED_REASONS",
    "SUBSCRIBABLE_KINDS",
    "TRACK_TTL",
    "AlertBook",
    "AlertKind",
    "AlertRule",
    "AlertState",
    "BandMemory",
    "BandTrack",
    "Cohort",
    "Decision",
    "GroupKey",
    "HeldEvent",
    "Memory",
    "Outcome",
    "Reason",
    "Sight",
    "SweptBand",
    "TrackedBand",
    "Trigger",
    "Zone",
    "alert_key",
    "band_id",
    "brief_key",
    "build_book",
    "choose",
    "decide",
    "decide_shared",
    "evaluate",
    "evaluate_book",
    "evaluate_range",
    "in_quiet_hours",
    "measure",
    "next_pocket",
    "same_band",
    "seed_track",
    "swept_triggers",
    "track_bands",
    "watch_bands",
    "zone_of",
]
