"""Liquidation heatmap images: arrays in, PNG bytes out (Pillow + numpy, no I/O, no clock).

One 1200×700 image per map:

- the heatmap: time on x, price on y, colour = estimated liquidation USD per price bin (longs +
  shorts) on a log scale whose top is pinned to open interest, so colours mean the same USD in
  every window and never silently rescale to the window's own maximum; the colour bar says so;
- the price path (close line over each column's high–low range) and the current price;
- the strongest pockets bracketed and labelled: longs (below the price) warm, shorts (above) cool;
- a side panel with cumulative estimated liquidations from the price outward (longs downwards,
  shorts upwards) and reading points ("to 67,600: $1.6B of longs");
- a footer badge: symbol, venues, window, "estimated", data time (UTC) and age.

Identical inputs give identical bytes: no clock is read and PNG encoding is deterministic.
"""

from __future__ import annotations

import io
import math
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import lru_cache

import numpy as np
import numpy.typing as npt
from PIL import Image, ImageDraw, ImageFont

from engine.brief import OVERSIZE_RATIO, size_to_oi
from engine.numbers import (
    format_duration,
    format_level,
    format_pct,
    format_price,
    format_range,
    format_usd,
    nice_floor,
    nice_round,
)
from engine.palette import RGB, Theme, theme_named, viridis_lut
from engine.types import (
    DAY_MS,
    HOUR_MS,
    Band,
    FloatArray,
    LiquidationMap,
    Side,
    Venue,
    Window,
)

WIDTH, HEIGHT = 1200, 700
DISPLAY_BIN_FRACTION = 0.0015
"""Colour shows USD within a price slice of about this fraction of price (0.15%), a round width."""
OI_TOP_SHARE = 0.05
"""Top of the colour scale: this share of open interest in one slice (rounded to 1-2-5)."""
SCALE_DECADES = 2
"""Decades the colour scale spans below its top; smaller values are drawn as empty."""
STALE_AFTER_MS = 30 * 60_000
"""Data older than this is flagged on the badge."""

_TIME_STEPS = {
    Window.H12: 2 * HOUR_MS,
    Window.H24: 4 * HOUR_MS,
    Window.D3: 12 * HOUR_MS,
    Window.D7: DAY_MS,
    Window.D30: 5 * DAY_MS,
}
_VENUE_NAMES = {Venue.BINANCE: "Binance", Venue.BYBIT: "Bybit", Venue.OKX: "OKX"}


@dataclass(frozen=True, slots=True)
class Box:
    """A pixel rectangle [x0, x1) × [y0, y1)."""

    x0: int
    y0: int
    x1: int
    y1: int

    @property
    def w(self) -> int:
        return self.x1 - self.x0

    @property
    def h(self) -> int:
        return self.y1 - self.y0


PLOT = Box(78, 70, 862, 604)
SIDE = Box(946, 70, 1186, 604)
BADGE = Box(12, 660, 1188, 692)
COLOURBAR = Box(600, 12, 862, 22)


@dataclass(frozen=True, slots=True)
class ColourScale:
    """Log colour scale: `bottom` to `top` USD per price slice of width `slice_width`."""

    top: float
    bottom: float
    basis: str
    slice_width: float
    slice_bins: int

    def index(self, usd: npt.ArrayLike) -> npt.NDArray[np.uint8]:
        """0 for values at or below `bottom`, 1..255 along the log scale up to `top` and above."""
        values = np.asarray(usd, dtype=np.float32)
        span = np.float32(254.0 / math.log10(self.top / self.bottom))
        with np.errstate(divide="ignore", invalid="ignore"):
            pos = np.log10(np.maximum(values, np.float32(1e-30)) / np.float32(self.bottom))
        pos *= span
        np.clip(pos, 0.0, 254.0, out=pos)
        idx = (np.rint(pos) + 1).astype(np.uint8)
        idx[~(values > self.bottom)] = 0
        return idx


