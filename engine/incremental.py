"""Incremental position model: apply one closed bar at a time to a per venue/symbol state.

`simulate` rebuilds a month of bars in tens of milliseconds; a live service that closes a bar a
minute for hundreds of symbols instead keeps one `ModelState` per venue and symbol and feeds it
each new bar. The state holds the alive long and short USD per absolute bin (bin b sits at price
b·step, as in `simulate`) and equals the last frame of `simulate` on the same bars.

One bar j is applied in the order the rebuild implies:

1. consumption: long bins the bar's low reaches (b ≥ ceil(low/step)) and short bins its high
   reaches (b ≤ floor(high/step)), and bins covered by the bar's realized liquidation prints,
   lose `consume_share` of their seen USD (the rest stays at the level); deposits that are not
   seen yet (their open interest stamp is still to come) are dropped there instead;
2. survival: seen USD decays by the survival of every bar whose open interest became known at
   bar j (churn, and the closes of falling open interest);
3. deposits that become known at bar j appear, then bar j's own known deposits.

Open interest comes in stamps (a bar whose value changed). Bars after the last stamp are
provisional: they open churn only, known at once. When the next stamp arrives, `model.flows`
distributes the change over those pending bars exactly as in a rebuild, so the state rewinds to
a checkpoint taken before the pending bars and replays them with their final flows: their
deposits become retroactive (opened at those bars' entries, hidden until the stamp, and dropped
if a later bar up to the stamp reached them) and their closes apply at the stamp.

The frame terms of the model (diffuse layer, realized-liquidation intensity, open interest cap)
depend only on the last bar and a few running averages, so `profile()` adds them on output.

Limits: `step` is fixed for the life of a state (a rebuild picks it from the last price: when
`nice_step` of the price changes, build a new state); bars must come in order without gaps; the
bars since the last stamp are kept (all bars when a venue never reports open interest);
`from_bars` is vectorised for consume_share = 1 and replays bar by bar otherwise. The state is
the model with one frame per bar, which is what `simulate`'s last frame gives for any frames
when consume_share = 1 (with partial consumption, a deposit consumed inside a coarse frame of a
rebuild leaves no residual, so compare with one frame per bar).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from engine.frame_terms import CAP_SPAN, diffuse_layer, ewma
from engine.mapping import base_asset, factors_for
from engine.model import (
    DepositGrid,
    Flows,
    _event_layer,
    deposit_grid,
    flows,
    print_cover,
)
from engine.params import DEFAULT_PARAMS, ModelParams, nice_step
from engine.types import HOUR_MS, Bars, FloatArray, IntArray, LiquidationPrints, Venue

_COLUMNS = ("open", "high", "low", "close", "volume", "taker_buy_volume", "open_interest_usd",
            "funding_rate", "long_short_ratio", "long_liquidations_usd",
            "short_liquidations_usd")
_MARGIN = 64  # spare bins on each side when the bin range grows


@dataclass(slots=True)
class _Side:
    """Seen (consumable) and residual USD per bin of one side, plus deposits not yet seen."""

    is_long: bool
    open: FloatArray
    residual: FloatArray
    hidden: dict[int, FloatArray] = field(default_factory=dict)  # known bar -> USD per bin
    added: float = 0.0
    consumed: float = 0.0

    def copy(self) -> _Side:
        return _Side(self.is_long, self.open.copy(), self.residual.copy(),
                     {k: v.copy() for k, v in self.hidden.items()}, self.added, self.consumed)

    def pad(self, left: int, right: int) -> None:
        self.open = np.pad(self.open, (left, right))
        self.residual = np.pad(self.residual, (left, right))
        self.hidden = {k: np.pad(v, (left, right)) for k, v in self.hidden.items()}


@dataclass(slots=True)
class _Window:
    """Growable columnar buffer of the bars since the last open interest stamp."""

    interval_ms: int
    time: IntArray
    cols: dict[str, FloatArray]
    count: int = 0

    @classmethod
    def empty(cls, interval_ms: int, capacity: int = 256) -> _Window:
        return cls(interval_ms, np.zeros(capacity, np.int64),
                   {c: np.zeros(capacity) for c in _COLUMNS})

    def append(self, bars: Bars, i: int) -> None:
        if self.count == self.time.shape[0]:
            cap = 2 * self.count
            self.time = np.resize(self.time, cap)
            self.cols = {c: np.resize(v, cap) for c, v in self.cols.items()}
        self.time[self.count] = bars.time[i]
        for c in _COLUMNS:
            self.cols[c][self.count] = getattr(bars, c)[i]
        self.count += 1

    def bars(self, start: int = 0, stop: int | None = None) -> Bars:
        stop = self.count if stop is None else stop
        return Bars(time=self.time[start:stop], interval_ms=self.interval_ms,
                    **{c: v[start:stop] for c, v in self.cols.items()})

    def drop_before(self, start: int) -> None:
        keep = self.count - start
        self.time[:keep] = self.time[start:self.count]
        for v in self.cols.values():
            v[:keep] = v[start:self.count]
        self.count = keep


@dataclass(slots=True)
class _Checkpoint:
    """State after the last bar before the pending window (final flows up to there)."""

    lo: int
    long: _Side
    short: _Side
    pending_log: dict[int, float]


@dataclass(slots=True)
class ModelState:
    """Alive liquidation USD of one venue and symbol after the last applied bar (see module doc).

    Build with `ModelState.start` (empty) or `ModelState.from_bars` (from history), then call
    `update(bar)` for each newly closed bar; `update` mutates the state and returns it.
    `profile()` gives the map values (frame terms included) per absolute bin.
    """

    venue: Venue
    symbol: str
    params: ModelParams
    step: float
    interval_ms: int
    long_factors: FloatArray
    short_factors: FloatArray
    lo: int = 0
    long: _Side = field(default_factory=lambda: _Side(True, np.zeros(0), np.zeros(0)))
    short: _Side = field(default_factory=lambda: _Side(False, np.zeros(0), np.zeros(0)))
    pending_log: dict[int, float] = field(default_factory=dict)  # known bar -> log survival
    bars_seen: int = 0
    window: _Window | None = None
    window_start: int = 0  # absolute index of window row 0 (the last stamp, or bar 0)
    stamped: bool = False
    checkpoint: _Checkpoint | None = None
    prev_oi: float = float("nan")
    last_time: int | None = None
    last_close: float = float("nan")
    last_oi: float = float("nan")
    ewma_total: dict[bool, float] = field(default_factory=lambda: {True: 0.0, False: 0.0})
    ewma_weight: dict[bool, float] = field(default_factory=lambda: {True: 0.0, False: 0.0})
    covers: list[list[tuple[bool, int, int]]] = field(default_factory=list)  # per window row

    # ------------------------------------------------------------------ construction

    @classmethod
    def start(
        cls,
        venue: Venue,
        symbol: str,
        step: float,
        interval_ms: int,
        params: ModelParams = DEFAULT_PARAMS,
        factors: tuple[FloatArray, FloatArray] | None = None,
    ) -> ModelState:
        """An empty state; `factors` (liquidation price / entry per leverage, long and short)
        default to the venue's exchange formula at the symbol's tiers, as in `build_map`."""
        if factors is None:
            factors = venue_factors(venue, symbol, params)
        state = cls(venue=venue, symbol=symbol, params=params, step=step,
                    interval_ms=interval_ms, long_factors=np.asarray(factors[0], np.float64),
                    short_factors=np.asarray(factors[1], np.float64))
        state.window = _Window.empty(interval_ms)
        state.checkpoint = state._snapshot()
        return state

    @classmethod
    def from_bars(
        cls,
        venue: Venue,
        symbol: str,
        bars: Bars,
        params: ModelParams = DEFAULT_PARAMS,
        *,
        step: float | None = None,
        prints: LiquidationPrints | None = None,
        factors: tuple[FloatArray, FloatArray] | None = None,
    ) -> ModelState:
        """The state after `bars`, equal to applying them one by one but vectorised up to the
        last open interest stamp (then bar by bar over the pending bars)."""
        if step is None:
            step = nice_step(float(bars.close[-1]), params.bin_bps)
        state = cls.start(venue, symbol, step, bars.interval_ms, params, factors)
        n = len(bars)
        stamps = _stamps(bars.open_interest_usd)
        last = int(stamps[-1]) if stamps.size else 0
        if last > 0 and params.consume_share >= 1.0:
            state._bulk(bars, last, prints)
            first = last
        else:
            first = 0
        for i in range(first, n):
            state._apply(bars, i, _prints_in(prints, bars, i))
        return state

    # ------------------------------------------------------------------ updates

    def update(self, bars: Bars, prints: LiquidationPrints | None = None) -> ModelState:
        """Apply newly closed bars (usually one) in order, with the realized liquidation prints
        that fell inside them; mutates and returns the state."""
        if len(bars) and bars.interval_ms != self.interval_ms:
            raise ValueError(f"bars of {bars.interval_ms} ms on a {self.interval_ms} ms state")
        for i in range(len(bars)):
            self._apply(bars, i, _prints_in(prints, bars, i))
        return self

    def _apply(self, bars: Bars, i: int, prints: LiquidationPrints | None) -> None:
        t = int(bars.time[i])
        if self.last_time is not None and t != self.last_time + self.interval_ms:
            raise ValueError("bars must follow the last applied bar without a gap")
        assert self.window is not None
        oi = float(bars.open_interest_usd[i])
        stamp = bool(np.isfinite(oi)) and self.prev_oi != oi
        self.prev_oi = oi
        self._terms_update(bars, i)
        j = self.bars_seen
        self.bars_seen += 1
        self.last_time = t
        cover = _cover_list(prints, self.step, self.params.print_tolerance)
        if stamp and self.window.count:
            self._restamp(bars, i, cover)
            return
        self.window.append(bars, i)
        self.covers.append(cover)
        self.stamped = self.stamped or stamp
        if not self.stamped:
            return  # no open interest known yet: nothing is open (the replay comes at the stamp)
        row = self.window.count - 1
        fl = flows(self.window.bars(), self.params)
        self._step(j, self.window.bars(row, row + 1), fl, row, cover)

    def _restamp(self, bars: Bars, i: int, cover: list[tuple[bool, int, int]]) -> None:
        """A new open interest stamp at bar i: replay the pending bars with their final flows."""
        assert self.window is not None and self.checkpoint is not None
        self.window.append(bars, i)
        self.covers.append(cover)
        self._restore(self.checkpoint)
        window = self.window.bars()
        fl = flows(window, self.params)
        m = self.window.count - 1
        base = self.window_start
        self._replay(window, fl, 0, m, base)
        # Bars before the new stamp are final: checkpoint, then the stamp bar starts a window.
        self.checkpoint = self._snapshot()
        self._step(base + m, self.window.bars(m, m + 1), fl, m, cover)
        self.window.drop_before(m)
        self.covers = self.covers[m:]
        self.window_start = base + m
        self.stamped = True

    def _replay(self, window: Bars, fl: Flows, start: int, stop: int, base: int) -> None:
        """Apply window rows [start, stop) with flows `fl` of the whole window."""
        if stop <= start:
            return
        sub = window.slice(start, stop) if (start, stop) != (0, len(window)) else window
        sub_fl = Flows(fl.opens_contracts[start:stop], fl.log_survival[start:stop],
                       fl.long_share[start:stop], fl.known_bar[start:stop] - start)
        grids = [deposit_grid(sub, sub_fl, self.params, f, is_long)
                 for f, is_long in ((self.long_factors, True), (self.short_factors, False))]
        per_bar = [_split_deposits(g, self.step, stop - start) for g in grids]
        for r in range(start, stop):
            deps = (per_bar[0][r - start], per_bar[1][r - start])
            self._advance(base + r, window, r, base + int(fl.known_bar[r]),
                          float(fl.log_survival[r]), deps, self.covers[r])

    def _step(self, j: int, one: Bars, fl: Flows, row: int, cover: list[tuple[bool, int, int]],
              ) -> None:
        """Apply one bar (window row `row`) with the window flows `fl`."""
        one_fl = Flows(fl.opens_contracts[row:row + 1], fl.log_survival[row:row + 1],
                       fl.long_share[row:row + 1], np.zeros(1, np.int64))
        deps = tuple(_split_deposits(deposit_grid(one, one_fl, self.params, f, is_long),
                                     self.step, 1)[0]
                     for f, is_long in ((self.long_factors, True), (self.short_factors, False)))
        known = self.window_start + int(fl.known_bar[row])
        self._advance(j, one, 0, known, float(fl.log_survival[row]), deps, cover)

    def _advance(
        self,
        j: int,
        bars: Bars,
        r: int,
        known: int,
        log_survival: float,
        deps: tuple[tuple[IntArray, FloatArray], ...],
        cover: list[tuple[bool, int, int]],
    ) -> None:
        """The per-bar step of the module doc for bar j (row r of `bars`)."""
        low_bin = int(np.ceil(bars.low[r] / self.step))
        high_bin = int(np.floor(bars.high[r] / self.step))
        placed = [b for b, _ in deps if b.size]
        if placed:
            self._ensure(min(int(b.min()) for b in placed), max(int(b.max()) for b in placed))
        cs = self.params.consume_share
        for side in (self.long, self.short):
            sel = _reach(side.is_long, low_bin if side.is_long else high_bin, self.lo,
                         side.open.shape[0], cover)
            gone = side.open[sel]
            side.consumed += float(gone.sum()) * cs * self._pending_factor(j, log_survival,
                                                                           known)
            if cs < 1.0:
                side.residual[sel] += gone * (1.0 - cs)
            side.open[sel] = 0.0
            for arr in side.hidden.values():
                arr[sel] = 0.0
        self.pending_log[known] = self.pending_log.get(known, 0.0) + log_survival
        factor = float(np.exp(self.pending_log.pop(j, 0.0)))
        for side, (bins, usd) in zip((self.long, self.short), deps, strict=True):
            if factor != 1.0:
                side.open *= factor
                side.residual *= factor
            shown = side.hidden.pop(j, None)
            if shown is not None:
                side.open += shown
                side.added += float(shown.sum())
            if bins.size:
                target = side.open if known == j else side.hidden.setdefault(
                    known, np.zeros(side.open.shape[0]))
                np.add.at(target, bins - self.lo, usd)
                if known == j:
                    side.added += float(usd.sum())

    def _pending_factor(self, j: int, log_survival: float, known: int) -> float:
        """Survival applied at bar j to what bar j consumes (consumed USD is valued after it)."""
        total = self.pending_log.get(j, 0.0) + (log_survival if known == j else 0.0)
        return float(np.exp(total))

    # ------------------------------------------------------------------ bulk start

    def _bulk(self, bars: Bars, last: int, prints: LiquidationPrints | None) -> None:
        """State after bars [0, last) with the flows known at stamp `last`, vectorised."""
        head = bars.slice(0, last + 1)
        fl_all = flows(head, self.params)
        part = bars.slice(0, last)
        fl = Flows(fl_all.opens_contracts[:last], fl_all.log_survival[:last],
                   fl_all.long_share[:last], fl_all.known_bar[:last])
        grids = [deposit_grid(part, fl, self.params, f, is_long)
                 for f, is_long in ((self.long_factors, True), (self.short_factors, False))]
        lo_c = [np.floor(part.low.min() / self.step), np.ceil(part.high.max() / self.step)]
        for g in grids:
            if g.size:
                lo_c += list(g.bin_bounds(self.step))
        bin_lo, bin_hi = int(min(lo_c)), int(max(lo_c))
        nb = bin_hi - bin_lo + 1
        log_g = np.cumsum(np.bincount(fl.known_bar, weights=fl.log_survival, minlength=last + 1))
        ref = float(log_g[last - 1])
        known = fl.known_bar
        dep_log = np.where(known < last, log_g[np.minimum(known, last - 1)], ref)
        bar_block = np.zeros(last, np.int64)
        known_block = (known >= last).astype(np.int64)
        long_hit = np.clip(np.ceil(part.low / self.step).astype(np.int64) - bin_lo, 0, nb)
        short_hit = (nb - 1) - np.clip(np.floor(part.high / self.step).astype(np.int64) - bin_lo,
                                       -1, nb - 1)
        self.lo = bin_lo - _MARGIN
        for side, grid, hit in ((self.long, grids[0], long_hit), (self.short, grids[1], short_hit)):
            cover = print_cover(prints, part, self.step, bin_lo, nb, side.is_long,
                                self.params.print_tolerance)
            layer = _event_layer(grid, self.step, hit, bar_block, known_block, dep_log, ref,
                                 np.ones(1), 1, bin_lo, nb, side.is_long, cover,
                                 self.params.consume_share)
            side.open = np.pad(layer.open_end, _MARGIN)
            side.residual = np.pad(layer.residual_end, _MARGIN)
            side.hidden = ({last: np.pad(layer.hidden_end[1], _MARGIN)} if 1 in layer.hidden_end
                           else {})
            side.added = layer.added
            side.consumed = float(layer.consumed.sum())
        pend = float(fl.log_survival[known >= last].sum())
        if np.any(known >= last):
            self.pending_log = {last: pend}
        # The window restarts at the last stamp; the bars before it are final.
        assert self.window is not None
        self.bars_seen = last
        self._terms_bulk(part)
        self.prev_oi = float(bars.open_interest_usd[last - 1])
        self.last_time = int(bars.time[last - 1])
        self.window = _Window.empty(self.interval_ms)
        self.covers = []
        self.window_start = last
        self.stamped = True
        self.checkpoint = self._snapshot()
        # Bar `last` is a stamp: _apply sees an empty window and a stamp, so it starts the window.

    # ------------------------------------------------------------------ bins

    def _ensure(self, lo: int, hi: int) -> None:
        """Grow the bin range to hold bins lo .. hi (ranges only grow)."""
        size = self.long.open.shape[0]
        if size and lo >= self.lo and hi < self.lo + size:
            return
        if not size:
            self.lo = lo - _MARGIN
            n = hi - lo + 1 + 2 * _MARGIN
            for side in (self.long, self.short):
                side.pad(0, n)
            return
        left = self.lo - lo + _MARGIN if lo < self.lo else 0
        right = hi - (self.lo + size - 1) + _MARGIN if hi >= self.lo + size else 0
        for side in (self.long, self.short):
            side.pad(left, right)
        self.lo -= left

    def _snapshot(self) -> _Checkpoint:
        return _Checkpoint(self.lo, self.long.copy(), self.short.copy(), dict(self.pending_log))

    def _restore(self, cp: _Checkpoint) -> None:
        """Back to a checkpoint, on the current (never smaller) bin range."""
        size = self.long.open.shape[0]
        self.long, self.short = cp.long.copy(), cp.short.copy()
        self.pending_log = dict(cp.pending_log)
        cp_size = self.long.open.shape[0]
        if not cp_size:
            for side in (self.long, self.short):
                side.pad(0, size)
            return
        left = cp.lo - self.lo
        for side in (self.long, self.short):
            side.pad(left, size - cp_size - left)

    # ------------------------------------------------------------------ frame terms

    def _terms_update(self, bars: Bars, i: int) -> None:
        """Last close and open interest, and the intensity's running averages (frame_terms.intensity
        as a recurrence: s ← s + α·(x − s))."""
        p = self.params
        self.last_close = float(bars.close[i])
        self.last_oi = float(bars.open_interest_usd[i])
        if p.intensity_gamma == 0:
            return
        alpha = self._alpha()
        for is_long in (True, False):
            x, known = _realized(bars, i, is_long, p.intensity_cross, HOUR_MS / self.interval_ms)
            for store, value in ((self.ewma_total, x), (self.ewma_weight, known)):
                s = store[is_long]
                store[is_long] = value if alpha >= 1.0 else s + alpha * (value - s)

    def _terms_bulk(self, bars: Bars) -> None:
        """The same running averages over many bars at once (frame_terms.ewma)."""
        p = self.params
        self.last_close = float(bars.close[-1])
        self.last_oi = float(bars.open_interest_usd[-1])
        if p.intensity_gamma == 0:
            return
        hl_bars = max(p.intensity_half_life_hours * HOUR_MS / self.interval_ms, 1e-6)
        per_hour = HOUR_MS / self.interval_ms
        for is_long in (True, False):
            own = bars.long_liquidations_usd if is_long else bars.short_liquidations_usd
            other = bars.short_liquidations_usd if is_long else bars.long_liquidations_usd
            known = np.isfinite(own)
            realized = own + p.intensity_cross * np.where(np.isfinite(other), other, 0.0)
            x = np.where(known, realized * per_hour, 0.0)
            self.ewma_total[is_long] = float(ewma(x, hl_bars)[-1])
            self.ewma_weight[is_long] = float(ewma(known.astype(np.float64), hl_bars)[-1])

    def _alpha(self) -> float:
        hl_bars = max(self.params.intensity_half_life_hours * HOUR_MS / self.interval_ms, 1e-6)
        return float(1.0 - 0.5 ** (1.0 / hl_bars))

    def _intensity(self, is_long: bool) -> float:
        """frame_terms.intensity at the last bar."""
        p = self.params
        if p.intensity_gamma == 0 or self.bars_seen == 0:
            return 1.0
        weight, oi = self.ewma_weight[is_long], self.last_oi
        if not (weight > 1e-12 and np.isfinite(oi) and oi > 0):
            return 1.0
        rate = self.ewma_total[is_long] / (weight * oi)
        ratio = (rate + p.intensity_floor) / (p.intensity_ref + p.intensity_floor)
        return float(ratio ** p.intensity_gamma)

    # ------------------------------------------------------------------ output

    def event_layer(self) -> tuple[int, FloatArray, FloatArray]:
        """(first absolute bin, long USD, short USD) of the event-sourced layer alone."""
        return self.lo, self.long.open + self.long.residual, self.short.open + self.short.residual

    def profile(self) -> tuple[int, FloatArray, FloatArray]:
        """(first absolute bin, long USD, short USD): the map after the last bar, with the
        frame terms (diffuse layer, intensity, open interest cap) as in `simulate`."""
        lo, long_usd, short_usd = self.event_layer()
        nb = long_usd.shape[0]
        p = self.params
        out = []
        ref = np.array([self.last_close if self.bars_seen else np.nan])
        oi = np.array([self.last_oi if self.bars_seen else np.nan])
        for values, is_long in ((long_usd, True), (short_usd, False)):
            if p.diffuse_share > 0:
                values = values + diffuse_layer(ref, oi, self.step, lo, nb, p, is_long)[0]
            out.append(values * self._intensity(is_long))
        if p.oi_cap > 0 and self.bars_seen and np.isfinite(self.last_oi):
            # As frame_terms.cap_to_open_interest: each side's USD within ±CAP_SPAN of the price is
            # held to oi_cap × open interest, by scaling the whole side.
            a = int(np.floor(self.last_close * (1 - CAP_SPAN) / self.step)) - lo
            b = int(np.ceil(self.last_close * (1 + CAP_SPAN) / self.step)) - lo + 1
            a, b = min(max(a, 0), nb), min(max(b, 0), nb)
            for k, values in enumerate(out):
                total = float(values[a:b].sum())
                if total > p.oi_cap * self.last_oi:
                    out[k] = values * (p.oi_cap * self.last_oi / total)
        return lo, out[0], out[1]

    def totals(self) -> dict[str, float]:
        """USD added (seen), consumed and still open (event layer), over both sides."""
        added = self.long.added + self.short.added
        consumed = self.long.consumed + self.short.consumed
        remaining = float(sum(s.open.sum() + s.residual.sum() for s in (self.long, self.short)))
        return {"added": added, "consumed": consumed, "remaining": remaining,
                "closed": added - consumed - remaining}


def update(state: ModelState, bar: Bars, prints: LiquidationPrints | None = None) -> ModelState:
    """Apply newly closed bar(s) to `state` (mutated) and return it."""
    return state.update(bar, prints)


def venue_factors(venue: Venue, symbol: str, params: ModelParams) -> tuple[FloatArray, FloatArray]:
    """Liquidation price / entry per leverage (long, short) on a venue, as `build_map` uses."""
    return factors_for(venue, base_asset(symbol), params)


def _realized(bars: Bars, i: int, is_long: bool, cross: float, per_hour: float,
              ) -> tuple[float, float]:
    """(realized liquidation USD per hour for the intensity, 1 if known else 0) of bar i."""
    own = float((bars.long_liquidations_usd if is_long else bars.short_liquidations_usd)[i])
    other = float((bars.short_liquidations_usd if is_long else bars.long_liquidations_usd)[i])
    if not np.isfinite(own):
        return 0.0, 0.0
    return (own + cross * (other if np.isfinite(other) else 0.0)) * per_hour, 1.0


def _stamps(oi: FloatArray) -> IntArray:
    prev = np.concatenate([[np.nan], oi[:-1]])
    return np.flatnonzero(np.isfinite(oi) & ~(prev == oi))


def _prints_in(prints: LiquidationPrints | None, bars: Bars, i: int) -> LiquidationPrints | None:
    if prints is None or len(prints) == 0:
        return None
    t0 = int(bars.time[i])
    sel = (prints.time >= t0) & (prints.time < t0 + bars.interval_ms)
    if not np.any(sel):
        return None
    return LiquidationPrints(prints.time[sel], prints.price[sel], prints.usd[sel],
                             prints.is_long[sel])


def _cover_list(
    prints: LiquidationPrints | None, step: float, tolerance: float
) -> list[tuple[bool, int, int]]:
    """(is_long, first bin, last bin) covered by each print of a bar, as in `print_cover`."""
    if prints is None:
        return []
    lo = np.floor(prints.price * (1 - tolerance) / step).astype(np.int64)
    hi = np.ceil(prints.price * (1 + tolerance) / step).astype(np.int64)
    return [(bool(s), int(a), int(b)) for s, a, b in zip(prints.is_long, lo, hi, strict=True)
            if a <= b]


def _reach(
    is_long: bool, edge: int, lo: int, size: int, cover: list[tuple[bool, int, int]]
) -> slice | np.ndarray:
    """Indexer of the bins a bar consumes on one side (its price reach and its prints)."""
    if is_long:
        sl = slice(min(max(edge - lo, 0), size), size)
    else:
        sl = slice(0, min(max(edge - lo + 1, 0), size))
    mine = [(a, b) for s, a, b in cover if s == is_long]
    if not mine:
        return sl
    mask = np.zeros(size, dtype=bool)
    mask[sl] = True
    for a, b in mine:
        mask[max(a - lo, 0):max(min(b - lo + 1, size), 0)] = True
    return mask


def _split_deposits(grid: DepositGrid, step: float, rows: int,
                    ) -> list[tuple[IntArray, FloatArray]]:
    """Per window row: (absolute bins, USD at entry) of its deposits."""
    out: list[tuple[IntArray, FloatArray]] = [(np.zeros(0, np.int64), np.zeros(0))] * rows
    if grid.size == 0:
        return out
    bins = grid.bins(step)
    usd = grid.usd()
    p = grid.entries.shape[1]
    for k, row in enumerate(grid.active.tolist()):
        cols = slice(k * p, (k + 1) * p)
        out[row] = (bins[:, cols].ravel(), usd[:, cols].ravel())
    return out


__all__ = ["ModelState", "update", "venue_factors"]
