"""The service's alert path: bars -> settled price path -> AlertLedger -> outbox rows."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, cast

import pytest

from bot.alerting import AlertPipeline, bar_path
from bot.metrics import Metrics
from engine.alerts import AlertKind, Decision, Reason
from engine.types import Band, Bars, LiquidationMap, Side
from storage import outbox, repo
from storage.alert_store import AlertLedger
from storage.db import SessionFactory

T0 = datetime(2026, 1, 5, 12, 0, tzinfo=UTC)
MINUTE = 60_000
LONG = Band(Side.LONG, 95.0, 97.0, 96.0, 5e6, 3.0, 0.9)


def _bars(*ohlc: tuple[float, float, float, float], start: datetime = T0) -> Bars:
    t0 = int(start.timestamp() * 1000)
    return Bars.from_columns([t0 + i * MINUTE for i in range(len(ohlc))],
                             [b[0] for b in ohlc], [b[1] for b in ohlc], [b[2] for b in ohlc],
                             [b[3] for b in ohlc], interval_ms=MINUTE)


@dataclass
class _Map:
    """The part of a LiquidationMap the pipeline reads."""

    symbol: str
    price: float
    bands: tuple[Band, ...]
    swept: tuple[Band, ...] = ()


def _map(price: float, bands: tuple[Band, ...] = (LONG,)) -> LiquidationMap:
    return cast(LiquidationMap, _Map("BTC", price, bands))


def _payload(decision: Decision) -> dict[str, Any]:
    return {"title": decision.kind.value, "sections": [decision.key]}


async def _subscribers(db: SessionFactory, n: int) -> list[int]:
    ids = []
    async with db() as s, s.begin():
        for i in range(n):
            chat = await repo.upsert_chat(s, "telegram", str(i + 1))
            assert chat.id is not None
            sub = await repo.subscribe(s, chat.id, "BTC", sensitivity="balanced")
            assert sub.id is not None
            ids.append(sub.id)
    return ids


def test_bar_path_walks_extremes_and_settles_on_closes() -> None:
    bars = _bars((100, 101, 99, 100.5), (100.5, 100.5, 100.5, 100.5), (100.5, 102, 100, 100))
    assert [(a, b, s) for _, a, b, s in bar_path(bars, None, None)] == [
        (100.5, 102, False), (102, 100, True)]  # only the last bar when there is no cursor
    c1, c2, c3 = (T0 + timedelta(minutes=i) for i in (1, 2, 3))
    assert bar_path(bars, int(T0.timestamp() * 1000) - MINUTE, 99.0) == [
        (c1, 99.0, 100.0, False), (c1, 100.0, 99.0, False), (c1, 99.0, 101.0, False),
        (c1, 101.0, 100.5, True),  # wicks first, the close settles
        (c2, 100.5, 100.5, True),  # a bar that did not move still settles
        (c3, 100.5, 102.0, False), (c3, 102.0, 100.0, True),
    ]


async def test_pipeline_enqueues_once_per_subscription_and_wakes(db: SessionFactory) -> None:
    subs = await _subscribers(db, 3)
    woke: list[int] = []
    pipeline = AlertPipeline(db, _payload, lambda: woke.append(1), Metrics())
    assert await pipeline.reload(T0) and not await pipeline.reload(T0)
    assert pipeline.symbols() == {"BTC"}
    quiet = _bars((100, 100.2, 99.8, 100))
    assert await pipeline.on_map(_map(100.0), quiet, stale=False) == []
    bars = _bars((100, 100.2, 99.8, 100), (100, 100, 97.4, 97.6))
    decisions = await pipeline.on_map(_map(97.6), bars, stale=False)
    fired = [d for d in decisions if d.fired]
    assert sorted(d.subscription_id for d in fired) == subs
    assert {d.kind for d in fired} == {AlertKind.APPROACH} and woke
    assert await pipeline.on_map(_map(97.6), bars, stale=False) == []  # no new bars
    async with db() as s:
        assert (await outbox.depth(s))["pending"] == 3


class _Flaky:
    """A payload function that fails for one subscription until healed."""

    def __init__(self, fail_for: int) -> None:
        self.fail_for: int | None = fail_for

    def __call__(self, decision: Decision) -> dict[str, Any]:
        if decision.subscription_id == self.fail_for:
            raise RuntimeError("boom")
        return _payload(decision)


@pytest.mark.parametrize("chunk", [1, 2, 25])
async def test_ledger_adopts_only_after_every_chunk_committed(db: SessionFactory,
                                                              chunk: int) -> None:
    subs = await _subscribers(db, 5)
    flaky = _Flaky(subs[3])
    commits: list[int] = []
    ledger = await AlertLedger.load(db, flaky, T0, on_commit=lambda: commits.append(1),
                                    chunk=chunk)
    await ledger.tick("BTC", (LONG,), 100.0, 100.0, T0)
    before = ledger.book
    step = ("BTC", (LONG,), 97.5, 100.0, T0 + timedelta(minutes=1))
    with pytest.raises(RuntimeError):
        await ledger.tick(*step)
    assert ledger.book is before  # not adopted: the next tick recomputes from here
    flaky.fail_for = None
    commits.clear()
    decisions = await ledger.tick(*step)
    assert [d.reason for d in decisions] == [Reason.FIRED_FIRST] * 5
    async with db() as s:
        assert (await outbox.depth(s))["pending"] == 5  # chunks committed before the failure
        for d in decisions:                              # were not enqueued twice
            assert await outbox.get_delivery(s, d.key) is not None
    assert ledger.book is not before and commits  # adopted; the worker was woken
