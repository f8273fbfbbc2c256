"""Replay of loaded bars."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import numpy as np
import pytest

from engine.types import Bars
from market.files import load_bench_bars
from market.replay import replay

SAMPLE = Path(__file__).parent / "fixtures" / "bench" / "btcusdt-1m-sample.bars.csv"


@pytest.fixture
def bars() -> Bars:
    return load_bench_bars(SAMPLE)  # 20 one-minute bars


@pytest.mark.parametrize(("warmup", "step", "sizes"), [
    (1, 1, list(range(1, 21))),
    (15, 1, [15, 16, 17, 18, 19, 20]),
    (10, 4, [10, 14, 18, 20]),
    (20, 5, [20]),
])
async def test_prefixes(bars: Bars, warmup: int, step: int, sizes: list[int]) -> None:
    seen = [prefix async for prefix in replay(bars, speed=0, warmup=warmup, step=step)]
    assert [len(p) for p in seen] == sizes
    np.testing.assert_array_equal(seen[-1].time, bars.time)
    assert all(p.interval_ms == bars.interval_ms for p in seen)


async def test_speed_paces_the_bars(bars: Bars) -> None:
    started = time.perf_counter()
    seen = [p async for p in replay(bars, speed=60_000 / 20, warmup=17)]  # 20 ms per bar
    elapsed = time.perf_counter() - started
    assert len(seen) == 4
    assert 0.05 <= elapsed < 0.5


async def test_stop_ends_the_replay(bars: Bars) -> None:
    stop = asyncio.Event()
    seen = []
    async for prefix in replay(bars, speed=1.0, stop=stop):  # a minute per bar
        seen.append(prefix)
        stop.set()
    assert len(seen) == 1


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"warmup": 0}, "warmup"), ({"warmup": 21}, "warmup"), ({"step": 0}, "step"),
    ({"speed": -1.0}, "speed"),
])
async def test_bad_arguments(bars: Bars, kwargs: dict[str, float], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        async for _ in replay(bars, **kwargs):  # type: ignore[arg-type]
            pass
