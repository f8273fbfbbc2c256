"""Plain-language briefs from a liquidation map: transport-neutral text, model numbers only.

A brief has five titled sections (one-minute map, regime, scenarios, context, risks) and a
bottom line. It never invents a level: every price and USD figure comes from the map's bands,
profile or context, rounded the way traders write them (`engine.numbers`). Unknown context
(NaN) is left out rather than printed. There is no Markdown or HTML: adapters format the text.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import NamedTuple

import numpy as np

from engine.numbers import (
    format_duration,
    format_level,
    format_pct,
    format_price,
    format_range,
    format_rate,
    format_ratio,
    format_usd,
    nice_round,
    price_resolution,
)
from engine.regime import Regime, RegimeKind, classify_regime
from engine.types import Band, LiquidationMap, Side, Venue

STALE_AFTER_MS = 30 * 60_000
"""Data older than this is called stale at the top of the brief."""
MEANINGFUL_SHARE = 0.25
"""A pocket is the side's "nearest pocket" when it holds at least this share of the side's
largest pocket; smaller ones nearer the price are mentioned as lying on the way."""
FUNDING_PERIODS_PER_YEAR = 3 * 365
"""Funding rates are read as per 8 hours (the usual interval) when annualised."""
THIN_GAP_SHARE = 0.5
"""The gap between the pockets is "thin" when it holds less than this share of the smaller one."""

OVERSIZE_RATIO = 1.2
"""Longs (or shorts) in view can be at most the open interest: each contract has one long and one
short holder. Modelled sizes above this multiple of OI are not calibrated USD."""

_VENUE_NAMES = {Venue.BINANCE: "Binance", Venue.BYBIT: "Bybit", Venue.OKX: "OKX"}
_WORD = {Side.LONG: "long", Side.SHORT: "short"}


class Section(NamedTuple):
    """A heading and its lines (each line one sentence or two)."""

    heading: str
    lines: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Brief:
    """A titled, sectioned brief with one bottom line; `warning` is set when data is stale."""

    title: str
    subtitle: str
    sections: tuple[Section, ...]
    bottom_line: str
    warning: str | None = None

    def to_text(self) -> str:
        """Plain text: title, subtitle, optional warning, sections with bullets, bottom line."""
        out = [self.title, self.subtitle]
        if self.warning:
            out += ["", self.warning]
        for section in self.sections:
            out += ["", section.heading]
            out += [f"• {line}" for line in section.lines]
        out += ["", f"Bottom line: {self.bottom_line}"]
        return "\n".join(out) + "\n"


@dataclass(frozen=True, slots=True)
class _Geometry:
    """Numbers shared by the sections, computed once."""

    price: float
    level_res: float
    below: Band | None
    above: Band | None
    below_span_pct: float
    above_span_pct: float
    grid_low: float
    grid_high: float


def build_brief(m: LiquidationMap, *, now_ms: int | None = None) -> Brief:
    """The brief of a map. `now_ms` (if given) ages the data from the map's as-of time;
    the session is always read from the as-of time, so equal inputs give equal text."""
    age_ms = _age_ms(m, now_ms)
    stale = age_ms > STALE_AFTER_MS
    geo = _geometry(m)
    regime = classify_regime(m.bands, m.swept)
    when = datetime.fromtimestamp(m.as_of_ms / 1000, tz=UTC)
    title = f"{m.symbol} liquidation brief · {m.window.value} map · {when:%Y-%m-%d %H:%M} UTC"
    subtitle = (f"Estimated from public data · {_venue_list(m.venues)} · "
                f"data {format_duration(age_ms)} old")
    warning = None
    if stale:
        warning = (f"STALE DATA: the latest data is {format_duration(age_ms)} old. "
                   "Levels below may already be out of date.")
    sections = (
        Section("One-minute map", _one_minute(m, geo)),
        Section("Regime", _regime_lines(m, geo, regime)),
        Section("Next 48–72 h: scenarios", _scenarios(m, geo)),
        Section("Context that changes the odds", _context(m)),
        Section("Risks and caveats", _risks(m, geo, regime, age_ms, stale)),
    )
    bottom = _bottom_line(m, geo, regime, age_ms, stale)
    return Brief(title=title, subtitle=subtitle, sections=sections, bottom_line=bottom,
                 warning=warning)


def size_to_oi(m: LiquidationMap) -> float:
    """Larger side of the modelled profile (longs or shorts in view) over open interest.

    Calibrated USD keeps this at or below 1, since every open contract has exactly one long and
    one short holder. NaN when open interest is unknown.
    """
    oi = m.context.open_interest_usd
    if not math.isfinite(oi) or oi <= 0:
        return float("nan")
    longs = float(np.nansum(np.maximum(m.profile.long_usd, 0.0)))
    shorts = float(np.nansum(np.maximum(m.profile.short_usd, 0.0)))
    return max(longs, shorts) / oi


def _age_ms(m: LiquidationMap, now_ms: int | None) -> int:
    age = max(0, int(m.data_age_ms))
    if now_ms is not None:
        age = max(age, int(now_ms) - int(m.as_of_ms))
    return age


def _geometry(m: LiquidationMap) -> _Geometry:
    grid = m.profile.grid
    low, high = grid.low, grid.low + grid.count * grid.step
    price = m.price
    return _Geometry(
        price=price,
        level_res=nice_round(price * 5e-4) if price >= 1000 else price_resolution(price),
        below=nearest_pocket(m.bands, Side.LONG),
        above=nearest_pocket(m.bands, Side.SHORT),
        below_span_pct=max(0.0, (price - low) / price * 100.0),
        above_span_pct=max(0.0, (high - price) / price * 100.0),
        grid_low=low,
        grid_high=high,
    )


def nearest_pocket(bands: tuple[Band, ...], side: Side,
                   min_share: float = MEANINGFUL_SHARE) -> Band | None:
    """The nearest pocket of `side` holding at least `min_share` of that side's largest."""
    own = [b for b in bands if b.side is side and math.isfinite(b.usd) and b.usd > 0
           and math.isfinite(b.distance_pct)]
    if not own:
        return None
    largest = max(b.usd for b in own)
    meaningful = [b for b in own if b.usd >= min_share * largest]
    return min(meaningful, key=lambda b: abs(b.distance_pct))


