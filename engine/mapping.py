"""Build a LiquidationMap for one symbol from per-venue bars: model, sum venues, cut bands."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from engine.bands import DEFAULT_BAND_PARAMS, BandParams, find_bands
from engine.formulas import default_tiers, liquidation_factors
from engine.frame_terms import CAP_SPAN
from engine.model import Simulation, frame_ends_for, simulate
from engine.params import DEFAULT_PARAMS, ModelParams, nice_step
from engine.types import (
    DAY_MS,
    HOUR_MS,
    Band,
    Bars,
    FloatArray,
    Heatmap,
    LiquidationMap,
    LiquidationPrints,
    MarketContext,
    PriceGrid,
    Profile,
    Side,
    Venue,
    Window,
)

# Half-height of the displayed price range, as a fraction of price, per window.
DISPLAY_SPAN = {
    Window.H12: 0.05, Window.H24: 0.07, Window.D3: 0.10, Window.D7: 0.15, Window.D30: 0.25,
}
# Longer windows show a wider price range on the same image height: coarser bins lose nothing
# visible (a 30d map still has more bins than the plot has pixel rows) and cost less.
WINDOW_BIN_SCALE = {Window.H12: 1, Window.H24: 1, Window.D3: 1, Window.D7: 2, Window.D30: 4}
SWEPT_LOOKBACK_MS = 4 * HOUR_MS
# Bankruptcy price -> trigger level: about the tier-1 maintenance margin (0.4 %).
BANKRUPTCY_OFFSET = 0.004


def factors_for(venue: Venue, base: str, params: ModelParams) -> tuple[FloatArray, FloatArray]:
    """Liquidation price / entry for each leverage of the mix, longs and shorts, on one venue."""
    formula_venue = Venue.BINANCE if venue is Venue.BINANCE else Venue.BYBIT
    tiers = default_tiers(venue, base)
    return (
        liquidation_factors(formula_venue, Side.LONG, params.leverages, params.position_notional,
                            tiers),
        liquidation_factors(formula_venue, Side.SHORT, params.leverages, params.position_notional,
                            tiers),
    )


def sum_simulations(sims: list[Simulation]) -> Simulation:
    """Add venue simulations that share step and frame ends onto one bin range."""
    if len(sims) == 1:
        return sims[0]
    lo = min(s.bin_lo for s in sims)
    hi = max(s.bin_lo + s.bin_count - 1 for s in sims)
    k = sims[0].frame_ends.shape[0]
    arrays = [np.zeros((k, hi - lo + 1)) for _ in range(4)]
    for s in sims:
        off = s.bin_lo - lo
        cols = slice(off, off + s.bin_count)
        for acc, part in zip(arrays, (s.long_usd, s.short_usd, s.long_consumed, s.short_consumed),
                             strict=True):
            acc[:, cols] += part
    return Simulation(
        step=sims[0].step, bin_lo=lo, frame_ends=sims[0].frame_ends,
        long_usd=arrays[0], short_usd=arrays[1], long_consumed=arrays[2],
        short_consumed=arrays[3], added_usd=sum(s.added_usd for s in sims),
        closed_usd=sum(s.closed_usd for s in sims),
    )


def profile_grid(
    sim: Simulation, price: float, span: float, frame: int = -1
) -> tuple[PriceGrid, FloatArray, FloatArray]:
    """The chosen frame's profile cut to price·(1 ± span), on an output grid centred on levels."""
    lo_bin = int(np.floor(price * (1 - span) / sim.step))
    hi_bin = int(np.ceil(price * (1 + span) / sim.step))
    count = hi_bin - lo_bin + 1
    long_usd = _cut(sim.long_usd[frame], sim.bin_lo, lo_bin, count)
    short_usd = _cut(sim.short_usd[frame], sim.bin_lo, lo_bin, count)
    grid = PriceGrid(low=(lo_bin - 0.5) * sim.step, step=sim.step, count=count)
    return grid, long_usd, short_usd


