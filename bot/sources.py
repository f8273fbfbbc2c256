"""Where a symbol's bars come from: live venues, a data folder or bench CSV files."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Protocol

import numpy as np

from engine.types import DAY_MS, Bars, LiquidationEvent, LiquidationPrints, Venue
from market.errors import MarketDataError, UnknownSymbolError
from market.symbols import resolve
from market.venue import VenueClient, now_ms

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True, eq=False)
class MarketSnapshot:
    """Bars per venue (and realized prints) for one symbol, plus the venues that failed."""

    symbol: str
    bars: Mapping[Venue, Bars]
    prints: Mapping[Venue, LiquidationPrints] = field(default_factory=dict)
    failed: Mapping[Venue, str] = field(default_factory=dict)

    @property
    def last_close_ms(self) -> int:
        """Close time of the newest bar over all venues."""
        return max(int(b.time[-1] + b.interval_ms) for b in self.bars.values())


class MarketSource(Protocol):
    """Something that can produce a snapshot of a symbol."""

    async def snapshot(self, symbol: str) -> MarketSnapshot:
        """Current bars per venue; raises UnknownSymbolError or MarketDataError."""
        ...


@dataclass(slots=True)
class LiveSource:
    """Fetches bars from every configured venue; venues that fail are skipped and reported.

    The first snapshot of a symbol fetches `history_days`; later ones fetch only the bars since
    the last kept one (plus a small overlap) and append them, so a refresh every minute costs a
    request or two per venue instead of a week of klines. Only closed bars are kept: the bar in
    progress would enter the model as if it had closed.
    """

    clients: Mapping[Venue, VenueClient]
    history_days: int = 7
    interval: str = "1m"
    clock: Callable[[], int] = now_ms
    cache: dict[tuple[str, Venue], Bars] = field(default_factory=dict)

    async def snapshot(self, symbol: str) -> MarketSnapshot:
        """Fetch all venues concurrently; degrade to the venues that answer."""
        sym = resolve(symbol)
        until = self.clock()
        venues = list(self.clients)
        results = await asyncio.gather(
            *(self._fetch(sym.base, v, until) for v in venues), return_exceptions=True)
        bars: dict[Venue, Bars] = {}
        failed: dict[Venue, str] = {}
        unknown: list[UnknownSymbolError] = []
        for venue, result in zip(venues, results, strict=True):
            if isinstance(result, Bars):
                if len(result) >= 2:
                    bars[venue] = result
                else:
                    failed[venue] = "no closed bars"
            elif isinstance(result, UnknownSymbolError):
                unknown.append(result)
                failed[venue] = str(result)
            elif isinstance(result, MarketDataError):
                failed[venue] = str(result)
                logger.warning("venue %s failed for %s: %s", venue, symbol, result)
            elif isinstance(result, BaseException):
                raise result
        if not bars:
            if unknown and len(unknown) == len(venues):
                raise unknown[0]
            raise MarketDataError(", ".join(failed.values()) or "no venue answered")
        return MarketSnapshot(symbol=str(sym), bars=bars, failed=failed)

    async def _fetch(self, base: str, venue: Venue, until: int) -> Bars:
        """Closed bars of one venue: the cached history extended by what is new."""
        key = (base, venue)
        cached = self.cache.get(key)
        start = until - self.history_days * DAY_MS
        since = start if cached is None else int(cached.time[-1]) - OVERLAP_BARS * \
            cached.interval_ms
        fresh = closed_bars(await self.clients[venue].fetch_bars(base, self.interval, since,
                                                                 until), until)
        merged = fresh if cached is None else extend_bars(cached, fresh)
        first = int(np.searchsorted(merged.time, start, side="left"))
        if first:
            merged = merged.slice(first, len(merged))
        self.cache[key] = merged
        return merged


OVERLAP_BARS = 3


def closed_bars(bars: Bars, now: int) -> Bars:
    """The bars that closed at or before `now` (venues also return the one in progress)."""
    return bars.until(now)


def extend_bars(old: Bars, new: Bars) -> Bars:
    """`old` followed by the bars of `new` from its first bar on (new values win on overlap).

    Context columns that `new` lacks at its start (open interest, funding and long/short ratio
    are fetched for the new span only) carry the last known value of `old` forward.
    """
    if len(new) == 0:
        return old
    keep = int(np.searchsorted(old.time, new.time[0], side="left"))
    head = old.slice(0, keep)
    if len(head) == 0:
        return new
    carried = {}
    for name in ("open_interest_usd", "funding_rate", "long_short_ratio"):
        column = getattr(new, name).copy()
        last = getattr(head, name)[np.isfinite(getattr(head, name))]
        if last.size:
            missing = ~np.isfinite(column)
            lead = np.argmax(~missing) if (~missing).any() else column.size
            column[:lead] = last[-1]
        carried[name] = column
    return head.concat(replace(new, **carried))


@dataclass(slots=True)
class FileSource:
    """Bars read once from files (bench CSV or a Binance data folder), cut at `as_of_ms`."""

    bars: Mapping[Venue, Bars]
    prints: Mapping[Venue, LiquidationPrints]
    symbol: str
    as_of_ms: int | None = None

    async def snapshot(self, symbol: str) -> MarketSnapshot:
        """The loaded data when the symbol matches; otherwise an unknown-symbol error."""
        if resolve(symbol).base != resolve(self.symbol).base:
            raise UnknownSymbolError(symbol, f"no data for {symbol!r} in the given files "
                                             f"(they hold {self.symbol})")
        cut = {v: (b.until(self.as_of_ms) if self.as_of_ms is not None else b)
               for v, b in self.bars.items()}
        cut = {v: b for v, b in cut.items() if len(b) >= 2}
        if not cut:
            raise MarketDataError(f"no bars for {symbol} before the requested time")
        return MarketSnapshot(symbol=resolve(symbol).base, bars=cut, prints=self.prints)


def prints_by_venue(events: list[LiquidationEvent]) -> dict[Venue, LiquidationPrints]:
    """Group realized liquidations by venue as columnar prints."""
    grouped: dict[Venue, list[LiquidationEvent]] = {}
    for event in events:
        grouped.setdefault(event.venue, []).append(event)
    return {venue: LiquidationPrints.from_events(evts) for venue, evts in grouped.items()}


def load_file_source(
    symbol: str,
    *,
    data_dir: Path | None = None,
    bars_file: Path | None = None,
    liquidations_file: Path | None = None,
    as_of_ms: int | None = None,
) -> FileSource:
    """Load bench-schema CSVs or a Binance public-data folder (venue: Binance)."""
    from market import files

    sym = resolve(symbol)
    for path in (bars_file, liquidations_file):
        held = _symbol_in_name(path) if path is not None else None
        if held is not None and held != sym.base:
            raise UnknownSymbolError(symbol, f"no data for {symbol!r}: {path} holds {held}")
    if data_dir is not None:
        bars = files.load_binance_folder(data_dir, sym.base, "1m")
    elif bars_file is not None:
        bars = files.load_bench_bars(bars_file)
    else:
        raise ValueError("give --data DIR or --bars FILE")
    events = files.load_bench_liquidations(liquidations_file, sym.base) if liquidations_file else []
    prints = prints_by_venue(events)
    # Prints of other venues still consume levels: the bench bars are a single aggregate series.
    merged = LiquidationPrints.from_events(events) if events else None
    return FileSource(bars={Venue.BINANCE: bars},
                      prints={Venue.BINANCE: merged} if merged is not None else prints,
                      symbol=sym.base, as_of_ms=as_of_ms)


def _symbol_in_name(path: Path) -> str | None:
    """`BTC` for names like `btcusdt-1m-....csv` or `btc-okx-...csv`; None when unclear."""
    head = path.name.replace("_", "-").split("-")[0]
    try:
        return resolve(head).base if head.upper().endswith("USDT") or len(head) <= 5 else None
    except UnknownSymbolError:
        return None
