"""Event-sourced position model, vectorised: open interest opens positions, price consumes them.

Every bar with rising open interest (plus a churn share of the open interest) opens positions at
prices spread over the bar's range, split long/short and over a leverage mix. Each position's
liquidation level comes from the exchange formula and is snapped to a price grid of absolute bins
(bin b sits at price b·step). A long level is consumed by the first later bar whose low reaches
it (a short by a high), or by a realized liquidation print near it; falling open interest closes
positions proportionally. Instead of stepping bar by bar, the rebuild drops deposits consumed
inside their own frame (before their open interest is known), sums the rest per (frame, bin) in
cache-sized chunks and carries them through the frames in one loop over frames (not bars), so a
month of 1-minute bars takes tens of milliseconds.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import numpy.typing as npt

from engine.frame_terms import cap_to_open_interest, frame_terms, scale_rows
from engine.params import ModelParams
from engine.types import HOUR_MS, Bars, FloatArray, IntArray, LiquidationPrints

_LOG_CLIP = 700.0
FINE_BAR_MS = 60_000  # bars this short get a single entry price (see entry_points_for)


@dataclass(frozen=True, slots=True, eq=False)
class Flows:
    """Per-bar position flows derived from open interest: opens (USD at entry) and survival."""

    opens_contracts: FloatArray
    log_survival: FloatArray
    long_share: FloatArray
    known_bar: IntArray


@dataclass(frozen=True, slots=True, eq=False)
class Deposits:
    """Positions opened by the bars: bar index, absolute level bin and USD, per side."""

    bar: IntArray
    bin: IntArray
    usd: FloatArray


@dataclass(frozen=True, slots=True, eq=False)
class Simulation:
    """Frames of alive liquidation USD per absolute bin, for one venue or summed over venues.

    `long_usd[k, j]` is the USD of open longs whose level is bin `bin_lo + j` after frame k.
    """

    step: float
    bin_lo: int
    frame_ends: IntArray
    long_usd: FloatArray
    short_usd: FloatArray
    long_consumed: FloatArray
    short_consumed: FloatArray
    added_usd: float
    closed_usd: float

    @property
    def bin_count(self) -> int:
        """Number of bins in the arrays."""
        return int(self.long_usd.shape[1])


def flows(bars: Bars, params: ModelParams) -> Flows:
    """Open interest stamps -> contracts opened per bar and log survival of existing positions."""
    n = len(bars)
    oi = bars.open_interest_usd
    finite = np.isfinite(oi)
    prev = np.concatenate([[np.nan], oi[:-1]])
    stamps = np.flatnonzero(finite & ~(prev == oi))
    contracts = np.zeros(n)
    dq = np.zeros(n)
    level = np.zeros(n)
    # A bar's opens are known once the open interest stamp that closes its segment is known.
    known = np.arange(n, dtype=np.int64)
    if stamps.size:
        c = oi[stamps] / bars.open[stamps]
        level[:] = c[0]
        if stamps.size > 1:
            span = slice(int(stamps[0]), int(stamps[-1]))
            lengths = np.diff(stamps)
            seg = np.repeat(np.arange(stamps.size - 1), lengths)  # segment of each span bar
            vol = bars.volume[span]
            w = np.where(np.isfinite(vol) & (vol > 0), vol, 0.0)
            seg_sum = np.bincount(seg, weights=w, minlength=stamps.size)[seg]
            seg_len = lengths.astype(np.float64)[seg]
            use_vol = seg_sum > 0
            share = np.where(use_vol, w / np.where(use_vol, seg_sum, 1),
                             1.0 / np.maximum(seg_len, 1))
            delta = np.diff(c)
            dq[span] = delta[seg] * share
            level[span] = np.repeat(c[:-1], lengths)
            known[span] = np.repeat(stamps[1:], lengths)
            level[stamps[-1]:] = c[-1]
        contracts = level
    bar_hours = bars.interval_ms / HOUR_MS
    churn = min(0.5, params.turnover_per_hour * bar_hours)
    with np.errstate(divide="ignore", invalid="ignore"):
        close_frac = np.where((dq < 0) & (contracts > 0), -dq / contracts, 0.0)
    survival = np.clip(1.0 - close_frac, 1e-12, 1.0) * (1.0 - churn)
    opens = np.maximum(dq, 0.0) + churn * contracts
    return Flows(opens_contracts=opens, log_survival=np.log(survival),
                 long_share=long_share(bars), known_bar=known)


def long_share(bars: Bars) -> FloatArray:
    """Share of a bar's new leveraged positions taken long, in [0, 1].

    Taker-buy share of volume where known; else the long/short account ratio; else the candle's
    body direction; funding nudges the last fallback (positive funding = longs crowding in).
    """
    vol, buy = bars.volume, bars.taker_buy_volume
    with np.errstate(divide="ignore", invalid="ignore"):
        taker = np.where(np.isfinite(buy) & np.isfinite(vol) & (vol > 0), buy / vol, np.nan)
        ratio = bars.long_short_ratio
        ratio_share = np.where(np.isfinite(ratio) & (ratio > 0), ratio / (1 + ratio), np.nan)
        rng = bars.high - bars.low
        body = np.where(rng > 0, (bars.close - bars.open) / rng, 0.0)
    funding = np.where(np.isfinite(bars.funding_rate), bars.funding_rate, 0.0)
    candle = 0.5 + 0.25 * body + np.clip(funding * 500.0, -0.1, 0.1)
    share = np.where(np.isfinite(taker), taker, np.where(np.isfinite(ratio_share), ratio_share,
                                                          candle))
    return np.asarray(np.clip(share, 0.0, 1.0), dtype=np.float64)


def entry_prices(bars: Bars, points: int) -> FloatArray:
    """Entry prices per bar (n × points), spread evenly over each bar's range."""
    if points == 1:
        return ((bars.high + bars.low + bars.close) / 3.0)[:, None]
    q = (np.arange(points) + 0.5) / points
    return bars.low[:, None] + (bars.high - bars.low)[:, None] * q[None, :]