def _cut(values: FloatArray, src_lo: int, dst_lo: int, count: int) -> FloatArray:
    """values (indexed from src_lo) re-indexed to [dst_lo, dst_lo + count), zero outside."""
    out = np.zeros(count)
    a = max(src_lo, dst_lo)
    b = min(src_lo + values.shape[-1], dst_lo + count)
    if b > a:
        out[a - dst_lo:b - dst_lo] = values[..., a - src_lo:b - src_lo]
    return out


def _cut2(values: FloatArray, src_lo: int, dst_lo: int, count: int) -> FloatArray:
    out = np.zeros((values.shape[0], count))
    a = max(src_lo, dst_lo)
    b = min(src_lo + values.shape[1], dst_lo + count)
    if b > a:
        out[:, a - dst_lo:b - dst_lo] = values[:, a - src_lo:b - src_lo]
    return out


def build_map(
    symbol: str,
    bars_by_venue: Mapping[Venue, Bars],
    window: Window = Window.H24,
    *,
    as_of_ms: int | None = None,
    prints: Mapping[Venue, LiquidationPrints] | None = None,
    params: ModelParams = DEFAULT_PARAMS,
    band_params: BandParams = DEFAULT_BAND_PARAMS,
    columns: int = 288,
    now_ms: int | None = None,
    skip_forgotten: bool = True,
) -> LiquidationMap:
    """The estimated liquidation map of `symbol` as of `as_of_ms` (default: last bar close).

    Bars after `as_of_ms` are ignored, so a past instant sees no later data. Venues are modelled
    separately on one price grid and summed. `skip_forgotten` drops bars older than the
    model's memory horizon before the window (their positions weigh under a millionth).
    """
    base = base_asset(symbol)
    cut: dict[Venue, Bars] = {}
    for venue, bars in bars_by_venue.items():
        kept = bars.until(as_of_ms) if as_of_ms is not None else bars
        if len(kept) >= 2:
            cut[venue] = kept
    if not cut:
        raise ValueError(f"not enough data for {symbol}: need at least two closed bars")
    last_close_ms = max(int(b.time[-1] + b.interval_ms) for b in cut.values())
    as_of = last_close_ms if as_of_ms is None else min(as_of_ms, last_close_ms)
    if skip_forgotten:
        cut = _within_memory(cut, as_of - window.ms, params)
    primary = next(iter(cut.values()))
    price = float(primary.close[-1])
    step = nice_step(price, params.bin_bps * WINDOW_BIN_SCALE[window])
    frame_ends = frame_ends_for(primary, as_of, window.ms, columns)
    # The map only reads the frames inside the window, and of those only bins near their prices:
    # the display range and the open interest cap's window (±CAP_SPAN) around each frame's price
    # (frames scale independently; bins never interact). Modelling those bins alone gives the
    # same map for a fraction of the work.
    reach = max(DISPLAY_SPAN[window], CAP_SPAN)
    seen = [b.slice(int(np.searchsorted(b.time, as_of - window.ms - 2 * b.interval_ms)),
                    len(b)) for b in cut.values()]
    low = min(float(b.low.min()) for b in seen if len(b))
    high = max(float(b.high.max()) for b in seen if len(b))
    bin_range = (int(np.floor(min(low, price) * (1 - reach) / step)) - 1,
                 int(np.ceil(max(high, price) * (1 + reach) / step)) + 1)
    sims = []
    for venue, bars in cut.items():
        long_f, short_f = factors_for(venue, base, params)
        venue_prints = prints.get(venue) if prints else None
        sims.append(simulate(bars, params, long_f, short_f, step, frame_ends, venue_prints,
                             bin_range))
    sim = sum_simulations(sims)
    span = DISPLAY_SPAN[window]
    grid, long_usd, short_usd = profile_grid(sim, price, span)
    bands = find_bands(grid, long_usd, short_usd, price, band_params)
    heatmap = _heatmap(sim, primary, grid, as_of - window.ms)
    swept = _swept(sim, grid, price, as_of, band_params, _merged_prints(prints, cut))
    context = market_context(cut)
    return LiquidationMap(
        symbol=symbol.upper(), as_of_ms=as_of, price=price, venues=tuple(cut),
        window=window, profile=Profile(grid, long_usd, short_usd), heatmap=heatmap,
        bands=bands, context=context,
        data_age_ms=max(0, (now_ms if now_ms is not None else as_of) - last_close_ms),
        swept=swept,
    )


