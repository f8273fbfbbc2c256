"""A fake Telegram Bot API on 127.0.0.1: records calls, long-polls updates, scripts errors."""

from __future__ import annotations

import asyncio
import html
import itertools
import json
import re
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass, field
from typing import Any

from aiohttp import BodyPartReader, web

JSON = dict[str, Any]
BOT_ID = 7000
BOT_USERNAME = "liqradar_test_bot"
SEND_METHODS = frozenset({"sendMessage", "sendPhoto", "editMessageMedia", "editMessageCaption",
                          "editMessageText", "getChatMember", "getChatAdministrators"})


@dataclass(frozen=True, slots=True)
class Upload:
    """A file part of a multipart request."""

    filename: str
    content_type: str
    data: bytes


@dataclass(frozen=True, slots=True)
class Call:
    """One recorded Bot API request."""

    method: str
    fields: dict[str, str]
    files: dict[str, Upload]
    at: float

    @property
    def chat_id(self) -> str:
        """The `chat_id` field (empty when absent)."""
        return self.fields.get("chat_id", "")

    def json(self, name: str) -> Any:
        """A JSON-encoded field (reply_markup, media) decoded."""
        return json.loads(self.fields[name])


@dataclass(slots=True)
class Failure:
    """A scripted error answer for one method (optionally one chat), used `times` times."""

    method: str
    status: int
    description: str
    parameters: JSON | None = None
    chat_id: str | None = None
    times: int = 1