def _level(geo: _Geometry, price: float) -> str:
    return format_level(price, geo.level_res)


def _rng(band: Band, geo: _Geometry) -> str:
    return format_range(band.low, band.high, geo.price)


def _where(band: Band) -> str:
    """"0.2% below" / "1.8% above" / "right at the price" from the band's nearer edge."""
    d = band.distance_pct
    if abs(d) < 0.05:
        return "starting right at the price"
    return f"{format_pct(abs(d))} {'below' if d < 0 else 'above'}"


def _near(band: Band) -> str:
    """"only 0.2% below the price" / "right at the price"."""
    d = band.distance_pct
    if abs(d) < 0.05:
        return "right at the price"
    return f"only {format_pct(abs(d))} {'below' if d < 0 else 'above'} the price"


def _cum_usd(m: LiquidationMap, side: Side, level: float) -> float:
    """Estimated USD of `side` between the price and `level` (longs below, shorts above)."""
    centers = m.profile.grid.centers()
    if side is Side.LONG:
        mask = (centers < m.price) & (centers >= level)
        values = m.profile.long_usd[mask]
    else:
        mask = (centers > m.price) & (centers <= level)
        values = m.profile.short_usd[mask]
    total = float(np.nansum(np.maximum(values, 0.0)))
    return total if math.isfinite(total) else 0.0


def _one_minute(m: LiquidationMap, geo: _Geometry) -> tuple[str, ...]:
    lines: list[str] = []
    change = m.context.price_change_pct_24h
    price_line = f"Price {format_price(m.price)}"
    if math.isfinite(change):
        price_line += f" ({format_pct(change, signed=True)} in 24h)"
    lines.append(price_line + ".")
    for side, band, span, word, limit in (
        (Side.SHORT, geo.above, geo.above_span_pct, "above", geo.grid_high),
        (Side.LONG, geo.below, geo.below_span_pct, "below", geo.grid_low),
    ):
        name = "Shorts above" if side is Side.SHORT else "Longs below"
        if band is None:
            lines.append(f"{name}: no clear pocket within {format_pct(span)} {word} "
                         f"(map ends at {_level(geo, limit)}).")
            continue
        lines.append(f"{name}: nearest pocket {_rng(band, geo)}, about {format_usd(band.usd)}, "
                     f"{_where(band)}.")
        larger = _larger_beyond(m, band)
        if larger is not None:
            lines.append(f"A larger {_WORD[side]} pocket sits further out at "
                         f"{_rng(larger, geo)} (about {format_usd(larger.usd)}, "
                         f"{_where(larger)}).")
    lines.append(_between(m, geo))
    return tuple(lines)


