"""Outbox worker: at-least-once delivery, dedup, backoff, permanent failures, isolation, images."""

from __future__ import annotations

import asyncio
import io
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import pytest

from bot.alert_messages import alert_message, payload_for
from bot.delivery import OutboxWorker, backoff
from bot.notifier import (
    ConsoleNotifier,
    DeliveryError,
    DeliveryReceipt,
    ImageRef,
    Notifier,
    OutgoingMessage,
    Target,
    from_payload,
    to_payload,
)
from engine.alerts import AlertKind, Decision, HeldEvent, Reason
from engine.types import Band, Side
from storage import outbox, repo
from storage.db import SessionFactory

T0 = datetime(2026, 1, 5, 12, 0, tzinfo=UTC)
BAND = Band(Side.LONG, 95_000.0, 97_000.0, 96_000.0, 12e6, 3.0, 0.9)
NEXT = Band(Side.LONG, 90_000.0, 91_000.0, 90_500.0, 30e6, 8.0, 1.0)


class Clock:
    """A settable clock."""

    def __init__(self, now: datetime = T0) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


@dataclass
class FakeNotifier:
    """Records sends; `script` maps a chat id to errors raised on successive sends."""

    name: str = "telegram"
    sent: list[tuple[Target, OutgoingMessage]] = field(default_factory=list)
    script: dict[str, list[Exception]] = field(default_factory=dict)
    delay: float = 0.0
    changed: asyncio.Event = field(default_factory=asyncio.Event)

    async def wait_sent(self, count: int) -> None:
        """Wait until `count` messages were sent."""
        while len(self.sent) < count:
            self.changed.clear()
            await self.changed.wait()

    async def send(self, target: Target, message: OutgoingMessage) -> DeliveryReceipt:
        if self.delay:
            await asyncio.sleep(self.delay)
        errors = self.script.get(target.chat_id)
        if errors:
            raise errors.pop(0)
        self.sent.append((target, message))
        self.changed.set()
        return DeliveryReceipt(self.name, f"m{len(self.sent)}")


async def _chat(db: SessionFactory, chat_id: str, platform: str = "telegram") -> int:
    async with db() as s, s.begin():
        chat = await repo.upsert_chat(s, platform, chat_id)
        assert chat.id is not None
        await repo.subscribe(s, chat.id, "BTC")
        return chat.id


async def _enqueue(db: SessionFactory, key: str, chat_pk: int,
                   payload: dict[str, object] | None = None) -> bool:
    async with db() as s, s.begin():
        return await outbox.enqueue(s, key, chat_pk, "cross", payload or {"title": key}, now=T0)


async def _depth(db: SessionFactory) -> dict[str, int]:
    async with db() as s:
        return await outbox.depth(s)


def test_notifier_protocol_and_payload_round_trip() -> None:
    message = OutgoingMessage("t", ("a", "b"), image=ImageRef("BTC:24h:1", "BTC", "24h"))
    assert from_payload(to_payload(message)) == message
    assert isinstance(ConsoleNotifier(), Notifier)
    assert isinstance(FakeNotifier(), Notifier)
    with pytest.raises(ValueError):
        from_payload({"v": 99})


async def test_console_notifier_prints_plain_text() -> None:
    stream = io.StringIO()
    receipt = await ConsoleNotifier(stream).send(Target("console", "me"),
                                                 OutgoingMessage("Title", ("Body",), key="k"))
    assert receipt.message_id == "1"
    assert stream.getvalue() == "--- console:me [] k\nTitle\n\nBody\n"


@pytest.mark.parametrize(("attempts", "seconds"),
                         [(1, 5), (2, 10), (3, 20), (10, 2560), (20, 3600)])
def test_backoff_doubles_then_caps(attempts: int, seconds: int) -> None:
    assert backoff(attempts) == timedelta(seconds=seconds)