@dataclass(slots=True)
class FakeTelegram:
    """State of the fake: chats, admins, scripted failures, recorded calls and queued updates."""

    token: str = "123456:TEST-TOKEN"
    calls: list[Call] = field(default_factory=list)
    blocked: set[str] = field(default_factory=set)
    missing: set[str] = field(default_factory=set)
    migrated: dict[str, int] = field(default_factory=dict)
    admins: dict[str, set[int]] = field(default_factory=dict)
    failures: list[Failure] = field(default_factory=list)
    messages: dict[tuple[str, int], JSON] = field(default_factory=dict)
    file_ids: set[str] = field(default_factory=set)
    _updates: list[JSON] = field(default_factory=list)
    _ids: itertools.count[int] = field(default_factory=lambda: itertools.count(1))
    _changed: asyncio.Condition | None = None
    _webhook: str = ""
    _closing: bool = False

    # ------------------------------------------------------------------ test helpers

    @property
    def changed(self) -> asyncio.Condition:
        """Notified whenever a call is recorded or an update is queued."""
        if self._changed is None:
            self._changed = asyncio.Condition()
        return self._changed

    def fail(self, method: str, status: int, description: str, *,
             parameters: JSON | None = None, chat_id: str | int | None = None,
             times: int = 1) -> None:
        """Answer the next `times` calls of `method` (to `chat_id`, if given) with an error."""
        self.failures.append(Failure(method, status, description, parameters,
                                     None if chat_id is None else str(chat_id), times))

    def calls_to(self, method: str, chat_id: str | int | None = None) -> list[Call]:
        """Recorded calls of one method, optionally to one chat."""
        return [c for c in self.calls if c.method == method
                and (chat_id is None or c.chat_id == str(chat_id))]

    async def wait_for(self, method: str, count: int = 1, *, chat_id: str | int | None = None,
                       within: float = 5.0) -> list[Call]:
        """Wait until `count` calls of `method` were recorded; return them."""
        async with self.changed:
            await asyncio.wait_for(
                self.changed.wait_for(lambda: len(self.calls_to(method, chat_id)) >= count),
                within)
        return self.calls_to(method, chat_id)

    def chat(self, chat_id: int, kind: str = "private") -> JSON:
        """A Chat object."""
        chat: JSON = {"id": chat_id, "type": kind}
        if kind == "private":
            chat["first_name"] = "Ann"
        else:
            chat["title"] = f"{kind} {chat_id}"
        return chat

    def user(self, user_id: int) -> JSON:
        """A (human) User object."""
        return {"id": user_id, "is_bot": False, "first_name": f"user{user_id}"}

    async def push(self, update: JSON) -> int:
        """Queue an update for getUpdates; returns its update_id."""
        update_id = next(self._ids)
        self._updates.append({"update_id": update_id, **update})
        async with self.changed:
            self.changed.notify_all()
        return update_id

    def command_update(self, text: str, *, chat_id: int = 1001, user_id: int = 42,
                       kind: str = "private") -> JSON:
        """An update carrying a command message (a channel post for kind='channel')."""
        command = text.split()[0]
        message: JSON = {
            "message_id": next(self._ids), "date": int(time.time()),
            "chat": self.chat(chat_id, kind), "text": text,
            "entities": [{"type": "bot_command", "offset": 0, "length": len(command)}],
        }
        if kind == "channel":
            message["sender_chat"] = self.chat(chat_id, kind)
            return {"channel_post": message}
        message["from"] = self.user(user_id)
        return {"message": message}

    async def push_command(self, text: str, *, chat_id: int = 1001, user_id: int = 42,
                           kind: str = "private") -> int:
        """Queue a command as a user (or a channel) would send it."""
        return await self.push(self.command_update(text, chat_id=chat_id, user_id=user_id,
                                                   kind=kind))

    async def push_callback(self, data: str, message: JSON, *, user_id: int = 42) -> int:
        """Queue an inline-button press on a message the bot sent."""
        return await self.push({"callback_query": {
            "id": f"cq{next(self._ids)}", "from": self.user(user_id), "chat_instance": "ci",
            "data": data, "message": message}})

    async def push_migration(self, old_chat_id: int, new_chat_id: int) -> int:
        """Queue the service message a group sends when it becomes a supergroup."""
        return await self.push({"message": {
            "message_id": next(self._ids), "date": int(time.time()),
            "chat": self.chat(old_chat_id, "group"), "from": self.user(1),
            "migrate_to_chat_id": new_chat_id}})

    async def push_membership(self, chat_id: int, status: str, *, kind: str = "supergroup",
                              old_status: str = "member") -> int:
        """Queue the bot's own membership change (blocked, kicked, added back)."""
        bot = {"id": BOT_ID, "is_bot": True, "first_name": "liqradar", "username": BOT_USERNAME}

        def member(state: str) -> JSON:
            until = {"until_date": 0} if state == "kicked" else {}
            return {"status": state, "user": bot, **until}

        return await self.push({"my_chat_member": {
            "chat": self.chat(chat_id, kind), "from": self.user(1), "date": int(time.time()),
            "old_chat_member": member(old_status), "new_chat_member": member(status)}})

    # ------------------------------------------------------------------ server

    def app(self) -> web.Application:
        """The aiohttp application serving `/bot{token}/{method}`."""
        app = web.Application()
        app.router.add_post("/bot{token}/{method}", self._handle)
        return app

    async def _handle(self, request: web.Request) -> web.Response:
        if request.match_info["token"] != self.token:
            return _error(401, "Unauthorized")
        method = request.match_info["method"]
        fields, files = await _read_body(request)
        self.calls.append(Call(method, fields, files, time.perf_counter()))
        async with self.changed:
            self.changed.notify_all()
        if method == "getUpdates":
            return _ok(await self._get_updates(fields))
        scripted = self._scripted(method, fields.get("chat_id"))
        if scripted is not None:
            return scripted
        handler = getattr(self, f"_m_{method}", None)
        if handler is None:
            return _error(404, f"Not Found: method {method} is not faked")
        result: web.Response = handler(fields, files)
        return result

    def _scripted(self, method: str, chat_id: str | None) -> web.Response | None:
        for failure in self.failures:
            if failure.method == method and failure.chat_id in (None, chat_id):
                failure.times -= 1
                if failure.times <= 0:
                    self.failures.remove(failure)
                return _error(failure.status, failure.description, failure.parameters)
        if chat_id is None or method not in SEND_METHODS:
            return None
        if chat_id in self.blocked:
            return _error(403, "Forbidden: bot was blocked by the user")
        if chat_id in self.missing:
            return _error(400, "Bad Request: chat not found")
        if chat_id in self.migrated:
            return _error(400, "Bad Request: group chat was upgraded to a supergroup chat",
                          {"migrate_to_chat_id": self.migrated[chat_id]})
        return None

    async def _get_updates(self, fields: dict[str, str]) -> list[JSON]:
        offset = int(fields.get("offset") or 0)
        timeout = float(fields.get("timeout") or 0)
        self._updates = [u for u in self._updates if u["update_id"] >= offset]
        if not self._updates and timeout > 0:
            async with self.changed:
                with suppress(TimeoutError):
                    await asyncio.wait_for(self.changed.wait_for(
                        lambda: bool(self._updates) or self._closing), timeout)
        return list(self._updates)

    # ------------------------------------------------------------------ methods

    def _m_getMe(self, fields: dict[str, str], files: dict[str, Upload]) -> web.Response:
        return _ok({"id": BOT_ID, "is_bot": True, "first_name": "liqradar",
                    "username": BOT_USERNAME, "can_join_groups": True,
                    "can_read_all_group_messages": False, "supports_inline_queries": False})

    def _m_setMyCommands(self, fields: dict[str, str], files: dict[str, Upload]) -> web.Response:
        return _ok(True)

    def _m_deleteWebhook(self, fields: dict[str, str], files: dict[str, Upload]) -> web.Response:
        self._webhook = ""
        return _ok(True)

    def _m_setWebhook(self, fields: dict[str, str], files: dict[str, Upload]) -> web.Response:
        self._webhook = fields.get("url", "")
        return _ok(True)

    def _m_answerCallbackQuery(self, fields: dict[str, str],
                               files: dict[str, Upload]) -> web.Response:
        return _ok(True)

    def _m_sendMessage(self, fields: dict[str, str], files: dict[str, Upload]) -> web.Response:
        return _ok(self._store(fields, {"text": fields.get("text", "")}))

    def _m_sendPhoto(self, fields: dict[str, str], files: dict[str, Upload]) -> web.Response:
        photo = self._photo(fields.get("photo"), files.get("photo"))
        if photo is None:
            return _error(400, "Bad Request: wrong file identifier/HTTP URL specified")
        extra: JSON = {"photo": photo}
        if "caption" in fields:
            extra["caption"] = fields["caption"]
        return _ok(self._store(fields, extra))

    def _m_editMessageMedia(self, fields: dict[str, str],
                            files: dict[str, Upload]) -> web.Response:
        media = json.loads(fields["media"])
        ref = str(media.get("media", ""))
        upload = files.get(ref.removeprefix("attach://")) if ref.startswith("attach://") else None
        photo = self._photo(None if upload else ref, upload)
        if photo is None:
            return _error(400, "Bad Request: wrong file identifier/HTTP URL specified")
        return self._edit(fields, {"photo": photo, "caption": media.get("caption", "")})

    def _m_editMessageCaption(self, fields: dict[str, str],
                              files: dict[str, Upload]) -> web.Response:
        return self._edit(fields, {"caption": fields.get("caption", "")})

    def _m_editMessageText(self, fields: dict[str, str],
                           files: dict[str, Upload]) -> web.Response:
        return self._edit(fields, {"text": fields.get("text", "")})

    def _m_getChatMember(self, fields: dict[str, str], files: dict[str, Upload]) -> web.Response:
        user_id = int(fields["user_id"])
        is_admin = user_id in self.admins.get(fields["chat_id"], set())
        status = "administrator" if is_admin else "member"
        member: JSON = {"status": status, "user": self.user(user_id)}
        if is_admin:
            member.update(_ADMIN_RIGHTS)
        return _ok(member)

    def _m_getChatAdministrators(self, fields: dict[str, str],
                                 files: dict[str, Upload]) -> web.Response:
        admins = sorted(self.admins.get(fields["chat_id"], set()))
        return _ok([{"status": "administrator", "user": self.user(a), **_ADMIN_RIGHTS}
                    for a in admins])

    # ------------------------------------------------------------------ helpers

    def _photo(self, file_id: str | None, upload: Upload | None) -> list[JSON] | None:
        if upload is not None:
            file_id = f"photo-{next(self._ids)}"
            self.file_ids.add(file_id)
        elif file_id not in self.file_ids:
            return None
        return [{"file_id": file_id, "file_unique_id": f"u{file_id}", "width": 1200,
                 "height": 700}]

    def _store(self, fields: dict[str, str], extra: JSON) -> JSON:
        chat_id = int(fields["chat_id"])
        kind = "private" if chat_id > 0 else "supergroup"
        message: JSON = {"message_id": next(self._ids), "date": int(time.time()),
                         "chat": self.chat(chat_id, kind), **extra}
        if "reply_markup" in fields:
            message["reply_markup"] = json.loads(fields["reply_markup"])
        self.messages[(str(chat_id), message["message_id"])] = message
        return message

    def _edit(self, fields: dict[str, str], changes: JSON) -> web.Response:
        key = (fields.get("chat_id", ""), int(fields.get("message_id") or 0))
        message = self.messages.get(key)
        if message is None:
            return _error(400, "Bad Request: message to edit not found")
        message.update(changes)
        if "reply_markup" in fields:
            message["reply_markup"] = json.loads(fields["reply_markup"])
        return _ok(message)