def colour_scale(m: LiquidationMap) -> ColourScale:
    """Scale pinned to 5% of open interest per slice; to modelled positions when OI is unknown.

    The slice is a round price width near 0.15% of the price ($100 for BTC near 70,000) and
    depends only on the price and the grid step, so every window of a symbol uses the same
    slice and the same colours for the same USD.
    """
    step = m.heatmap.grid.step
    wanted = nice_round(m.price * DISPLAY_BIN_FRACTION) if m.price > 0 and math.isfinite(
        m.price) else step
    bins = max(1, round(wanted / step)) if step > 0 else 1
    oi = m.context.open_interest_usd
    share = f"{OI_TOP_SHARE * 100:g}%"
    if math.isfinite(oi) and oi > 0:
        top = nice_round(oi * OI_TOP_SHARE)
        basis = f"top ~{share} of open interest ({format_usd(oi)})"
    else:
        modelled = float(np.nansum(m.profile.long_usd) + np.nansum(m.profile.short_usd))
        if math.isfinite(modelled) and modelled > 0:
            top = nice_round(modelled * OI_TOP_SHARE)
            basis = f"OI unknown: top ~{share} of modelled positions"
        else:
            top = 1e6
            basis = "fixed absolute scale"
    return ColourScale(top=top, bottom=top / 10.0 ** SCALE_DECADES, basis=basis,
                       slice_width=bins * step, slice_bins=bins)


def slice_sums(usd: FloatArray, bins: int) -> FloatArray:
    """Moving sum over `bins` neighbouring price bins (last axis), same shape as `usd`."""
    if bins <= 1:
        return np.asarray(usd, dtype=np.float64)
    pad_lo = (bins - 1) // 2
    pad_hi = bins - 1 - pad_lo
    padded = np.pad(usd, [(0, 0)] * (usd.ndim - 1) + [(pad_lo + 1, pad_hi)])
    cs = np.cumsum(padded, axis=-1)
    return np.asarray(cs[..., bins:] - cs[..., :-bins], dtype=np.float64)