def entry_points_for(interval_ms: int, params: ModelParams) -> int:
    """Entry points per bar: one for bars of a minute or less, whose range is about one price
    bin (spreading entries across it moved no result on the one-minute bench window), else
    `params.entry_points`."""
    return 1 if interval_ms <= FINE_BAR_MS else params.entry_points


@dataclass(frozen=True, slots=True, eq=False)
class DepositGrid:
    """Positions opened on one side, as a grid: active bar × entry point × level factor.

    Deposit (i, p, l) opens `usd_bar[i]·entries[i, p]·weights[l]` USD at `entries[i, p]` (bar
    `active[i]`) with its liquidation level at `entries[i, p]·factors[l]`.
    """

    active: IntArray
    entries: FloatArray
    usd_bar: FloatArray
    factors: FloatArray
    weights: FloatArray

    @property
    def size(self) -> int:
        """Number of deposits."""
        return int(self.entries.size * self.factors.size)

    def bins(self, step: float) -> IntArray:
        """Absolute level bins as an (l, i·p) array: row l is factor l over the flat entries."""
        levels = (self.factors / step)[:, None] * self.entries.reshape(1, -1)
        np.rint(levels, out=levels)
        return levels.astype(np.int64)

    def usd(self) -> FloatArray:
        """USD at entry of each deposit, laid out like `bins`."""
        base = (self.usd_bar[:, None] * self.entries).reshape(1, -1)
        return np.asarray(self.weights[:, None] * base, dtype=np.float64)

    def bin_bounds(self, step: float) -> tuple[int, int]:
        """Lowest and highest bin of any deposit (levels rise with entry and with factor)."""
        lo = np.rint(float(np.min(self.entries[:, 0])) * float(np.min(self.factors / step)))
        hi = np.rint(float(np.max(self.entries[:, -1])) * float(np.max(self.factors / step)))
        return int(lo), int(hi)


