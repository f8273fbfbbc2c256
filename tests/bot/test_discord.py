"""Discord adapter end to end against the fake Discord (REST + gateway) on 127.0.0.1."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator

import discord
import pytest
import yarl

from bot.commands import COMMANDS
from bot.delivery import OutboxWorker
from bot.discord_bot import (
    DESCRIPTION_MAX,
    DiscordBot,
    DiscordNotifier,
    make_embed,
    nonce_for,
    usage_options,
)
from bot.mapservice import MapService
from bot.notifier import Button, ImageRef, OutgoingMessage, Target, to_payload
from bot.services import Services
from bot.settings import Settings
from storage import outbox, repo
from storage.db import SessionFactory
from storage.models import Chat, Delivery, Subscription
from tests.bot.conftest import FixedClock
from tests.bot.fake_discord import CHANNEL_ID, MANAGE_CHANNELS, FakeDiscord, Fault

PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 64


@pytest.fixture
async def fake_dc(monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[FakeDiscord]:
    """The fake, with discord.py's REST base and gateway pointed at it."""
    fake = await FakeDiscord().start()
    monkeypatch.setattr(discord.http.Route, "BASE", fake.api_url)
    monkeypatch.setattr(discord.gateway.DiscordWebSocket, "DEFAULT_GATEWAY",
                        yarl.URL(fake.gateway_url))
    yield fake
    await fake.stop()


@pytest.fixture
def dc_services(map_service: MapService, sessions: SessionFactory,
                clock: FixedClock) -> Services:
    """Services with Discord settings only."""
    settings = Settings(_env_file=None, discord_token="fake-token",  # type: ignore[call-arg]
                        symbols=["BTC"], map_cooldown_s=0)
    return Services(maps=map_service, sessions=sessions, settings=settings, clock=clock)


@pytest.fixture
async def dc_bot(fake_dc: FakeDiscord, dc_services: Services) -> AsyncIterator[DiscordBot]:
    """A connected bot (READY and GUILD_CREATE received)."""
    bot = DiscordBot(dc_services, guild_ready_timeout=0.05)
    task = asyncio.create_task(bot.start("fake-token"))
    await asyncio.wait_for(bot.wait_until_ready(), 10)
    yield bot
    await bot.close()
    await task


async def _enqueue(sessions: SessionFactory, channel: int, key: str) -> int:
    message = OutgoingMessage("BTC is nearing a long liquidation band", ("Price 72,500.",),
                              image=ImageRef("BTC:24h:1", "BTC", "24h"),
                              buttons=(Button("Open map", action="map BTC 24h"),),
                              kind="approach")
    async with sessions.begin() as db:
        chat = await repo.upsert_chat(db, "discord", str(channel), title="alerts")
        await repo.subscribe(db, chat.id or 0, "BTC")
        await outbox.enqueue(db, key, chat.id or 0, "approach", to_payload(message))
        return chat.id or 0


def _worker(sessions: SessionFactory, bot: discord.Client) -> OutboxWorker:
    async def image(key: str) -> bytes:
        return PNG

    return OutboxWorker(sessions, [DiscordNotifier(bot)], image_provider=image, send_timeout=20)


# ---------------------------------------------------------------- pure parts


def test_options_come_from_the_registry_usage() -> None:
    assert usage_options(COMMANDS["map"]) == [
        ("symbol", "SYMBOL", True, []),
        ("window", "12h|24h|3d|7d|30d", False, ["12h", "24h", "3d", "7d", "30d"]),
    ]
    names = [o[0] for o in usage_options(COMMANDS["daily"])]
    assert names == ["symbol", "time", "timezone"]
    assert [o[0] for o in usage_options(COMMANDS["quiet"])] == ["hours", "timezone"]


