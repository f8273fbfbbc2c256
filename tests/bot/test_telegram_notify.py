"""Alerts and daily briefs through the outbox and TelegramNotifier, against the fake Bot API."""

from __future__ import annotations

import html
from datetime import UTC, datetime, timedelta

import pytest
from sqlmodel import select
from telegram.error import BadRequest, Forbidden, NetworkError, RetryAfter, TimedOut

from bot.alert_messages import alert_message, map_images
from bot.commands import Caller, ChatKind, dispatch
from bot.daily import run_due_briefs
from bot.delivery import OutboxWorker
from bot.notifier import ImageRef, OutgoingMessage, Target, to_payload
from bot.services import Services
from bot.telegram_bot import (
    CAPTION_LIMIT,
    TEXT_LIMIT,
    Piece,
    TelegramBot,
    delivery_error,
    split_html,
    tg_len,
)
from engine.alerts import AlertKind, Decision, Reason
from engine.types import Band, Side
from storage import outbox
from storage.models import Chat, Delivery, Subscription
from tests.bot.conftest import FixedClock
from tests.bot.fake_telegram import FakeTelegram, visible

BAND = Band(Side.LONG, 71_150.0, 71_750.0, 71_400.0, 162e6, -0.4, 0.8)


async def watch(services: Services, chat_id: str, kind: ChatKind = ChatKind.PRIVATE) -> int:
    """Subscribe a chat to BTC through the command core; returns its chat pk."""
    reply = await dispatch(services, Caller("telegram", chat_id, kind), "watch", ["BTC"])
    assert reply.text.startswith("Watching BTC"), reply.text
    async with services.sessions() as db:
        chat = (await db.exec(select(Chat).where(Chat.chat_id == chat_id))).one()
    return chat.id or 0


async def enqueue_alert(services: Services, clock: FixedClock, chat_pk: int) -> str:
    """Queue one 'approach' alert for a chat, as the alert pipeline would; returns its key."""
    decision = Decision(AlertKind.APPROACH, Reason.FIRED_FIRST, chat_pk, chat_pk, "BTC",
                        clock(), 72_026.0, f"approach:{chat_pk}:b1:0", "b1", BAND)
    message = alert_message(decision)
    async with services.transaction() as db:
        await outbox.enqueue(db, decision.key, chat_pk, message.kind, to_payload(message),
                             now=clock())
    return decision.key


def worker(services: Services, bot: TelegramBot, clock: FixedClock) -> OutboxWorker:
    """The outbox worker delivering through the Telegram notifier."""
    return OutboxWorker(services.sessions, [bot.notifier], clock=clock,
                        image_provider=map_images(services.maps))


async def rows(services: Services) -> dict[str, str]:
    """Outbox status by key."""
    async with services.sessions() as db:
        return {d.key: d.status for d in (await db.exec(select(Delivery))).all()}


async def chat_state(services: Services) -> dict[str, tuple[bool, list[tuple[str, bool]]]]:
    """Per chat id: active, and (symbol, active) of its subscriptions."""
    async with services.sessions() as db:
        out = {}
        for chat in (await db.exec(select(Chat))).all():
            subs = (await db.exec(select(Subscription)
                                  .where(Subscription.chat_pk == chat.id))).all()
            out[chat.chat_id] = (chat.active, [(s.symbol, s.active) for s in subs])
    return out


async def test_an_alert_reaches_two_chats_with_one_upload(
        tg_bot: TelegramBot, tg_fake: FakeTelegram, services: Services,
        clock: FixedClock) -> None:
    keys = [await enqueue_alert(services, clock, await watch(services, c))
            for c in ("1001", "1002")]
    w = worker(services, tg_bot, clock)
    assert await w.drain() == 2
    first, second = tg_fake.calls_to("sendPhoto")
    uploaded = [c for c in (first, second) if "photo" in c.files]
    by_id = [c for c in (first, second) if "photo" not in c.files]
    assert len(uploaded) == 1 and len(by_id) == 1
    assert by_id[0].fields["photo"] in tg_fake.file_ids
    assert {first.chat_id, second.chat_id} == {"1001", "1002"}
    assert first.fields["caption"] == second.fields["caption"]
    assert visible(first.fields["caption"]).startswith("BTC is nearing a long liquidation band")
    assert first.json("reply_markup")["inline_keyboard"] == [
        [{"text": "Open map", "callback_data": "map BTC 24h"}]]
    assert w.images is not None and w.images.fetches == 1
    assert await rows(services) == dict.fromkeys(keys, "sent")


