"""Band identity: stable ids for bands across map recomputations, and which bands were swept.

Bands are recomputed on every refresh and their edges move a little each time; `track_bands`
carries each band's id over by overlap matching (`same_band`), keeps bands that vanished for
`TRACK_TTL` so they can come back, and reports the ones that vanished after price traded
through them (SWEPT).
"""

from __future__ import annotations

import bisect
import itertools
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Protocol

from engine.alert_zones import reached_beyond
from engine.types import Band, Side

TRACK_TTL = timedelta(hours=1)


@dataclass(frozen=True, slots=True)
class TrackedBand:
    """A band with a stable id; `crossed` once price traded past its far edge."""

    id: str
    band: Band
    crossed: bool = False
    missing_since: datetime | None = None


@dataclass(frozen=True, slots=True)
class SweptBand:
    """A tracked band that vanished after being traded through, with the next pocket beyond it."""

    tracked: TrackedBand
    realized_usd: float | None
    next_band: Band | None


@dataclass(frozen=True, slots=True)
class BandTrack:
    """Bands of one symbol with stable ids; missing ones are kept `TRACK_TTL` for re-matching."""

    bands: tuple[TrackedBand, ...] = ()
    source: tuple[Band, ...] = ()

    def ids(self) -> frozenset[str]:
        """Ids of every tracked band, live or missing."""
        return frozenset(t.id for t in self.bands)


class RememberedBand(Protocol):
    """A band as stored in an alert memory (enough to re-match it after a restart)."""

    @property
    def band_id(self) -> str: ...
    @property
    def side(self) -> Side: ...
    @property
    def low(self) -> float: ...
    @property
    def high(self) -> float: ...
    @property
    def peak(self) -> float: ...


def same_band(tracked: Band, new: Band) -> float:
    """Match score of a new band against a tracked one: 0 = different, higher = better.

    Same side and either an overlap of at least half the smaller width, or the new band
    contains the tracked band's peak.
    """
    if tracked.side is not new.side:
        return 0.0
    overlap = min(tracked.high, new.high) - max(tracked.low, new.low)
    width = min(tracked.high - tracked.low, new.high - new.low)
    ratio = overlap / width if width > 0 else (1.0 if overlap >= 0 else 0.0)
    peak_inside = new.low <= tracked.peak <= new.high
    if ratio >= 0.5 or peak_inside:
        return max(ratio, 0.0) + (1.0 if peak_inside else 0.0) + 1e-9
    return 0.0


def _match(old: Sequence[TrackedBand], new: Sequence[Band]) -> list[int | None]:
    """For each new band, the index of the tracked band it inherits from (greedy, one-to-one,
    best `same_band` score first)."""
    by_side: dict[Side, list[tuple[float, float, float, int]]] = {Side.LONG: [], Side.SHORT: []}
    for j, tracked in enumerate(old):
        band = tracked.band
        by_side[band.side].append((band.low, band.high, band.peak, j))
    reach: dict[Side, list[float]] = {}  # running max of the highs, in order of lows
    for side, candidates in by_side.items():
        candidates.sort()
        reach[side] = list(itertools.accumulate((c[1] for c in candidates), max))
    pairs: list[tuple[float, int, int]] = []
    for i, band in enumerate(new):
        low, high = band.low, band.high
        candidates = by_side[band.side]
        # Skip the tracked bands that all end below this one (their highs' running max < low).
        for k in range(bisect.bisect_left(reach[band.side], low), len(candidates)):
            olow, ohigh, opeak, j = candidates[k]
            if olow > high:
                break  # sorted by low: no later band can overlap
            if ohigh < low:
                continue  # disjoint: neither overlap nor peak containment is possible
            # same_band(old[j].band, band), inlined: this runs for every recomputed band
            overlap = (ohigh if ohigh < high else high) - (olow if olow > low else low)
            owidth, width = ohigh - olow, high - low
            width = owidth if owidth < width else width
            ratio = overlap / width if width > 0 else (1.0 if overlap >= 0 else 0.0)
            peak_inside = low <= opeak <= high
            if ratio >= 0.5 or peak_inside:
                score = (ratio if ratio > 0.0 else 0.0) + (1.0 if peak_inside else 0.0) + 1e-9
                pairs.append((-score, i, j))
    pairs.sort()
    result: list[int | None] = [None] * len(new)
    taken: set[int] = set()
    for _, i, j in pairs:
        if result[i] is None and j not in taken:
            result[i] = j
            taken.add(j)
    return result


