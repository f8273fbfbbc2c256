"""Telegram adapter: PTB Application wiring, HTML formatting and the Telegram notifier.

Everything Telegram-specific lives here: commands arrive as updates, go through the neutral
`bot.commands.dispatch`, and the neutral `Reply` / `OutgoingMessage` is formatted to Telegram
HTML, split to the caption (1024) and text (4096) limits, and sent. Images are uploaded once per
image key and re-sent by file_id.
"""

from __future__ import annotations

import asyncio
import hashlib
import html
import logging
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from aiohttp import web
from sqlmodel import col, select
from telegram import Bot as PtbBot
from telegram import (
    BotCommand,
    InlineKeyboardButton,
    InlineKeyboardMarkup,
    InputFile,
    InputMediaPhoto,
    Message,
    Update,
)
from telegram.constants import ChatMemberStatus, ChatType, MessageLimit, ParseMode
from telegram.error import (
    BadRequest,
    ChatMigrated,
    Forbidden,
    RetryAfter,
    TelegramError,
)
from telegram.ext import (
    AIORateLimiter,
    Application,
    ApplicationBuilder,
    CallbackQueryHandler,
    ChatMemberHandler,
    CommandHandler,
    ContextTypes,
    MessageHandler,
    filters,
)

from bot.commands import COMMANDS, Caller, ChatKind, Reply, dispatch
from bot.notifier import Button, DeliveryError, DeliveryReceipt, OutgoingMessage, Target
from bot.services import Services
from engine.brief import Brief
from storage import repo
from storage.db import SessionFactory
from storage.models import DailyBrief, Platform, Subscription

logger = logging.getLogger(__name__)

PLATFORM = Platform.TELEGRAM.value
CAPTION_LIMIT = MessageLimit.CAPTION_LENGTH  # 1024, counted after entity parsing
TEXT_LIMIT = MessageLimit.MAX_TEXT_LENGTH  # 4096
UPDATES = ["message", "channel_post", "callback_query", "my_chat_member"]
PERMANENT = ("chat not found", "bot was blocked", "bot was kicked", "user is deactivated",
             "not enough rights", "have no rights", "chat_write_forbidden",
             "group chat was deactivated", "peer_id_invalid")
Context = ContextTypes.DEFAULT_TYPE
TelegramApp = Application[Any, Any, Any, Any, Any, Any]


# ---------------------------------------------------------------- formatting (HTML)


@dataclass(frozen=True, slots=True)
class Piece:
    """A block of plain text shown as `b` bold, `i` italic, `pre` monospace or plain, with an
    optional bold heading line."""

    text: str
    style: str = ""
    head: str = ""

    def html(self) -> str:
        """The piece as Telegram HTML."""
        body = html.escape(self.text, quote=False)
        if self.style:
            body = f"<{self.style}>{body}</{self.style}>"
        return f"<b>{html.escape(self.head, quote=False)}</b>\n{body}" if self.head else body

    @property
    def size(self) -> int:
        """Visible length as Telegram counts it."""
        return tg_len(self.text) + (tg_len(self.head) + 1 if self.head else 0)


def tg_len(text: str) -> int:
    """Length as Telegram counts it (UTF-16 code units)."""
    return len(text.encode("utf-16-le")) // 2


def pieces(title: str = "", text: str = "", sections: Sequence[str] = (), pre: str = "",
           brief: Brief | None = None) -> list[Piece]:
    """The blocks of a neutral message in display order."""
    out = [Piece(title, "b")] if title else []
    out += [Piece(t) for t in (text, *sections) if t]
    out += brief_pieces(brief) if brief is not None else []
    return out + ([Piece(pre, "pre")] if pre else [])


def brief_pieces(brief: Brief) -> list[Piece]:
    """A brief as blocks: bold title, italic subtitle, bold warning, headed sections."""
    out = [Piece(brief.title, "b"), Piece(brief.subtitle, "i")]
    out += [Piece(brief.warning, "b")] if brief.warning else []
    out += [Piece("\n".join(f"• {line}" for line in s.lines), head=s.heading)
            for s in brief.sections if s.lines]
    return [*out, Piece(brief.bottom_line, head="Bottom line")]


