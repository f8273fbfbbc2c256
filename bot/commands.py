"""Transport-neutral chat commands: one registry, parsing, group rules, neutral replies.

Adapters (Telegram, Discord) turn a platform update into a `Caller` and arguments, call
`dispatch`, and format the returned `Reply` their own way. Nothing here knows any markup.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import timedelta
from enum import StrEnum

from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from bot.notifier import Button
from bot.services import Services
from engine.brief import Brief, build_brief
from engine.numbers import format_pct, format_price, format_range, format_usd
from engine.sensitivity import parse_sensitivity
from engine.types import LiquidationMap, Window
from market.errors import MarketDataError, UnknownSymbolError
from market.symbols import resolve
from storage import repo
from storage.models import Chat, DailyBrief, Subscription

logger = logging.getLogger(__name__)

TIMEZONE_HINT = "Europe/Berlin"


class ChatKind(StrEnum):
    """Where a command was sent: a one-to-one chat, a group, or a broadcast channel."""

    PRIVATE = "private"
    GROUP = "group"
    CHANNEL = "channel"


@dataclass(frozen=True, slots=True)
class Caller:
    """Who sent a command and where; `is_admin` is asked only when a rule needs it."""

    platform: str
    chat_id: str
    kind: ChatKind = ChatKind.PRIVATE
    user_id: str | None = None
    title: str | None = None
    is_admin: Callable[[], Awaitable[bool]] | None = None
    via_button: bool = False


@dataclass(frozen=True, slots=True)
class Reply:
    """A neutral answer: plain text, brief sections, a monospace block, an image, buttons.

    Adapters show, in order: `title`, `text`, `sections`, `brief`, `pre`; `image` (when set)
    goes first with as much of that as fits in a caption.
    """

    text: str = ""
    title: str = ""
    sections: tuple[str, ...] = ()
    brief: Brief | None = None
    pre: str = ""
    image: bytes | None = None
    filename: str = ""
    image_key: str = ""
    buttons: tuple[tuple[Button, ...], ...] = ()

    def plain_text(self) -> str:
        """Everything but the image, blank-line separated (tests, consoles)."""
        brief = self.brief.to_text().strip() if self.brief else ""
        return "\n\n".join(p for p in (self.title, self.text, *self.sections, brief, self.pre)
                           if p)


class UsageError(Exception):
    """A wrong or missing argument: shown as one line with an example, never a traceback."""

    def __init__(self, message: str, example: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.example = example


Handler = Callable[[Services, Caller, Sequence[str]], Awaitable[Reply]]


@dataclass(frozen=True, slots=True)
class Command:
    """One chat command; the registry of these drives help, menus and dispatch."""

    name: str
    usage: str
    summary: str
    example: str
    admin_only: bool
    handler: Handler


COMMANDS: dict[str, Command] = {}


def command(name: str, usage: str, summary: str, example: str = "", *,
            admin_only: bool = False) -> Callable[[Handler], Handler]:
    """Register a handler under `name` (registration order is help order)."""
    def register(handler: Handler) -> Handler:
        COMMANDS[name] = Command(name, usage, summary, example or usage, admin_only, handler)
        return handler
    return register


def help_text() -> str:
    """The /help answer, generated from the registry."""
    lines = ["liqradar: estimated liquidation heatmaps, plain-language briefs and band alerts.",
             ""]
    for cmd in COMMANDS.values():
        admin = " (group admins)" if cmd.admin_only else ""
        example = f" Example: {cmd.example}" if cmd.example != cmd.usage else ""
        lines.append(f"{cmd.usage}\n  {cmd.summary}{admin}.{example}")
    lines += ["", "Symbols: BTC, eth, BTCUSDT. Maps are estimates from public data, not advice."]
    return "\n".join(lines)


async def dispatch(services: Services, caller: Caller, name: str,
                   args: Sequence[str]) -> Reply:
    """Run a command by name; user mistakes and data outages become one-line replies."""
    cmd = COMMANDS.get(name.lower())
    if cmd is None:
        return Reply(text=f"Unknown command /{name}. Send /help for the list.")
    try:
        if cmd.admin_only and not await may_change(caller):
            return Reply(text="Only group administrators can change alerts here; "
                              "anyone can ask for a /map.")
        return await cmd.handler(services, caller, args)
    except UsageError as exc:
        return Reply(text=f"{exc.message} Example: {exc.example or cmd.example}")
    except UnknownSymbolError as exc:
        return Reply(text=_unknown_symbol(services, exc))
    except MarketDataError as exc:
        logger.warning("/%s %s: market data unavailable: %s", name, " ".join(args), exc)
        return Reply(text="Market data is unavailable right now; please try again in a minute.")
    except Exception:
        logger.exception("/%s %s failed in chat %s", name, " ".join(args), caller.chat_id)
        return Reply(text="Sorry, that failed on our side. Please try again later.")


async def may_change(caller: Caller) -> bool:
    """Group rule: in groups only administrators change subscriptions; elsewhere anyone."""
    if caller.kind is not ChatKind.GROUP:
        return True
    return caller.is_admin is not None and await caller.is_admin()


def _unknown_symbol(services: Services, exc: UnknownSymbolError) -> str:
    known = ", ".join(services.settings.symbols)
    return f"Unknown symbol {exc.symbol!r}: try one of {known} (or a pair like BTCUSDT)."


# ---------------------------------------------------------------- argument parsing


def sentence(text: str) -> str:
    """`unknown window '5d'` -> `Unknown window '5d'.`"""
    text = text.strip()
    return f"{text[:1].upper()}{text[1:]}{'' if text.endswith('.') else '.'}"


def parse_symbol(args: Sequence[str], index: int = 0) -> str:
    """The base asset at `args[index]` (`btc`, `BTCUSDT` -> `BTC`)."""
    if len(args) <= index:
        raise UsageError("Which symbol?")
    return resolve(args[index]).base


def parse_window(text: str) -> Window:
    """A heatmap window, or a UsageError naming the choices."""
    try:
        return Window.parse(text)
    except ValueError as exc:
        raise UsageError(sentence(str(exc))) from None


def parse_quiet(text: str) -> tuple[str, str]:
    """`23:00-07:00` -> ("23:00", "07:00")."""
    start, sep, end = text.partition("-")
    if not sep:
        raise UsageError(f"Quiet hours {text!r} must look like HH:MM-HH:MM.")
    try:
        return (repo.parse_hhmm(start).strftime("%H:%M"), repo.parse_hhmm(end).strftime("%H:%M"))
    except ValueError as exc:
        raise UsageError(sentence(str(exc))) from None


def checked(call: Callable[[], str]) -> str:
    """Run a storage validator, turning its ValueError into a UsageError."""
    try:
        return call()
    except ValueError as exc:
        raise UsageError(sentence(str(exc))) from None


def at_most(args: Sequence[str], count: int) -> None:
    """Reject extra arguments."""
    if len(args) > count:
        raise UsageError(f"Too many arguments ({' '.join(args[count:])!r} is extra).")


# ---------------------------------------------------------------- maps


class Throttled(Exception):
    """This chat asked for a map too recently."""


def check_cooldown(services: Services, caller: Caller) -> None:
    """Per-chat /map cooldown (buttons edit in place and are exempt)."""
    if caller.via_button:
        return
    now, key = services.clock(), (caller.platform, caller.chat_id)
    last = services.map_sent_at.get(key)
    wait = timedelta(seconds=services.settings.map_cooldown_s)
    if last is not None and now - last < wait:
        left = math.ceil((wait - (now - last)).total_seconds())
        raise UsageError(f"One map per {services.settings.map_cooldown_s} s per chat; "
                         f"try again in {left} s (or use the buttons under the last map).")
    if len(services.map_sent_at) > 10_000:
        services.map_sent_at.clear()
    services.map_sent_at[key] = now


def map_buttons(symbol: str, window: Window) -> tuple[tuple[Button, ...], ...]:
    """Window switches (current one marked) and a refresh button."""
    windows = tuple(Button(f"• {w.value}" if w is window else w.value,
                           action=f"map {symbol} {w.value}") for w in Window)
    return windows, (Button("Refresh", action=f"map {symbol} {window.value} refresh"),)


def brief_of(services: Services, m: LiquidationMap) -> Brief:
    """The map's brief, aged by the service clock."""
    return build_brief(m, now_ms=services.maps.now_ms())


