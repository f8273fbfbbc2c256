"""Frame-level terms layered on the event-sourced layer: diffuse positions, intensity, OI cap.

Each depends only on a frame's last closed bar (its close, open interest and EWMAs of realized
liquidations up to it), so `engine.incremental` recomputes them from O(1) carried state.
"""

from __future__ import annotations

from dataclasses import dataclass
from math import lgamma

import numpy as np

from engine.params import ModelParams
from engine.types import HOUR_MS, Bars, FloatArray, IntArray

CAP_SPAN = 0.15  # price window (±) over which a side's USD is held to open interest


def cap_to_open_interest(
    bars: Bars, last_bar: IntArray, cap: float, step: float, bin_lo: int,
    *sides: tuple[FloatArray, FloatArray],
) -> None:
    """Scale frames in place so no side holds more than `cap` × the frame's open interest.

    The total is taken within ±CAP_SPAN of the frame's price, so it does not depend on how wide
    a caller's bin range is (a backtest's range must not leak later prices into earlier frames).
    """
    has = last_bar >= 0
    idx = np.maximum(last_bar, 0)
    oi = np.where(has, bars.open_interest_usd[idx], np.nan)
    ref = np.where(has, bars.close[idx], 0.0)
    for alive, consumed in sides:
        nb = alive.shape[1]
        lo = np.clip(np.floor(ref * (1 - CAP_SPAN) / step).astype(np.int64) - bin_lo, 0, nb)
        hi = np.clip(np.ceil(ref * (1 + CAP_SPAN) / step).astype(np.int64) - bin_lo + 1, 0, nb)
        total = np.array([alive[k, a:b].sum() for k, (a, b) in
                          enumerate(zip(lo.tolist(), hi.tolist(), strict=True))])
        with np.errstate(divide="ignore", invalid="ignore"):
            factor = np.where(np.isfinite(oi) & (total > cap * oi), cap * oi / total, 1.0)
        scale_rows(alive, factor)
        scale_rows(consumed, factor)


def scale_rows(table: FloatArray, factor: FloatArray) -> None:
    """table[k] *= factor[k] in place, touching only the rows whose factor is not 1."""
    rows = np.flatnonzero(factor != 1.0)
    if rows.size == factor.size:
        table *= factor[:, None]
    elif rows.size:
        table[rows] *= factor[rows, None]


@dataclass(frozen=True, slots=True, eq=False)
class FrameTerms:
    """Per-frame terms added to / multiplied onto the event-sourced layer, per side.

    Final map of frame k: intensity[k] · (event_layer[k] + diffuse[k]). `diffuse` is K × nb on
    the simulation's bins; `intensity` has one value per frame.
    """

    long_diffuse: FloatArray
    short_diffuse: FloatArray
    long_intensity: FloatArray
    short_intensity: FloatArray


def frame_terms(
    bars: Bars, params: ModelParams, last_bar: IntArray, step: float, bin_lo: int, nb: int
) -> FrameTerms:
    """Diffuse layer and intensity of each frame, from the frame's last closed bar only.

    `last_bar[k]` is the index of the last bar closing at or before frame k's end (−1: none).
    Both terms depend on that bar's state alone (close, open interest, and EWMAs over bars up to
    it), so an incremental updater recomputes them from O(1) carried state per bar.
    """
    has = last_bar >= 0
    idx = np.maximum(last_bar, 0)
    if len(bars) == 0:
        ref = np.full(last_bar.shape, np.nan)
        oi = np.full(last_bar.shape, np.nan)
    else:
        ref = np.where(has, bars.close[idx], np.nan)
        oi = np.where(has, bars.open_interest_usd[idx], np.nan)
    sides = []
    for is_long in (True, False):
        layer = diffuse_layer(ref, oi, step, bin_lo, nb, params, is_long)
        scale = intensity(bars, params, is_long)
        frame_scale = np.where(has, scale[idx], 1.0) if len(bars) else np.ones(last_bar.shape)
        sides.append((layer, frame_scale))
    (ld, li), (sd, si) = sides
    return FrameTerms(long_diffuse=ld, short_diffuse=sd, long_intensity=li, short_intensity=si)