_ADMIN_RIGHTS: JSON = {
    "can_be_edited": False, "is_anonymous": False, "can_manage_chat": True,
    "can_delete_messages": True, "can_manage_video_chats": True, "can_restrict_members": True,
    "can_promote_members": False, "can_change_info": True, "can_invite_users": True,
    "can_post_stories": False, "can_edit_stories": False, "can_delete_stories": False,
}


def visible(text: str) -> str:
    """What a Telegram user sees of an HTML message or caption."""
    return html.unescape(re.sub(r"</?(b|i|pre|code)>", "", text))


def _ok(result: Any) -> web.Response:
    return web.json_response({"ok": True, "result": result})


def _error(status: int, description: str, parameters: JSON | None = None) -> web.Response:
    body: JSON = {"ok": False, "error_code": status, "description": description}
    if parameters:
        body["parameters"] = parameters
    return web.json_response(body, status=status)


async def _read_body(request: web.Request) -> tuple[dict[str, str], dict[str, Upload]]:
    """Form fields and file parts of a form-encoded, multipart or JSON body."""
    fields: dict[str, str] = {}
    files: dict[str, Upload] = {}
    ctype = request.content_type
    if ctype.startswith("multipart/"):
        reader = await request.multipart()
        async for part in reader:
            if not isinstance(part, BodyPartReader):
                continue
            data = bytes(await part.read())
            if part.filename:
                files[part.name or ""] = Upload(part.filename,
                                                part.headers.get("Content-Type", ""), data)
            else:
                fields[part.name or ""] = data.decode()
    elif ctype == "application/json":
        raw = await request.json()
        fields = {k: v if isinstance(v, str) else json.dumps(v) for k, v in raw.items()}
    else:
        form = await request.post()
        fields = {k: str(v) for k, v in form.items()}
    return fields, files


@asynccontextmanager
async def serve(fake: FakeTelegram) -> AsyncIterator[str]:
    """Serve the fake on an ephemeral loopback port; yields `http://127.0.0.1:<port>`."""
    runner = web.AppRunner(fake.app())
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    host, port = runner.addresses[0][:2]
    try:
        yield f"http://{host}:{port}"
    finally:
        fake._closing = True  # end pending long polls so the server shuts down at once
        async with fake.changed:
            fake.changed.notify_all()
        await runner.cleanup()