def deposit_grid(
    bars: Bars, fl: Flows, params: ModelParams, factors: FloatArray, is_long: bool
) -> DepositGrid:
    """Positions opened per bar on one side: bars with opens × entry points × kept levels."""
    points = entry_points_for(bars.interval_ms, params)
    entries = entry_prices(bars, points)
    tilt = params.side_skew * (2.0 * fl.long_share - 1.0)
    side_mult = 1.0 + tilt if is_long else 1.0 - tilt
    usd_bar = fl.opens_contracts * side_mult / points
    active = np.flatnonzero(usd_bar > 0)
    factors, weights = spread_levels(factors, params.weights(), params.level_spread,
                                     params.spread_nodes)
    keep = (np.abs(factors - 1.0) <= params.max_distance) & (factors > 0) & (weights > 0)
    f, w = factors[keep], weights[keep]
    if f.size == 0:
        active = active[:0]
    return DepositGrid(active=active, entries=entries[active], usd_bar=usd_bar[active],
                       factors=f, weights=w)


def deposits(
    bars: Bars,
    fl: Flows,
    params: ModelParams,
    factors: FloatArray,
    step: float,
    is_long: bool,
) -> Deposits:
    """Positions opened per bar on one side, as (bar, absolute bin, USD at entry)."""
    grid = deposit_grid(bars, fl, params, factors, is_long)
    if grid.size == 0:
        return Deposits(np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0))
    bins = grid.bins(step)
    bar = np.broadcast_to(np.repeat(grid.active, grid.entries.shape[1])[None, :], bins.shape)
    return Deposits(bar=bar.ravel().copy(), bin=bins.ravel(), usd=grid.usd().ravel())


def spread_levels(
    factors: FloatArray, weights: FloatArray, spread: float, nodes: int
) -> tuple[FloatArray, FloatArray]:
    """Margin noise: each leverage's liquidation distance |1 − f| becomes lognormal.

    A position's distance to its level varies with the margin actually posted, fees and the
    tier, so every factor f is replaced by `nodes` Gauss–Hermite points
    f_i = 1 − (1 − f)·exp(spread·z_i) with weights w·q_i (Σ q_i = 1). spread = 0 (or nodes = 1)
    returns the inputs unchanged. Factor order: leverage-major, node-minor.
    """
    f = np.asarray(factors, dtype=np.float64)
    w = np.asarray(weights, dtype=np.float64)
    if spread <= 0 or nodes <= 1:
        return f, w
    z, q = _gauss_hermite(nodes)
    spread_f = 1.0 - (1.0 - f)[:, None] * np.exp(spread * z)[None, :]
    spread_w = w[:, None] * q[None, :]
    return spread_f.ravel(), spread_w.ravel()


@lru_cache(maxsize=16)
def _gauss_hermite(nodes: int) -> tuple[FloatArray, FloatArray]:
    """Probabilists' Gauss–Hermite nodes and weights normalised to sum to one (cached: the
    incremental model asks for them on every bar)."""
    z, q = np.polynomial.hermite_e.hermegauss(nodes)
    z.setflags(write=False)
    q = q / q.sum()
    q.setflags(write=False)
    return z, q


def _segment_suffix_min(values: IntArray, block: IntArray, fill: int) -> IntArray:
    """min(values[i+1 .. end of i's block]) for each i; `fill` where the block has no later bar."""
    n = values.shape[0]
    if n == 0:
        return values.copy()
    nxt = np.empty(n, dtype=np.int64)
    nxt[:-1] = values[1:]
    nxt[-1] = fill
    same = np.empty(n, dtype=bool)
    same[:-1] = block[1:] == block[:-1]
    same[-1] = False
    nxt = np.where(same, nxt, fill)
    # Reverse cumulative min that restarts at each block: later blocks are lifted by a larger
    # offset, so walking backwards into an earlier block always starts a fresh minimum.
    span = int(fill) + 1
    offset = block.astype(np.int64) * span
    lifted = (nxt + offset)[::-1]
    run = np.minimum.accumulate(lifted)[::-1]
    return np.asarray(run - offset, dtype=np.int64)


@dataclass(frozen=True, slots=True, eq=False)
class EventLayer:
    """One side of the event-sourced layer over K frames, on bins bin_lo .. bin_lo + nb − 1.

    `alive` and `consumed` are K × nb USD (open after / liquidated during each frame).
    `open_end` (still consumable) and `residual_end` (kept at consumed levels when
    consume_share < 1) are the last frame's state. `hidden_end` maps a block ≥ K to the USD per
    bin (same units) of deposits that only become known in that block and were not reached by
    any bar so far.
    """

    alive: FloatArray
    consumed: FloatArray
    added: float
    open_end: FloatArray
    residual_end: FloatArray
    hidden_end: dict[int, FloatArray]