def brief_parts(brief: Brief) -> tuple[str, tuple[str, ...]]:
    """Title and plain sections of a brief (for outbox messages, which carry plain text)."""
    sections = [brief.subtitle, *([brief.warning] if brief.warning else [])]
    sections += ["\n".join([s.heading, *(f"• {line}" for line in s.lines)])
                 for s in brief.sections if s.lines]
    return brief.title, (*sections, f"Bottom line: {brief.bottom_line}")


async def map_reply(services: Services, symbol: str, window: Window, refresh: bool) -> Reply:
    """The heatmap image with its brief and buttons."""
    if refresh and services.maps.is_stale(await services.maps.snapshot(symbol)):
        await services.maps.refresh(symbol)
    m = await services.maps.get_map(symbol, window)
    png = await services.maps.get_png(symbol, window)
    return Reply(brief=brief_of(services, m), image=png,
                 filename=f"{m.symbol}-{window.value}.png",
                 image_key=f"{m.symbol}:{window.value}:{m.as_of_ms}",
                 buttons=map_buttons(m.symbol, window))


def bands_table(m: LiquidationMap) -> str:
    """A compact monospace table of the map's bands, shorts above price first."""
    rows = [f"{'side':<5} {'range':<13} {'est.':>6} {'dist':>6}"]
    for b in sorted(m.bands, key=lambda b: -b.peak):
        rows.append(f"{b.side.value:<5} {format_range(b.low, b.high, m.price):<13} "
                    f"{format_usd(b.usd):>6} {format_pct(b.distance_pct, signed=True):>6}")
    return "\n".join(rows) if m.bands else "no pockets found in the displayed range"


