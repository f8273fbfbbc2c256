"""Maps, images and briefs per symbol and window: built off the event loop, cached by data time."""

from __future__ import annotations

import asyncio
import logging
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TypeVar

from bot.sources import MarketSnapshot, MarketSource
from engine.mapping import build_map
from engine.types import LiquidationMap, Window

logger = logging.getLogger(__name__)

K = TypeVar("K")
V = TypeVar("V")


class _Lru(OrderedDict[K, V]):
    """A small bounded mapping that forgets the least recently used entry."""

    def __init__(self, size: int) -> None:
        super().__init__()
        self.size = size

    def put(self, key: K, value: V) -> None:
        self[key] = value
        self.move_to_end(key)
        while len(self) > self.size:
            self.popitem(last=False)


WIDE_WINDOWS = frozenset({Window.D7, Window.D30})
MAP_CACHE_SIZE = 16
PNG_CACHE_SIZE = 32


@dataclass(slots=True)
class MapService:
    """Keeps the latest snapshot per symbol and serves maps, PNGs and briefs from caches.

    A refresh replaces the snapshot; every derived artefact is keyed by (symbol, window, data
    time), so many chats asking for the same map share one build and one render.
    """

    source: MarketSource
    stale_after_ms: int = 600_000
    clock: Callable[[], float] = time.time
    wide_source: MarketSource | None = None
    wide_ttl_ms: int = 15 * 60_000
    snapshots: dict[str, MarketSnapshot] = field(default_factory=dict)
    wide_snapshots: dict[str, tuple[int, MarketSnapshot]] = field(default_factory=dict)
    # Bounded by count: a map holds about 1-2 MB of heatmap arrays, a PNG 100-400 KB.
    _maps: _Lru[tuple[str, Window, int], LiquidationMap] = field(
        default_factory=lambda: _Lru(MAP_CACHE_SIZE))
    _pngs: _Lru[tuple[str, Window, int], bytes] = field(
        default_factory=lambda: _Lru(PNG_CACHE_SIZE))
    _locks: dict[object, asyncio.Lock] = field(default_factory=dict)

    def now_ms(self) -> int:
        """The service clock in epoch milliseconds."""
        return int(self.clock() * 1000)

    async def refresh(self, symbol: str) -> MarketSnapshot:
        """Fetch a new snapshot for `symbol` and keep it."""
        snap = await self.source.snapshot(symbol)
        self.snapshots[snap.symbol] = snap
        return snap

    async def snapshot(self, symbol: str) -> MarketSnapshot:
        """The kept snapshot, fetched first if there is none (raises for unknown symbols)."""
        from market.symbols import resolve

        key = resolve(symbol).base
        snap = self.snapshots.get(key)
        if snap is None:
            snap = await self.refresh(key)
        return snap

    def is_stale(self, snap: MarketSnapshot) -> bool:
        """True when the newest bar closed longer ago than the staleness limit."""
        return self.now_ms() - snap.last_close_ms > self.stale_after_ms

    async def snapshot_for(self, symbol: str, window: Window) -> MarketSnapshot:
        """The snapshot a window is drawn from: coarse long history for 7d/30d when configured
        (a month of one-minute bars is too much to fetch every minute), else the kept one."""
        if window not in WIDE_WINDOWS or self.wide_source is None:
            return await self.snapshot(symbol)
        from market.symbols import resolve

        key = resolve(symbol).base
        now = self.now_ms()
        kept = self.wide_snapshots.get(key)
        if kept is None or now - kept[0] >= self.wide_ttl_ms:
            kept = (now, await self.wide_source.snapshot(key))
            self.wide_snapshots[key] = kept
        return kept[1]

    async def get_map(self, symbol: str, window: Window = Window.H24) -> LiquidationMap:
        """The map of the window's snapshot, built once per data time."""
        snap = await self.snapshot_for(symbol, window)
        key = (snap.symbol, window, snap.last_close_ms)
        return await self._cached(self._maps, key, lambda: asyncio.to_thread(
            build_map, snap.symbol, snap.bars, window, prints=snap.prints or None,
            now_ms=self.now_ms()))

    async def get_png(self, symbol: str, window: Window = Window.H24) -> bytes:
        """The heatmap PNG of the kept snapshot, rendered once per data time."""
        from engine.render import render_heatmap

        m = await self.get_map(symbol, window)
        key = (m.symbol, window, m.as_of_ms)
        return await self._cached(self._pngs, key,
                                  lambda: asyncio.to_thread(render_heatmap, m))

    async def _cached(self, cache: _Lru[K, V], key: K, make: Callable[[], Awaitable[V]]) -> V:
        if key in cache:
            cache.move_to_end(key)
            return cache[key]
        lock = self._locks.setdefault(("lock", key), asyncio.Lock())
        async with lock:
            if key not in cache:
                cache.put(key, await make())
        self._locks.pop(("lock", key), None)
        return cache[key]
