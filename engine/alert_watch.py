"""Zones over time: per approach distance, where price was against every tracked band, and
which bands got more severe this tick (`Trigger`s for the per-subscription rules).

Computed once per symbol and approach distance (`measure` once per symbol), shared by every
subscription with that distance.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime

from engine.alert_identity import BandTrack, SweptBand, TrackedBand
from engine.alert_zones import Zone, classify
from engine.types import Side


@dataclass(frozen=True, slots=True)
class Sight:
    """What one approach distance remembers about one band between ticks.

    `zone` is where price ended the last tick (the baseline for the next trigger). `edge` is
    the re-arm reference: the most price-ward position the band's near edge took since price
    last settled away from it (a long band's highest high, a short band's lowest low). `away`
    says whether the last settled price was farther than approach + hysteresis from that
    reference; if not, `away_at` is the last settled time when it was. (While away, the last
    time is the symbol's last settled time, kept once per symbol, so a band that stays away
    needs no new `Sight` on every tick.)
    """

    zone: Zone
    edge: float
    away_at: datetime | None = None
    away: bool = False


@dataclass(frozen=True, slots=True)
class Trigger:
    """A band whose zone got more severe this tick (or that was swept); `away_at` is the last
    settled time price was away from it (None: not since it was first seen)."""

    tracked: TrackedBand
    reach: Zone
    away_at: datetime | None = None
    swept: SweptBand | None = None


# (band, long?, near edge, reach core, distance, rest core, distance, calm core, distance)
Measure = tuple[TrackedBand, bool, float, Zone, float, Zone, float, Zone, float]

_BEYOND, _INSIDE, _FAR = Zone.BEYOND, Zone.INSIDE, Zone.FAR


def measure(track: BandTrack, low: float, high: float, close: float | None) -> list[Measure]:
    """Distance-independent geometry of live bands: core zone and distance (`core_zone`) of
    three points.

    The points are `reach`, the most severe point of the traded range; `rest`, where price
    ended (with no close given, the least severe point); and `calm`, the least severe point.
    """
    out: list[Measure] = []
    for t in track.bands:
        if t.missing_since is not None:
            continue
        band = t.band
        b_low, b_high = band.low, band.high
        if band.side is Side.LONG:  # core_zone, inlined: this runs for every band and tick
            reach = (_BEYOND, 0.0) if low < b_low else (
                (_INSIDE, 0.0) if low <= b_high else (_FAR, (low - b_high) / low * 100.0))
            calm = (_BEYOND, 0.0) if high < b_low else (
                (_INSIDE, 0.0) if high <= b_high else (_FAR, (high - b_high) / high * 100.0))
            rest = calm if close is None or close == high else reach if close == low else (
                (_BEYOND, 0.0) if close < b_low else (
                    (_INSIDE, 0.0) if close <= b_high else
                    (_FAR, (close - b_high) / close * 100.0)))
            out.append((t, True, b_high, *reach, *rest, *calm))
        else:
            reach = (_BEYOND, 0.0) if high > b_high else (
                (_INSIDE, 0.0) if high >= b_low else (_FAR, (b_low - high) / high * 100.0))
            calm = (_BEYOND, 0.0) if low > b_high else (
                (_INSIDE, 0.0) if low >= b_low else (_FAR, (b_low - low) / low * 100.0))
            rest = calm if close is None or close == low else reach if close == high else (
                (_BEYOND, 0.0) if close > b_high else (
                    (_INSIDE, 0.0) if close >= b_low else
                    (_FAR, (b_low - close) / close * 100.0)))
            out.append((t, False, b_low, *reach, *rest, *calm))
    return out


def settled_away(side: Side, settled: float, edge: float, approach_pct: float,
                 hysteresis_pct: float) -> bool:
    """True when a settled price is on the near side of `edge` and farther from it than the
    approach distance plus the hysteresis margin (% of the settled price)."""
    dist = (settled - edge if side is Side.LONG else edge - settled) / settled * 100.0
    return dist > approach_pct + hysteresis_pct


def watch_bands(
    watch: Mapping[str, Sight],
    geometry: Sequence[Measure],
    track_ids: frozenset[str],
    now: datetime,
    approach_pct: float,
    hysteresis_pct: float,
    *,
    settled: float | None = None,
    settled_at: datetime | None = None,
    prune: bool = True,
) -> tuple[Mapping[str, Sight], list[Trigger]]:
    """Advance the zones of one approach distance and list bands whose zone got more severe.

    A band seen for the first time counts as coming from FAR, or from the least severe zone of
    the range if that is less severe (so a restart re-decides what may have been lost), unless
    the whole range is already past it.

    Re-arming (`Sight.away`) is judged on `settled`, a settled price such as a bar's close
    (None when the tick has none: wicks never re-arm), against the band's re-arm reference
    (`Sight.edge`), never against the current, jittering edge alone: a recomputed band whose
    near edge drifts away from price does not make price "away". `settled_at` is the time of
    the previous settled price of this symbol. Sights of bands no longer in `track_ids` are
    dropped when `prune` (pass False when the track did not change: nothing to drop).
    """
    triggers: list[Trigger] = []
    updated: dict[str, Sight] | None = None
    away_pct = approach_pct + hysteresis_pct
    for tracked, long, edge, rcore, rdist, score, sdist, ccore, cdist in geometry:
        # classify(), inlined
        reach = rcore if rcore is not _FAR else (
            Zone.NEAR if rdist <= approach_pct else
            Zone.AWAY if rdist > away_pct else _FAR)
        rest = score if score is not _FAR else (
            Zone.NEAR if sdist <= approach_pct else
            Zone.AWAY if sdist > away_pct else _FAR)
        prev = watch.get(tracked.id)
        if prev is None:
            calm = classify(ccore, cdist, approach_pct, hysteresis_pct)
            prev = Sight(calm if calm is Zone.BEYOND or calm < Zone.FAR else Zone.FAR, edge)
        last_away = settled_at if prev.away else prev.away_at
        if reach > prev.zone and reach >= Zone.NEAR:
            triggers.append(Trigger(tracked, reach, last_away))
        reference = prev.edge
        if (edge > reference) if long else (edge < reference):
            reference = edge
        away, away_at = prev.away, prev.away_at
        if settled is not None:
            dist = (settled - reference if long else reference - settled) / settled * 100.0
            if dist > away_pct:
                away, reference = True, edge
            elif away:
                away, away_at = False, last_away
        if (rest is not prev.zone or reference != prev.edge or away is not prev.away
                or away_at != prev.away_at or tracked.id not in watch):
            if updated is None:
                updated = dict(watch)
            updated[tracked.id] = Sight(rest, reference, away_at, away)
    if prune:
        current = watch if updated is None else updated
        stale_ids = [k for k in current if k not in track_ids]
        if stale_ids:
            if updated is None:
                updated = dict(watch)
            for k in stale_ids:
                del updated[k]
    return (watch if updated is None else updated), triggers


def swept_triggers(gone: Iterable[SweptBand]) -> list[Trigger]:
    """Triggers for swept bands."""
    return [Trigger(s.tracked, Zone.BEYOND, swept=s) for s in gone]
