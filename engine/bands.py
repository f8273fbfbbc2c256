"""Bands: pockets of estimated liquidations, longs below the price and shorts above."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from engine.types import Band, FloatArray, PriceGrid, Side


@dataclass(frozen=True, slots=True)
class BandParams:
    """How pockets are cut out of a profile.

    - smooth_pct: Gaussian σ (fraction of price) of the density pockets are cut from.
    - background_pct: Gaussian σ (fraction of price) of the smooth background the pockets must
      stand above (0 = no background: cut the smoothed profile itself). The profile is a smooth
      ramp (the diffuse layer and the bulk of the event layer grow with distance) with local
      structure on top; only the structure is a pocket. The default σ is one hourly standard
      deviation of BTC returns (≈0.5 %): structure narrower than an hour's typical move.
    - edge_ratio: a pocket grows from its peak while the density stays ≥ edge_ratio × peak.
    - min_share: smallest pocket, as a share of the side's (excess) USD.
    - max_per_side: most pockets per side.
    """

    smooth_pct: float = 0.0015
    background_pct: float = 0.005
    edge_ratio: float = 0.7
    min_share: float = 0.04
    max_per_side: int = 5


DEFAULT_BAND_PARAMS = BandParams()


def smooth(values: FloatArray, sigma_bins: float) -> FloatArray:
    """Gaussian smoothing with reflecting edges (sigma in bins)."""
    if sigma_bins < 0.5 or values.size < 3:
        return values.astype(np.float64, copy=True)
    radius = int(np.ceil(3 * sigma_bins))
    x = np.arange(-radius, radius + 1)
    kernel = np.exp(-0.5 * (x / sigma_bins) ** 2)
    kernel /= kernel.sum()
    padded = np.pad(values, radius, mode="reflect" if values.size > radius else "edge")
    return np.asarray(np.convolve(padded, kernel, mode="valid"), dtype=np.float64)


def find_bands(
    grid: PriceGrid,
    long_usd: FloatArray,
    short_usd: FloatArray,
    price: float,
    params: BandParams = DEFAULT_BAND_PARAMS,
) -> tuple[Band, ...]:
    """Cut pockets from a profile: peaks of the density's excess over its smooth background,
    grown to `edge_ratio` × peak.

    Per side, density = the profile smoothed at `smooth_pct`; background = the profile smoothed
    at `background_pct` (wider); pockets are cut from max(density − background, 0) and must
    hold `min_share` of the side's excess USD. A band's `usd` is the profile's USD inside it;
    strength is that USD relative to the largest band on either side (1.0 = strongest).
    """
    centers = grid.centers()
    sigma = params.smooth_pct * price / grid.step
    raw: list[tuple[Side, float, float, float, float]] = []
    for side, values, mask in (
        (Side.LONG, long_usd, centers < price),
        (Side.SHORT, short_usd, centers > price),
    ):
        side_values = np.where(mask, values, 0.0)
        total = float(side_values.sum())
        if total <= 0:
            continue
        dens = smooth(side_values, sigma)
        weight = side_values
        if params.background_pct > 0:
            background = smooth(side_values, params.background_pct * price / grid.step)
            dens = np.maximum(dens - background, 0.0)
            weight = np.maximum(side_values - background, 0.0)
            total = float(weight.sum())
            if total <= 0:
                continue
        raw += _pockets(side, centers, grid.step, side_values, weight, dens, total, price,
                        params)
    if not raw:
        return ()
    top = max(r[4] for r in raw)
    bands = [
        Band(side=side, low=lo, high=hi, peak=peak, usd=usd,
             distance_pct=_distance_pct(side, lo, hi, price), strength=usd / top)
        for side, lo, hi, peak, usd in raw
    ]
    bands.sort(key=lambda b: (b.side != Side.LONG, abs(b.distance_pct)))
    return tuple(bands)


def _distance_pct(side: Side, low: float, high: float, price: float) -> float:
    """Signed distance in % from the price to the band's nearer edge (negative = below)."""
    edge = high if side is Side.LONG else low
    return (edge - price) / price * 100.0


def _pockets(
    side: Side,
    centers: FloatArray,
    step: float,
    values: FloatArray,
    weight: FloatArray,
    dens: FloatArray,
    total: float,
    price: float,
    params: BandParams,
) -> list[tuple[Side, float, float, float, float]]:
    """Greedy peak extraction: take the highest remaining peak, grow it, mask it, repeat.

    `weight` (the excess USD per bin) decides `min_share` against `total`; the band's USD is
    the sum of `values` (the profile) inside it.
    """
    taken = np.zeros(values.size, dtype=bool)
    found: list[tuple[Side, float, float, float, float]] = []
    work = dens.copy()
    tries = 0
    while len(found) < params.max_per_side and tries < params.max_per_side * 3:
        work[taken] = 0.0
        i = int(np.argmax(work))
        peak_val = work[i]
        if peak_val <= 0:
            break
        if _mark_shoulder(i, dens, taken):
            continue
        tries += 1
        limit = peak_val * params.edge_ratio
        lo = i
        while lo > 0 and not taken[lo - 1] and dens[lo - 1] >= limit:
            lo -= 1
        hi = i
        while hi < values.size - 1 and not taken[hi + 1] and dens[hi + 1] >= limit:
            hi += 1
        taken[lo:hi + 1] = True
        if float(weight[lo:hi + 1].sum()) < params.min_share * total:
            continue
        usd = float(values[lo:hi + 1].sum())
        low_p = float(centers[lo] - step / 2)
        high_p = float(centers[hi] + step / 2)
        if side is Side.LONG:
            high_p = min(high_p, price)
        else:
            low_p = max(low_p, price)
        found.append((side, low_p, high_p, float(centers[i]), usd))
    return found


def _mark_shoulder(i: int, dens: FloatArray, taken: np.ndarray) -> bool:
    """Mark the slope below a taken pocket's edge as taken, if bin i starts one.

    Bin i is a shoulder when a taken neighbour is at least as dense: it is the flank of a pocket
    already cut, not a peak of its own (cutting it gave a second band flush against the first).
    The flank runs away from the pocket while the density keeps falling, so a real peak beyond
    the valley stays free.
    """
    n = dens.size
    left = i > 0 and bool(taken[i - 1]) and dens[i - 1] >= dens[i]
    right = i < n - 1 and bool(taken[i + 1]) and dens[i + 1] >= dens[i]
    if not (left or right):
        return False
    taken[i] = True
    if left and right:
        return True
    step = 1 if left else -1
    j = i
    while 0 <= j + step < n and not taken[j + step] and dens[j + step] <= dens[j]:
        j += step
        taken[j] = True
    return True
