"""Telegram end to end: real PTB 22 against the fake Bot API on 127.0.0.1."""

from __future__ import annotations

import asyncio
import re

from sqlmodel import select

from bot.commands import COMMANDS, help_text
from bot.services import Services
from bot.telegram_bot import CAPTION_LIMIT, TEXT_LIMIT, TelegramBot, tg_len
from storage.models import Chat, Subscription
from tests.bot.conftest import FixedClock
from tests.bot.fake_telegram import Call, FakeTelegram, visible
from tests.bot.test_commands import BAD_ARGUMENTS

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


async def ask(fake: FakeTelegram, text: str, method: str = "sendMessage", *,
              chat_id: int = 1001, kind: str = "private", user_id: int = 42) -> Call:
    """Send a command as a user would and wait for the bot's `method` call to that chat."""
    before = len(fake.calls_to(method, chat_id))
    await fake.push_command(text, chat_id=chat_id, kind=kind, user_id=user_id)
    calls = await fake.wait_for(method, before + 1, chat_id=chat_id)
    return calls[before]


async def show_map(fake: FakeTelegram, text: str, *, chat_id: int = 1001, kind: str = "private",
                   user_id: int = 42) -> tuple[Call, Call]:
    """Ask for a map; wait for the photo and the follow-up message with the rest of the brief."""
    texts = len(fake.calls_to("sendMessage", chat_id))
    photo = await ask(fake, text, "sendPhoto", chat_id=chat_id, kind=kind, user_id=user_id)
    rest = (await fake.wait_for("sendMessage", texts + 1, chat_id=chat_id))[texts]
    assert rest.at > photo.at
    return photo, rest


async def say(fake: FakeTelegram, text: str, *, chat_id: int = 1001, kind: str = "private",
              user_id: int = 42) -> str:
    """Send a command and return the visible text of the bot's answer."""
    call = await ask(fake, text, chat_id=chat_id, kind=kind, user_id=user_id)
    return visible(call.fields["text"])


async def chats(services: Services) -> dict[str, Chat]:
    """Chat rows by Telegram chat id."""
    async with services.sessions() as db:
        return {c.chat_id: c for c in (await db.exec(select(Chat))).all()}


async def subs(services: Services) -> list[tuple[str, str, bool]]:
    """(chat id, symbol, active) of every subscription."""
    async with services.sessions() as db:
        rows = (await db.exec(select(Subscription, Chat)
                              .where(Subscription.chat_pk == Chat.id))).all()
    return sorted((c.chat_id, s.symbol, s.active) for s, c in rows)


async def test_startup_publishes_the_registry_as_the_menu(tg_bot: TelegramBot,
                                                          tg_fake: FakeTelegram) -> None:
    await tg_fake.wait_for("getUpdates")
    methods = [c.method for c in tg_fake.calls]
    assert methods[:4] == ["getMe", "setMyCommands", "deleteWebhook", "getUpdates"]
    menu = tg_fake.calls_to("setMyCommands")[0].json("commands")
    assert [c["command"] for c in menu] == list(COMMANDS)
    assert all(c["description"] == COMMANDS[c["command"]].summary for c in menu)


async def test_start_and_help_answer_the_generated_help(tg_bot: TelegramBot,
                                                        tg_fake: FakeTelegram) -> None:
    call = await ask(tg_fake, "/start")
    assert call.fields["parse_mode"] == "HTML"
    assert visible(call.fields["text"]) == help_text()
    assert await say(tg_fake, "/help@liqradar_test_bot") == help_text()


async def test_map_sends_the_heatmap_with_the_brief_and_buttons(
        tg_bot: TelegramBot, tg_fake: FakeTelegram) -> None:
    photo, rest = await show_map(tg_fake, "/map btc")
    upload = photo.files["photo"]
    assert upload.data.startswith(PNG_MAGIC) and upload.filename == "BTC-24h.png"
    caption = photo.fields["caption"]
    assert caption.startswith("<b>BTC liquidation brief · 24h map")
    assert "<b>One-minute map</b>\n• Price" in caption
    assert tg_len(visible(caption)) <= CAPTION_LIMIT
    rows = photo.json("reply_markup")["inline_keyboard"]
    assert [b["text"] for b in rows[0]] == ["12h", "• 24h", "3d", "7d", "30d"]
    assert rows[0][2]["callback_data"] == "map BTC 3d"
    assert rows[1] == [{"text": "Refresh", "callback_data": "map BTC 24h refresh"}]
    assert "<b>Bottom line</b>" in rest.fields["text"]
    assert tg_len(visible(rest.fields["text"])) <= TEXT_LIMIT
    whole = visible(caption) + visible(rest.fields["text"])
    for heading in ("One-minute map", "Regime", "scenarios", "Context", "Risks", "Bottom line"):
        assert heading in whole


