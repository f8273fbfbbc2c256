"""Replay of shipped data: virtual clock, warm-up, no look-ahead, looping passes, history window."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from bot.replay_source import ReplayClock, replay_source
from engine.types import HOUR_MS, MINUTE_MS
from market.errors import DataFileError, MarketDataError, UnknownSymbolError

DEMO = Path(__file__).resolve().parents[2] / "data" / "demo"


class Wall:
    """A wall clock tests move by hand."""

    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


def test_clock_runs_speed_times_faster() -> None:
    wall = Wall()
    clock = ReplayClock(start_ms=0, speed=600, anchor=wall.t, wall=wall)
    wall.t += 1.5
    assert clock.now_ms() == 900_000
    assert clock.now().year == 1970 and clock.wall_seconds(600) == 1.0


async def test_snapshot_reveals_only_closed_bars_and_seen_prints() -> None:
    src = replay_source(DEMO, 600, anchor=0.0)
    wall = Wall()
    src.clock.wall, src.clock.anchor = wall, wall.t
    data = src.data["BTC"]
    assert src.clock.start_ms == data.start_ms + data.period_ms // 3  # warm-up capped at 1/3
    snap = await src.snapshot("btcusdt")
    bars = snap.bars[next(iter(snap.bars))]
    prints = snap.prints[next(iter(snap.prints))]
    now = src.clock.now_ms()
    assert bars.time[-1] + bars.interval_ms <= now < bars.time[-1] + 2 * bars.interval_ms
    assert prints.time.max() <= now
    wall.t += 60.0  # ten virtual hours later
    later = await src.snapshot("BTC")
    assert len(later.bars[next(iter(later.bars))]) > len(bars)
    with pytest.raises(UnknownSymbolError):
        await src.snapshot("ETH")


async def test_not_started_and_missing_files(tmp_path: Path) -> None:
    src = replay_source(DEMO, 600, warmup_ms=0)
    src.clock.start_ms = src.data["BTC"].start_ms
    with pytest.raises(MarketDataError):
        await src.snapshot("BTC")
    with pytest.raises(DataFileError):
        replay_source(tmp_path / "nothing", 60)
    with pytest.raises(DataFileError):
        replay_source(tmp_path, 60)


def test_loops_continue_the_series_and_keep_a_window() -> None:
    src = replay_source(DEMO, 600, loops=3, keep_ms=6 * HOUR_MS)
    data = src.data["BTC"]
    assert src.end_ms == data.start_ms + 3 * data.period_ms
    seam = data.start_ms + data.period_ms
    bars, prints = data.view(seam + 30 * MINUTE_MS, loops=3, keep_ms=6 * HOUR_MS)
    assert np.all(np.diff(bars.time) == MINUTE_MS)  # one contiguous series across the seam
    assert bars.time[0] >= seam + 30 * MINUTE_MS - 6 * HOUR_MS
    assert prints is not None and np.all(np.diff(prints.time) >= 0)
    past_end, _ = data.view(src.end_ms + HOUR_MS, loops=3)
    assert past_end.time[-1] + MINUTE_MS == src.end_ms  # nothing after the last pass
