"""Replay loaded bars as if live, for `liqradar run --replay`."""

from __future__ import annotations

import asyncio
import contextlib
import math
from collections.abc import AsyncIterator

from engine.types import Bars


async def replay(bars: Bars, *, speed: float = 60.0, warmup: int = 1, step: int = 1,
                 stop: asyncio.Event | None = None) -> AsyncIterator[Bars]:
    """Growing prefixes of `bars`: first `warmup` bars, then `step` more at a time, waiting
    step × interval / speed between them (no wait when speed is 0 or infinite)."""
    if not 1 <= warmup <= max(len(bars), 1) or step < 1:
        raise ValueError(f"need 1 <= warmup <= {len(bars)} and step >= 1")
    if speed < 0:
        raise ValueError("speed must not be negative")
    wait_s = 0.0 if speed == 0 or math.isinf(speed) else step * bars.interval_ms / 1000 / speed
    stop = stop or asyncio.Event()
    for end in range(warmup, len(bars) + step, step):
        if stop.is_set():
            return
        yield bars.slice(0, min(end, len(bars)))
        if end >= len(bars):
            return
        if wait_s:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=wait_s)