def _decision(kind: AlertKind, **extra: object) -> Decision:
    base: dict[str, object] = {"kind": kind, "reason": Reason.FIRED_FIRST, "subscription_id": 1,
                               "chat_id": 1, "symbol": "BTC", "at": T0, "price": 97_400.0,
                               "key": f"{kind}:1:b:0", "band_id": "b", "band": BAND}
    base.update(extra)
    return Decision(**base)  # type: ignore[arg-type]


@pytest.mark.parametrize(("decision", "title", "text"), [
    (_decision(AlertKind.APPROACH), "BTC is nearing a long liquidation band",
     "Price 97,400 is 0.41% from the long band 95,000-97,000 (est. $12.0M)."),
    (_decision(AlertKind.CROSS, price=94_000.0), "BTC traded through a long liquidation band",
     "Price 94,000, long band 95,000-97,000 (est. $12.0M)."),
    (_decision(AlertKind.SWEPT, realized_usd=4.2e6, next_band=NEXT),
     "BTC swept a long liquidation band",
     "Realized liquidations printed in the band: $4.2M.\n\n"
     "Next long pocket: long band 90,000-91,000 (est. $30.0M)."),
    (_decision(AlertKind.QUIET_SUMMARY, band=None, held=(
        HeldEvent(AlertKind.APPROACH, "b", Side.LONG, 95_000, 97_000, 97_400, T0, "k"),)),
     "BTC: 1 alert(s) during your quiet hours",
     "12:00 UTC approach: long band 95,000-97,000, price 97,400"),
])
def test_alert_message_is_plain_language(decision: Decision, title: str, text: str) -> None:
    message = alert_message(decision)
    assert message.title == title
    assert text in "\n\n".join(message.sections)
    payload = payload_for(decision)
    assert not any(c in str(payload) for c in "*_`<>")  # no markup below the adapters
    assert (payload["image"] is None) == (decision.kind is AlertKind.QUIET_SUMMARY)


async def test_delivers_each_key_once(db: SessionFactory) -> None:
    pk = await _chat(db, "1")
    assert await _enqueue(db, "k1", pk)
    assert not await _enqueue(db, "k1", pk)
    await _enqueue(db, "k2", pk)
    fake = FakeNotifier()
    worker = OutboxWorker(db, [fake], clock=Clock())
    assert await worker.drain() == 2
    assert await worker.drain() == 0
    assert sorted(m.key for _, m in fake.sent) == ["k1", "k2"]
    assert (await _depth(db))["sent"] == 2


async def test_recoverable_error_backs_off_then_succeeds(db: SessionFactory) -> None:
    pk = await _chat(db, "1")
    await _enqueue(db, "k", pk)
    fake = FakeNotifier(script={"1": [DeliveryError("timeout", recoverable=True),
                                      DeliveryError("429", recoverable=True, retry_after=60)]})
    clock = Clock()
    worker = OutboxWorker(db, [fake], clock=clock)
    assert await worker.drain() == 1  # fails, due in 5 s
    clock.now = T0 + timedelta(seconds=4)
    assert await worker.drain() == 0
    clock.now = T0 + timedelta(seconds=5)
    assert await worker.drain() == 1  # 429: retry_after 60 s beats the 10 s backoff
    clock.now = T0 + timedelta(seconds=64)
    assert await worker.drain() == 0
    clock.now = T0 + timedelta(seconds=65)
    assert await worker.drain() == 1
    assert [m.key for _, m in fake.sent] == ["k"]
    async with db() as s:
        row = await outbox.get_delivery(s, "k")
    assert row is not None and row.status == "sent" and row.attempts == 3


async def test_permanent_error_fails_row_and_pauses_chat(db: SessionFactory) -> None:
    blocked = await _chat(db, "blocked")
    fine = await _chat(db, "fine")
    await _enqueue(db, "a", blocked)
    await _enqueue(db, "c", fine)
    fake = FakeNotifier(script={"blocked": [DeliveryError("bot was blocked", recoverable=False)]})
    worker = OutboxWorker(db, [fake], clock=Clock(), batch_size=1)
    assert await worker.drain() == 2
    await _enqueue(db, "b", blocked)  # enqueued before the producer notices the pause
    async with db() as s, s.begin():
        await repo.pause_chat(s, blocked, "bot was blocked")  # producer side re-checks
    assert await worker.drain() == 0
    async with db() as s:
        subs = await repo.active_subscriptions(s)
        failed = await outbox.get_delivery(s, "a")
    assert [c.chat_id for _, c in subs] == ["fine"]
    assert failed is not None and failed.status == "failed"
    assert failed.last_error == "bot was blocked"
    assert [m.key for _, m in fake.sent] == ["c"]
    assert (await _depth(db))["held"] == 1