def test_embed_is_clipped_to_discord_limits() -> None:
    embed = make_embed("t" * 300, ["x" * 5000], kind="cross", filename="BTC.png")
    assert len(embed.title or "") == 256
    assert len(embed.description or "") == DESCRIPTION_MAX
    assert embed.image.url == "attachment://BTC.png"
    assert len(nonce_for("approach:1:L71550@1772671320:0") or "") == 25


# ---------------------------------------------------------------- slash commands


async def test_slash_commands_mirror_the_registry(fake_dc: FakeDiscord,
                                                  dc_bot: DiscordBot) -> None:
    names = {c["name"] for c in fake_dc.commands}
    assert names == set(COMMANDS)
    watch = next(c for c in fake_dc.commands if c["name"] == "watch")
    assert int(watch["default_member_permissions"]) == MANAGE_CHANNELS


async def test_map_replies_with_embed_and_heatmap(fake_dc: FakeDiscord,
                                                  dc_bot: DiscordBot) -> None:
    token = await fake_dc.slash("map", symbol="btc", window="24h")
    (reply,) = await fake_dc.replies(token)
    assert reply.embeds and "BTC" in (reply.embeds[0].get("title") or "")
    assert reply.embeds[0]["image"]["url"].startswith("attachment://")
    (name, data), = reply.files
    assert name.endswith(".png") and data.startswith(b"\x89PNG")


async def test_bands_replies_with_a_table(fake_dc: FakeDiscord, dc_bot: DiscordBot) -> None:
    token = await fake_dc.slash("bands", symbol="BTC")
    (reply,) = await fake_dc.replies(token)
    assert "```" in reply.embeds[0]["description"]
    assert "long" in reply.embeds[0]["description"]


async def test_watch_needs_manage_channels(fake_dc: FakeDiscord, dc_bot: DiscordBot,
                                           sessions: SessionFactory) -> None:
    token = await fake_dc.slash("watch", symbol="BTC", permissions=0)
    (reply,) = await fake_dc.replies(token)
    assert "administrators" in reply.embeds[0]["description"]
    async with sessions() as db:
        assert (await db.exec(Subscription.__table__.select())).all() == []  # type: ignore[attr-defined]


async def test_watch_subscribes_the_channel(fake_dc: FakeDiscord, dc_bot: DiscordBot,
                                            sessions: SessionFactory) -> None:
    token = await fake_dc.slash("watch", symbol="BTC", sensitivity="aggressive",
                                permissions=MANAGE_CHANNELS)
    (reply,) = await fake_dc.replies(token)
    assert "Watching BTC" in reply.embeds[0]["description"]
    async with sessions() as db:
        chat = await repo.get_chat(db, "discord", str(CHANNEL_ID))
        assert chat is not None
        (sub,) = await repo.list_subscriptions(db, chat.id or 0)
    assert (sub.symbol, sub.sensitivity) == ("BTC", "aggressive")
    token = await fake_dc.slash("watches")
    (reply,) = await fake_dc.replies(token)
    assert "BTC" in reply.embeds[0]["description"]


async def test_map_buttons_switch_the_window_in_place(fake_dc: FakeDiscord,
                                                       dc_bot: DiscordBot) -> None:
    token = await fake_dc.slash("map", symbol="BTC")
    (reply,) = await fake_dc.replies(token)
    ids = [b.get("custom_id") for row in reply.components for b in row["components"]]
    assert "lr:map BTC 3d" in ids and "lr:map BTC 24h refresh" in ids
    token = await fake_dc.click("lr:map BTC 3d")
    (edit,) = await fake_dc.replies(token)
    assert "3d map" in (edit.embeds[0].get("title") or "")
    assert edit.files and edit.files[0][0] == "BTC-3d.png"
    assert any("PATCH" in c and "@original" in c for c in fake_dc.calls)


async def test_commands_work_after_a_gateway_reconnect(fake_dc: FakeDiscord,
                                                       dc_bot: DiscordBot) -> None:
    await fake_dc.disconnect()
    await fake_dc.wait_ready(within=15)
    assert fake_dc.resumes + fake_dc.identifies >= 2
    token = await fake_dc.slash("bands", symbol="BTC")
    assert await fake_dc.replies(token)


