"""The two real-data questions: hourly sweep test (Spearman vs baseline) and band hit test."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from engine.bands import DEFAULT_BAND_PARAMS, BandParams, find_bands
from engine.mapping import factors_for, profile_grid
from engine.model import Simulation, simulate
from engine.params import DEFAULT_PARAMS, ModelParams, nice_step
from engine.types import HOUR_MS, Band, Bars, FloatArray, LiquidationPrints, Side, Venue


def rankdata(values: FloatArray) -> FloatArray:
    """Ranks 1..n with ties averaged."""
    order = np.argsort(values, kind="mergesort")
    ranks = np.empty(values.size)
    sorted_vals = values[order]
    boundaries = np.flatnonzero(np.diff(sorted_vals) != 0) + 1
    starts = np.concatenate([[0], boundaries])
    ends = np.concatenate([boundaries, [values.size]])
    avg = (starts + ends + 1) / 2.0
    ranks[order] = np.repeat(avg, ends - starts)
    return ranks


def spearman(a: FloatArray, b: FloatArray) -> float:
    """Spearman rank correlation (NaN when either side is constant)."""
    ra, rb = rankdata(a), rankdata(b)
    ra -= ra.mean()
    rb -= rb.mean()
    denom = float(np.sqrt((ra * ra).sum() * (rb * rb).sum()))
    return float((ra * rb).sum() / denom) if denom > 0 else float("nan")


@dataclass(frozen=True, slots=True)
class SweepScore:
    """Spearman of predicted vs realized swept liquidations, longs and shorts."""

    long: float
    short: float
    hours: int


@dataclass(frozen=True, slots=True)
class SweepResult:
    """Model and baseline scores over all test hours and each half."""

    model: dict[str, SweepScore]
    baseline: dict[str, SweepScore]


@dataclass(frozen=True, slots=True, eq=False)
class SweepPredictions:
    """Per test hour: predicted swept USD (model, baseline) and realized USD."""

    hours: np.ndarray
    model_long: FloatArray
    model_short: FloatArray
    base_long: FloatArray
    base_short: FloatArray
    real_long: FloatArray
    real_short: FloatArray


def sweep_predictions(
    bars: Bars, params: ModelParams = DEFAULT_PARAMS, warmup_hours: int = 168,
    venue: Venue = Venue.BINANCE, base: str = "BTC",
) -> SweepPredictions:
    """Predictions for each hour t after warm-up, each from bars strictly before t.

    One simulation snapshots the state after every bar; a deposit appears in a snapshot only once
    the open interest that created it was known. This is the fast proxy used for fitting: it
    hides the churn opens of the bars after the last open-interest stamp, which a live rebuild
    shows at once, so it differs slightly from what the service serves — `served_predictions`
    rebuilds every hour exactly as the service does and is what `liqradar backtest` reports.
    """
    sim = sweep_simulation(bars, params, venue, base)
    hours = sweep_hours(bars, warmup_hours)
    prev = hours - 1
    o, lw, hg = bars.open[hours], bars.low[hours], bars.high[hours]
    model_long = mass_between(sim.long_usd[prev], sim.bin_lo, sim.step, lw, o)
    model_short = mass_between(sim.short_usd[prev], sim.bin_lo, sim.step, o, hg)
    oi = bars.open_interest_usd[prev]
    return SweepPredictions(
        hours=hours,
        model_long=model_long, model_short=model_short,
        base_long=oi * (o - lw) / o, base_short=oi * (hg - o) / o,
        real_long=bars.long_liquidations_usd[hours], real_short=bars.short_liquidations_usd[hours],
    )


def sweep_simulation(
    bars: Bars, params: ModelParams = DEFAULT_PARAMS, venue: Venue = Venue.BINANCE,
    base: str = "BTC",
) -> Simulation:
    """The fast sweep's model: one simulation over the whole file, a frame after every bar, on
    one bin grid wide enough for every price of the file (frame i = the map after bar i)."""
    step = nice_step(float(np.median(bars.close)), params.bin_bps)
    lo = int(np.floor(bars.low.min() * 0.8 / step))
    hi = int(np.ceil(bars.high.max() * 1.2 / step))
    long_f, short_f = factors_for(venue, base, params)
    return simulate(bars, params, long_f, short_f, step, bars.time + bars.interval_ms,
                    bin_range=(lo, hi))


def sweep_hours(bars: Bars, warmup_hours: int = 168) -> np.ndarray:
    """Indices of the test hours: every bar after the warm-up."""
    return np.arange(max(1, int(warmup_hours * HOUR_MS // bars.interval_ms)), len(bars))


def served_predictions(
    bars: Bars, params: ModelParams = DEFAULT_PARAMS, warmup_hours: int = 168,
    venue: Venue = Venue.BINANCE, base: str = "BTC", history_hours: int = 192,
) -> SweepPredictions:
    """Predictions for each hour t from a fresh rebuild on the `history_hours` before t.

    This is what the service serves at the start of hour t (it keeps a week of history; older
    positions have churned away), so its scores are the model's honest out-of-sample record.
    """
    keep = max(2, int(history_hours * HOUR_MS // bars.interval_ms))
    long_f, short_f = factors_for(venue, base, params)
    hours = sweep_hours(bars, warmup_hours)
    model_long = np.zeros(hours.size)
    model_short = np.zeros(hours.size)
    for j, t in enumerate(hours.tolist()):
        past = bars.slice(max(0, t - keep), t)
        price = float(past.close[-1])
        step = nice_step(price, params.bin_bps)
        bin_range = (int(np.floor(price * 0.75 / step)), int(np.ceil(price * 1.25 / step)))
        end = np.array([int(past.time[-1]) + past.interval_ms], dtype=np.int64)
        sim = simulate(past, params, long_f, short_f, step, end, bin_range=bin_range)
        o, lw, hg = (np.array([x]) for x in (bars.open[t], bars.low[t], bars.high[t]))
        model_long[j] = mass_between(sim.long_usd, sim.bin_lo, step, lw, o)[0]
        model_short[j] = mass_between(sim.short_usd, sim.bin_lo, step, o, hg)[0]
    prev = hours - 1
    o, lw, hg = bars.open[hours], bars.low[hours], bars.high[hours]
    oi = bars.open_interest_usd[prev]
    return SweepPredictions(
        hours=hours,
        model_long=model_long, model_short=model_short,
        base_long=oi * (o - lw) / o, base_short=oi * (hg - o) / o,
        real_long=bars.long_liquidations_usd[hours], real_short=bars.short_liquidations_usd[hours],
    )


def mass_between(
    usd: FloatArray, bin_lo: int, step: float, low: FloatArray, high: FloatArray
) -> FloatArray:
    """Row r's USD with price in [low[r], high[r]], bins read as uniform over their width.

    Bin j holds the levels in [(bin_lo + j − ½)·step, (bin_lo + j + ½)·step); a bin cut by an
    end of the interval counts with the covered fraction of its width, so a move smaller than a
    bin still sees the levels it crosses (counting whole bins by their centre put ~8 % of the
    hours at exactly zero).
    """
    rows = np.arange(usd.shape[0])
    cum = np.zeros((usd.shape[0], usd.shape[1] + 1))
    np.cumsum(usd, axis=1, out=cum[:, 1:])

    def at(price: FloatArray) -> FloatArray:
        pos = price / step - (bin_lo - 0.5)
        k = np.clip(np.floor(pos).astype(np.int64), 0, usd.shape[1] - 1)
        frac = np.clip(pos - k, 0.0, 1.0)
        return np.asarray(cum[rows, k] + frac * (cum[rows, k + 1] - cum[rows, k]), np.float64)

    return np.asarray(np.maximum(at(high) - at(low), 0.0), dtype=np.float64)


def score(pred: SweepPredictions) -> SweepResult:
    """Spearman per side for all hours, first half and second half."""
    m = pred.hours.size
    parts = {"all": slice(0, m), "first half": slice(0, m // 2), "second half": slice(m // 2, m)}
    model: dict[str, SweepScore] = {}
    base: dict[str, SweepScore] = {}
    for name, sl in parts.items():
        ok_l = np.isfinite(pred.real_long[sl])
        ok_s = np.isfinite(pred.real_short[sl])
        model[name] = SweepScore(
            spearman(pred.model_long[sl][ok_l], pred.real_long[sl][ok_l]),
            spearman(pred.model_short[sl][ok_s], pred.real_short[sl][ok_s]),
            int(sl.stop - sl.start))
        base[name] = SweepScore(
            spearman(pred.base_long[sl][ok_l], pred.real_long[sl][ok_l]),
            spearman(pred.base_short[sl][ok_s], pred.real_short[sl][ok_s]),
            int(sl.stop - sl.start))
    return SweepResult(model=model, baseline=base)


# OKX (like Binance) prints a liquidation at the position's bankruptcy price, which lies beyond
# the trigger level the map estimates by about the maintenance margin: OKX BTC-USDT-SWAP tier-1
# MMR is 0.4 %, so trigger ≈ bankruptcy · (1 + 0.004) for longs and · (1 − 0.004) for shorts.
# (Measured on the bench window: bankruptcy prints sit a median 34 bps beyond the 1m close, which
# agrees; the constant comes from the exchange's margin table, not from those prints.)
OKX_BANKRUPTCY_OFFSET = 0.004


@dataclass(frozen=True, slots=True)
class HitScore:
    """Band hit test for one side.

    capture: share of realized USD whose (trigger-adjusted) price lies inside a band of the side.
    coverage: the chance capture, i.e. the share of each hour's traded range [low, high] covered
    by the side's bands, averaged over hours with weights = that hour's realized USD (the same
    weighting as capture, so lift = capture / coverage is 1.0 for bands placed at random).
    coverage_hours: the plain mean over scored hours of that covered share (for reference).
    in_range: share of realized USD whose adjusted price lies inside the hour's traded range.
    """

    side: Side
    capture: float
    coverage: float
    lift: float
    events: int
    coverage_hours: float = float("nan")
    hours: int = 0
    in_range: float = float("nan")


def band_hit_test(
    bars: Bars, prints: LiquidationPrints, params: ModelParams = DEFAULT_PARAMS,
    venue: Venue = Venue.BINANCE, base: str = "BTC",
    bankruptcy_offset: float = OKX_BANKRUPTCY_OFFSET,
    band_params: BandParams = DEFAULT_BAND_PARAMS,
    hours: tuple[int, int] | None = None,
) -> tuple[HitScore, HitScore]:
    """For each realized liquidation, use the bands of the map as of the previous full hour.

    Print prices are bankruptcy prices; each is moved back to its estimated trigger level
    (long: p·(1 + offset), short: p·(1 − offset)) before it is compared with the bands, which
    are cut from trigger levels. Pass `bankruptcy_offset=0` to compare raw prints. `hours`
    = (start_ms, end_ms) scores only the hours starting in [start_ms, end_ms) (e.g. to tune
    band parameters on the first half of a window and report the second half separately).

    The map of hour h uses bars closing at or before h only. Open interest is stamped once an
    hour in the bench window, so positions opened by the open interest change of the hour
    before h are not known yet (their stamp arrives with bar h); the model still opens the
    churn share of open interest in those bars, i.e. it holds open interest flat until the stamp.
    """
    hour_starts = np.unique((prints.time // HOUR_MS) * HOUR_MS)
    if hours is not None:
        hour_starts = hour_starts[(hour_starts >= hours[0]) & (hour_starts < hours[1])]
    long_f, short_f = factors_for(venue, base, params)
    price = float(np.median(bars.close))
    step = nice_step(price, params.bin_bps)
    bands_at: dict[int, list[Band]] = {}
    for h in hour_starts:
        past = bars.until(int(h))
        if len(past) < 60:
            continue
        sim = simulate(past, params, long_f, short_f, step, np.array([int(h)], np.int64))
        grid, lu, su = profile_grid(sim, float(past.close[-1]), 0.06)
        bands_at[int(h)] = list(find_bands(grid, lu, su, float(past.close[-1]), band_params))
    result = []
    for side in (Side.LONG, Side.SHORT):
        sign = 1.0 if side is Side.LONG else -1.0
        captured = total = in_range = 0.0
        chance = 0.0
        coverage_sum = 0.0
        hours_scored = 0
        events = 0
        for h, all_bands in bands_at.items():
            bands = [b for b in all_bands if b.side is side]
            in_hour = (prints.time >= h) & (prints.time < h + HOUR_MS) & (
                prints.is_long == (side is Side.LONG))
            if not np.any(in_hour):
                continue
            hour_bars = bars.slice(
                int(np.searchsorted(bars.time, h)), int(np.searchsorted(bars.time, h + HOUR_MS)))
            if len(hour_bars) == 0:
                continue
            lo_p, hi_p = float(hour_bars.low.min()), float(hour_bars.high.max())
            p = prints.price[in_hour] * (1.0 + sign * bankruptcy_offset)
            usd = prints.usd[in_hour]
            inside = np.zeros(p.size, dtype=bool)
            cover = 0.0
            for band in bands:
                inside |= (p >= band.low) & (p <= band.high)
                cover += max(0.0, min(band.high, hi_p) - max(band.low, lo_p))
            share = min(1.0, cover / max(hi_p - lo_p, 1e-9))
            hour_usd = float(usd.sum())
            captured += float(usd[inside].sum())
            in_range += float(usd[(p >= lo_p) & (p <= hi_p)].sum())
            total += hour_usd
            chance += share * hour_usd
            coverage_sum += share
            hours_scored += 1
            events += int(in_hour.sum())
        capture = captured / total if total > 0 else float("nan")
        coverage = chance / total if total > 0 else float("nan")
        lift = capture / coverage if coverage > 0 else float("nan")
        result.append(HitScore(
            side, capture, coverage, lift, events,
            coverage_hours=coverage_sum / hours_scored if hours_scored else float("nan"),
            hours=hours_scored, in_range=in_range / total if total > 0 else float("nan")))
    return result[0], result[1]