def _head(line: str, limit: int) -> str:
    """The longest prefix of `line` Telegram counts as at most `limit` long."""
    n = min(len(line), limit)
    while tg_len(line[:n]) > limit:
        n -= tg_len(line[:n]) - limit
    return line[:n]


def _cut(piece: Piece, limit: int) -> list[Piece]:
    """Split an oversize piece into pieces of at most `limit`, at line breaks when possible."""
    out: list[str] = []
    current = ""
    limit -= tg_len(piece.head) + 1 if piece.head else 0
    for line in piece.text.split("\n"):
        joined = f"{current}\n{line}" if current else line
        if tg_len(joined) <= limit:
            current = joined
            continue
        if current:
            out.append(current)
        while tg_len(line) > limit:
            head = _head(line, limit)
            out.append(head)
            line = line[len(head):]
        current = line
    parts = [t for t in [*out, current] if t.strip()]
    return [Piece(t, piece.style, piece.head if i == 0 else "") for i, t in enumerate(parts)]


def split_html(blocks: Sequence[Piece], first_limit: int, limit: int = TEXT_LIMIT) -> list[str]:
    """Pack blocks into HTML messages: the first under `first_limit`, the rest under `limit`.

    Whole blocks are kept together when they fit (so markup is never cut); a block too long for
    an empty message is cut at line breaks. Limits count visible text, as Telegram does.
    """
    chunks: list[list[Piece]] = [[]]
    used = 0
    todo = list(blocks)
    while todo:
        piece = todo.pop(0)
        cap = first_limit if len(chunks) == 1 else limit
        size = piece.size + (2 if chunks[-1] else 0)
        if used + size <= cap:
            chunks[-1].append(piece)
            used += size
        elif chunks[-1]:
            chunks.append([])
            used = 0
            todo.insert(0, piece)
        else:
            todo[:0] = _cut(piece, cap)
    return ["\n\n".join(p.html() for p in chunk) for chunk in chunks]


def reply_pieces(reply: Reply) -> list[Piece]:
    """The blocks of a command reply."""
    return pieces(reply.title, reply.text, reply.sections, reply.pre, reply.brief)


def keyboard(rows: Sequence[Sequence[Button]]) -> InlineKeyboardMarkup | None:
    """Inline keyboard of neutral buttons (actions become callback data)."""
    out = [[InlineKeyboardButton(b.label, url=b.url) if b.url else
            InlineKeyboardButton(b.label, callback_data=b.action) for b in row] for row in rows]
    out = [row for row in out if row]
    return InlineKeyboardMarkup(out) if out else None


# ---------------------------------------------------------------- photos by file_id


