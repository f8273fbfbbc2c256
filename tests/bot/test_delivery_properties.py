"""Property: whatever the mix of duplicate enqueues, failures and restarts, no key is delivered
twice and every enqueued key is eventually delivered once."""

from __future__ import annotations

import asyncio
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from bot.delivery import OutboxWorker
from bot.notifier import DeliveryError, DeliveryReceipt, OutgoingMessage, Target
from storage import outbox, repo
from storage.db import make_engine, session_factory, upgrade

T0 = datetime(2026, 1, 5, 12, 0, tzinfo=UTC)

actions = st.lists(
    st.one_of(
        st.tuples(st.just("enqueue"), st.integers(0, 7)),
        st.tuples(st.just("fail_next"), st.integers(1, 3)),
        st.just(("claim_and_crash", 0)),
        st.just(("restart", 0)),
        st.just(("work", 0)),
    ),
    min_size=1, max_size=25,
)


class Platform:
    """Counts deliveries per key; fails the next `failing` sends recoverably."""

    name = "telegram"

    def __init__(self) -> None:
        self.delivered: Counter[str] = Counter()
        self.failing = 0

    async def send(self, target: Target, message: OutgoingMessage) -> DeliveryReceipt:
        if self.failing:
            self.failing -= 1
            raise DeliveryError("503", recoverable=True)
        self.delivered[message.key] += 1
        return DeliveryReceipt(self.name, None)


async def _scenario(url: str, steps: list[tuple[str, int]], run: int) -> None:
    engine = make_engine(url)
    sessions = session_factory(engine)
    async with sessions() as s, s.begin():
        chat = await repo.upsert_chat(s, "telegram", f"run{run}")
    assert chat.id is not None
    platform = Platform()
    clock = [T0]

    def make() -> OutboxWorker:
        return OutboxWorker(sessions, [platform], clock=lambda: clock[0], max_attempts=100)

    worker = make()
    enqueued: set[str] = set()
    for action, arg in steps:
        clock[0] += timedelta(minutes=30)
        if action == "enqueue":
            key = f"r{run}:k{arg}"
            async with sessions() as s, s.begin():
                await outbox.enqueue(s, key, chat.id, "cross", {"title": key}, now=clock[0])
            enqueued.add(key)
        elif action == "fail_next":
            platform.failing = arg
        elif action == "claim_and_crash":  # a worker claimed rows and died before sending
            async with sessions() as s, s.begin():
                await outbox.claim_due(s, clock[0], limit=2, platform="telegram")
        elif action == "restart":
            async with sessions() as s, s.begin():
                await outbox.requeue_sending(s, clock[0])
            worker = make()
        else:
            await worker.drain()
    async with sessions() as s, s.begin():
        await outbox.requeue_sending(s, clock[0])
    platform.failing = 0
    for _ in range(10):
        clock[0] += timedelta(hours=2)
        await worker.drain()
    await engine.dispose()
    assert all(n == 1 for n in platform.delivered.values()), platform.delivered
    assert set(platform.delivered) == enqueued


def test_no_key_is_delivered_twice(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'prop.db'}"
    asyncio.run(upgrade(url))
    runs = iter(range(10**6))

    @settings(max_examples=25, deadline=None)
    @given(actions)
    def check(steps: list[tuple[str, int]]) -> None:
        asyncio.run(_scenario(url, steps, next(runs)))

    check()