def _larger_beyond(m: LiquidationMap, band: Band) -> Band | None:
    """The largest pocket of the same side beyond `band` if it is at least twice as large."""
    beyond = [b for b in m.bands if b.side is band.side and b is not band
              and abs(b.distance_pct) > abs(band.distance_pct) and b.usd >= 2 * band.usd]
    return max(beyond, key=lambda b: b.usd) if beyond else None


def _between(m: LiquidationMap, geo: _Geometry) -> str:
    lo = geo.below.high if geo.below is not None else geo.grid_low
    hi = geo.above.low if geo.above is not None else geo.grid_high
    lo_text = _level(geo, lo)
    hi_text = _level(geo, hi)
    if geo.below is None and geo.above is None:
        return (f"Between {lo_text} and {hi_text} the map shows no clear pocket, so noise and "
                "other flows dominate.")
    small = [b for b in m.bands if b is not geo.below and b is not geo.above
             and lo <= (b.low + b.high) / 2 <= hi]
    if small:
        small.sort(key=lambda b: b.low)
        parts = ", ".join(f"{_rng(b, geo)} ({_WORD[b.side]}s, {format_usd(b.usd)})"
                          for b in small[:3])
        which = "smaller pockets lie" if len(small) > 1 else "a smaller pocket lies"
        return (f"Between {lo_text} and {hi_text} only {which} on the way: {parts}; "
                "otherwise noise dominates.")
    centers = m.profile.grid.centers()
    inside = (centers > lo) & (centers < hi)
    gap = float(np.nansum(np.maximum(m.profile.long_usd[inside], 0.0))
                + np.nansum(np.maximum(m.profile.short_usd[inside], 0.0)))
    pockets = [b.usd for b in (geo.below, geo.above) if b is not None]
    if not math.isfinite(gap) or gap < THIN_GAP_SHARE * min(pockets):
        return f"Between {lo_text} and {hi_text} the map is thin, so noise dominates."
    return (f"Between {lo_text} and {hi_text} about {format_usd(gap)} is spread thinly, "
            "so expect stop-and-go moves rather than a clean run.")


def _describe(band: Band, geo: _Geometry) -> str:
    return f"{_rng(band, geo)} ({format_usd(band.usd)}, {_where(band)})"


def _regime_lines(m: LiquidationMap, geo: _Geometry, regime: Regime) -> tuple[str, ...]:
    lines: list[str] = []
    if regime.kind is RegimeKind.JUST_SWEPT and regime.swept is not None:
        s = regime.swept
        if s.side is Side.LONG:
            what, spent, fade = "long", "forced selling", "a bounce back into"
        else:
            what, spent, fade = "short", "forced buying", "a pullback into"
        if s.low > m.price:
            rel = f"price is now {format_pct((s.low - m.price) / m.price * 100)} below it"
        elif s.high < m.price:
            rel = f"price is now {format_pct((m.price - s.high) / m.price * 100)} above it"
        else:
            rel = "price is still inside it"
        lines.append(f"Just swept: a {what} pocket at {_rng(s, geo)} (about {format_usd(s.usd)})"
                     f" was run through in the last few hours; {rel}.")
        lines.append(f"Fade risk: the {spent} from that pocket is used up, so the move that "
                     f"swept it can stall; watch for {fade} {_rng(s, geo)}.")
        if regime.below is not None or regime.above is not None:
            direction, detail = _lean(geo, regime)
            lead = f"the map leans {direction}" if direction else "the map is balanced"
            lines.append(f"Beyond the sweep, {lead}: {detail}")
    elif regime.kind is RegimeKind.NO_POCKETS:
        lines.append(f"No pockets: nothing clear within {format_pct(geo.below_span_pct)} below "
                     f"or {format_pct(geo.above_span_pct)} above, so the map gives no "
                     "liquidation target and other flows drive price.")
    else:
        direction, detail = _lean(geo, regime)
        if direction is None:
            lines.append(f"Between pockets: {detail}")
        else:
            shape = "asymmetric" if regime.pull_ratio is not None else "one-sided"
            lines.append(f"Magnet {direction} ({shape} map): {detail}")
    return tuple(lines)