async def test_map_arguments_are_checked(tg_bot: TelegramBot, tg_fake: FakeTelegram) -> None:
    assert await say(tg_fake, "/map") == "Which symbol? Example: /map BTC 3d"
    assert await say(tg_fake, "/map BTC 5d") == (
        "Unknown window '5d': use one of 12h, 24h, 3d, 7d, 30d. Example: /map BTC 3d")
    assert await say(tg_fake, "/map DOGEUSDT") == (
        "Unknown symbol 'DOGE': try one of BTC, ETH (or a pair like BTCUSDT).")
    assert tg_fake.calls_to("sendPhoto") == []


async def test_every_wrong_argument_gets_one_line_over_telegram(
        tg_bot: TelegramBot, tg_fake: FakeTelegram) -> None:
    for text, message, example in BAD_ARGUMENTS:
        answer = await say(tg_fake, text)
        assert message in answer and "\n" not in answer, (text, answer)
        assert not example or f"Example: {example}" in answer
    assert tg_fake.calls_to("sendPhoto") == []


async def test_map_is_throttled_per_chat(tg_bot: TelegramBot, tg_fake: FakeTelegram,
                                         clock: FixedClock) -> None:
    await show_map(tg_fake, "/map BTC")
    assert (await say(tg_fake, "/map BTC 3d")).startswith("One map per 20 s per chat; try again")
    await show_map(tg_fake, "/map BTC 3d", chat_id=1002)
    clock.advance(seconds=20)
    await show_map(tg_fake, "/map BTC 3d")


async def test_window_button_edits_the_photo_in_place(tg_bot: TelegramBot,
                                                      tg_fake: FakeTelegram) -> None:
    sent, _ = await show_map(tg_fake, "/map BTCUSDT 12h")
    message = next(m for m in tg_fake.messages.values() if m.get("photo"))
    assert message["caption"] == sent.fields["caption"]
    await tg_fake.push_callback("map BTC 3d", message)
    [edit] = await tg_fake.wait_for("editMessageMedia")
    media = edit.json("media")
    assert media["type"] == "photo" and media["caption"].startswith("<b>BTC liquidation brief · 3d")
    assert edit.files[media["media"].removeprefix("attach://")].data.startswith(PNG_MAGIC)
    assert [b["text"] for b in edit.json("reply_markup")["inline_keyboard"][0]][2] == "• 3d"
    await tg_fake.wait_for("answerCallbackQuery")
    await tg_fake.push_callback("map BTC 3d refresh", message)
    second = (await tg_fake.wait_for("editMessageMedia", 2))[1]
    assert second.files == {} and second.json("media")["media"].startswith("photo-")
    await tg_fake.wait_for("answerCallbackQuery", 2)


async def test_a_map_is_uploaded_once_then_sent_by_file_id(tg_bot: TelegramBot,
                                                           tg_fake: FakeTelegram) -> None:
    first, _ = await show_map(tg_fake, "/map BTC 7d", chat_id=1001)
    second, _ = await show_map(tg_fake, "/map btc 7d", chat_id=1002)
    assert "photo" in first.files
    assert second.files == {} and second.fields["photo"] in tg_fake.file_ids
    assert tg_bot.photos.uploads == 1


async def test_brief_and_bands(tg_bot: TelegramBot, tg_fake: FakeTelegram) -> None:
    brief = (await ask(tg_fake, "/brief BTC")).fields["text"]
    assert brief.startswith("<b>BTC liquidation brief · 24h map")
    assert "<i>Estimated from public data · Binance" in brief
    bands = (await ask(tg_fake, "/bands btcusdt")).fields["text"]
    assert re.match(r"BTC 72,026 · 24h · estimated bands\n\n<pre>side +range +est\. +dist\n", bands)
    row = r"(short|long) +[\d.,k]+–[\d.,k]+ +\$[\d.]+[kMB]? +[+-][\d.]+%"
    rows = visible(bands).split("\n")[3:]
    assert rows and all(re.fullmatch(row, r) for r in rows)
    assert await say(tg_fake, "/bands") == "Which symbol? Example: /bands BTC"


async def test_subscription_commands(tg_bot: TelegramBot, tg_fake: FakeTelegram,
                                     services: Services) -> None:
    assert (await say(tg_fake, "/watch BTC aggressive")).startswith("Watching BTC: aggressive")
    assert (await say(tg_fake, "/watch BTC loud")).startswith("Unknown sensitivity 'loud'")
    assert await say(tg_fake, "/watches") == \
        "BTC: aggressive (within 2% of a band, strength ≥ 0.15)"
    assert await say(tg_fake, "/daily BTC 08:00 Europe/Berlin") == \
        "Daily BTC brief at 08:00 (Europe/Berlin)."
    assert (await say(tg_fake, "/daily BTC 8pm")).startswith("Time '8pm' must look like HH:MM")
    assert await say(tg_fake, "/quiet 23:00-07:00") == "Quiet hours 23:00-07:00 (Europe/Berlin)."
    assert (await say(tg_fake, "/settings")).splitlines()[:4] == [
        "Time zone: Europe/Berlin", "Quiet hours: 23:00-07:00", "Alerts: BTC (aggressive)",
        "Daily briefs: BTC at 08:00 Europe/Berlin"]
    assert await say(tg_fake, "/quiet off") == "Quiet hours off."
    assert await say(tg_fake, "/daily off btc") == "Daily BTC brief stopped."
    assert await say(tg_fake, "/unwatch BTCUSDT") == "Stopped alerts for BTC."
    assert await subs(services) == []