@command("start", "/start", "Welcome and the list of commands")
async def _start(services: Services, caller: Caller, args: Sequence[str]) -> Reply:
    async with services.transaction() as db:
        await chat_of(db, caller)
    return Reply(text=help_text())


@command("help", "/help", "This list")
async def _help(services: Services, caller: Caller, args: Sequence[str]) -> Reply:
    return Reply(text=help_text())


@command("map", "/map SYMBOL [12h|24h|3d|7d|30d]",
         "Heatmap of estimated liquidation levels with a short brief", "/map BTC 3d")
async def _map(services: Services, caller: Caller, args: Sequence[str]) -> Reply:
    at_most(args, 3)
    symbol = parse_symbol(args)
    window = parse_window(args[1]) if len(args) > 1 else Window.H24
    refresh = len(args) > 2 and args[2].lower() == "refresh"
    check_cooldown(services, caller)
    return await map_reply(services, symbol, window, refresh)


@command("brief", "/brief SYMBOL [12h|24h|3d|7d|30d]", "The plain-language brief only",
         "/brief ETH")
async def _brief(services: Services, caller: Caller, args: Sequence[str]) -> Reply:
    at_most(args, 2)
    symbol = parse_symbol(args)
    m = await services.maps.get_map(symbol, parse_window(args[1]) if len(args) > 1 else Window.H24)
    return Reply(brief=brief_of(services, m))


@command("bands", "/bands SYMBOL", "Compact table of the estimated liquidation bands",
         "/bands BTC")
async def _bands(services: Services, caller: Caller, args: Sequence[str]) -> Reply:
    at_most(args, 2)
    symbol = parse_symbol(args)
    m = await services.maps.get_map(symbol, parse_window(args[1]) if len(args) > 1 else Window.H24)
    head = f"{m.symbol} {format_price(m.price)} · {m.window.value} · estimated bands"
    return Reply(text=head, pre=bands_table(m))


# ---------------------------------------------------------------- subscriptions