def _lean(geo: _Geometry, regime: Regime) -> tuple[str | None, str]:
    """Direction of the lean ("up", "down" or None) and one sentence on the pulls behind it."""
    below, above = regime.below, regime.above
    if below is not None and above is not None and regime.pull_ratio is not None:
        ratio = f"{regime.pull_ratio:.1f}"
        if regime.lean is None:
            return None, (f"longs at {_describe(below, geo)} and shorts at "
                          f"{_describe(above, geo)} pull about equally (size for distance, "
                          f"ratio {ratio}), so chop between {_level(geo, below.high)} and "
                          f"{_level(geo, above.low)} is likely until one side breaks.")
        strong, weak = (below, above) if regime.lean is Side.LONG else (above, below)
        return ("down" if regime.lean is Side.LONG else "up"), (
            f"the {_WORD[strong.side]} pocket at {_describe(strong, geo)} pulls {ratio} times "
            f"as hard (size for distance) as the {_WORD[weak.side]} pocket at "
            f"{_describe(weak, geo)}.")
    if below is not None:
        return "down", (f"only long pockets are in view, the strongest at "
                        f"{_describe(below, geo)}, with no clear short pocket within "
                        f"{format_pct(geo.above_span_pct)} above.")
    if above is not None:
        return "up", (f"only short pockets are in view, the strongest at "
                      f"{_describe(above, geo)}, with no clear long pocket within "
                      f"{format_pct(geo.below_span_pct)} below.")
    return None, "no pockets on either side."


def _next_beyond(m: LiquidationMap, band: Band) -> Band | None:
    """The next meaningful pocket of the same side further out (any pocket if none is)."""
    further = [b for b in m.bands if b.side is band.side
               and abs(b.distance_pct) > abs(band.distance_pct) + 1e-9 and b is not band]
    if not further:
        return None
    largest = max(b.usd for b in m.bands if b.side is band.side)
    meaningful = [b for b in further if b.usd >= MEANINGFUL_SHARE * largest] or further
    return min(meaningful, key=lambda b: abs(b.distance_pct))


def _scenarios(m: LiquidationMap, geo: _Geometry) -> tuple[str, ...]:
    lines: list[str] = []
    for side in (Side.SHORT, Side.LONG):
        band = geo.above if side is Side.SHORT else geo.below
        up = side is Side.SHORT
        head = "Break up" if up else "Break down"
        if band is None:
            span = geo.above_span_pct if up else geo.below_span_pct
            lines.append(f"{head}: no clear {_WORD[side]} pocket within {format_pct(span)}, so a "
                         f"move {'up' if up else 'down'} has little forced "
                         f"{'buying' if up else 'selling'} to feed on and needs real "
                         f"{'demand' if up else 'supply'}. Confirms: sustained hourly closes "
                         f"{'higher' if up else 'lower'} with open interest rising.")
            continue
        far = band.high if up else band.low
        cum = _cum_usd(m, side, far)
        text = (f"{head}: through {_rng(band, geo)} would force an estimated "
                f"{format_usd(max(cum, band.usd))} of {_WORD[side]}s to "
                f"{'buy' if up else 'sell'} between here and {_level(geo, far)}; expect a "
                f"{'squeeze' if up else 'flush'}")
        nxt = _next_beyond(m, band)
        if nxt is not None:
            text += f", with the next pocket at {_rng(nxt, geo)} ({format_usd(nxt.usd)})"
        text += (f". Confirms: hourly closes {'above' if up else 'below'} {_level(geo, far)} "
                 f"with open interest dropping as {_WORD[side]}s are closed out.")
        lines.append(text)
    lo = geo.below.high if geo.below is not None else None
    hi = geo.above.low if geo.above is not None else None
    if lo is not None and hi is not None:
        lines.append(f"Range persists: price holds between {_level(geo, lo)} and "
                     f"{_level(geo, hi)}; expect chop while new leverage builds pockets on both "
                     f"sides. Confirms: no hourly close outside {_level(geo, lo)}–"
                     f"{_level(geo, hi)}.")
    elif lo is not None or hi is not None:
        edge = lo if lo is not None else hi
        assert edge is not None
        lines.append(f"Range persists: price stays {'above' if lo is not None else 'below'} "
                     f"{_level(geo, edge)} without trending; expect slow drift while pockets "
                     f"build. Confirms: no hourly close {'below' if lo is not None else 'above'} "
                     f"{_level(geo, edge)}.")
    else:
        lines.append("Range persists: with no pockets in view the map cannot define a range; "
                     "expect pockets to form around wherever price settles.")
    return tuple(lines)