def print_cover(
    prints: LiquidationPrints | None,
    bars: Bars,
    step: float,
    bin_lo: int,
    nb: int,
    is_long: bool,
    tolerance: float,
) -> tuple[IntArray, npt.NDArray[np.bool_]] | None:
    """Bars with realized liquidation prints of one side (sorted) and the bins they cover.

    A print at price p covers bins floor(p·(1 − tol)/step) .. ceil(p·(1 + tol)/step); the table
    holds one row per print bar over bins bin_lo .. bin_lo + nb − 1. None when there are none.
    """
    if prints is None or len(prints) == 0 or len(bars) == 0:
        return None
    sel = prints.is_long == is_long
    t, p = prints.time[sel], prints.price[sel]
    bar = np.searchsorted(bars.time, t, side="right") - 1
    ok = (bar >= 0) & (bar < len(bars)) & (t < bars.time[np.maximum(bar, 0)] + bars.interval_ms)
    lo = np.clip(np.floor(p * (1 - tolerance) / step).astype(np.int64) - bin_lo, 0, nb)
    hi = np.clip(np.ceil(p * (1 + tolerance) / step).astype(np.int64) - bin_lo, -1, nb - 1)
    ok &= lo <= hi
    if not np.any(ok):
        return None
    bar, lo, hi = bar[ok], lo[ok], hi[ok]
    uniq, row = np.unique(bar, return_inverse=True)
    marks = np.zeros((uniq.size, nb + 1), dtype=np.int64)
    np.add.at(marks, (row, lo), 1)
    np.add.at(marks, (row, hi + 1), -1)
    return uniq.astype(np.int64), np.cumsum(marks, axis=1)[:, :nb] > 0


def _range_min(values: IntArray, lo: IntArray, hi: IntArray, empty: int) -> IntArray:
    """min(values[lo[i] .. hi[i]]) for each i (`empty` where lo > hi), by a sparse table."""
    out = np.full(lo.shape, empty, dtype=np.int64)
    ok = lo <= hi
    if not np.any(ok) or values.size == 0:
        return out
    lo, hi = lo[ok], hi[ok]
    length = hi - lo + 1
    level = np.floor(np.log2(length)).astype(np.int64)
    table = [values.astype(np.int64)]
    while (1 << len(table)) <= int(length.max()):
        prev, half = table[-1], 1 << (len(table) - 1)
        table.append(np.minimum(prev[:-half], prev[half:]))
    res = np.full(lo.shape, empty, dtype=np.int64)
    for j in np.unique(level).tolist():
        sel = level == j
        span = 1 << j
        res[sel] = np.minimum(table[j][lo[sel]], table[j][hi[sel] - span + 1])
    out[ok] = res
    return out


_CHUNK_DEPOSITS = 1 << 18

# Adding 1.5·2^52 to a double of magnitude below 2^51 leaves the sum at unit spacing, so the
# FPU's round-half-even does np.rint and the sum's bits, read as int64, are rint(x) + ROUND_BITS.
# The chunk loop keeps bins in that shifted form (its thresholds are shifted alike): one add
# replaces rint plus a float→int conversion, the costliest pass of the loop.
_ROUND_MAGIC = 6755399441055744.0
ROUND_BITS = int(np.array(_ROUND_MAGIC).view(np.int64))


def rint_shifted(values: FloatArray) -> IntArray:
    """np.rint(values) + ROUND_BITS as int64, in the same buffer (|values| < 2^51)."""
    np.add(values, _ROUND_MAGIC, out=values)
    return values.view(np.int64)