async def test_open_map_on_an_alert_sends_a_new_map(
        tg_bot: TelegramBot, tg_fake: FakeTelegram, services: Services,
        clock: FixedClock) -> None:
    await enqueue_alert(services, clock, await watch(services, "1001"))
    await worker(services, tg_bot, clock).drain()
    alert = next(m for m in tg_fake.messages.values() if m.get("photo"))
    await tg_fake.push_callback("map BTC 24h", alert)
    _, new_map = await tg_fake.wait_for("sendPhoto", 2)
    assert new_map.fields["caption"].startswith("<b>BTC liquidation brief · 24h map")
    assert new_map.json("reply_markup")["inline_keyboard"][1][0]["text"] == "Refresh"
    await tg_fake.wait_for("answerCallbackQuery")
    assert tg_fake.calls_to("editMessageMedia") == []


async def test_a_blocked_chat_pauses_its_subscriptions(
        tg_bot: TelegramBot, tg_fake: FakeTelegram, services: Services,
        clock: FixedClock) -> None:
    blocked = await enqueue_alert(services, clock, await watch(services, "1001"))
    gone = await enqueue_alert(services, clock, await watch(services, "1002"))
    fine = await enqueue_alert(services, clock, await watch(services, "1003"))
    tg_fake.blocked.add("1001")
    tg_fake.missing.add("1002")
    await worker(services, tg_bot, clock).drain()
    assert await rows(services) == {blocked: "failed", gone: "failed", fine: "sent"}
    assert await chat_state(services) == {"1001": (False, [("BTC", False)]),
                                          "1002": (False, [("BTC", False)]),
                                          "1003": (True, [("BTC", True)])}
    async with services.sessions() as db:
        reasons = {c.chat_id: c.paused_reason for c in (await db.exec(select(Chat))).all()}
    assert "blocked" in (reasons["1001"] or "") and "not found" in (reasons["1002"] or "")


async def test_a_migrated_group_keeps_its_subscriptions(
        tg_bot: TelegramBot, tg_fake: FakeTelegram, services: Services,
        clock: FixedClock) -> None:
    key = await enqueue_alert(services, clock,
                              await watch(services, "-2001", ChatKind.CHANNEL))
    tg_fake.migrated["-2001"] = -1002001
    await worker(services, tg_bot, clock).drain()
    assert await rows(services) == {key: "sent"}
    assert [c.chat_id for c in tg_fake.calls_to("sendPhoto")] == ["-2001", "-1002001"]
    assert await chat_state(services) == {"-1002001": (True, [("BTC", True)])}


async def test_a_429_on_an_alert_is_retried(tg_bot: TelegramBot, tg_fake: FakeTelegram,
                                            services: Services, clock: FixedClock) -> None:
    key = await enqueue_alert(services, clock, await watch(services, "1001"))
    tg_fake.fail("sendPhoto", 429, "Too Many Requests: retry after 1",
                 parameters={"retry_after": 1})
    await worker(services, tg_bot, clock).drain()
    assert len(tg_fake.calls_to("sendPhoto")) == 2
    assert await rows(services) == {key: "sent"}


async def test_daily_brief_fires_at_the_chats_local_time(
        tg_bot: TelegramBot, tg_fake: FakeTelegram, services: Services,
        clock: FixedClock) -> None:
    berlin = Caller("telegram", "1001")
    utc = Caller("telegram", "1002")
    await dispatch(services, berlin, "daily", ["BTC", "08:00", "Europe/Berlin"])
    await dispatch(services, utc, "daily", ["btc", "08:00"])
    at = datetime(2026, 3, 5, 6, 59, tzinfo=UTC)  # 07:59 in Berlin (CET, UTC+1)
    assert await run_due_briefs(services, at - timedelta(minutes=1), at) == 0
    assert await run_due_briefs(services, at, at + timedelta(minutes=1)) == 1
    assert await run_due_briefs(services, at, at + timedelta(minutes=1)) == 0  # same local day
    clock.now = at + timedelta(minutes=1)
    await worker(services, tg_bot, clock).drain()
    [photo] = tg_fake.calls_to("sendPhoto")
    assert photo.chat_id == "1001"
    assert photo.fields["caption"].startswith("<b>BTC liquidation brief · 24h map")
    [rest] = tg_fake.calls_to("sendMessage", 1001)
    assert "Bottom line: " in visible(rest.fields["text"])
    assert list(await rows(services)) == ["daily_brief:1:BTC:2026-03-05"]
    eight_utc = datetime(2026, 3, 5, 8, 0, tzinfo=UTC)
    assert await run_due_briefs(services, eight_utc - timedelta(minutes=1), eight_utc) == 1