def _context(m: LiquidationMap) -> tuple[str, ...]:
    c = m.context
    lines: list[str] = []
    if math.isfinite(c.funding_rate):
        annual = c.funding_rate * FUNDING_PERIODS_PER_YEAR * 100.0
        if abs(annual) < 5:
            mood = "about neutral"
        elif annual > 0:
            mood = ("longs pay shorts; longs look crowded, which adds fuel to a long flush"
                    if annual >= 30 else "longs pay shorts (mild long bias)")
        else:
            mood = ("shorts pay longs; shorts look crowded, which adds fuel to a squeeze"
                    if annual <= -15 else "shorts pay longs (mild short bias)")
        lines.append(f"Funding {format_rate(c.funding_rate)} per 8h (about "
                     f"{format_pct(annual, signed=True)} a year): {mood}.")
    oi_line = _oi_line(c.open_interest_usd, c.open_interest_change_pct_24h,
                       c.price_change_pct_24h)
    if oi_line:
        lines.append(oi_line)
    if math.isfinite(c.long_short_ratio) and c.long_short_ratio > 0:
        r = c.long_short_ratio
        lean = ("more accounts long than short" if r > 1.05 else
                "more accounts short than long" if r < 0.95 else "accounts about balanced")
        lines.append(f"Long/short account ratio {format_ratio(r)}: {lean}.")
    if len(m.venues) > 1:
        lines.append(f"Venues: {_venue_list(m.venues)} are modelled separately and summed; the "
                     "pockets above are the combined picture.")
    elif m.venues:
        lines.append(f"Venues: {_venue_list(m.venues)} only; positions on other venues are not "
                     "in this map, so treat sizes as a floor.")
    lines.append(_session(m.as_of_ms))
    return tuple(lines)


def _oi_line(oi: float, oi_change: float, price_change: float) -> str | None:
    has_oi = math.isfinite(oi) and oi > 0
    has_change = math.isfinite(oi_change)
    if not has_oi and not has_change:
        return None
    text = "Open interest"
    if has_oi:
        text += f" {format_usd(oi)}"
    if not has_change:
        return text + "."
    text += f", {format_pct(oi_change, signed=True)} in 24h"
    if abs(oi_change) < 1.0:
        return text + ", so leverage is about unchanged."
    if not math.isfinite(price_change) or abs(price_change) < 0.5:
        what = ("New positions are opening while price goes nowhere, so pockets are building"
                if oi_change > 0 else "Positions are being closed while price goes nowhere")
    elif oi_change > 0:
        what = ("Price and OI rose together: new longs are driving the move" if price_change > 0
                else "Price fell while OI rose: new shorts are pressing")
    else:
        what = ("Price rose while OI fell: shorts are covering (squeeze-driven)"
                if price_change > 0 else
                "Price and OI fell together: longs are closing or being liquidated")
    return f"{text}. {what}."


def _session(as_of_ms: int) -> str:
    when = datetime.fromtimestamp(as_of_ms / 1000, tz=UTC)
    h = when.hour
    if h < 7:
        name = "Asia hours; Europe opens around 07:00 UTC"
    elif h < 13:
        name = "Europe hours; US traders join from about 13:30 UTC"
    elif h < 16:
        name = "Europe/US overlap, usually the most liquid stretch"
    elif h < 21:
        name = "US hours"
    else:
        name = "late US hours, often thin until Asia opens"
    text = f"Session: {when:%A} {when:%H:%M} UTC, {name}."
    if when.weekday() >= 5:
        text += " Weekend books are thinner, so pockets can be run more easily."
    return text


