"""Discord adapter (discord.py 2.x): slash commands from the shared registry, channel alerts.

Thin by design: every slash command is generated from `bot.commands.COMMANDS` (its options
from the command's usage line) and answered by `bot.commands.dispatch`; this module only turns
neutral replies and messages into embeds, attachments and buttons. A channel's alerts belong to
the channel; changing them needs Manage Channels. Missing permissions or a deleted channel end
in a non-recoverable `DeliveryError`, and the outbox worker pauses that channel with a log line.
"""

from __future__ import annotations

import hashlib
import inspect
import io
import logging
import re
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import aiohttp
import discord
import yarl
from discord import app_commands

from bot.commands import COMMANDS, Caller, ChatKind, Command, Reply, dispatch
from bot.notifier import Button, DeliveryError, DeliveryReceipt, OutgoingMessage, Target
from bot.services import Services
from engine.brief import Brief

logger = logging.getLogger(__name__)

PLATFORM = "discord"
TITLE_MAX = 256  # embed title
DESCRIPTION_MAX = 4096  # embed description
FIELD_NAME_MAX = 256
FIELD_VALUE_MAX = 1024
FIELDS_MAX = 25
EMBED_TOTAL_MAX = 6000  # all titles, descriptions, fields and the footer together
CUSTOM_ID_MAX = 100  # component custom_id
BUTTONS_MAX = 25  # five rows of five
NONCE_MAX = 25
ACTION_PREFIX = "lr:"
COLOURS = {"approach": 0xFDD663, "enter": 0xF29900, "cross": 0xF28B82, "swept": 0xC58AF9,
           "quiet_summary": 0x8AB4F8, "daily_brief": 0x81C995}
DEFAULT_COLOUR = 0x8AB4F8
_CHOICE_WORD = re.compile(r"[a-z0-9]+")
# Friendly option names for the placeholders the registry's usage lines use.
OPTION_NAMES = {"SYMBOL": "symbol", "HH:MM": "time", "HH:MM-HH:MM": "hours",
                "aggressive|balanced|conservative|N%": "sensitivity"}

RunCommand = Callable[[discord.Interaction, str, Sequence[str]], Awaitable[None]]


def configure_endpoints(api_url: str, gateway_url: str | None) -> None:
    """Point discord.py's REST routes and gateway at the configured URLs (fakes in tests)."""
    discord.http.Route.BASE = api_url.rstrip("/")
    if gateway_url:
        discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY = yarl.URL(gateway_url)


# ---------------------------------------------------------------- neutral -> embed


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def make_embed(title: str, parts: Sequence[str], *, kind: str = "",
               filename: str | None = None) -> discord.Embed:
    """An embed from a title and plain paragraphs (clipped to Discord's limits)."""
    embed = discord.Embed(title=_clip(title, TITLE_MAX) if title else None,
                          description=_clip("\n\n".join(p for p in parts if p), DESCRIPTION_MAX)
                          or None, colour=COLOURS.get(kind, DEFAULT_COLOUR))
    if filename:
        embed.set_image(url=f"attachment://{filename}")
    embed.set_footer(text="Estimates from public data, not financial advice.")
    return embed


def make_view(buttons: Sequence[Button]) -> discord.ui.View | None:
    """Link buttons open URLs; action buttons carry `lr:<action>` back to `on_interaction`."""
    items: list[discord.ui.Button[discord.ui.View]] = []
    for b in buttons[:BUTTONS_MAX]:
        if b.url:
            items.append(discord.ui.Button(label=b.label[:80], url=b.url))
        elif b.action and len(ACTION_PREFIX + b.action) <= CUSTOM_ID_MAX:
            items.append(discord.ui.Button(label=b.label[:80], custom_id=ACTION_PREFIX + b.action,
                                           style=discord.ButtonStyle.secondary))
    if not items:
        return None
    view = discord.ui.View(timeout=None)
    for item in items:
        view.add_item(item)
    return view


def add_brief(embed: discord.Embed, brief: Brief) -> discord.Embed:
    """A brief as embed fields: one per section, then the bottom line (within the total limit)."""
    fields = [(sec.heading, "\n".join(f"• {line}" for line in sec.lines))
              for sec in brief.sections if sec.lines]
    fields.append(("Bottom line", brief.bottom_line))
    budget = EMBED_TOTAL_MAX - len(embed.title or "") - len(embed.description or "") - 100
    for name, value in fields[:FIELDS_MAX]:
        name, value = _clip(name, FIELD_NAME_MAX), _clip(value, FIELD_VALUE_MAX)
        if len(name) + len(value) > budget:
            break
        embed.add_field(name=name, value=value, inline=False)
        budget -= len(name) + len(value)
    return embed