# ---------------------------------------------------------------- channel alerts


async def test_alert_arrives_as_embed_with_image(fake_dc: FakeDiscord, dc_bot: DiscordBot,
                                                 sessions: SessionFactory) -> None:
    await _enqueue(sessions, CHANNEL_ID, "approach:1:L1@1:0")
    assert await _worker(sessions, dc_bot).drain() == 1
    (sent,) = fake_dc.messages
    assert sent.channel_id == CHANNEL_ID
    assert sent.embeds[0]["title"] == "BTC is nearing a long liquidation band"
    assert sent.files == [("BTC.png", PNG)]
    assert sent.nonce == nonce_for("approach:1:L1@1:0")
    async with sessions() as db:
        row = await outbox.get_delivery(db, "approach:1:L1@1:0")
    assert row is not None and row.status == "sent"


async def test_direct_send_through_the_notifier(fake_dc: FakeDiscord,
                                                dc_bot: DiscordBot) -> None:
    receipt = await DiscordNotifier(dc_bot).send(
        Target("discord", str(CHANNEL_ID)), OutgoingMessage("Daily BTC brief", ("Calm.",),
                                                            kind="daily_brief"))
    assert receipt.platform == "discord" and receipt.message_id
    assert fake_dc.messages[0].files == []


async def test_resend_of_one_key_creates_one_message(fake_dc: FakeDiscord,
                                                     dc_bot: DiscordBot) -> None:
    """A row resent after a crash or a timed-out send carries the same enforced nonce, so
    Discord answers with the first message instead of posting a second one."""
    notifier = DiscordNotifier(dc_bot)
    message = OutgoingMessage("BTC is nearing a long liquidation band", ("Price 97.5",),
                              kind="approach", key="approach:1:L1@1:0")
    first = await notifier.send(Target("discord", str(CHANNEL_ID)), message)
    again = await notifier.send(Target("discord", str(CHANNEL_ID)), message)
    assert first.message_id == again.message_id
    assert len(fake_dc.messages) == 1 and fake_dc.nonce_replays == 1


@pytest.mark.parametrize(("refusal", "reason"), [("missing_access", "missing permissions"),
                                                 ("deleted", "channel not found")])
async def test_refusing_channel_is_paused_not_crashed(
        fake_dc: FakeDiscord, dc_bot: DiscordBot, sessions: SessionFactory, refusal: str,
        reason: str, caplog: pytest.LogCaptureFixture) -> None:
    getattr(fake_dc, refusal).add(CHANNEL_ID)
    chat_pk = await _enqueue(sessions, CHANNEL_ID, "cross:1:L1@1:0")
    with caplog.at_level(logging.WARNING):
        assert await _worker(sessions, dc_bot).drain() == 1
    assert fake_dc.messages == []
    async with sessions() as db:
        chat = await db.get(Chat, chat_pk)
        row = await outbox.get_delivery(db, "cross:1:L1@1:0")
        (sub,) = await repo.list_subscriptions(db, chat_pk)
    assert chat is not None and not chat.active and reason in (chat.paused_reason or "")
    assert not sub.active
    assert isinstance(row, Delivery) and row.status == "failed"
    assert any("pausing" in r.getMessage() for r in caplog.records)


async def test_rate_limit_is_waited_out_and_sent_once(fake_dc: FakeDiscord, dc_bot: DiscordBot,
                                                      sessions: SessionFactory) -> None:
    fake_dc.faults.append(Fault(r"POST /channels/\d+/messages", status=429, times=2,
                                retry_after=0.05))
    await _enqueue(sessions, CHANNEL_ID, "swept:1:L1@1:0")
    assert await _worker(sessions, dc_bot).drain() == 1
    assert len(fake_dc.messages) == 1 and fake_dc.duplicates() == 0