def _within_memory(
    bars_by_venue: dict[Venue, Bars], window_start_ms: int, params: ModelParams
) -> dict[Venue, Bars]:
    """Drop bars older than the window start minus the model's memory horizon (and a day for
    the 24h context): churn has closed all but a millionth of what they opened."""
    hours = params.memory_horizon_hours()
    if hours is None:
        return bars_by_venue
    start = window_start_ms - int(max(hours, 25.0) * HOUR_MS)
    out = {}
    for venue, bars in bars_by_venue.items():
        first = int(np.searchsorted(bars.time, start, side="left"))
        out[venue] = bars if first == 0 else bars.slice(first, len(bars))
    return out


def _heatmap(sim: Simulation, bars: Bars, grid: PriceGrid, start_ms: int) -> Heatmap:
    """Window frames on the display grid, with the price path per frame."""
    lo_bin = round(grid.low / grid.step + 0.5)
    first = int(np.searchsorted(sim.frame_ends, start_ms, side="right"))
    ends = sim.frame_ends[first:]
    long_usd = _cut2(sim.long_usd[first:], sim.bin_lo, lo_bin, grid.count)
    short_usd = _cut2(sim.short_usd[first:], sim.bin_lo, lo_bin, grid.count)
    closes = bars.time + bars.interval_ms
    idx = np.searchsorted(closes, ends, side="right") - 1
    starts = np.concatenate([[start_ms], ends[:-1]])
    sidx = np.searchsorted(closes, starts, side="right")
    close = bars.close[np.maximum(idx, 0)]
    high = np.empty(ends.size)
    low = np.empty(ends.size)
    for k in range(ends.size):  # columns, not bars: a few hundred iterations at most
        a, b = int(sidx[k]), int(idx[k]) + 1
        if b > a:
            high[k] = bars.high[a:b].max()
            low[k] = bars.low[a:b].min()
        else:
            high[k] = low[k] = close[k]
    return Heatmap(grid=grid, times=ends, long_usd=long_usd, short_usd=short_usd,
                   price_close=close, price_high=high, price_low=low)


def _swept(
    sim: Simulation, grid: PriceGrid, price: float, as_of: int, band_params: BandParams,
    prints: LiquidationPrints | None = None,
) -> tuple[Band, ...]:
    """Pockets consumed by the price path in the last hours (recaps and "just swept" regime)."""
    recent = sim.frame_ends > as_of - SWEPT_LOOKBACK_MS
    if not np.any(recent):
        return ()
    lo_bin = round(grid.low / grid.step + 0.5)
    long_c = _cut(sim.long_consumed[recent].sum(axis=0), sim.bin_lo, lo_bin, grid.count)
    short_c = _cut(sim.short_consumed[recent].sum(axis=0), sim.bin_lo, lo_bin, grid.count)
    centers = grid.centers()
    # Consumed longs lie above the current price after a drop, so cut both sides around nothing.
    bands = find_bands(grid, long_c * 1.0, np.zeros_like(short_c), centers[-1] + grid.step,
                       band_params)
    bands += find_bands(grid, np.zeros_like(long_c), short_c * 1.0, centers[0] - grid.step,
                        band_params)
    return tuple(_redistance(b, price, _realized_in(b, prints, as_of)) for b in bands)