class PhotoSender:
    """Uploads each image key once; later sends (any chat) reuse Telegram's file_id."""

    def __init__(self, bot: PtbBot, size: int = 256) -> None:
        self.bot = bot
        self.size = size
        self.file_ids: OrderedDict[str, str] = OrderedDict()
        self.uploads = 0
        self._locks: dict[str, asyncio.Lock] = {}

    async def send(self, chat_id: str | int, key: str, data: bytes | None, filename: str,
                   caption: str, markup: InlineKeyboardMarkup | None) -> Message:
        """Send a photo by cached file_id, else upload it (one upload per key at a time)."""
        if key in self.file_ids:
            return await self._by_id(chat_id, key, data, filename, caption, markup)
        lock = self._locks.setdefault(key, asyncio.Lock())
        try:
            async with lock:
                if key in self.file_ids:
                    return await self._by_id(chat_id, key, data, filename, caption, markup)
                return await self._upload(chat_id, key, data, filename, caption, markup)
        finally:
            if self._locks.get(key) is lock and not lock.locked():
                del self._locks[key]

    async def _by_id(self, chat_id: str | int, key: str, data: bytes | None, filename: str,
                     caption: str, markup: InlineKeyboardMarkup | None) -> Message:
        try:
            return await self.bot.send_photo(chat_id, self.file_ids[key], caption=caption,
                                             parse_mode=ParseMode.HTML, reply_markup=markup)
        except BadRequest as exc:
            if "file" not in str(exc).lower() or data is None:
                raise
            self.file_ids.pop(key, None)
            return await self._upload(chat_id, key, data, filename, caption, markup)

    async def _upload(self, chat_id: str | int, key: str, data: bytes | None, filename: str,
                      caption: str, markup: InlineKeyboardMarkup | None) -> Message:
        if data is None:
            raise ValueError(f"image {key} is neither cached on Telegram nor given")
        message = await self.bot.send_photo(chat_id, InputFile(data, filename=filename),
                                            caption=caption, parse_mode=ParseMode.HTML,
                                            reply_markup=markup)
        self.uploads += 1
        self.remember(key, message)
        return message

    def remember(self, key: str, message: Message | bool) -> None:
        """Keep the file_id of a message's largest photo under `key`."""
        if isinstance(message, Message) and message.photo and key:
            self.file_ids[key] = message.photo[-1].file_id
            self.file_ids.move_to_end(key)
            while len(self.file_ids) > self.size:
                self.file_ids.popitem(last=False)

    def media(self, key: str, data: bytes, filename: str, caption: str) -> InputMediaPhoto:
        """Photo media for an edit: by file_id when known."""
        media: str | InputFile = self.file_ids.get(key) or InputFile(data, filename=filename,
                                                                     attach=True)
        return InputMediaPhoto(media, caption=caption, parse_mode=ParseMode.HTML)


async def send_parts(bot: PtbBot, photos: PhotoSender, chat_id: str | int,
                     blocks: Sequence[Piece], markup: InlineKeyboardMarkup | None,
                     image: tuple[str, bytes | None, str] | None) -> Message:
    """Photo with caption (if any) then text messages; returns the first message.

    Once the photo is out, the follow-up text is best effort: a failure there is logged, not
    raised, so a retry never sends the photo twice.
    """
    if image is not None:
        caption, *rest = split_html(blocks, CAPTION_LIMIT)
        first = await photos.send(chat_id, image[0], image[1], image[2], caption, markup)
        try:
            for text in rest:
                await bot.send_message(chat_id, text, parse_mode=ParseMode.HTML)
        except TelegramError as exc:
            logger.warning("follow-up text to telegram chat %s failed: %s", chat_id, exc)
        return first
    texts = [t for t in split_html(blocks, TEXT_LIMIT) if t] or ["(empty)"]
    sent = [await bot.send_message(chat_id, t, parse_mode=ParseMode.HTML,
                                   reply_markup=markup if i == len(texts) - 1 else None)
            for i, t in enumerate(texts)]
    return sent[0]


# ---------------------------------------------------------------- chats


async def move_chat(sessions: SessionFactory, old_id: str, new_id: str) -> None:
    """A group became a supergroup: keep its subscriptions and briefs under the new id."""
    async with sessions.begin() as db:
        old = await repo.get_chat(db, PLATFORM, old_id)
        if old is None or old.id is None:
            return
        new = await repo.get_chat(db, PLATFORM, new_id)
        if new is None:
            old.chat_id = new_id
            db.add(old)
            return
        for table in (Subscription, DailyBrief):
            taken = set((await db.exec(select(table.symbol).where(table.chat_pk == new.id))).all())
            rows = (await db.exec(select(table).where(table.chat_pk == old.id,
                                                      col(table.symbol).not_in(taken)))).all()
            for row in rows:
                row.chat_pk = new.id or 0
                db.add(row)
        await db.flush()
        await db.delete(old)


