"""The transport-neutral command core: registry, help, parsing, group rules, storage effects."""

from __future__ import annotations

import pytest
from sqlmodel import select

from bot.commands import (
    COMMANDS,
    Caller,
    ChatKind,
    UsageError,
    check_cooldown,
    dispatch,
    help_text,
    may_change,
    parse_quiet,
    parse_symbol,
)
from bot.services import Services
from bot.sources import MarketSnapshot
from storage import repo
from storage.models import Chat, DailyBrief, Subscription
from tests.bot.conftest import FixedClock, load_bars

PRIVATE = Caller("telegram", "1001")


def group(admin: bool | None, user: str = "42") -> Caller:
    """A caller in a group whose admin check answers `admin` (None: no way to ask)."""
    async def is_admin() -> bool:
        return bool(admin)
    return Caller("telegram", "-2001", ChatKind.GROUP, user_id=user,
                  is_admin=None if admin is None else is_admin)


async def run(services: Services, text: str, caller: Caller = PRIVATE) -> str:
    """Dispatch a command line and return the reply's plain text."""
    name, *args = text.lstrip("/").split()
    return (await dispatch(services, caller, name, args)).plain_text()


class TwoSymbols:
    """A source that knows BTC and ETH (same bars), for multi-symbol flows."""

    def __init__(self) -> None:
        self.bars = load_bars()

    async def snapshot(self, symbol: str) -> MarketSnapshot:
        from engine.types import Venue
        from market.errors import UnknownSymbolError
        from market.symbols import resolve

        base = resolve(symbol).base
        if base not in ("BTC", "ETH"):
            raise UnknownSymbolError(symbol)
        return MarketSnapshot(symbol=base, bars={Venue.BINANCE: self.bars})


def test_help_is_generated_from_the_registry() -> None:
    text = help_text()
    for cmd in COMMANDS.values():
        assert cmd.usage in text
        assert cmd.summary in text
        assert cmd.example.startswith(f"/{cmd.name}")
    assert {c.name for c in COMMANDS.values() if c.admin_only} == {
        "watch", "unwatch", "daily", "quiet"}
    assert text.count("(group admins)") == 4


def test_every_command_in_the_brief_is_registered() -> None:
    assert list(COMMANDS) == ["start", "help", "map", "brief", "bands", "watch", "unwatch",
                              "watches", "daily", "quiet", "settings"]


@pytest.mark.parametrize(("text", "symbol"), [
    ("btc", "BTC"), ("BTCUSDT", "BTC"), ("eth/usdt", "ETH"), ("SOL-USDT-SWAP", "SOL")])
def test_symbols_are_case_insensitive(text: str, symbol: str) -> None:
    assert parse_symbol([text]) == symbol


@pytest.mark.parametrize(("text", "expected"), [
    ("23:00-07:00", ("23:00", "07:00")), ("7:5-8:00", ("07:05", "08:00"))])
def test_parse_quiet(text: str, expected: tuple[str, str]) -> None:
    assert parse_quiet(text) == expected