async def chat_of(db: AsyncSession, caller: Caller, timezone: str | None = None) -> Chat:
    """The caller's chat row, created on first use, its time zone updated when given; a paused
    chat is resumed (a command shows the bot can reach it again)."""
    chat = await repo.upsert_chat(db, caller.platform, caller.chat_id, title=caller.title,
                                  timezone=timezone)
    if not chat.active and chat.id is not None:
        await repo.resume_chat(db, chat.id)
        chat.active, chat.paused_reason = True, None
    return chat


def describe_sensitivity(name: str) -> str:
    """`balanced (within 1% of a band, strength ≥ 0.35)`."""
    p = parse_sensitivity(name)
    return f"{name} (within {p.approach_pct:g}% of a band, strength ≥ {p.min_strength:g})"


async def known_symbol(services: Services, symbol: str) -> None:
    """Raise UnknownSymbolError unless some venue has data; an outage is not a verdict."""
    try:
        await services.maps.snapshot(symbol)
    except UnknownSymbolError:
        raise
    except MarketDataError as exc:
        logger.warning("could not check %s: %s", symbol, exc)


@command("watch", "/watch SYMBOL [aggressive|balanced|conservative|N%]",
         "Alert this chat when price nears or crosses a band", "/watch BTC 1.5%", admin_only=True)
async def _watch(services: Services, caller: Caller, args: Sequence[str]) -> Reply:
    at_most(args, 2)
    symbol = parse_symbol(args)
    sensitivity = args[1].lower() if len(args) > 1 else services.settings.default_sensitivity
    checked(lambda: str(parse_sensitivity(sensitivity)))
    await known_symbol(services, symbol)
    async with services.transaction() as db:
        await subscribe(db, await chat_of(db, caller), symbol, sensitivity)
    return Reply(text=f"Watching {symbol}: {describe_sensitivity(sensitivity)}. "
                      "Alerts are estimates, not advice.")


async def subscribe(db: AsyncSession, chat: Chat, symbol: str, sensitivity: str) -> None:
    """Add or update a subscription; it inherits the chat's quiet hours."""
    quiet = await quiet_hours(db, chat)
    await repo.subscribe(db, chat.id or 0, symbol, sensitivity=sensitivity)
    if quiet:
        await repo.set_quiet_hours(db, chat.id or 0, *quiet, symbol=symbol)


@command("unwatch", "/unwatch SYMBOL", "Stop alerts for a symbol", "/unwatch BTC",
         admin_only=True)
async def _unwatch(services: Services, caller: Caller, args: Sequence[str]) -> Reply:
    at_most(args, 1)
    symbol = parse_symbol(args)
    async with services.transaction() as db:
        removed = await repo.unsubscribe(db, (await chat_of(db, caller)).id or 0, symbol)
    return Reply(text=f"Stopped alerts for {symbol}." if removed
                 else f"This chat was not watching {symbol}.")


@command("watches", "/watches", "The symbols this chat watches")
async def _watches(services: Services, caller: Caller, args: Sequence[str]) -> Reply:
    at_most(args, 0)
    async with services.transaction() as db:
        subs = await repo.list_subscriptions(db, (await chat_of(db, caller)).id or 0)
    if not subs:
        return Reply(text="No alerts here yet. Start with /watch BTC.")
    return Reply(text="\n".join(
        f"{s.symbol}: {describe_sensitivity(s.sensitivity)}"
        + ("" if s.active else f" (paused: {s.paused_reason})") for s in subs))


def daily_args(args: Sequence[str]) -> tuple[str, str, str | None]:
    """SYMBOL HH:MM [timezone] -> (symbol, "HH:MM", zone or None)."""
    at_most(args, 3)
    symbol = parse_symbol(args)
    if len(args) < 2:
        raise UsageError("At what time? Give HH:MM (24 h).")
    at = checked(lambda: repo.parse_hhmm(args[1]).strftime("%H:%M"))
    return symbol, at, checked(lambda: repo.check_timezone(args[2])) if len(args) > 2 else None