async def set_chat_active(sessions: SessionFactory, chat_id: str, active: bool,
                          reason: str = "") -> None:
    """Pause a known chat (bot blocked or removed) or resume it (bot back)."""
    async with sessions.begin() as db:
        chat = await repo.get_chat(db, PLATFORM, chat_id)
        if chat is None or chat.id is None or chat.active == active:
            return
        if active:
            await repo.resume_chat(db, chat.id)
        else:
            await repo.pause_chat(db, chat.id, reason)


# ---------------------------------------------------------------- notifier


def delivery_error(exc: TelegramError) -> DeliveryError:
    """Map a Telegram error: blocked or gone chats are permanent, the rest retried later."""
    text = str(exc)
    if isinstance(exc, Forbidden) or (isinstance(exc, BadRequest) and any(
            p in text.lower() for p in PERMANENT)):
        return DeliveryError(f"telegram: {text}", recoverable=False)
    if isinstance(exc, RetryAfter):
        wait = exc.retry_after
        seconds = wait if isinstance(wait, int | float) else wait.total_seconds()
        return DeliveryError(f"telegram: {text}", recoverable=True, retry_after=seconds)
    return DeliveryError(f"telegram: {type(exc).__name__}: {text}", recoverable=True)


class TelegramNotifier:
    """Notifier for alerts and daily briefs: HTML, caption split, file_id reuse, migrations."""

    def __init__(self, bot: PtbBot, sessions: SessionFactory | None = None,
                 photos: PhotoSender | None = None) -> None:
        self.bot = bot
        self.sessions = sessions
        self.photos = photos or PhotoSender(bot)

    @property
    def name(self) -> str:
        """Platform name."""
        return PLATFORM

    async def send(self, target: Target, message: OutgoingMessage) -> DeliveryReceipt:
        """Deliver one message; raise DeliveryError (permanent for blocked or missing chats)."""
        chat_id = target.chat_id
        for _ in range(3):
            try:
                sent = await self._send(chat_id, message)
                return DeliveryReceipt(PLATFORM, str(sent.message_id))
            except ChatMigrated as exc:
                logger.info("telegram chat %s migrated to %s", chat_id, exc.new_chat_id)
                if self.sessions is not None:
                    await move_chat(self.sessions, chat_id, str(exc.new_chat_id))
                chat_id = str(exc.new_chat_id)
            except TelegramError as exc:
                raise delivery_error(exc) from exc
        raise DeliveryError("telegram: chat kept migrating", recoverable=True)

    async def _send(self, chat_id: str, message: OutgoingMessage) -> Message:
        blocks = pieces(message.title, sections=message.sections)
        markup = keyboard([message.buttons] if message.buttons else [])
        image = None
        if message.image is not None and (message.image_bytes is not None
                                          or message.image.key in self.photos.file_ids):
            name = f"{message.image.symbol or 'map'}-{message.image.window or 'map'}.png"
            image = (message.image.key, message.image_bytes, name)
        return await send_parts(self.bot, self.photos, chat_id, blocks, markup, image)


# ---------------------------------------------------------------- the bot


def is_map_message(message: Message) -> bool:
    """True for a /map answer (it carries a Refresh button), which buttons edit in place."""
    markup = message.reply_markup
    return markup is not None and any(
        str(b.callback_data or "").endswith(" refresh") for row in markup.inline_keyboard
        for b in row)


def split_command(text: str, username: str) -> tuple[str, list[str]]:
    """`/map@this_bot btc 3d` -> ("map", ["btc", "3d"]); another bot's command -> ("", [])."""
    head, *args = text.split()
    name, _, mention = head.lstrip("/").partition("@")
    if mention and mention.lower() != username.lower():
        return "", []
    return name.lower(), args


def chat_kind(chat_type: str) -> ChatKind:
    """Neutral chat kind of a Telegram chat type."""
    if chat_type == ChatType.PRIVATE:
        return ChatKind.PRIVATE
    return ChatKind.CHANNEL if chat_type == ChatType.CHANNEL else ChatKind.GROUP