def reply_parts(reply: Reply) -> tuple[discord.Embed, discord.File | None, discord.ui.View | None]:
    """Embed, attachment and buttons of a command reply."""
    brief = reply.brief
    pre = f"```\n{reply.pre}\n```" if reply.pre else ""
    head = [brief.subtitle, brief.warning or ""] if brief is not None else []
    filename = (reply.filename or "map.png") if reply.image else None
    title = reply.title or (brief.title if brief is not None else "")
    embed = make_embed(title, [reply.text, *reply.sections, *head, pre], filename=filename)
    if brief is not None:
        add_brief(embed, brief)
    file = discord.File(io.BytesIO(reply.image), filename) if reply.image and filename else None
    return embed, file, make_view([b for row in reply.buttons for b in row])


def message_parts(message: OutgoingMessage) -> tuple[discord.Embed, discord.File | None,
                                                     discord.ui.View | None]:
    """Embed, attachment and buttons of an alert or brief."""
    filename = f"{message.image.symbol or 'map'}.png" if message.image and \
        message.image_bytes else None
    embed = make_embed(message.title, message.sections, kind=message.kind, filename=filename)
    file = (discord.File(io.BytesIO(message.image_bytes), filename)
            if message.image_bytes and filename else None)
    return embed, file, make_view(message.buttons)


def nonce_for(key: str) -> str | None:
    """A Discord nonce (≤ 25 chars) derived from the outbox key."""
    return hashlib.sha256(key.encode()).hexdigest()[:NONCE_MAX] if key else None


# ---------------------------------------------------------------- registry -> slash commands


def usage_options(command: Command) -> list[tuple[str, str, bool, list[str]]]:
    """(name, description, required, choices) per argument of the usage's first form."""
    first = command.usage.split(" | ")[0].split()[1:]
    options: list[tuple[str, str, bool, list[str]]] = []
    for token in first:
        required = not token.startswith("[")
        text = token.strip("[]")
        words = text.split("|")
        choices = words if len(words) > 1 and all(_CHOICE_WORD.fullmatch(w) for w in words) \
            else []
        name = OPTION_NAMES.get(text) or re.sub(r"[^a-z0-9]+", "_", text.lower()).strip("_")
        if choices and "24h" in choices:
            name = "window"
        while name in {o[0] for o in options}:
            name += "_"
        options.append((name[:32], text[:100], required, choices[:25]))
    return options


def slash_command(command: Command, run: RunCommand) -> app_commands.Command[Any, Any, None]:
    """An app command named after the registry entry, with options from its usage line."""
    options = usage_options(command)

    async def callback(interaction: discord.Interaction, **values: str | None) -> None:
        args = [v for name, *_ in options if (v := values.get(name))]
        await run(interaction, command.name, args)

    params = [inspect.Parameter("interaction", inspect.Parameter.POSITIONAL_OR_KEYWORD,
                                annotation=discord.Interaction)]
    for name, _, required, _ in sorted(options, key=lambda o: not o[2]):
        params.append(inspect.Parameter(
            name, inspect.Parameter.KEYWORD_ONLY, annotation=str if required else str | None,
            default=inspect.Parameter.empty if required else None))
    callback.__signature__ = inspect.Signature(params)  # type: ignore[attr-defined]
    callback.__discord_app_commands_param_description__ = {  # type: ignore[attr-defined]
        name: desc for name, desc, _, _ in options}
    callback.__discord_app_commands_param_choices__ = {  # type: ignore[attr-defined]
        name: [app_commands.Choice(name=c, value=c) for c in choices]
        for name, _, _, choices in options if choices}
    slash: app_commands.Command[Any, Any, None] = app_commands.Command(
        name=command.name, description=command.summary[:100],
        callback=callback)  # type: ignore[arg-type]  # the signature is set above
    if command.admin_only:
        slash.default_permissions = discord.Permissions(manage_channels=True)
    return slash


def caller_of(interaction: discord.Interaction, *, via_button: bool = False) -> Caller:
    """The neutral caller: the channel is the chat; in a guild, Manage Channels is admin."""
    channel = interaction.channel
    title = getattr(channel, "name", None)

    async def is_admin() -> bool:
        return interaction.permissions.manage_channels

    in_guild = interaction.guild_id is not None
    return Caller(PLATFORM, str(interaction.channel_id),
                  ChatKind.GROUP if in_guild else ChatKind.PRIVATE,
                  user_id=str(interaction.user.id) if interaction.user else None,
                  title=title if isinstance(title, str) else None,
                  is_admin=is_admin if in_guild else None, via_button=via_button)


# ---------------------------------------------------------------- the client