BAD_ARGUMENTS = [
    ("/map", "Which symbol?", "/map BTC 3d"),
    ("/map BTC 5d", "Unknown window '5d': use one of 12h, 24h, 3d, 7d, 30d.", "/map BTC 3d"),
    ("/map BTC 24h refresh more", "Too many arguments ('more' is extra).", "/map BTC 3d"),
    ("/map DOGE", "Unknown symbol 'DOGE': try one of BTC, ETH", ""),
    ("/map BTC-EUR", "Unknown symbol 'BTC-EUR'", ""),
    ("/brief BTC 1y", "Unknown window '1y'", "/brief ETH"),
    ("/bands", "Which symbol?", "/bands BTC"),
    ("/watch BTC loud", "Unknown sensitivity 'loud': use one of aggressive, balanced, "
                        "conservative or a percentage like 1.5%.", "/watch BTC 1.5%"),
    ("/watch BTC 150%", "Sensitivity '150%' must be a percentage in (0, 20].",
     "/watch BTC 1.5%"),
    ("/watch DOGE", "Unknown symbol 'DOGE'", ""),
    ("/unwatch", "Which symbol?", "/unwatch BTC"),
    ("/watches all", "Too many arguments", "/watches"),
    ("/daily BTC", "At what time? Give HH:MM (24 h).", "/daily BTC 08:00 Europe/Berlin"),
    ("/daily BTC 25:00", "Time '25:00' must look like HH:MM, e.g. 07:30.", "/daily BTC 08:00"),
    ("/daily BTC 08:00 Mars/Base", "Unknown time zone 'Mars/Base': use an IANA name",
     "/daily BTC 08:00"),
    ("/daily off", "Which symbol?", "/daily BTC 08:00"),
    ("/quiet", "Give the quiet hours as HH:MM-HH:MM, or off.", "/quiet 23:00-07:00"),
    ("/quiet 23-7", "Time '23' must look like HH:MM", "/quiet 23:00-07:00"),
    ("/quiet 2300", "Quiet hours '2300' must look like HH:MM-HH:MM.", "/quiet 23:00-07:00"),
    ("/settings now", "Too many arguments", "/settings"),
]


@pytest.mark.parametrize(("text", "message", "example"), BAD_ARGUMENTS)
async def test_wrong_arguments_get_one_line_with_an_example(
        services: Services, text: str, message: str, example: str) -> None:
    reply = await run(services, text)
    assert message in reply
    assert "\n" not in reply and "Traceback" not in reply
    if example:
        assert f"Example: {example}" in reply


async def test_unknown_command(services: Services) -> None:
    assert await run(services, "/frobnicate") == "Unknown command /frobnicate. " \
                                                 "Send /help for the list."


@pytest.mark.parametrize(("caller", "allowed"), [
    (PRIVATE, True), (Caller("telegram", "-100", ChatKind.CHANNEL), True),
    (group(True), True), (group(False), False), (group(None), False)])
async def test_only_group_admins_change_subscriptions(caller: Caller, allowed: bool) -> None:
    assert await may_change(caller) is allowed


async def test_group_member_is_refused_but_may_ask_for_bands(services: Services) -> None:
    refused = await run(services, "/watch BTC", group(False))
    assert refused.startswith("Only group administrators")
    assert "est." in await run(services, "/bands btc", group(False))
    assert (await run(services, "/watch BTC", group(True))).startswith("Watching BTC")


def test_map_cooldown_is_per_chat_and_buttons_are_exempt(services: Services,
                                                         clock: FixedClock) -> None:
    check_cooldown(services, PRIVATE)
    with pytest.raises(UsageError, match=r"try again in 20 s"):
        check_cooldown(services, PRIVATE)
    check_cooldown(services, Caller("telegram", "1002"))
    check_cooldown(services, Caller("telegram", "1001", via_button=True))
    clock.advance(seconds=19)
    with pytest.raises(UsageError, match=r"try again in 1 s"):
        check_cooldown(services, PRIVATE)
    clock.advance(seconds=1)
    check_cooldown(services, PRIVATE)


async def subscriptions(services: Services) -> list[Subscription]:
    """Every subscription row."""
    async with services.sessions() as db:
        return list((await db.exec(select(Subscription))).all())


async def test_watch_unwatch_and_watches(services: Services) -> None:
    assert await run(services, "/watches") == "No alerts here yet. Start with /watch BTC."
    text = await run(services, "/watch btcusdt aggressive")
    assert text.startswith("Watching BTC: aggressive (within 2% of a band, strength ≥ 0.15)")
    assert (await run(services, "/watch BTC 0.8%")).startswith("Watching BTC: 0.8% (within 0.8%")
    [sub] = await subscriptions(services)
    assert (sub.symbol, sub.sensitivity, sub.active) == ("BTC", "0.8%", True)
    assert (await run(services, "/watches")).startswith("BTC: 0.8%")
    assert await run(services, "/unwatch btc") == "Stopped alerts for BTC."
    assert await run(services, "/unwatch btc") == "This chat was not watching BTC."
    assert await subscriptions(services) == []