@command("daily", "/daily SYMBOL HH:MM [timezone] | /daily off SYMBOL",
         "A brief every day at a local time", f"/daily BTC 08:00 {TIMEZONE_HINT}",
         admin_only=True)
async def _daily(services: Services, caller: Caller, args: Sequence[str]) -> Reply:
    if args and args[0].lower() == "off":
        return await _daily_off(services, caller, args[1:])
    symbol, at, tz = daily_args(args)
    await known_symbol(services, symbol)
    async with services.transaction() as db:
        chat = await chat_of(db, caller, timezone=tz)
        await repo.set_daily_brief(db, chat.id or 0, symbol, at, chat.timezone)
    return Reply(text=f"Daily {symbol} brief at {at} ({chat.timezone}).")


async def _daily_off(services: Services, caller: Caller, args: Sequence[str]) -> Reply:
    at_most(args, 1)
    symbol = parse_symbol(args)
    async with services.transaction() as db:
        removed = await repo.clear_daily_brief(db, (await chat_of(db, caller)).id or 0, symbol)
    return Reply(text=f"Daily {symbol} brief stopped." if removed
                 else f"There was no daily {symbol} brief here.")


async def quiet_hours(db: AsyncSession, chat: Chat) -> tuple[str, str] | None:
    """The chat's quiet hours (kept on its subscriptions), if any."""
    for sub in await repo.list_subscriptions(db, chat.id or 0):
        if sub.quiet_start and sub.quiet_end:
            return sub.quiet_start, sub.quiet_end
    return None


@command("quiet", "/quiet HH:MM-HH:MM [timezone] | /quiet off",
         "Hold alerts during these local hours and summarise them after", "/quiet 23:00-07:00",
         admin_only=True)
async def _quiet(services: Services, caller: Caller, args: Sequence[str]) -> Reply:
    at_most(args, 2)
    if not args:
        raise UsageError("Give the quiet hours as HH:MM-HH:MM, or off.")
    hours = None if args[0].lower() == "off" else parse_quiet(args[0])
    tz = checked(lambda: repo.check_timezone(args[1])) if len(args) > 1 else None
    async with services.transaction() as db:
        chat = await chat_of(db, caller, timezone=tz)
        changed = await repo.set_quiet_hours(db, chat.id or 0, *(hours or (None, None)))
    if hours is None:
        return Reply(text="Quiet hours off.")
    note = "" if changed else " They apply once this chat watches a symbol (/watch BTC)."
    return Reply(text=f"Quiet hours {'-'.join(hours)} ({chat.timezone}).{note}")


def settings_text(chat: Chat, subs: Sequence[Subscription], briefs: Sequence[DailyBrief],
                  cooldown_s: int) -> str:
    """The /settings answer."""
    quiet = next(((s.quiet_start, s.quiet_end) for s in subs if s.quiet_start), None)
    alerts = ", ".join(f"{s.symbol} ({s.sensitivity}{'' if s.active else ', paused'})"
                       for s in subs)
    daily = ", ".join(f"{b.symbol} at {b.local_time} {b.timezone}" for b in briefs)
    return "\n".join([f"Time zone: {chat.timezone}",
                      f"Quiet hours: {'-'.join(map(str, quiet)) if quiet else 'off'}",
                      f"Alerts: {alerts or 'none'}", f"Daily briefs: {daily or 'none'}",
                      f"Map cooldown: {cooldown_s} s per chat"])


@command("settings", "/settings", "This chat's time zone, quiet hours, alerts and briefs")
async def _settings(services: Services, caller: Caller, args: Sequence[str]) -> Reply:
    at_most(args, 0)
    async with services.transaction() as db:
        chat = await chat_of(db, caller)
        subs = await repo.list_subscriptions(db, chat.id or 0)
        briefs = (await db.exec(select(DailyBrief).where(DailyBrief.chat_pk == chat.id)
                                .order_by(col(DailyBrief.symbol)))).all()
    return Reply(text=settings_text(chat, subs, briefs, services.settings.map_cooldown_s))