async def test_gives_up_after_max_attempts_without_pausing(db: SessionFactory) -> None:
    pk = await _chat(db, "1")
    await _enqueue(db, "k", pk)
    fake = FakeNotifier(script={"1": [RuntimeError("boom")] * 3})
    clock = Clock()
    worker = OutboxWorker(db, [fake], clock=clock, max_attempts=3)
    for step in range(3):
        clock.now = T0 + timedelta(hours=step)
        assert await worker.drain() == 1
    assert (await _depth(db))["failed"] == 1
    async with db() as s:
        assert len(await repo.active_subscriptions(s)) == 1


async def test_transports_are_isolated(db: SessionFactory) -> None:
    tg = await _chat(db, "1", "telegram")
    dc = await _chat(db, "2", "discord")
    for i in range(3):
        await _enqueue(db, f"tg{i}", tg)
        await _enqueue(db, f"dc{i}", dc)
    broken = FakeNotifier("telegram", delay=5.0)  # hangs past the send timeout
    working = FakeNotifier("discord")
    worker = OutboxWorker(db, [broken, working], clock=Clock(), send_timeout=0.05)
    await worker.start()
    try:
        async with asyncio.timeout(5):
            await working.wait_sent(3)
    finally:
        await worker.stop(grace=1.0)
    assert sorted(m.key for _, m in working.sent) == ["dc0", "dc1", "dc2"]
    assert broken.sent == []
    async with db() as s:
        row = await outbox.get_delivery(s, "tg0")
    assert row is not None and row.status == "pending" and "TimeoutError" in (row.last_error or "")


async def test_image_fetched_once_for_many_chats(db: SessionFactory) -> None:
    image = {"key": "BTC:24h:1", "symbol": "BTC", "window": "24h"}
    for i in range(5):
        pk = await _chat(db, str(i))
        await _enqueue(db, f"k{i}", pk, {"title": "t", "image": image})
    calls: list[str] = []

    async def provider(key: str) -> bytes:
        calls.append(key)
        await asyncio.sleep(0.01)
        return b"\x89PNG"

    fake = FakeNotifier()
    worker = OutboxWorker(db, [fake], clock=Clock(), image_provider=provider)
    assert await worker.drain() == 5
    assert calls == ["BTC:24h:1"]
    assert all(m.image_bytes == b"\x89PNG" for _, m in fake.sent)


async def test_failed_image_still_sends_text(db: SessionFactory) -> None:
    pk = await _chat(db, "1")
    await _enqueue(db, "k", pk, {"title": "t", "image": {"key": "x"}})

    async def provider(key: str) -> bytes:
        raise OSError("renderer down")

    fake = FakeNotifier()
    await OutboxWorker(db, [fake], clock=Clock(), image_provider=provider).drain()
    assert [(m.key, m.image_bytes) for _, m in fake.sent] == [("k", None)]


async def test_start_requeues_rows_left_sending(db: SessionFactory) -> None:
    pk = await _chat(db, "1")
    await _enqueue(db, "k", pk)
    async with db() as s, s.begin():
        await outbox.claim_due(s, T0)  # a crashed worker claimed it
    fake = FakeNotifier()
    worker = OutboxWorker(db, [fake], clock=Clock(), poll_interval=0.01)
    await worker.start()
    try:
        async with asyncio.timeout(5):
            await fake.wait_sent(1)
    finally:
        await worker.stop()
    assert [m.key for _, m in fake.sent] == ["k"]


