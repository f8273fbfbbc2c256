"""Live source: incremental refreshes, closed bars only, failing venues degrade."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pytest

from bot.sources import LiveSource, extend_bars
from engine.types import DAY_MS, MINUTE_MS, Bars, Venue
from market.errors import UnknownSymbolError, VenueUnavailableError
from market.points import MarkPrice
from market.symbols import Symbol

T0 = 1_772_600_000_000 // MINUTE_MS * MINUTE_MS


def minute_bars(start: int, stop: int, oi_every: int = 5) -> Bars:
    """Bars opening in [start, stop) on the minute, OI only on multiples of `oi_every`."""
    t = np.arange(start, stop, MINUTE_MS, dtype=np.int64)
    k = (t - T0) // MINUTE_MS
    price = 70_000 + 10 * np.sin(k / 7.0)
    oi = np.where(k % oi_every == 0, 7e9 + k * 1e4, np.nan)
    first = np.flatnonzero(np.isfinite(oi))
    if first.size:  # venues forward-fill from their first point on
        for i in range(first[0] + 1, oi.size):
            if not np.isfinite(oi[i]):
                oi[i] = oi[i - 1]
    return Bars.from_columns(t, price, price + 5, price - 5, price, interval_ms=MINUTE_MS,
                             volume=np.ones(t.size), open_interest_usd=oi)


@dataclass
class FakeVenue:
    """A venue client serving synthetic minute bars and recording the requested spans."""

    venue: Venue = Venue.BINANCE
    calls: list[tuple[int, int]] = field(default_factory=list)
    fail: Exception | None = None

    async def fetch_bars(self, symbol: object, interval: object, since_ms: int,
                         until_ms: int) -> Bars:
        self.calls.append((since_ms, until_ms))
        if self.fail is not None:
            raise self.fail
        start = -(-since_ms // MINUTE_MS) * MINUTE_MS
        return minute_bars(start, until_ms)  # includes the bar still in progress

    async def fetch_mark(self, symbol: str | Symbol) -> MarkPrice:
        raise NotImplementedError


async def test_refresh_fetches_only_new_bars_and_keeps_closed_ones() -> None:
    venue = FakeVenue()
    now = [T0 + 3 * DAY_MS + 30_000]  # half a minute into a bar
    source = LiveSource({Venue.BINANCE: venue}, history_days=2, clock=lambda: now[0])
    first = (await source.snapshot("btc")).bars[Venue.BINANCE]
    assert venue.calls[0] == (now[0] - 2 * DAY_MS, now[0])
    assert int(first.time[-1]) + MINUTE_MS <= now[0], "the open bar was kept"
    now[0] += 10 * MINUTE_MS
    second = (await source.snapshot("BTCUSDT")).bars[Venue.BINANCE]
    since, _ = venue.calls[1]
    assert since == int(first.time[-1]) - 3 * MINUTE_MS
    assert len(second) == len(first)  # a rolling two-day window of closed bars
    assert np.all(np.diff(second.time) == MINUTE_MS)
    assert np.all(np.isfinite(second.open_interest_usd))
    expected = minute_bars(int(second.time[0]), int(second.time[-1]) + MINUTE_MS)
    np.testing.assert_allclose(second.close, expected.close)


def test_extend_carries_context_into_the_new_span() -> None:
    old = minute_bars(T0, T0 + 60 * MINUTE_MS)
    new = minute_bars(T0 + 58 * MINUTE_MS, T0 + 70 * MINUTE_MS, oi_every=1000)
    merged = extend_bars(old, new)
    assert len(merged) == 70
    assert np.all(merged.open_interest_usd[58:] == old.open_interest_usd[57])


async def test_a_failing_venue_degrades_to_the_others() -> None:
    outage = VenueUnavailableError("HTTP 500", venue=Venue.OKX, endpoint="candles")
    good, bad = FakeVenue(), FakeVenue(Venue.OKX, fail=outage)
    source = LiveSource({Venue.BINANCE: good, Venue.OKX: bad}, history_days=1,
                        clock=lambda: T0 + 2 * DAY_MS)
    snap = await source.snapshot("BTC")
    assert set(snap.bars) == {Venue.BINANCE}
    assert Venue.OKX in snap.failed


async def test_unknown_everywhere_is_unknown() -> None:
    err = UnknownSymbolError("NOPE")
    source = LiveSource({Venue.BINANCE: FakeVenue(fail=err)}, clock=lambda: T0 + DAY_MS)
    with pytest.raises(UnknownSymbolError):
        await source.snapshot("NOPE")


async def test_long_windows_use_the_coarse_history() -> None:
    from bot.mapservice import MapService
    from engine.types import Window

    now = [T0 + 3 * DAY_MS]
    fine, coarse = FakeVenue(), FakeVenue()
    service = MapService(LiveSource({Venue.BINANCE: fine}, 1, clock=lambda: now[0]),
                         clock=lambda: now[0] / 1000,
                         wide_source=LiveSource({Venue.BINANCE: coarse}, 2,
                                                clock=lambda: now[0]))
    day = await service.get_map("BTC", Window.H24)
    week = await service.get_map("BTC", Window.D7)
    assert len(fine.calls) == 1 and len(coarse.calls) == 1
    assert week.heatmap.times[0] < day.heatmap.times[0]
    await service.get_map("BTC", Window.D30)
    assert len(coarse.calls) == 1, "the coarse snapshot is reused within its time to live"
    now[0] += 16 * MINUTE_MS
    await service.get_map("BTC", Window.D30)
    assert len(coarse.calls) == 2