@lru_cache(maxsize=16)
def _font(size: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    return ImageFont.load_default(size=size)


@dataclass(frozen=True, slots=True)
class _PriceAxis:
    lo: float
    hi: float
    box: Box

    def y(self, price: float) -> float:
        return self.box.y1 - (price - self.lo) / (self.hi - self.lo) * self.box.h

    def ys(self, prices: FloatArray) -> FloatArray:
        return np.asarray(self.box.y1 - (prices - self.lo) / (self.hi - self.lo) * self.box.h,
                          dtype=np.float64)


@dataclass(frozen=True, slots=True)
class _TimeAxis:
    t0: int
    t1: int
    box: Box

    def x(self, t: float) -> float:
        span = max(self.t1 - self.t0, 1)
        return self.box.x0 + (t - self.t0) / span * self.box.w


class _Canvas:
    """Image, drawing context and theme, with the text helpers used everywhere."""

    def __init__(self, theme: Theme) -> None:
        self.theme = theme
        self.img = Image.new("RGB", (WIDTH, HEIGHT), theme.background)
        self.draw = ImageDraw.Draw(self.img)

    def text(self, xy: tuple[float, float], text: str, size: int = 13, fill: RGB | None = None,
             anchor: str = "la", bold: bool = False) -> None:
        """Draw text (bold = drawn twice, one pixel apart: the bundled font has one weight)."""
        font = _font(size)
        colour = self.theme.text if fill is None else fill
        self.draw.text(xy, text, font=font, fill=colour, anchor=anchor)
        if bold:
            self.draw.text((xy[0] + 1, xy[1]), text, font=font, fill=colour, anchor=anchor)

    def text_box(self, xy: tuple[float, float], text: str, size: int = 13,
                 fill: RGB | None = None, anchor: str = "la",
                 bold: bool = False) -> tuple[int, int, int, int]:
        """Draw text and return its bounding box (for laying out what follows it)."""
        self.text(xy, text, size, fill, anchor, bold)
        box = self.draw.textbbox(xy, text, font=_font(size), anchor=anchor)
        return (int(box[0]), int(box[1]), int(box[2]) + (1 if bold else 0), int(box[3]))

    def size(self, text: str, size: int = 13) -> tuple[int, int]:
        box = self.draw.textbbox((0, 0), text, font=_font(size), anchor="la")
        return int(box[2] - box[0]), int(box[3] - box[1])

    def label(self, xy: tuple[float, float], text: str, fill: RGB, size: int = 13,
              anchor: str = "lm", pad: int = 3, outline: RGB | None = None) -> None:
        """Text on a solid box so it stays readable over the heatmap."""
        box = self.draw.textbbox(xy, text, font=_font(size), anchor=anchor)
        self.draw.rectangle((box[0] - pad, box[1] - pad, box[2] + pad, box[3] + pad),
                            fill=self.theme.label_box, outline=outline)
        self.draw.text(xy, text, font=_font(size), fill=fill, anchor=anchor)

    def dashed_hline(self, y: float, x0: float, x1: float, fill: RGB, dash: int = 6,
                     gap: int = 4, width: int = 1) -> None:
        x = x0
        while x < x1:
            self.draw.line([(x, y), (min(x + dash, x1), y)], fill=fill, width=width)
            x += dash + gap


def render_heatmap(m: LiquidationMap, *, theme: str = "dark") -> bytes:
    """PNG bytes of the map's heatmap, pockets, cumulative side panel, legend and badge."""
    canvas = _Canvas(theme_named(theme))
    scale = colour_scale(m)
    prices = _price_axis(m)
    times = _time_axis(m)
    _draw_heatmap(canvas, m, scale, prices)
    _draw_price_ticks(canvas, prices)
    _draw_time_ticks(canvas, m.window, times)
    _draw_price_path(canvas, m, prices, times)
    _draw_bands(canvas, m, prices, times)
    _draw_current_price(canvas, m, prices)
    _draw_side_panel(canvas, m, prices)
    _draw_header(canvas, m, scale)
    _draw_key(canvas)
    _draw_badge(canvas, m)
    out = io.BytesIO()
    canvas.img.save(out, format="PNG", compress_level=1)
    return out.getvalue()


def _finite(values: FloatArray) -> FloatArray:
    return np.asarray(values[np.isfinite(values)], dtype=np.float64)


def _price_axis(m: LiquidationMap) -> _PriceAxis:
    """The grid's price range, widened to keep the price path and the current price in view."""
    grid = m.profile.grid
    lo, hi = grid.low, grid.low + grid.count * grid.step
    path = _finite(np.concatenate([m.heatmap.price_low, m.heatmap.price_high, [m.price]]))
    if path.size:
        pad = (hi - lo) * 0.01
        lo = min(lo, float(path.min()) - pad)
        hi = max(hi, float(path.max()) + pad)
    if not hi > lo:
        lo, hi = m.price * 0.95, m.price * 1.05
    return _PriceAxis(lo=lo, hi=hi, box=PLOT)


def _time_axis(m: LiquidationMap) -> _TimeAxis:
    t = m.heatmap.times
    if t.size >= 2:
        return _TimeAxis(t0=int(t[0] - (t[1] - t[0])), t1=int(t[-1]), box=PLOT)
    end = int(t[-1]) if t.size else m.as_of_ms
    return _TimeAxis(t0=end - m.window.ms, t1=end, box=PLOT)


def _draw_heatmap(canvas: _Canvas, m: LiquidationMap, scale: ColourScale,
                  prices: _PriceAxis) -> None:
    hm = m.heatmap
    draw = canvas.draw
    draw.rectangle((PLOT.x0, PLOT.y0, PLOT.x1 - 1, PLOT.y1 - 1), fill=canvas.theme.empty)
    if hm.times.size == 0 or hm.grid.count == 0:
        canvas.text(((PLOT.x0 + PLOT.x1) / 2, PLOT.y0 + 40), "no heatmap history yet", 14,
                    canvas.theme.muted, anchor="mm")
        return
    usd = np.nan_to_num(hm.long_usd + hm.short_usd, nan=0.0, posinf=0.0, neginf=0.0)
    usd = slice_sums(np.maximum(usd, 0.0), scale.slice_bins)
    grid = hm.grid
    top_y = prices.y(grid.low + grid.count * grid.step)
    bottom_y = prices.y(grid.low)
    y0, y1 = round(top_y), round(bottom_y)
    if y1 - y0 < 1:
        return
    # price bins × time columns, highest price first; mean USD per slice within each pixel
    field = np.ascontiguousarray(usd.T[::-1], dtype=np.float32)
    resized = Image.fromarray(field, mode="F").resize((PLOT.w, y1 - y0),
                                                      Image.Resampling.BOX)
    lut = np.vstack([np.asarray([canvas.theme.empty], dtype=np.uint8), viridis_lut(255)])
    tile = Image.fromarray(scale.index(np.asarray(resized)), mode="L")
    tile.putpalette(lut.tobytes())
    canvas.img.paste(tile.convert("RGB"), (PLOT.x0, y0))
    # areas outside the modelled grid are not "no liquidations": mark them as unmodelled
    for a, b in ((PLOT.y0, y0), (y1, PLOT.y1)):
        if b - a >= 2:
            draw.rectangle((PLOT.x0, a, PLOT.x1 - 1, b - 1), fill=canvas.theme.panel)
            canvas.text((PLOT.x0 + 6, (a + b) / 2), "outside modelled range", 11,
                        canvas.theme.muted, anchor="lm")
    # restore the frame in case the tile overlapped it
    draw.rectangle((PLOT.x0 - 1, PLOT.y0 - 1, PLOT.x1, PLOT.y1), outline=canvas.theme.grid)


def _nice_ceil(value: float) -> float:
    """The smallest 1, 2 or 5 × 10^k at or above a positive `value`."""
    step = nice_floor(value)
    for mult in (1.0, 2.0, 2.5, 5.0):
        if step * mult >= value * (1 - 1e-9):
            return step * mult
    return step * 10


def _tick_step(span: float, target: int) -> float:
    return nice_floor(span / target)


def _draw_price_ticks(canvas: _Canvas, prices: _PriceAxis) -> None:
    step = _tick_step(prices.hi - prices.lo, 9)
    first = math.ceil(prices.lo / step)
    last = math.floor(prices.hi / step)
    for k in range(first, last + 1):
        p = k * step
        y = prices.y(p)
        if y < PLOT.y0 + 6 or y > PLOT.y1 - 6:
            continue
        canvas.draw.line([(PLOT.x0 - 5, y), (PLOT.x0 - 1, y)], fill=canvas.theme.muted)
        canvas.text((PLOT.x0 - 8, y), format_level(p, step), 12, canvas.theme.muted, anchor="rm")
        canvas.draw.line([(SIDE.x0, y), (SIDE.x1 - 1, y)], fill=canvas.theme.panel)


def _time_label(t: int, step: int) -> str:
    when = datetime.fromtimestamp(t / 1000, tz=UTC)
    if step >= DAY_MS or (when.hour == 0 and when.minute == 0):
        return f"{when:%b} {when.day}"
    return f"{when:%H:%M}"


def _draw_time_ticks(canvas: _Canvas, window: Window, axis: _TimeAxis) -> None:
    step = _TIME_STEPS[window]
    span = axis.t1 - axis.t0
    while span / step > 8:
        step *= 2
    while span / step < 3 and step > HOUR_MS:
        step //= 2
    first = -(-axis.t0 // step) * step
    last_right = PLOT.x0 - 100
    for t in range(first, axis.t1 + 1, step):
        x = axis.x(t)
        if x < PLOT.x0 or x > PLOT.x1:
            continue
        text = _time_label(t, step)
        w, _ = canvas.size(text, 12)
        if x - w / 2 < last_right + 8 or x + w / 2 > SIDE.x0 - 10:
            continue
        canvas.draw.line([(x, PLOT.y1 + 1), (x, PLOT.y1 + 5)], fill=canvas.theme.muted)
        canvas.text((x, PLOT.y1 + 8), text, 12, canvas.theme.muted, anchor="mt")
        last_right = int(x + w / 2)
    canvas.text((PLOT.x1 + 24, PLOT.y1 + 8), "UTC", 12, canvas.theme.muted, anchor="lt")


def _draw_price_path(canvas: _Canvas, m: LiquidationMap, prices: _PriceAxis,
                     axis: _TimeAxis) -> None:
    hm = m.heatmap
    n = hm.times.size
    if n == 0:
        return
    draw = canvas.draw
    col_w = PLOT.w / n
    xs, hi_y, lo_y = _path_envelope(m, prices, axis)
    close_y = prices.ys(hm.price_close)
    wick_w = min(3, max(1, int(col_w * 0.6)))
    for x, a, b in zip(xs, hi_y, lo_y, strict=True):
        if math.isfinite(a) and math.isfinite(b):
            draw.line([(x, a), (x, b)], fill=canvas.theme.wick, width=wick_w)
    points = [(float(x), float(y)) for x, y in zip(xs, close_y, strict=True)
              if math.isfinite(y)]
    if len(points) >= 2:
        draw.line(points, fill=canvas.theme.price_halo, width=5, joint="curve")
        draw.line(points, fill=canvas.theme.price, width=2, joint="curve")


def _labelled_bands(m: LiquidationMap, prices: _PriceAxis) -> list[Band]:
    """Per side: the nearest pocket and the largest one (one band when they coincide)."""
    chosen: list[Band] = []
    for side in (Side.LONG, Side.SHORT):
        chosen += [b for b in _key_bands(m, side) if prices.lo <= (b.low + b.high) / 2 <= prices.hi]
    return chosen


def _spread(wanted: list[float], gap: float, lo: float, hi: float) -> list[float]:
    """Positions near `wanted` (sorted ascending) at least `gap` apart within [lo, hi]."""
    out: list[float] = []
    for w in wanted:
        y = max(w, lo, out[-1] + gap if out else lo)
        out.append(y)
    if out and out[-1] > hi:
        shift = out[-1] - hi
        out = [y - shift for y in out]
        for i in range(len(out) - 2, -1, -1):
            out[i] = min(out[i], out[i + 1] - gap)
    return out


def _side_colour(theme: Theme, side: Side) -> RGB:
    return theme.long if side is Side.LONG else theme.short


def _path_envelope(m: LiquidationMap, prices: _PriceAxis,
                   axis: _TimeAxis) -> tuple[FloatArray, FloatArray, FloatArray]:
    """Pixel x of each column with the y of its high and low (NaN where unknown)."""
    hm = m.heatmap
    if hm.times.size == 0:
        empty = np.zeros(0)
        return empty, empty, empty
    col_w = PLOT.w / hm.times.size
    xs = np.asarray([axis.x(float(t)) for t in hm.times], dtype=np.float64) - col_w / 2
    return xs, prices.ys(hm.price_high), prices.ys(hm.price_low)


def _hits_path(box: tuple[float, float, float, float],
               envelope: tuple[FloatArray, FloatArray, FloatArray]) -> bool:
    xs, hi_y, lo_y = envelope
    inside = (xs >= box[0] - 3) & (xs <= box[2] + 3)
    if not np.any(inside):
        return False
    top, bottom = hi_y[inside] - 3, lo_y[inside] + 3
    return bool(np.any((top <= box[3]) & (bottom >= box[1])))


def _draw_bands(canvas: _Canvas, m: LiquidationMap, prices: _PriceAxis,
                axis: _TimeAxis) -> None:
    """Bracket the key pockets at the right edge and label them, away from the price path."""
    bands = _labelled_bands(m, prices)
    if not bands:
        return
    theme = canvas.theme
    draw = canvas.draw
    bx = PLOT.x1 - 8
    for b in bands:
        colour = _side_colour(theme, b.side)
        ya = max(prices.y(b.high), PLOT.y0 + 1)
        yb = min(prices.y(b.low), PLOT.y1 - 2)
        yb = max(yb, ya + 2)
        draw.line([(bx, ya), (bx, yb)], fill=colour, width=3)
        draw.line([(bx - 6, ya), (bx + 1, ya)], fill=colour, width=2)
        draw.line([(bx - 6, yb), (bx + 1, yb)], fill=colour, width=2)
    order = sorted(bands, key=lambda b: prices.y((b.low + b.high) / 2))
    wanted = [prices.y((b.low + b.high) / 2) for b in order]
    placed = _spread(wanted, 22.0, PLOT.y0 + 12, PLOT.y1 - 12)
    envelope = _path_envelope(m, prices, axis)
    font = _font(13)
    for b, y, w in zip(order, placed, wanted, strict=True):
        colour = _side_colour(theme, b.side)
        word = "longs" if b.side is Side.LONG else "shorts"
        text = f"{word} {format_range(b.low, b.high, m.price, dash='-')}  {format_usd(b.usd)}"
        right = bx - 14
        box = draw.textbbox((right, y), text, font=font, anchor="rm")
        if _hits_path((box[0] - 3, box[1] - 3, box[2] + 3, box[3] + 3), envelope):
            # try further left along the same row: the price path often ends at the right edge
            for shift in (120, 240, 360, 480):
                x_try = right - shift
                cand = draw.textbbox((x_try, y), text, font=font, anchor="rm")
                if cand[0] < PLOT.x0 + 6:
                    break
                if not _hits_path((cand[0] - 3, cand[1] - 3, cand[2] + 3, cand[3] + 3),
                                  envelope):
                    right = x_try
                    break
        if right < bx - 14:
            # moved left along the row: a dotted level line leads back to the bracket
            x = right + 5.0
            while x < bx - 8:
                draw.line([(x, w), (min(x + 2, bx - 8), w)], fill=colour, width=1)
                x += 6
            if abs(y - w) > 1:
                draw.line([(right + 3, y), (right + 5, w)], fill=colour, width=1)
        elif abs(y - w) > 1:
            draw.line([(right + 3, y), (bx - 6, w)], fill=colour, width=1)
        canvas.label((right, y), text, colour, 13, anchor="rm", outline=colour)


def _draw_current_price(canvas: _Canvas, m: LiquidationMap, prices: _PriceAxis) -> None:
    if not math.isfinite(m.price):
        return
    y = prices.y(m.price)
    theme = canvas.theme
    canvas.dashed_hline(y, PLOT.x0, PLOT.x1, theme.price)
    canvas.dashed_hline(y, SIDE.x0, SIDE.x1, theme.muted, dash=3, gap=3)
    text = format_price(m.price)
    box = canvas.draw.textbbox((PLOT.x1 + 8, y), text, font=_font(13), anchor="lm")
    canvas.draw.polygon([(PLOT.x1 + 1, y), (PLOT.x1 + 6, box[1] - 3), (box[2] + 4, box[1] - 3),
                         (box[2] + 4, box[3] + 3), (PLOT.x1 + 6, box[3] + 3)],
                        fill=theme.price)
    canvas.draw.text((PLOT.x1 + 8, y), text, font=_font(13), fill=theme.price_halo,
                     anchor="lm")
    canvas.text((PLOT.x1 + 8, box[3] + 6), "price", 11, theme.muted, anchor="lt")


def _cumulative(m: LiquidationMap) -> tuple[FloatArray, FloatArray, FloatArray, FloatArray]:
    """Lower bin edges with cumulative longs (downward) and upper edges with cumulative shorts."""
    prof = m.profile
    grid = prof.grid
    centers = grid.centers()
    long_usd = np.nan_to_num(prof.long_usd, nan=0.0)
    short_usd = np.nan_to_num(prof.short_usd, nan=0.0)
    below = centers < m.price
    above = centers > m.price
    lower_edges = centers[below][::-1] - grid.step / 2
    cum_long = np.cumsum(np.maximum(long_usd[below][::-1], 0.0))
    upper_edges = centers[above] + grid.step / 2
    cum_short = np.cumsum(np.maximum(short_usd[above], 0.0))
    return lower_edges, cum_long, upper_edges, cum_short


def _cum_at(edges: FloatArray, cum: FloatArray, price: float, downward: bool) -> float:
    """Cumulative USD from the current price to `price`."""
    if edges.size == 0:
        return 0.0
    hit = edges >= price - 1e-9 if downward else edges <= price + 1e-9
    idx = np.flatnonzero(hit)
    return float(cum[idx[-1]]) if idx.size else 0.0


def _key_bands(m: LiquidationMap, side: Side) -> list[Band]:
    own = [b for b in m.bands if b.side is side and b.usd > 0]
    if not own:
        return []
    nearest = min(own, key=lambda b: abs(b.distance_pct))
    strongest = max(own, key=lambda b: b.usd)
    return [nearest] if strongest is nearest else [nearest, strongest]


def _draw_side_panel(canvas: _Canvas, m: LiquidationMap, prices: _PriceAxis) -> None:
    theme = canvas.theme
    draw = canvas.draw
    draw.rectangle((SIDE.x0, SIDE.y0, SIDE.x1 - 1, SIDE.y1 - 1), outline=theme.grid)
    lower, cum_long, upper, cum_short = _cumulative(m)
    peak = max(float(cum_long[-1]) if cum_long.size else 0.0,
               float(cum_short[-1]) if cum_short.size else 0.0)
    inner = Box(SIDE.x0 + 1, SIDE.y0 + 1, SIDE.x1 - 30, SIDE.y1 - 1)
    if peak > 0:
        step = _nice_ceil(peak / 4)
        xmax = math.ceil(peak / step) * step
    else:
        step, xmax = 1.0, 1.0

    def px(v: float) -> float:
        return inner.x0 + v / xmax * inner.w

    for k in range(1, round(xmax / step) + 1):
        x = px(k * step)
        draw.line([(x, SIDE.y0 + 1), (x, SIDE.y1 - 2)], fill=theme.panel)
    y_price = min(max(prices.y(m.price), SIDE.y0), SIDE.y1)
    for edges, cum, fill, line in ((lower, cum_long, theme.long_fill, theme.long),
                                   (upper, cum_short, theme.short_fill, theme.short)):
        if edges.size == 0:
            continue
        ys = np.clip(prices.ys(edges), SIDE.y0 + 1, SIDE.y1 - 2)
        xs = [px(float(v)) for v in cum]
        pts = [(float(inner.x0), y_price), *list(zip(xs, (float(y) for y in ys), strict=True))]
        poly = [*pts, (float(inner.x0), float(ys[-1]))]
        draw.polygon(poly, fill=fill)
        draw.line(pts, fill=line, width=2)
    # axis ticks under the panel
    for k in range(0, round(xmax / step) + 1):
        x = px(k * step)
        label = format_usd(k * step) if peak > 0 else ""
        draw.line([(x, SIDE.y1), (x, SIDE.y1 + 4)], fill=theme.muted)
        if label and (k == 0 or x < SIDE.x1 - 12):
            canvas.text((x, SIDE.y1 + 8), label, 12, theme.muted, anchor="mt")
    canvas.text((SIDE.x0, PLOT.y0 - 40), "Cumulative est. liquidations", 13, theme.text,
                bold=True)
    box = canvas.text_box((SIDE.x0, PLOT.y0 - 20), "from price:", 12, theme.muted)
    box = canvas.text_box((box[2] + 5, PLOT.y0 - 20), "shorts upward", 12, theme.short)
    box = canvas.text_box((box[2] + 1, PLOT.y0 - 20), ",", 12, theme.muted)
    canvas.text((box[2] + 5, PLOT.y0 - 20), "longs downward", 12, theme.long)
    _draw_reading_points(canvas, m, prices, lower, cum_long, upper, cum_short, px)


def _draw_reading_points(canvas: _Canvas, m: LiquidationMap, prices: _PriceAxis,
                         lower: FloatArray, cum_long: FloatArray, upper: FloatArray,
                         cum_short: FloatArray,
                         px: Callable[[float], float]) -> None:
    """Dots on the cumulative curves at the far edge of the key pockets, labelled beside them.

    Short labels sit just above their dot and long labels just below, from the panel's left
    edge, so a label never hides its dot.
    """
    theme = canvas.theme
    for side in (Side.SHORT, Side.LONG):
        points: list[tuple[float, float, str]] = []
        for band in _key_bands(m, side):
            level = band.low if side is Side.LONG else band.high
            y = prices.y(level)
            if not SIDE.y0 + 30 <= y <= SIDE.y1 - 30:
                continue
            if side is Side.LONG:
                usd = _cum_at(lower, cum_long, level, downward=True)
                word = "longs"
            else:
                usd = _cum_at(upper, cum_short, level, downward=False)
                word = "shorts"
            if usd <= 0:
                continue
            dist = (level - m.price) / m.price * 100.0
            text = (f"to {format_level(level, _level_res(m.price))} "
                    f"({format_pct(dist, signed=True)}): {format_usd(usd)} {word}")
            points.append((y, px(usd), text))
        points.sort()
        offset = -13.0 if side is Side.SHORT else 13.0
        placed = _spread([p[0] + offset for p in points], 20.0, SIDE.y0 + 14, SIDE.y1 - 14)
        colour = _side_colour(theme, side)
        for (y, x, text), ly in zip(points, placed, strict=True):
            canvas.draw.ellipse((x - 4, y - 4, x + 4, y + 4), fill=colour, outline=theme.text)
            canvas.label((SIDE.x0 + 6, ly), text, colour, 12, anchor="lm", pad=2)


def _level_res(price: float) -> float:
    """Rounding for reading points: about 0.05% of price."""
    return nice_floor(max(price * 5e-4, 1e-12))


def _draw_header(canvas: _Canvas, m: LiquidationMap, scale: ColourScale) -> None:
    theme = canvas.theme
    canvas.text((PLOT.x0 - 60, 10), f"{m.symbol}  estimated liquidation heatmap", 20,
                theme.text, bold=True)
    canvas.text((PLOT.x0 - 60, 40),
                f"{m.window.value} window  ·  colour: est. USD liquidated per "
                f"{_price_width(scale.slice_width)} of price (longs + shorts)", 13, theme.muted)
    bar = COLOURBAR
    lut = viridis_lut(bar.w)
    strip = np.broadcast_to(lut[None, :, :], (bar.h, bar.w, 3))
    canvas.img.paste(Image.fromarray(np.ascontiguousarray(strip), mode="RGB"), (bar.x0, bar.y0))
    canvas.draw.rectangle((bar.x0 - 1, bar.y0 - 1, bar.x1, bar.y1), outline=theme.grid)
    sw = (bar.x0 - 34, bar.y0, bar.x0 - 8, bar.y1 - 1)
    canvas.draw.rectangle(sw, fill=theme.empty, outline=theme.grid)
    canvas.text((sw[0] - 4, (bar.y0 + bar.y1) / 2), "less", 11, theme.muted, anchor="rm")
    for k in range(SCALE_DECADES + 1):
        x = bar.x0 + k / SCALE_DECADES * (bar.w - 1)
        usd = scale.bottom * 10.0 ** k
        text = format_usd(usd) + ("+" if k == SCALE_DECADES else "")
        canvas.draw.line([(x, bar.y1), (x, bar.y1 + 3)], fill=theme.muted)
        anchor = "rt" if k == SCALE_DECADES else ("lt" if k == 0 else "mt")
        canvas.text((x, bar.y1 + 5), text, 11, theme.muted, anchor=anchor)
    canvas.text((bar.x1, bar.y1 + 21), f"log scale, {scale.basis}", 11, theme.muted,
                anchor="rt")
    ratio = size_to_oi(m)
    if math.isfinite(ratio) and ratio > OVERSIZE_RATIO:
        canvas.text((bar.x1, bar.y1 + 34), f"model sizes add to {ratio:.1f}x OI: read as relative",
                    11, theme.warning, anchor="rt")
    else:
        canvas.text((bar.x1, bar.y1 + 34), "same scale in every window", 11, theme.muted,
                    anchor="rt")


def _price_width(width: float) -> str:
    """A price distance in quote currency: $100, $2.5, $0.0005."""
    text = f"{width:,.10f}".rstrip("0").rstrip(".")
    return "$" + text


def _draw_key(canvas: _Canvas) -> None:
    theme = canvas.theme
    y = PLOT.y1 + 34
    x = PLOT.x0
    canvas.draw.line([(x, y), (x + 22, y)], fill=theme.price_halo, width=5)
    canvas.draw.line([(x, y), (x + 22, y)], fill=theme.price, width=2)
    box = canvas.text_box((x + 28, y), "price (close)", 12, theme.muted, anchor="lm")
    x = box[2] + 18
    canvas.draw.line([(x + 4, y - 7), (x + 4, y + 7)], fill=theme.wick, width=2)
    box = canvas.text_box((x + 12, y), "high-low range", 12, theme.muted, anchor="lm")
    x = box[2] + 18
    for colour, text in ((theme.long, "long pocket (liquidated if price falls into it)"),
                         (theme.short, "short pocket (liquidated if price rises into it)")):
        canvas.draw.rectangle((x, y - 5, x + 10, y + 5), fill=colour)
        box = canvas.text_box((x + 16, y), text, 12, theme.muted, anchor="lm")
        x = box[2] + 18


def _venues(venues: tuple[Venue, ...]) -> str:
    names = [_VENUE_NAMES.get(v, str(v).title()) for v in venues]
    return " + ".join(names) if names else "no venue"


def _draw_badge(canvas: _Canvas, m: LiquidationMap) -> None:
    theme = canvas.theme
    stale = m.data_age_ms > STALE_AFTER_MS
    canvas.draw.rounded_rectangle((BADGE.x0, BADGE.y0, BADGE.x1, BADGE.y1), radius=8,
                                  fill=theme.badge,
                                  outline=theme.warning if stale else theme.grid,
                                  width=2 if stale else 1)
    when = datetime.fromtimestamp(m.as_of_ms / 1000, tz=UTC)
    age = format_duration(m.data_age_ms)
    parts = [m.symbol, _venues(m.venues), f"{m.window.value} window",
             f"data {when:%Y-%m-%d %H:%M} UTC"]
    y = (BADGE.y0 + BADGE.y1) / 2
    box = canvas.text_box((BADGE.x0 + 12, y), "ESTIMATED", 13, theme.warning, anchor="lm",
                      bold=True)
    box = canvas.text_box((box[2] + 10, y), "  ·  ".join(parts) + "  · ", 13, theme.badge_text,
                      anchor="lm")
    age_text = f"STALE: {age} old" if stale else f"age {age}"
    canvas.text((box[2] + 5, y), age_text, 13, theme.warning if stale else theme.badge_text,
                anchor="lm", bold=stale)
    canvas.text((BADGE.x1 - 12, y), "model: OI + price + assumed leverage, not positions",
                12, theme.muted, anchor="rm")
