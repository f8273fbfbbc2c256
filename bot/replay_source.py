"""Replay shipped data as if live: a virtual clock running `speed` times faster than the wall.

`liqradar run --replay DIR|FILE --speed 600` serves bench-schema bars (and realized
liquidations) through the same `MarketSource` protocol as the live venues: a snapshot holds
only what had closed by the virtual now, so maps, alerts and staleness behave as in production.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from bot.sources import MarketSnapshot
from engine.types import MINUTE_MS, Bars, LiquidationPrints, Venue
from market.errors import DataFileError, MarketDataError, UnknownSymbolError
from market.symbols import resolve

logger = logging.getLogger(__name__)

DEFAULT_WARMUP_MS = 6 * 60 * MINUTE_MS


@dataclass(slots=True)
class ReplayClock:
    """Virtual epoch time: `start_ms` at wall instant `anchor`, advancing `speed` times faster."""

    start_ms: int
    speed: float = 60.0
    anchor: float = field(default_factory=time.time)
    wall: Callable[[], float] = time.time

    def now_ms(self) -> int:
        """Virtual epoch milliseconds."""
        return self.start_ms + int((self.wall() - self.anchor) * 1000.0 * self.speed)

    def time(self) -> float:
        """Virtual epoch seconds (a drop-in for `time.time`)."""
        return self.now_ms() / 1000.0

    def now(self) -> datetime:
        """Virtual now, UTC-aware."""
        return datetime.fromtimestamp(self.now_ms() / 1000.0, UTC)

    def wall_seconds(self, virtual_seconds: float) -> float:
        """Wall seconds that `virtual_seconds` take."""
        return virtual_seconds / self.speed


@dataclass(frozen=True, slots=True, eq=False)
class ReplayData:
    """Everything replayed for one symbol: aggregate bars and the realized prints."""

    symbol: str
    bars: Bars
    prints: LiquidationPrints | None = None

    @property
    def start_ms(self) -> int:
        """Open time of the first bar."""
        return int(self.bars.time[0])

    @property
    def end_ms(self) -> int:
        """Close time of the last bar."""
        return int(self.bars.time[-1] + self.bars.interval_ms)

    @property
    def period_ms(self) -> int:
        """Length of one pass over the data."""
        return self.end_ms - self.start_ms

    def _shifted(self, cycle: int) -> tuple[Bars, LiquidationPrints | None]:
        """The data moved `cycle` periods later (the price jumps at the seam)."""
        offset = cycle * self.period_ms
        if offset == 0:
            return self.bars, self.prints
        prints = None if self.prints is None else replace(self.prints,
                                                          time=self.prints.time + offset)
        return replace(self.bars, time=self.bars.time + offset), prints

    def view(self, now_ms: int, loops: int = 1,
             keep_ms: int | None = None) -> tuple[Bars, LiquidationPrints | None]:
        """Bars closed and prints seen by `now_ms`, over `loops` passes, the last `keep_ms`."""
        cycle = min(max((now_ms - self.start_ms) // self.period_ms, 0), max(loops, 1) - 1)
        parts = [self._shifted(c) for c in (cycle - 1, cycle) if c >= 0]
        bars = parts[0][0] if len(parts) == 1 else parts[0][0].concat(parts[1][0])
        bars = bars.until(now_ms)
        start = now_ms - keep_ms if keep_ms is not None else None
        if start is not None:
            bars = bars.slice(int(np.searchsorted(bars.time, start)), len(bars))
        prints = [p for _, p in parts if p is not None]
        if not prints:
            return bars, None
        time_ = np.concatenate([p.time for p in prints])
        lo = 0 if start is None else int(np.searchsorted(time_, start))
        hi = int(np.searchsorted(time_, now_ms, side="right"))
        return bars, LiquidationPrints(
            time_[lo:hi], np.concatenate([p.price for p in prints])[lo:hi],
            np.concatenate([p.usd for p in prints])[lo:hi],
            np.concatenate([p.is_long for p in prints])[lo:hi])


@dataclass(slots=True)
class ReplaySource:
    """A `MarketSource` that reveals shipped data bar by bar as the virtual clock passes."""

    data: Mapping[str, ReplayData]
    clock: ReplayClock
    loops: int = 1  # passes over the data (each later pass is shifted by the data's length)
    keep_ms: int | None = None  # bars older than this are dropped (as a live history window)

    @property
    def symbols(self) -> list[str]:
        """Symbols with data."""
        return sorted(self.data)

    @property
    def end_ms(self) -> int:
        """Virtual time when the last bar of the last pass has closed."""
        return max(d.start_ms + max(self.loops, 1) * d.period_ms for d in self.data.values())

    def finished(self) -> bool:
        """True once the virtual clock passed the end of the data."""
        return self.clock.now_ms() >= self.end_ms

    async def snapshot(self, symbol: str) -> MarketSnapshot:
        """Bars closed by the virtual now (Binance stands for the aggregate series)."""
        base = resolve(symbol).base
        data = self.data.get(base)
        if data is None:
            raise UnknownSymbolError(symbol, f"no replay data for {symbol!r} "
                                             f"(have {', '.join(self.symbols)})")
        bars, prints = data.view(self.clock.now_ms(), self.loops, self.keep_ms)
        if len(bars) < 2:
            raise MarketDataError(f"replay of {base} has not started yet")
        return MarketSnapshot(symbol=base, bars={Venue.BINANCE: bars},
                              prints={} if prints is None else {Venue.BINANCE: prints})


def _symbol_of(path: Path) -> str:
    """`BTC` from `btcusdt-1m-....bars.csv` or `btc-okx-liquidations-....csv`."""
    return resolve(path.name.split("-")[0]).base


def load_replay(path: Path) -> dict[str, ReplayData]:
    """Bench-schema data from a bars CSV, or from a folder of `*.bars.csv` and
    `*liquidations*.csv` files (the finest bars per symbol win)."""
    from market import files

    if path.is_file():
        bar_files, liq_files = [path], []
    elif path.is_dir():
        bar_files = sorted(path.glob("*.bars.csv"))
        liq_files = sorted(path.glob("*liquidations*.csv"))
    else:
        raise DataFileError(path, "no such file or folder")
    if not bar_files:
        raise DataFileError(path, "no *.bars.csv file to replay")
    bars_by_symbol: dict[str, Bars] = {}
    for bar_file in bar_files:
        symbol = _symbol_of(bar_file)
        bars = files.load_bench_bars(bar_file)
        kept = bars_by_symbol.get(symbol)
        if kept is None or bars.interval_ms < kept.interval_ms:
            bars_by_symbol[symbol] = bars
    out: dict[str, ReplayData] = {}
    for symbol, bars in bars_by_symbol.items():
        events = [e for f in liq_files if _symbol_of(f) == symbol
                  for e in files.load_bench_liquidations(f, symbol)]
        prints = LiquidationPrints.from_events(events) if events else None
        out[symbol] = ReplayData(symbol, bars, prints)
        logger.info("replay %s: %d bars of %d min, %d realized liquidations", symbol, len(bars),
                    bars.interval_ms // MINUTE_MS, len(events))
    return out


def replay_source(path: Path, speed: float, *, warmup_ms: int = DEFAULT_WARMUP_MS,
                  anchor: float | None = None, loops: int = 1,
                  keep_ms: int | None = None) -> ReplaySource:
    """A source whose virtual clock starts `warmup_ms` after the first bar (at most a third of
    the data in), at wall instant `anchor` (now by default: a restart may pass the old one),
    playing the data `loops` times and keeping the last `keep_ms` of bars."""
    data = load_replay(path)
    first = min(d.start_ms for d in data.values())
    span = max(d.end_ms for d in data.values()) - first
    start = first + min(warmup_ms, span // 3)
    clock = ReplayClock(start, speed, anchor if anchor is not None else time.time())
    return ReplaySource(data, clock, loops, keep_ms)