def _venue_list(venues: tuple[Venue, ...]) -> str:
    names = [_VENUE_NAMES.get(v, str(v).title()) for v in venues]
    if not names:
        return "no venue"
    if len(names) == 1:
        return names[0]
    return ", ".join(names[:-1]) + " and " + names[-1]


def _risks(m: LiquidationMap, geo: _Geometry, regime: Regime, age_ms: int,
           stale: bool) -> tuple[str, ...]:
    when = datetime.fromtimestamp(m.as_of_ms / 1000, tz=UTC)
    lines = [
        "All levels are estimates modelled from open interest, price and an assumed leverage "
        "mix, not actual exchange positions; real liquidations are usually fewer.",
    ]
    ratio = size_to_oi(m)
    if math.isfinite(ratio) and ratio > OVERSIZE_RATIO:
        lines.append(f"Model sizes add up to {ratio:.1f} times the open interest covered "
                     f"({format_usd(m.context.open_interest_usd)}), which real positions cannot "
                     "do: read the USD figures as relative weight, not dollars.")
    if stale:
        data = (f"STALE DATA: as of {when:%Y-%m-%d %H:%M} UTC, {format_duration(age_ms)} old "
                f"({_venue_list(m.venues)}); treat every level as possibly out of date.")
    else:
        data = (f"Coverage: {_venue_list(m.venues)}; data as of {when:%Y-%m-%d %H:%M} UTC, "
                f"{format_duration(age_ms)} old.")
    lines.append(data)
    close = [b for b in (geo.below, geo.above) if b is not None and abs(b.distance_pct) < 0.3]
    if close:
        b = min(close, key=lambda x: abs(x.distance_pct))
        lines.append(f"The {_WORD[b.side]} pocket at {_rng(b, geo)} is {_near(b)}: "
                     "a single wick can trigger it.")
    if regime.swept is not None:
        lines.append("A pocket was just consumed, so fresh positions opened since then may not "
                     "be in the map yet.")
    lines.append("Pockets move as positions open and close; re-check the map before acting. "
                 "This is not advice.")
    return tuple(lines)


def _bottom_line(m: LiquidationMap, geo: _Geometry, regime: Regime, age_ms: int,
                 stale: bool) -> str:
    below, above = geo.below, geo.above
    if regime.kind is RegimeKind.JUST_SWEPT and regime.swept is not None:
        s = regime.swept
        flushed = "Longs" if s.side is Side.LONG else "Shorts"
        way = "downside" if s.side is Side.LONG else "upside"
        core = f"{flushed} at {_rng(s, geo)} were just flushed, so the move is at risk of fading"
        nxt = below if s.side is Side.LONG else above
        if nxt is not None:
            edge = nxt.low if s.side is Side.LONG else nxt.high
            core += (f"; wait for hourly closes {'below' if s.side is Side.LONG else 'above'} "
                     f"{_level(geo, edge)} before trusting more {way}")
    elif regime.kind is RegimeKind.NO_POCKETS:
        core = "no liquidation pockets in view, so this map gives no edge right now"
    elif regime.kind is RegimeKind.BETWEEN_POCKETS and below is not None and above is not None:
        core = (f"chop between {_level(geo, below.high)} and {_level(geo, above.low)} is the base "
                f"case; a break of {_rng(below, geo)} or {_rng(above, geo)} likely runs to the "
                "next pocket")
    elif regime.kind is RegimeKind.MAGNET_DOWN and regime.below is not None:
        core = (f"the map leans down toward longs at {_rng(regime.below, geo)} "
                f"({format_usd(regime.below.usd)})")
        if above is not None:
            core += f"; hourly closes above {_level(geo, above.low)} would undo that"
    elif regime.kind is RegimeKind.MAGNET_UP and regime.above is not None:
        core = (f"the map leans up toward shorts at {_rng(regime.above, geo)} "
                f"({format_usd(regime.above.usd)})")
        if below is not None:
            core += f"; hourly closes below {_level(geo, below.high)} would undo that"
    else:
        core = "the map gives no clear lean"
    tail = f"Estimates from {_venue_list(m.venues)}, data {format_duration(age_ms)} old"
    tail += " (STALE)." if stale else "."
    return f"{core[0].upper()}{core[1:]}. {tail}"