def band_id(band: Band, now: datetime, taken: frozenset[str] | set[str]) -> str:
    """Deterministic id for a newly seen band: side, peak and first-seen second."""
    base = f"{band.side.value[0].upper()}{band.peak:.8g}@{int(now.timestamp())}"
    key, n = base, 1
    while key in taken:
        n += 1
        key = f"{base}.{n}"
    return key


def next_pocket(band: Band, bands: Iterable[Band]) -> Band | None:
    """The nearest band on the same side beyond `band` (further from where price came from)."""
    if band.side is Side.LONG:
        below = [b for b in bands if b.side is Side.LONG and b.high < band.low]
        return max(below, key=lambda b: b.high, default=None)
    above = [b for b in bands if b.side is Side.SHORT and b.low > band.high]
    return min(above, key=lambda b: b.low, default=None)


def track_bands(
    track: BandTrack,
    bands: Sequence[Band],
    low: float,
    high: float,
    now: datetime,
    *,
    swept: Sequence[Band] = (),
    ttl: timedelta = TRACK_TTL,
) -> tuple[BandTrack, tuple[SweptBand, ...]]:
    """Carry band ids over a recomputation and report bands consumed since the last one.

    A tracked band that is no longer on the map is SWEPT when price traded past its far edge
    (now or earlier) or the engine lists an overlapping band in `swept` (whose usd is then the
    realized liquidation USD); otherwise it is kept as missing for `ttl` so it can come back.
    """
    source = tuple(bands)
    if source == track.source and not swept:
        return _mark_crossed(track, low, high), ()
    previous = [t for t in track.bands
                if t.missing_since is None or now - t.missing_since < ttl]
    matches = _match(previous, source)
    ids = {t.id for t in previous}
    out: list[TrackedBand] = []
    for band, j in zip(source, matches, strict=True):
        crossed_now = reached_beyond(band, low, high)
        if j is None:
            new_id = band_id(band, now, ids)
            ids.add(new_id)
            out.append(TrackedBand(new_id, band, crossed_now))
        else:
            old = previous[j]
            out.append(TrackedBand(old.id, band, old.crossed or crossed_now))
    matched = {j for j in matches if j is not None}
    gone: list[SweptBand] = []
    for j, old in enumerate(previous):
        if j in matched:
            continue
        if old.missing_since is not None:
            out.append(old)
            continue
        consumed = [b for b in swept if same_band(old.band, b) > 0.0]
        if old.crossed or reached_beyond(old.band, low, high) or consumed:
            realized = consumed[0].realized_usd if consumed else None
            gone.append(SweptBand(old, realized, next_pocket(old.band, source)))
        else:
            out.append(replace(old, missing_since=now))
    return BandTrack(tuple(out), source), tuple(gone)


def _mark_crossed(track: BandTrack, low: float, high: float) -> BandTrack:
    """Same track with `crossed` set on live bands the range traded through (no copy if none)."""
    flips = [i for i, t in enumerate(track.bands)
             if not t.crossed and t.missing_since is None and reached_beyond(t.band, low, high)]
    if not flips:
        return track
    bands = list(track.bands)
    for i in flips:
        bands[i] = replace(bands[i], crossed=True)
    return BandTrack(tuple(bands), track.source)


def seed_track(remembered: Iterable[RememberedBand], now: datetime) -> BandTrack:
    """Track rebuilt from stored band memories (as missing bands) so ids survive a restart."""
    seen: dict[str, TrackedBand] = {}
    for m in remembered:
        if m.band_id not in seen:
            band = Band(m.side, m.low, m.high, m.peak, usd=0.0, distance_pct=0.0, strength=0.0)
            seen[m.band_id] = TrackedBand(m.band_id, band, missing_since=now)
    return BandTrack(tuple(seen.values()))