def diffuse_layer(
    ref: FloatArray, oi: FloatArray, step: float, bin_lo: int, nb: int, params: ModelParams,
    is_long: bool,
) -> FloatArray:
    """Positions whose levels cannot be pinned (cross margin, added margin, unseen entries).

    `diffuse_share` × open interest per side, re-centred on each frame's last close `ref`: the
    relative distance d of a level beyond the price (below it for longs, above for shorts) has a
    gamma density d^(a−1)·e^(−d/s) / (Γ(a)·s^a) with a = `diffuse_shape`, s = `diffuse_scale`,
    truncated at `max_distance`. Bin j (price (bin_lo + j)·step) gets density(d_j) × step/ref.
    Frames without a finite open interest or reference get zero. Returns K × nb USD.
    """
    k_count = ref.shape[0]
    out = np.zeros((k_count, nb))
    if params.diffuse_share <= 0 or k_count == 0 or nb == 0:
        return out
    ok = np.isfinite(ref) & np.isfinite(oi) & (oi > 0) & (ref > 0)
    if not np.any(ok):
        return out
    rows = np.flatnonzero(ok)
    r = ref[rows][:, None]
    # Only a window of bins per frame can lie within max_distance of its reference price.
    near, far = (1.0 - params.max_distance, 1.0) if is_long else (1.0, 1.0 + params.max_distance)
    first = np.clip(np.floor(ref[rows] * near / step).astype(np.int64) - bin_lo - 1, 0, nb)
    last = np.clip(np.ceil(ref[rows] * far / step).astype(np.int64) - bin_lo + 2, 0, nb)
    width = int((last - first).max())
    if width <= 0:
        return out
    price = ((bin_lo + first)[:, None] + np.arange(width)[None, :]).astype(np.float64) * step
    d = (1.0 - price / r) if is_long else (price / r - 1.0)
    a, s = params.diffuse_shape, params.diffuse_scale
    inside = (d > 0) & (d <= params.max_distance)
    dd = np.where(inside, d, 1.0)
    log_norm = float(np.log(s) * a + lgamma(a))
    if a == 2.0:  # the fitted shape: d·e^(−d/s) without a log per bin
        dens = np.where(inside, dd * np.exp(-dd / s - log_norm), 0.0)
    else:
        dens = np.where(inside, np.exp((a - 1.0) * np.log(dd) - dd / s - log_norm), 0.0)
    vals = params.diffuse_share * oi[rows][:, None] * dens * (step / r)
    for k, row in enumerate(rows.tolist()):  # frames, not bars: contiguous row slices
        lo_k, hi_k = int(first[k]), int(last[k])
        out[row, lo_k:hi_k] = vals[k, :hi_k - lo_k]
    return out


def intensity(bars: Bars, params: ModelParams, is_long: bool) -> FloatArray:
    """Calibration of the map's USD scale by realized liquidations of past bars, per bar.

    Realized liquidations are persistent: a market that has just liquidated a side is crowded
    and fragile on that side. With R = EWMA (half-life `intensity_half_life_hours`) of the side's
    realized liquidation USD per hour over bars with a known value (plus `intensity_cross` × the
    other side's: cascades in one direction signal fragility in both), and OI the bar's open
    interest, the factor is ((R/OI + floor) / (ref + floor))^gamma with floor =
    `intensity_floor` and ref = `intensity_ref` (shares of open interest per hour). The value
    at bar i uses bars ≤ i only. Factor 1 where nothing is known or gamma = 0.
    """
    n = len(bars)
    if params.intensity_gamma == 0 or n == 0:
        return np.ones(n)
    own = bars.long_liquidations_usd if is_long else bars.short_liquidations_usd
    other = bars.short_liquidations_usd if is_long else bars.long_liquidations_usd
    known = np.isfinite(own)
    realized = own + params.intensity_cross * np.where(np.isfinite(other), other, 0.0)
    if not np.any(known):
        return np.ones(n)
    per_hour = HOUR_MS / bars.interval_ms
    hl_bars = max(params.intensity_half_life_hours * per_hour, 1e-6)
    total = ewma(np.where(known, realized * per_hour, 0.0), hl_bars)
    weight = ewma(known.astype(np.float64), hl_bars)
    oi = bars.open_interest_usd
    ok = (weight > 1e-12) & np.isfinite(oi) & (oi > 0)
    with np.errstate(divide="ignore", invalid="ignore"):
        rate = np.where(ok, total / np.where(ok, weight * oi, 1.0), 0.0)
        ratio = (rate + params.intensity_floor) / (params.intensity_ref + params.intensity_floor)
        factor = np.where(ok, ratio ** params.intensity_gamma, 1.0)
    return np.asarray(factor, dtype=np.float64)


def ewma(values: FloatArray, half_life: float) -> FloatArray:
    """s_i = s_(i−1) + α·(x_i − s_(i−1)), s_(−1) = 0, α = 1 − 2^(−1/half_life) (in samples).

    Vectorised in chunks short enough that the rescaling powers stay finite.
    """
    x = np.asarray(values, dtype=np.float64)
    n = x.shape[0]
    out = np.empty(n)
    alpha = 1.0 - 0.5 ** (1.0 / half_life)
    if alpha >= 1.0:
        out[:] = x
        return out
    log_keep = np.log1p(-alpha)  # < 0
    chunk = max(1, int(300.0 / -log_keep))
    state = 0.0
    for start in range(0, n, chunk):  # n / chunk iterations, not one per bar
        seg = x[start:start + chunk]
        j = np.arange(seg.shape[0], dtype=np.float64)
        grow = np.exp(-log_keep * j)  # keep^(−j)
        acc = np.cumsum(seg * grow)
        keep_i = np.exp(log_keep * j)
        res = keep_i * (state * np.exp(log_keep) + alpha * acc)
        out[start:start + seg.shape[0]] = res
        state = float(res[-1])
    return out