async def test_in_groups_only_admins_change_subscriptions(
        tg_bot: TelegramBot, tg_fake: FakeTelegram, services: Services) -> None:
    tg_fake.admins["-2001"] = {8}

    async def member(text: str, user_id: int = 7) -> str:
        return await say(tg_fake, text, chat_id=-2001, kind="supergroup", user_id=user_id)

    assert await member("/watch BTC") == (
        "Only group administrators can change alerts here; anyone can ask for a /map.")
    assert (await member("/daily BTC 09:00")).startswith("Only group administrators")
    assert tg_fake.calls_to("getChatMember")[0].fields["user_id"] == "7"
    await show_map(tg_fake, "/map BTC", chat_id=-2001, kind="supergroup", user_id=7)
    assert (await member("/watches")).startswith("No alerts here yet")
    assert (await member("/watch BTC", user_id=8)).startswith("Watching BTC")
    assert await subs(services) == [("-2001", "BTC", True)]


async def test_channel_posts_are_commands_too(tg_bot: TelegramBot, tg_fake: FakeTelegram,
                                              services: Services) -> None:
    watching = await say(tg_fake, "/watch BTC", chat_id=-1003, kind="channel")
    assert watching.startswith("Watching BTC")
    await show_map(tg_fake, "/map BTC", chat_id=-1003, kind="channel")
    assert tg_fake.calls_to("getChatMember") == []
    assert await subs(services) == [("-1003", "BTC", True)]


async def test_a_429_is_retried_after_retry_after(tg_bot: TelegramBot,
                                                  tg_fake: FakeTelegram) -> None:
    tg_fake.fail("sendMessage", 429, "Too Many Requests: retry after 1",
                 parameters={"retry_after": 1})
    await tg_fake.push_command("/help")
    first, second = await tg_fake.wait_for("sendMessage", 2)
    assert second.at - first.at >= 1.0
    assert visible(second.fields["text"]) == help_text()


async def test_migration_message_moves_the_chat(tg_bot: TelegramBot, tg_fake: FakeTelegram,
                                                services: Services) -> None:
    tg_fake.admins["-2002"] = {42}
    await say(tg_fake, "/watch BTC", chat_id=-2002, kind="group")
    await tg_fake.push_migration(-2002, -1002002)
    for _ in range(100):
        if "-1002002" in await chats(services):
            break
        await asyncio.sleep(0.02)
    assert await subs(services) == [("-1002002", "BTC", True)]


async def test_removed_from_a_chat_pauses_it_and_re_adding_resumes(
        tg_bot: TelegramBot, tg_fake: FakeTelegram, services: Services) -> None:
    await say(tg_fake, "/watch BTC")
    await tg_fake.push_membership(1001, "kicked", kind="private")

    async def active() -> bool:
        return (await chats(services))["1001"].active

    for _ in range(100):
        if not await active():
            break
        await asyncio.sleep(0.02)
    assert await subs(services) == [("1001", "BTC", False)]
    await tg_fake.push_membership(1001, "member", kind="private", old_status="kicked")
    for _ in range(100):
        if await active():
            break
        await asyncio.sleep(0.02)
    assert await subs(services) == [("1001", "BTC", True)]


async def test_webhook_mode_receives_updates(services: Services, tg_fake: FakeTelegram) -> None:
    import socket

    import aiohttp

    from bot.telegram_bot import webhook_secret

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    url = f"http://127.0.0.1:{port}/tg/hook"
    services.settings.telegram_webhook_url = url
    services.settings.telegram_webhook_listen = "127.0.0.1"
    services.settings.telegram_webhook_port = port
    bot = TelegramBot(services)
    await bot.start()
    try:
        [hook] = tg_fake.calls_to("setWebhook")
        secret = webhook_secret(tg_fake.token)
        assert hook.fields["url"] == url and hook.fields["secret_token"] == secret
        assert tg_fake.calls_to("getUpdates") == []
        update = {"update_id": 1, **tg_fake.command_update("/help", chat_id=1001)}
        async with aiohttp.ClientSession() as http:
            bad = await http.post(url, json=update, headers={
                "X-Telegram-Bot-Api-Secret-Token": "guess"})
            assert bad.status == 403
            good = await http.post(url, json=update, headers={
                "X-Telegram-Bot-Api-Secret-Token": secret})
            assert good.status == 200
            junk = await http.post(url, data=b"{not json", headers={
                "X-Telegram-Bot-Api-Secret-Token": secret})
            assert junk.status == 400
        [reply] = await tg_fake.wait_for("sendMessage")
        assert visible(reply.fields["text"]) == help_text()
    finally:
        await bot.stop()