async def test_watch_uses_the_default_sensitivity(services: Services) -> None:
    services.settings.default_sensitivity = "conservative"
    assert (await run(services, "/watch BTC")).startswith("Watching BTC: conservative")


async def test_quiet_hours_apply_to_all_and_later_subscriptions(services: Services) -> None:
    services.maps = type(services.maps)(TwoSymbols(), clock=services.maps.clock)
    note = await run(services, "/quiet 23:00-07:00")
    assert "apply once this chat watches a symbol" in note
    await run(services, "/watch BTC")
    assert await run(services, "/quiet 23:00-07:00 Europe/Berlin") == \
        "Quiet hours 23:00-07:00 (Europe/Berlin)."
    await run(services, "/watch ETH")
    assert {(s.symbol, s.quiet_start, s.quiet_end) for s in await subscriptions(services)} == {
        ("BTC", "23:00", "07:00"), ("ETH", "23:00", "07:00")}
    assert await run(services, "/quiet off") == "Quiet hours off."
    assert {s.quiet_start for s in await subscriptions(services)} == {None}


async def test_daily_schedule_and_settings(services: Services) -> None:
    assert await run(services, "/daily btc 8:00 Europe/Berlin") == \
        "Daily BTC brief at 08:00 (Europe/Berlin)."
    await run(services, "/watch BTC")
    await run(services, "/quiet 22:30-06:00")
    assert (await run(services, "/settings")).splitlines() == [
        "Time zone: Europe/Berlin", "Quiet hours: 22:30-06:00", "Alerts: BTC (balanced)",
        "Daily briefs: BTC at 08:00 Europe/Berlin", "Map cooldown: 20 s per chat"]
    assert await run(services, "/daily BTC 07:15") == "Daily BTC brief at 07:15 (Europe/Berlin)."
    assert await run(services, "/daily off BTC") == "Daily BTC brief stopped."
    assert await run(services, "/daily off BTC") == "There was no daily BTC brief here."
    async with services.sessions() as db:
        assert (await db.exec(select(DailyBrief))).all() == []


async def test_a_command_resumes_a_paused_chat(services: Services) -> None:
    await run(services, "/watch BTC")
    async with services.transaction() as db:
        chat = await repo.get_chat(db, "telegram", "1001")
        assert chat is not None and chat.id is not None
        await repo.pause_chat(db, chat.id, "telegram: Forbidden")
    assert await run(services, "/watches") == \
        "BTC: balanced (within 1% of a band, strength ≥ 0.35)"
    [sub] = await subscriptions(services)
    assert sub.active
    async with services.sessions() as db:
        [chat] = (await db.exec(select(Chat))).all()
        assert chat.active and chat.paused_reason is None


class Broken(TwoSymbols):
    """A source that fails with a programming error."""

    async def snapshot(self, symbol: str) -> MarketSnapshot:
        raise RuntimeError("secret internals")


async def test_a_paused_subscription_is_shown(services: Services) -> None:
    await run(services, "/watch BTC")
    [sub] = await subscriptions(services)
    async with services.transaction() as db:
        await repo.pause_subscription(db, sub.id or 0, "symbol delisted")
    assert (await run(services, "/watches")).endswith("(paused: symbol delisted)")
    assert "Alerts: BTC (balanced, paused)" in await run(services, "/settings")


async def test_handler_crash_is_one_polite_line(services: Services) -> None:
    services.maps = type(services.maps)(Broken())
    reply = await run(services, "/bands BTC")
    assert reply == "Sorry, that failed on our side. Please try again later."
