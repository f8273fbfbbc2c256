"""Standby and takeover: wait for the database's service lock, and stop if it is lost."""

from __future__ import annotations

import asyncio
import contextlib
import logging

from sqlalchemy.exc import SQLAlchemyError

from storage.instance_lock import InstanceLock

logger = logging.getLogger(__name__)


async def stand_by(lock: InstanceLock, stop: asyncio.Event, retry_s: float) -> bool:
    """Take the database's service lock, waiting as a standby while another service holds
    it; False when stopped first. The first failure to reach the database is fatal (as at any
    start); a standby rides out later ones."""
    if await lock.try_acquire():
        return True
    print("liqradar: another liqradar service is active on this database; standing by",
          flush=True)
    logger.warning("another service holds this database's lock; standing by (retrying every "
                   "%.0f s)", retry_s)
    while not stop.is_set():
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), retry_s)
        if stop.is_set():
            break
        try:
            if await lock.try_acquire():
                logger.info("the database's lock is free: taking over")
                return True
        except (SQLAlchemyError, OSError) as exc:
            logger.warning("standby: cannot reach the database (%s); retrying", exc)
    return False


async def watch_lock(lock: InstanceLock, stop: asyncio.Event, lost: asyncio.Event,
                      every_s: float) -> None:
    """Stop the service if its lock is gone (its database session dropped): a standby may
    already be taking over, and two active services would send everything twice."""
    while not stop.is_set():
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), every_s)
        if not stop.is_set() and not await _still_held(lock, max(10.0, 3 * every_s)):
            logger.error("lost this database's service lock (its connection dropped); "
                         "stopping so that only one service runs")
            lost.set()
            stop.set()


async def _still_held(lock: InstanceLock, timeout_s: float) -> bool:
    """`lock.held()`, counting a check that hangs past `timeout_s` (a silent network cut) as
    lost."""
    try:
        return await asyncio.wait_for(lock.held(), timeout_s)
    except TimeoutError:
        return False