def _event_layer(
    grid: DepositGrid,
    step: float,
    hit: IntArray,
    bar_block: IntArray,
    known_block: IntArray,
    dep_log: FloatArray,
    ref: float,
    frame_scale: FloatArray,
    k_count: int,
    bin_lo: int,
    nb: int,
    is_long: bool,
    cover: tuple[IntArray, npt.NDArray[np.bool_]] | None,
    consume_share: float,
    clip: tuple[int, int] | None = None,
) -> EventLayer:
    """Sweep one side's deposits through the K frames (blocks of bars).

    `hit[j]` is bar j's reach in mirrored relative bins (longs: relative bin r is consumed when
    r ≥ hit[j]; shorts use r → nb − 1 − r). A deposit of bar i is consumed by the first later bar
    that reaches its bin or has a print covering it, and is seen from block s = known_block[i]
    on, only if that consumption comes after block s. So each deposit is first tested against
    the bars after it up to the end of block s (dropped if reached), and the survivors are
    summed per (s, bin) with add.at, chunk by chunk, in units normalised by
    exp(ref − dep_log[i]); a loop over the K blocks (not the bars) then carries the sums
    forward, each block consuming the carried USD over its reach.
    """
    n = bar_block.shape[0]
    starts = np.searchsorted(bar_block, np.arange(k_count + 1), side="left")
    block_thr = np.full(k_count, nb, dtype=np.int64)
    if n:
        reach = np.minimum.reduceat(hit, np.minimum(starts[:-1], n - 1))
        nonempty = starts[:-1] < starts[1:]
        block_thr[nonempty] = reach[nonempty]
    a = grid.active
    p_count = grid.entries.shape[1] if grid.entries.ndim == 2 else 1
    d = bar_block[a]
    s = known_block[a]
    # Reach of the bars after each deposit bar up to the end of its known block.
    thr = _segment_suffix_min(hit, bar_block, nb)[a]
    late = s > d
    if np.any(late):
        hi_block = np.minimum(s[late], k_count - 1)
        thr[late] = np.minimum(thr[late], _range_min(block_thr, d[late] + 1, hi_block, nb))
    bound = bin_lo + thr if is_long else bin_lo + nb - 1 - thr
    # Prints: coverage of later print bars in the own block, and of whole blocks up to s.
    block_cover: dict[int, npt.NDArray[np.bool_]] = {}
    print_next = np.zeros(0, np.int64)
    suffix = np.zeros((0, nb), bool)
    block_count = np.zeros((0, nb), np.int32)
    check_own = np.zeros(a.shape, bool)
    check_late = np.zeros(a.shape, bool)
    if cover is not None and a.size:
        pbars, table = cover
        pblocks = bar_block[pbars]
        for blk in np.unique(pblocks).tolist():
            block_cover[int(blk)] = table[pblocks == blk].any(axis=0)
        print_next = np.searchsorted(pbars, a, side="right")
        check_own = print_next < pbars.size
        check_own[check_own] = pblocks[print_next[check_own]] == d[check_own]
        if np.any(check_own):
            suffix = table.copy()  # coverage of this and the later print bars of its block
            for t in range(pbars.size - 2, -1, -1):
                if pblocks[t] == pblocks[t + 1]:
                    suffix[t] |= suffix[t + 1]
        if np.any(late):
            covered_blocks = np.zeros((k_count + 1, nb), np.int32)
            for blk, blk_mask in block_cover.items():
                covered_blocks[blk + 1] = blk_mask
            block_count = np.cumsum(covered_blocks, axis=0, dtype=np.int32)
            print_blocks = np.unique(pblocks)
            first = np.searchsorted(print_blocks, d + 1, side="left")
            last = np.searchsorted(print_blocks, np.minimum(s, k_count - 1), side="right")
            check_late = late & (last > first)
    rows_total = int(max(k_count, int(s.max()) + 1 if s.size else 0))
    # Deposits outside a bin range carry zero weight, but their keys may point past the table:
    # pad the flat table so any key of the grid stays inside (adding 0.0 changes nothing).
    pad = 0
    if clip is not None and grid.size:
        full_lo, full_hi = grid.bin_bounds(step)
        pad = max(bin_lo - full_lo, full_hi - (bin_lo + nb - 1), 0) + 1
    padded = np.zeros(rows_total * nb + 2 * pad)
    flat = padded[pad:pad + rows_total * nb]
    w = flat.reshape(rows_total, nb)
    total = 0.0
    norm = np.exp(np.clip(ref - dep_log[a], -_LOG_CLIP, _LOG_CLIP))
    bars_per_chunk = max(1, _CHUNK_DEPOSITS // max(1, grid.factors.size * p_count))
    # Chunk buffers, reused: fresh large arrays cost page faults on every chunk.
    cap = min(bars_per_chunk, max(a.size, 1)) * p_count * grid.factors.size
    buf_f, buf_u = np.empty(cap), np.empty(cap)
    # Levels sorted by factor: in a chunk, the rows that some deposit could fail (reach the
    # survival bound, or leave the bin range) are then a run at either end of the rows.
    order = np.argsort(grid.factors, kind="stable")
    # Bin of a level = rint(entry · (factor / step)), the same product everywhere (bins(), bounds).
    factors, weights = grid.factors[order] / step, grid.weights[order]
    lo_s = bin_lo + ROUND_BITS
    for c0 in range(0, a.size, bars_per_chunk):
        c1 = min(c0 + bars_per_chunk, a.size)
        e = grid.entries[c0:c1].reshape(1, -1)
        e_lo, e_hi = float(e.min()), float(e.max())
        f, lw = factors, weights
        b_lo, b_hi = np.rint(e_lo * f), np.rint(e_hi * f)
        cb = np.repeat(bound[c0:c1], p_count)
        edge: int | None = None  # the range's other end, when some deposit may cross it
        if clip is not None:  # drop levels whose every deposit in the chunk falls outside
            inside_f = (b_hi >= clip[0]) & (b_lo <= clip[1])
            f, lw, b_lo, b_hi = f[inside_f], lw[inside_f], b_lo[inside_f], b_hi[inside_f]
            if f.size == 0:
                continue
            if not (b_lo.min() >= clip[0] and b_hi.max() <= clip[1]):
                # Fold the range into the survival bound; the other end is tested apart.
                if is_long:
                    cb, edge = np.minimum(cb, clip[1] + 1), clip[0]
                else:
                    cb, edge = np.maximum(cb, clip[0] - 1), clip[1]
        cb_s = cb + ROUND_BITS
        edge_s = 0 if edge is None else edge + ROUND_BITS
        shape = (f.size, e.shape[1])
        size = shape[0] * shape[1]
        levels = buf_f[:size].reshape(shape)
        np.multiply(f[:, None], e, out=levels)
        bins = rint_shifted(levels)  # bin + ROUND_BITS
        # Normalised USD; the raw USD added is recovered per entry.
        entry_norm = np.repeat(norm[c0:c1], p_count)
        base = (grid.usd_bar[c0:c1, None] * grid.entries[c0:c1]).reshape(-1) * entry_norm
        usd = buf_u[:size].reshape(shape)
        np.multiply(lw[:, None], base[None, :], out=usd)
        at_bound = (b_hi >= cb.min()) if is_long else (b_lo <= cb.max())
        at_edge = np.zeros(f.size, bool) if edge is None else (
            (b_lo < edge) if is_long else (b_hi > edge))
        own_c = np.flatnonzero(np.repeat(check_own[c0:c1], p_count))
        late_c = np.flatnonzero(np.repeat(check_late[c0:c1], p_count))
        if own_c.size or late_c.size or np.any(at_bound & at_edge):
            surv = bins < cb_s[None, :] if is_long else bins > cb_s[None, :]
            if edge is not None:
                surv &= (bins >= edge_s) if is_long else (bins <= edge_s)
            if own_c.size:
                rel = bins[:, own_c] - lo_s
                inside = (rel >= 0) & (rel < nb)
                rows = np.broadcast_to(np.repeat(print_next[c0:c1], p_count)[own_c][None, :],
                                       rel.shape)
                hits = np.zeros(rel.shape, dtype=bool)
                hits[inside] = suffix[rows[inside], rel[inside]]
                surv[:, own_c] &= ~hits
            if late_c.size:
                rel = bins[:, late_c] - lo_s
                inside = (rel >= 0) & (rel < nb)
                lo_b = np.broadcast_to(np.repeat(d[c0:c1] + 1, p_count)[late_c][None, :],
                                       rel.shape)
                hi_b = np.broadcast_to(
                    np.repeat(np.minimum(s[c0:c1], k_count - 1) + 1, p_count)[late_c][None, :],
                    rel.shape)
                hits = np.zeros(rel.shape, dtype=bool)
                hits[inside] = (block_count[hi_b[inside], rel[inside]]
                                > block_count[lo_b[inside], rel[inside]])
                surv[:, late_c] &= ~hits
            np.multiply(usd, surv, out=usd)
        else:  # test only the rows that can fail (a run at one end or at both)
            for rows_mask, test_bound in ((at_bound, True), (at_edge, False)):
                idx = np.flatnonzero(rows_mask)
                if not idx.size:
                    continue
                part = slice(int(idx[0]), int(idx[-1]) + 1)
                if test_bound or edge is None:
                    ok = bins[part] < cb_s[None, :] if is_long else bins[part] > cb_s[None, :]
                else:
                    ok = bins[part] >= edge_s if is_long else bins[part] <= edge_s
                np.multiply(usd[part], ok, out=usd[part])
        s_c = np.repeat(s[c0:c1], p_count)
        seen = usd.sum(axis=0) / entry_norm
        total += float(seen.sum() if int(s_c.max()) < k_count else seen[s_c < k_count].sum())
        np.add(bins, (s_c * nb - lo_s + pad)[None, :], out=bins)
        np.add.at(padded, bins.ravel(), usd.ravel())
    alive = np.empty((k_count, nb))
    cons = np.zeros((k_count, nb))
    acc = np.zeros(nb)
    keep = 1.0 - consume_share
    res = np.zeros(nb)
    thr_list = block_thr.tolist()
    scale_list = frame_scale.tolist()
    for k in range(k_count):
        t = thr_list[k]
        fs = scale_list[k]
        mask = block_cover.get(k)
        if mask is None and t < nb:
            sl = slice(t, nb) if is_long else slice(0, nb - t)
            np.multiply(acc[sl], consume_share * fs, out=cons[k, sl])
            if keep > 0:
                res[sl] += acc[sl] * keep
            acc[sl] = 0.0
        elif mask is not None:
            sel = mask.copy()
            if is_long:
                sel[t:] = True
            else:
                sel[:nb - t] = True
            gone = acc[sel]
            cons[k, sel] = gone * (consume_share * fs)
            if keep > 0:
                res[sel] += gone * keep
            acc[sel] = 0.0
        acc += w[k]
        if keep > 0:
            np.add(acc, res, out=alive[k])
            alive[k] *= fs
        else:
            np.multiply(acc, fs, out=alive[k])
    hidden = {blk: w[blk] for blk in range(k_count, rows_total) if np.any(w[blk])}
    return EventLayer(alive=alive, consumed=cons, added=total, open_end=acc, residual_end=res,
                      hidden_end=hidden)


def simulate(
    bars: Bars,
    params: ModelParams,
    long_factors: FloatArray,
    short_factors: FloatArray,
    step: float,
    frame_ends: IntArray,
    prints: LiquidationPrints | None = None,
    bin_range: tuple[int, int] | None = None,
) -> Simulation:
    """Run the model over `bars` and snapshot alive positions at each frame end time (ms).

    A bar belongs to the first frame whose end is at or after the bar's close time; bars closing
    after the last frame end are ignored (no look-ahead).
    """
    frame_ends = np.asarray(frame_ends, dtype=np.int64)
    k_count = int(frame_ends.shape[0])
    closes = bars.time + bars.interval_ms
    n_used = int(np.searchsorted(closes, frame_ends[-1], side="right")) if k_count else 0
    if n_used < len(bars):
        bars = bars.slice(0, n_used)
    bar_block = np.searchsorted(frame_ends, bars.time + bars.interval_ms, side="left")
    fl = flows(bars, params)
    grids = (deposit_grid(bars, fl, params, long_factors, True),
             deposit_grid(bars, fl, params, short_factors, False))
    if bin_range is None:
        candidates = [np.floor(bars.low.min() / step) if len(bars) else 0,
                      np.ceil(bars.high.max() / step) if len(bars) else 0]
        for grid in grids:
            if grid.size:
                candidates += list(grid.bin_bounds(step))
        bin_lo, bin_hi = int(min(candidates)), int(max(candidates))
    else:
        bin_lo, bin_hi = bin_range
    nb = bin_hi - bin_lo + 1
    # Cumulative log survival; frame values scale deposits by survival from deposit to frame end.
    # Closes are applied when they become known, like opens: bar i's survival (from the open
    # interest change over its segment) takes effect at bar known_bar[i], so a snapshot never
    # uses an open interest stamp later than its own last bar.
    log_g = np.cumsum(np.bincount(fl.known_bar, weights=fl.log_survival, minlength=len(bars)))
    frame_log_g = np.full(k_count, log_g[-1] if log_g.size else 0.0)
    if log_g.size:
        last_bar = np.searchsorted(closes[: len(bars)], frame_ends, side="right") - 1
        frame_log_g = np.where(last_bar >= 0, log_g[np.maximum(last_bar, 0)], 0.0)
    ref = frame_log_g[-1] if k_count else 0.0
    frame_scale = np.exp(np.clip(frame_log_g - ref, -_LOG_CLIP, _LOG_CLIP))

    # Reach of each bar in relative bins, mirrored for shorts (see _event_layer).
    long_hit = np.clip(np.ceil(bars.low / step).astype(np.int64) - bin_lo, 0, nb)
    short_hit = (nb - 1) - np.clip(np.floor(bars.high / step).astype(np.int64) - bin_lo, -1,
                                   nb - 1)
    dep_log = np.asarray(log_g[fl.known_bar], dtype=np.float64)
    known_block = bar_block[fl.known_bar]
    out = []
    added = 0.0
    for grid, hit, is_long in ((grids[0], long_hit, True), (grids[1], short_hit, False)):
        cover = print_cover(prints, bars, step, bin_lo, nb, is_long, params.print_tolerance)
        layer = _event_layer(grid, step, hit, bar_block, known_block, dep_log, ref,
                             frame_scale, k_count, bin_lo, nb, is_long, cover,
                             params.consume_share, bin_range)
        out.append((layer.alive, layer.consumed))
        added += layer.added
    (long_alive, long_cons), (short_alive, short_cons) = out
    remaining = float(long_alive[-1].sum() + short_alive[-1].sum()) if k_count else 0.0
    consumed_total = float(long_cons.sum() + short_cons.sum())
    closed = max(added - remaining - consumed_total, 0.0)

    # Frame-level terms on top of the event-sourced layer (see frame_terms).
    last_bar = np.searchsorted(closes[: len(bars)], frame_ends, side="right") - 1
    terms = frame_terms(bars, params, last_bar, step, bin_lo, nb)
    # In place: these K × nb tables are the largest arrays of a rebuild.
    for table, diffuse, scale in ((long_alive, terms.long_diffuse, terms.long_intensity),
                                  (short_alive, terms.short_diffuse, terms.short_intensity)):
        if params.diffuse_share > 0:
            table += diffuse
        scale_rows(table, scale)
    scale_rows(long_cons, terms.long_intensity)
    scale_rows(short_cons, terms.short_intensity)
    if params.oi_cap > 0 and len(bars):
        cap_to_open_interest(bars, last_bar, params.oi_cap, step, bin_lo,
                              (long_alive, long_cons), (short_alive, short_cons))
    return Simulation(
        step=step, bin_lo=bin_lo, frame_ends=frame_ends,
        long_usd=long_alive, short_usd=short_alive,
        long_consumed=long_cons, short_consumed=short_cons,
        added_usd=added, closed_usd=closed,
    )


def frame_ends_for(
    bars: Bars, as_of_ms: int, window_ms: int, columns: int, history_blocks: int = 64
) -> IntArray:
    """Frame end times: coarse blocks before the window, `columns` equal frames inside it."""
    start = bars.time[0] + bars.interval_ms if len(bars) else as_of_ms
    window_start = max(as_of_ms - window_ms, start)
    inside = np.linspace(window_start, as_of_ms, columns + 1)[1:]
    before = np.linspace(start, window_start, history_blocks + 1)[1:-1] if window_start > start \
        else np.zeros(0)
    ends = np.unique(np.concatenate([before, inside]).astype(np.int64))
    return np.asarray(ends, dtype=np.int64)