class DiscordBot(discord.Client):
    """The bot: registers the slash commands, answers them and button clicks."""

    def __init__(self, services: Services, *, sync_guild: int | None = None,
                 guild_ready_timeout: float = 2.0) -> None:
        super().__init__(intents=discord.Intents(guilds=True),
                         guild_ready_timeout=guild_ready_timeout, max_ratelimit_timeout=30.0)
        self.services = services
        self.sync_guild = sync_guild
        self.tree = app_commands.CommandTree(self)
        for command in COMMANDS.values():
            self.tree.add_command(slash_command(command, self.run_command))

    async def setup_hook(self) -> None:
        """Publish the commands (to one guild when configured: instant, for development)."""
        guild = discord.Object(self.sync_guild) if self.sync_guild else None
        if guild is not None:
            self.tree.copy_global_to(guild=guild)
        try:
            synced = await self.tree.sync(guild=guild)
            logger.info("discord: %d slash commands published", len(synced))
        except discord.HTTPException as exc:
            logger.warning("discord: could not publish slash commands: %s", exc)

    async def on_ready(self) -> None:
        """Log who we are."""
        logger.info("discord: connected as %s in %d guild(s)", self.user, len(self.guilds))

    async def run_command(self, interaction: discord.Interaction, name: str,
                          args: Sequence[str], *, via_button: bool = False) -> None:
        """Defer, dispatch through the registry, answer with an embed (+ image, buttons)."""
        try:
            if via_button:
                await interaction.response.defer()
            else:
                await interaction.response.defer(thinking=True)
        except discord.HTTPException as exc:
            logger.warning("discord /%s: could not acknowledge: %s", name, exc)
            return
        reply = await dispatch(self.services, caller_of(interaction, via_button=via_button),
                               name, args)
        embed, file, view = reply_parts(reply)
        try:
            if via_button and interaction.message is not None:
                await interaction.edit_original_response(
                    embed=embed, attachments=[file] if file else [],
                    view=view)
            else:
                kwargs: dict[str, Any] = {"embed": embed}
                if file is not None:
                    kwargs["file"] = file
                if view is not None:
                    kwargs["view"] = view
                await interaction.followup.send(**kwargs)
        except discord.HTTPException as exc:
            logger.warning("discord /%s in channel %s: reply failed: %s", name,
                           interaction.channel_id, exc)
        finally:
            if view is not None:
                view.stop()

    async def on_interaction(self, interaction: discord.Interaction) -> None:
        """Buttons under maps and alerts: `lr:map BTC 3d` runs `/map BTC 3d` in place."""
        if interaction.type is not discord.InteractionType.component:
            return
        data: dict[str, Any] = dict(interaction.data or {})
        custom_id = str(data.get("custom_id", ""))
        if not custom_id.startswith(ACTION_PREFIX):
            return
        name, *args = custom_id.removeprefix(ACTION_PREFIX).split()
        await self.run_command(interaction, name, args, via_button=True)


# ---------------------------------------------------------------- outgoing alerts


class DiscordNotifier:
    """The `Notifier` for Discord channels: an embed with the heatmap attached."""

    def __init__(self, client: discord.Client) -> None:
        self._client = client

    @property
    def name(self) -> str:
        """Platform name."""
        return PLATFORM

    async def send(self, target: Target, message: OutgoingMessage) -> DeliveryReceipt:
        """Send to a channel; permission and missing-channel errors are not recoverable."""
        try:
            channel = self._client.get_partial_messageable(int(target.chat_id))
        except ValueError:
            raise DeliveryError(f"bad channel id {target.chat_id!r}", recoverable=False) from None
        embed, file, view = message_parts(message)
        kwargs: dict[str, Any] = {"embed": embed}
        if file is not None:
            kwargs["file"] = file
        if view is not None:
            kwargs["view"] = view
        nonce = nonce_for(message.key)
        if nonce is not None:
            kwargs["nonce"] = nonce
        try:
            sent = await channel.send(**kwargs)
        except discord.Forbidden as exc:
            logger.warning("discord channel %s: missing permissions (%s); pausing its alerts",
                           target.chat_id, exc.code)
            raise DeliveryError(f"missing permissions (code {exc.code})",
                                recoverable=False) from None
        except discord.NotFound as exc:
            logger.warning("discord channel %s is gone (%s); pausing its alerts",
                           target.chat_id, exc.code)
            raise DeliveryError(f"channel not found (code {exc.code})",
                                recoverable=False) from None
        except discord.RateLimited as exc:
            raise DeliveryError("rate limited", recoverable=True,
                                retry_after=exc.retry_after) from None
        except discord.HTTPException as exc:
            recoverable = exc.status >= 500 or exc.status == 429
            raise DeliveryError(f"HTTP {exc.status}: {exc.text[:200]}",
                                recoverable=recoverable) from None
        except (TimeoutError, aiohttp.ClientError, OSError) as exc:
            raise DeliveryError(f"{type(exc).__name__}: {exc}", recoverable=True) from None
        finally:
            if view is not None:
                view.stop()
        return DeliveryReceipt(PLATFORM, str(sent.id))