def _redistance(band: Band, price: float, realized_usd: float | None = None) -> Band:
    edge = band.high if band.side is Side.LONG else band.low
    return Band(side=band.side, low=band.low, high=band.high, peak=band.peak, usd=band.usd,
                distance_pct=(edge - price) / price * 100.0, strength=band.strength,
                realized_usd=realized_usd)


def _merged_prints(
    prints: Mapping[Venue, LiquidationPrints] | None, venues: Mapping[Venue, Bars]
) -> LiquidationPrints | None:
    """Prints of the venues in the map, as one time-ordered set (None when there are none)."""
    parts = [p for v, p in (prints or {}).items() if v in venues and len(p)]
    if not parts:
        return None
    order = np.argsort(np.concatenate([p.time for p in parts]), kind="stable")
    return LiquidationPrints(
        time=np.concatenate([p.time for p in parts])[order],
        price=np.concatenate([p.price for p in parts])[order],
        usd=np.concatenate([p.usd for p in parts])[order],
        is_long=np.concatenate([p.is_long for p in parts])[order],
    )


def _realized_in(band: Band, prints: LiquidationPrints | None, as_of: int) -> float | None:
    """Realized USD printed in the band over the swept lookback, or None without prints.

    Prints carry bankruptcy prices, which lie beyond the trigger level by about the maintenance
    margin, so they are moved back by BANKRUPTCY_OFFSET before being compared with the band.
    """
    if prints is None:
        return None
    is_long = band.side is Side.LONG
    trigger = prints.price * (1.0 + BANKRUPTCY_OFFSET if is_long else 1.0 - BANKRUPTCY_OFFSET)
    hit = ((prints.time > as_of - SWEPT_LOOKBACK_MS) & (prints.time <= as_of)
           & (prints.is_long == is_long) & (trigger >= band.low) & (trigger <= band.high))
    return float(prints.usd[hit].sum())


def market_context(bars_by_venue: Mapping[Venue, Bars]) -> MarketContext:
    """Funding, open interest and its 24h change, long/short ratio and 24h price change."""
    funding, oi, oi_prev, ratio = [], 0.0, 0.0, []
    price_change = float("nan")
    for bars in bars_by_venue.values():
        f = _last_finite(bars.funding_rate)
        if np.isfinite(f):
            funding.append(f)
        r = _last_finite(bars.long_short_ratio)
        if np.isfinite(r):
            ratio.append(r)
        now_oi = _last_finite(bars.open_interest_usd)
        day_ago = bars.until(int(bars.time[-1] + bars.interval_ms - DAY_MS))
        prev_oi = _last_finite(day_ago.open_interest_usd) if len(day_ago) else float("nan")
        if np.isfinite(now_oi):
            oi += now_oi
            if np.isfinite(prev_oi):
                oi_prev += prev_oi
        if not np.isfinite(price_change) and len(day_ago):
            price_change = (bars.close[-1] / day_ago.close[-1] - 1.0) * 100.0
    return MarketContext(
        funding_rate=float(np.mean(funding)) if funding else float("nan"),
        open_interest_usd=oi if oi > 0 else float("nan"),
        open_interest_change_pct_24h=(oi / oi_prev - 1) * 100 if oi_prev > 0 else float("nan"),
        long_short_ratio=float(np.mean(ratio)) if ratio else float("nan"),
        price_change_pct_24h=float(price_change),
    )


def _last_finite(values: FloatArray) -> float:
    idx = np.flatnonzero(np.isfinite(values))
    return float(values[idx[-1]]) if idx.size else float("nan")


def base_asset(symbol: str) -> str:
    """`BTC` from `BTC`, `BTCUSDT`, `BTC-USDT-SWAP` or `btc/usdt`."""
    s = symbol.upper().replace("/", "-")
    s = s.split("-")[0]
    for quote in ("USDT", "USDC", "USD"):
        if s.endswith(quote) and len(s) > len(quote):
            return s[: -len(quote)]
    return s