async def test_long_messages_split_into_caption_and_follow_ups(
        tg_bot: TelegramBot, tg_fake: FakeTelegram) -> None:
    png = b"\x89PNG\r\n\x1a\n" + bytes(64)
    sections = tuple(f"Section {i} <{i}> & more\n" + "\n".join(f"• line {j} " + "x" * 80
                                                             for j in range(12))
                     for i in range(8))
    message = OutgoingMessage("A long alert", sections, image=ImageRef("k1", "BTC", "24h"),
                              image_bytes=png)
    await tg_bot.notifier.send(Target("telegram", "1001"), message)
    [photo] = tg_fake.calls_to("sendPhoto")
    texts = [c.fields["text"] for c in tg_fake.calls_to("sendMessage")]
    assert tg_len(visible(photo.fields["caption"])) <= CAPTION_LIMIT
    assert all(tg_len(visible(t)) <= TEXT_LIMIT for t in texts) and len(texts) >= 2
    seen = visible("\n\n".join([photo.fields["caption"], *texts]))
    assert seen == visible("\n\n".join([f"<b>{message.title}</b>", *map(html.escape, sections)]))


async def test_a_failed_follow_up_never_resends_the_photo(
        tg_bot: TelegramBot, tg_fake: FakeTelegram, services: Services,
        clock: FixedClock) -> None:
    await dispatch(services, Caller("telegram", "1001"), "daily", ["BTC", "08:00"])
    eight = datetime(2026, 3, 5, 8, 0, tzinfo=UTC)
    assert await run_due_briefs(services, eight - timedelta(minutes=1), eight) == 1
    tg_fake.fail("sendMessage", 502, "Bad Gateway")
    await worker(services, tg_bot, clock).drain()
    assert len(tg_fake.calls_to("sendPhoto")) == 1 and len(tg_fake.calls_to("sendMessage")) == 1
    assert list((await rows(services)).values()) == ["sent"]


@pytest.mark.parametrize(("limit", "text"), [
    (1024, "y" * 5000), (1024, "short\n" * 900), (60, "😀" * 100)])
def test_oversize_blocks_are_cut_at_lines_within_limits(limit: int, text: str) -> None:
    parts = split_html([Piece("Title", "b"), Piece(text, "pre")], limit, limit * 2)
    assert all(tg_len(visible(p)) <= (limit if i == 0 else limit * 2)
               for i, p in enumerate(parts))
    assert all(p.count("<pre>") == p.count("</pre>") for p in parts)
    assert "".join(visible(p).replace("\n", "") for p in parts[1:]).endswith(
        text.replace("\n", "")[-50:])


@pytest.mark.parametrize(("error", "recoverable", "retry_after"), [
    (Forbidden("Forbidden: bot was blocked by the user"), False, None),
    (Forbidden("Forbidden: bot was kicked from the group chat"), False, None),
    (BadRequest("Chat not found"), False, None),
    (BadRequest("Not enough rights to send photos to the chat"), False, None),
    (BadRequest("Can't parse entities: unsupported start tag"), True, None),
    (RetryAfter(timedelta(seconds=3)), True, 3.0),
    (TimedOut(), True, None),
    (NetworkError("connection reset"), True, None),
])
def test_telegram_errors_map_to_delivery_errors(error: Exception, recoverable: bool,
                                                retry_after: float | None) -> None:
    mapped = delivery_error(error)  # type: ignore[arg-type]
    assert (mapped.recoverable, mapped.retry_after) == (recoverable, retry_after)