def webhook_secret(token: str) -> str:
    """Secret token Telegram echoes in webhook requests (derived, never logged)."""
    return hashlib.sha256(f"liqradar-webhook:{token}".encode()).hexdigest()[:48]


class TelegramBot:
    """The Telegram side of the service: `await start()`, `await stop()`; never run_polling."""

    def __init__(self, services: Services, *, token: str | None = None,
                 poll_timeout: int = 10) -> None:
        settings = services.settings
        secret = settings.telegram_token.get_secret_value() if settings.telegram_token else ""
        self.token = token or secret
        if not self.token:
            raise ValueError("no Telegram token: set LIQRADAR_TELEGRAM_TOKEN")
        self.services = services
        self.poll_timeout = poll_timeout
        self.app: TelegramApp = (
            ApplicationBuilder().token(self.token)
            .base_url(settings.telegram_api_url).base_file_url(settings.telegram_file_url)
            .rate_limiter(AIORateLimiter(max_retries=2)).concurrent_updates(32).build())
        self.notifier = TelegramNotifier(self.app.bot, services.sessions)
        self._webhook: web.AppRunner | None = None
        self._add_handlers()

    @property
    def photos(self) -> PhotoSender:
        """The file_id cache shared by replies and notifications."""
        return self.notifier.photos

    def _add_handlers(self) -> None:
        only_new = filters.UpdateType.MESSAGE
        for name in COMMANDS:
            self.app.add_handler(CommandHandler(name, self._on_command, filters=only_new))
        self.app.add_handler(MessageHandler(
            filters.UpdateType.CHANNEL_POST & filters.COMMAND, self._on_command))
        self.app.add_handler(CallbackQueryHandler(self._on_button))
        self.app.add_handler(MessageHandler(filters.StatusUpdate.MIGRATE, self._on_migrate))
        self.app.add_handler(ChatMemberHandler(self._on_membership,
                                               ChatMemberHandler.MY_CHAT_MEMBER))
        self.app.add_error_handler(self._on_error)

    async def start(self) -> None:
        """Connect, publish the command menu, and receive updates (polling or webhook)."""
        await self.app.initialize()
        await self.app.bot.set_my_commands(
            [BotCommand(c.name, c.summary[:256]) for c in COMMANDS.values()])
        await self.app.start()
        if self.services.settings.telegram_webhook_url:
            await self._start_webhook(self.services.settings.telegram_webhook_url)
        elif self.app.updater is not None:
            await self.app.updater.start_polling(poll_interval=0, timeout=self.poll_timeout,
                                                 allowed_updates=UPDATES)
        logger.info("telegram bot @%s started", self.app.bot.username)

    async def stop(self) -> None:
        """Stop receiving, finish in-flight updates, close connections."""
        if self.app.updater is not None and self.app.updater.running:
            await self.app.updater.stop()
        if self._webhook is not None:
            await self._webhook.cleanup()
            self._webhook = None
        if self.app.running:
            await self.app.stop()
        await self.app.shutdown()

    async def _start_webhook(self, url: str) -> None:
        settings, secret = self.services.settings, webhook_secret(self.token)
        web_app = web.Application()
        web_app.router.add_post(urlsplit(url).path or "/", self._on_webhook)
        self._webhook = web.AppRunner(web_app, access_log=None)
        await self._webhook.setup()
        await web.TCPSite(self._webhook, settings.telegram_webhook_listen,
                          settings.telegram_webhook_port).start()
        await self.app.bot.set_webhook(url, allowed_updates=UPDATES, secret_token=secret)

    async def _on_webhook(self, request: web.Request) -> web.Response:
        if request.headers.get("X-Telegram-Bot-Api-Secret-Token") != webhook_secret(self.token):
            return web.Response(status=403)
        try:
            update = Update.de_json(await request.json(), self.app.bot)
        except (ValueError, TypeError, KeyError):
            return web.Response(status=400)
        await self.app.update_queue.put(update)
        return web.Response(text="ok")

    # ------------------------------------------------------------ handlers

    async def _on_command(self, update: Update, context: Context) -> None:
        message = update.effective_message
        if message is None or not message.text:
            return
        name, args = split_command(message.text, self.app.bot.username)
        if name:
            reply = await dispatch(self.services, self.caller(update), name, args)
            await self.send_reply(message.chat_id, reply)

    async def _on_button(self, update: Update, context: Context) -> None:
        query = update.callback_query
        if query is None or not query.data:
            return
        message = query.message if isinstance(query.message, Message) else None
        if message is None:
            await query.answer("This message is too old to update; send /map again.")
            return
        in_place = is_map_message(message)  # window/refresh buttons edit; "Open map" sends new
        name, *args = query.data.split()
        reply = await dispatch(self.services, self.caller(update, via_button=in_place), name, args)
        await query.answer(None if reply.image is not None else reply.plain_text()[:200] or None)
        if reply.image is not None and in_place:
            await self.edit_map(message, reply)
        elif reply.image is not None:
            await self.send_reply(message.chat_id, reply)

    async def _on_migrate(self, update: Update, context: Context) -> None:
        message = update.effective_message
        if message is not None and message.migrate_to_chat_id:
            await move_chat(self.services.sessions, str(message.chat_id),
                            str(message.migrate_to_chat_id))

    async def _on_membership(self, update: Update, context: Context) -> None:
        change = update.my_chat_member
        if change is None:
            return
        status = change.new_chat_member.status
        gone = status in (ChatMemberStatus.BANNED, ChatMemberStatus.LEFT)
        await set_chat_active(self.services.sessions, str(change.chat.id), not gone,
                              f"telegram: bot {status}")

    async def _on_error(self, update: object, context: Context) -> None:
        if isinstance(context.error, TelegramError):
            logger.warning("telegram update failed: %s", context.error)
        else:
            logger.error("telegram update failed", exc_info=context.error)

    # ------------------------------------------------------------ helpers

    def caller(self, update: Update, *, via_button: bool = False) -> Caller:
        """The neutral caller of an update; admin status is fetched only when a rule asks."""
        chat, user, message = update.effective_chat, update.effective_user, update.effective_message
        if chat is None:
            raise ValueError("update without a chat")
        sender = message.sender_chat if isinstance(message, Message) else None

        async def is_admin() -> bool:
            if user is None or (sender is not None and sender.id == chat.id):
                return True  # a channel post, or an anonymous group admin
            member = await self.app.bot.get_chat_member(chat.id, user.id)
            return member.status in (ChatMemberStatus.ADMINISTRATOR, ChatMemberStatus.OWNER)

        return Caller(platform=PLATFORM, chat_id=str(chat.id), kind=chat_kind(chat.type),
                      user_id=str(user.id) if user else None,
                      title=chat.title, is_admin=is_admin,
                      via_button=via_button)

    async def edit_map(self, message: Message, reply: Reply) -> None:
        """Replace a map message's photo, caption and buttons (unchanged maps are fine)."""
        caption = split_html(reply_pieces(reply), CAPTION_LIMIT)[0]
        media = self.photos.media(reply.image_key, reply.image or b"", reply.filename, caption)
        try:
            edited = await message.edit_media(media, reply_markup=keyboard(reply.buttons))
            self.photos.remember(reply.image_key, edited)
        except BadRequest as exc:
            if "not modified" not in str(exc).lower():
                raise

    async def send_reply(self, chat_id: int | str, reply: Reply) -> Message:
        """Format a neutral reply as HTML and send it (photo + caption + rest, or text)."""
        blocks = reply_pieces(reply)
        image = (reply.image_key, reply.image, reply.filename or "map.png") \
            if reply.image is not None else None
        return await send_parts(self.app.bot, self.photos, chat_id, blocks,
                                keyboard(reply.buttons), image)
