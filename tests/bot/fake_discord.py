"""A fake Discord on 127.0.0.1: the REST routes liqradar uses and a gateway for slash commands.

Point discord.py at it with `discord.http.Route.BASE = fake.api_url` and
`DiscordWebSocket.DEFAULT_GATEWAY = yarl.URL(fake.gateway_url)` (the service does this from
LIQRADAR_DISCORD_API_URL / LIQRADAR_DISCORD_GATEWAY_URL).

Traps it respects (shared/docs/stack.md §3): JSON answers carry exactly `application/json`,
429s carry a `Via` header and `retry_after`, interactions carry `attachment_size_limit`.
Injected faults act before a request is recorded, as if it never arrived, so a retry that
succeeds is not a duplicate.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import re
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

APP_ID = 900000000000000001
BOT_ID = 900000000000000002
GUILD_ID = 900000000000000003
CHANNEL_ID = 900000000000000004
USER_ID = 900000000000000005
MANAGE_CHANNELS = 1 << 4
ADMIN_PERMS = (1 << 53) - 1
TIMESTAMP = "2026-03-05T00:00:00.000000+00:00"
# Discord checks an enforced nonce against "the past few minutes"; the fake keeps two.
NONCE_WINDOW_S = 120.0


@dataclass(slots=True)
class SentMessage:
    """One message the bot created, in a channel or as an interaction follow-up."""

    channel_id: int | None
    token: str | None
    content: str
    embeds: list[dict[str, Any]]
    files: list[tuple[str, bytes]]
    nonce: str | None
    components: list[dict[str, Any]] = field(default_factory=list)


@dataclass(slots=True)
class Fault:
    """A scripted failure for requests whose `METHOD path` matches `pattern`."""

    pattern: str
    status: int = 500
    times: int = 1
    delay: float = 0.0
    retry_after: float = 0.05
    drop: bool = False  # close the connection without an answer


@dataclass
class FakeDiscord:
    """State of the fake: what was sent, which channels refuse, scripted faults."""

    guilds: list[int] = field(default_factory=lambda: [GUILD_ID])
    channels: list[int] = field(default_factory=lambda: [CHANNEL_ID])
    missing_access: set[int] = field(default_factory=set)
    deleted: set[int] = field(default_factory=set)
    faults: list[Fault] = field(default_factory=list)
    messages: list[SentMessage] = field(default_factory=list)
    calls: list[str] = field(default_factory=list)
    commands: list[dict[str, Any]] = field(default_factory=list)
    chaos: Callable[[str], Fault | None] | None = None  # per-request fault, e.g. random (soak)
    port: int = 0
    identifies: int = 0
    resumes: int = 0
    nonce_replays: int = 0  # sends answered with the message their nonce already created
    _ids: itertools.count[int] = field(default_factory=lambda: itertools.count(10**17))
    _by_nonce: dict[tuple[int, str], tuple[float, dict[str, Any]]] = field(default_factory=dict)
    _ws: web.WebSocketResponse | None = None
    _seq: int = 0
    _sent: asyncio.Condition | None = None
    _ready: asyncio.Event | None = None
    _runner: web.AppRunner | None = None

    # ------------------------------------------------------------------ lifecycle

    @property
    def api_url(self) -> str:
        """Base REST URL (Route.BASE)."""
        return f"http://127.0.0.1:{self.port}/api/v10"

    @property
    def gateway_url(self) -> str:
        """Gateway URL (DiscordWebSocket.DEFAULT_GATEWAY)."""
        return f"ws://127.0.0.1:{self.port}/gateway"

    async def start(self, port: int = 0) -> FakeDiscord:
        """Serve on 127.0.0.1 (an ephemeral port unless given)."""
        self._sent = asyncio.Condition()
        self._ready = asyncio.Event()
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_route("GET", "/gateway", self._gateway)
        app.router.add_route("*", "/api/v10/{tail:.*}", self._rest)
        self._runner = web.AppRunner(app, handle_signals=False)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", port)
        await site.start()
        self.port = self._runner.addresses[0][1]
        return self

    async def stop(self) -> None:
        """Close the gateway socket and the server."""
        if self._ws is not None and not self._ws.closed:
            await self._ws.close()
        if self._runner is not None:
            await self._runner.cleanup()

    # ------------------------------------------------------------------ test helpers

    def duplicates(self) -> int:
        """Messages whose nonce (or channel + content + embed) was seen before."""
        seen = Counter(self._identity(m) for m in self.messages)
        return sum(n - 1 for n in seen.values())

    @staticmethod
    def _identity(m: SentMessage) -> str:
        if m.nonce:
            return f"nonce:{m.nonce}"
        return f"{m.channel_id}|{m.token}|{m.content}|{json.dumps(m.embeds, sort_keys=True)}"

    async def wait_messages(self, count: int, within: float = 10.0) -> list[SentMessage]:
        """Wait until at least `count` messages were sent."""
        assert self._sent is not None
        async with self._sent:
            await asyncio.wait_for(self._sent.wait_for(lambda: len(self.messages) >= count),
                                   within)
        return list(self.messages)

    async def wait_ready(self, within: float = 10.0) -> None:
        """Wait until a client identified (or resumed) on the gateway."""
        assert self._ready is not None
        await asyncio.wait_for(self._ready.wait(), within)

    async def slash(self, name: str, *, channel_id: int = CHANNEL_ID,
                    permissions: int = ADMIN_PERMS, **options: str | int) -> str:
        """Send an INTERACTION_CREATE for `/name options...`; returns the interaction token."""
        assert self._ws is not None, "no client is connected to the gateway"
        token = f"itok-{next(self._ids)}"
        opts = [{"name": k, "type": 4 if isinstance(v, int) else 3, "value": v}
                for k, v in options.items()]
        user = {"id": str(USER_ID), "username": "alice", "discriminator": "0",
                "global_name": "Alice", "avatar": None}
        payload = {
            "id": str(next(self._ids)), "application_id": str(APP_ID), "type": 2,
            "data": {"id": str(next(self._ids)), "name": name, "type": 1, "options": opts},
            "guild_id": str(GUILD_ID), "channel_id": str(channel_id),
            "channel": {"id": str(channel_id), "type": 0, "guild_id": str(GUILD_ID),
                        "name": f"chan-{channel_id}", "position": 0,
                        "permission_overwrites": []},
            "member": {"user": user, "roles": [], "joined_at": TIMESTAMP, "deaf": False,
                       "mute": False, "flags": 0, "permissions": str(permissions)},
            "token": token, "version": 1, "app_permissions": str(ADMIN_PERMS),
            "entitlements": [], "attachment_size_limit": 26_214_400, "locale": "en-US",
            "guild_locale": "en-US", "context": 0,
        }
        await self._dispatch("INTERACTION_CREATE", payload)
        return token

    async def click(self, custom_id: str, *, channel_id: int = CHANNEL_ID,
                    permissions: int = ADMIN_PERMS) -> str:
        """Send a button click (component interaction) on a bot message; returns its token."""
        assert self._ws is not None, "no client is connected to the gateway"
        token = f"itok-{next(self._ids)}"
        message = await self._record_free(channel_id)
        user = {"id": str(USER_ID), "username": "alice", "discriminator": "0", "avatar": None}
        await self._dispatch("INTERACTION_CREATE", {
            "id": str(next(self._ids)), "application_id": str(APP_ID), "type": 3,
            "data": {"custom_id": custom_id, "component_type": 2},
            "guild_id": str(GUILD_ID), "channel_id": str(channel_id),
            "channel": {"id": str(channel_id), "type": 0, "guild_id": str(GUILD_ID),
                        "name": f"chan-{channel_id}", "position": 0,
                        "permission_overwrites": []},
            "member": {"user": user, "roles": [], "joined_at": TIMESTAMP, "deaf": False,
                       "mute": False, "flags": 0, "permissions": str(permissions)},
            "message": message, "token": token, "version": 1,
            "app_permissions": str(ADMIN_PERMS), "entitlements": [],
            "attachment_size_limit": 26_214_400, "locale": "en-US", "context": 0,
        })
        return token

    async def _record_free(self, channel_id: int) -> dict[str, Any]:
        """A message payload of the bot (not recorded as sent)."""
        return {"id": str(next(self._ids)), "channel_id": str(channel_id),
                "author": self._bot_user(), "content": "", "timestamp": TIMESTAMP,
                "edited_timestamp": None, "tts": False, "mention_everyone": False,
                "mentions": [], "mention_roles": [], "embeds": [], "pinned": False, "type": 0,
                "attachments": [], "flags": 0, "components": []}

    async def replies(self, token: str, count: int = 1, within: float = 10.0) -> list[SentMessage]:
        """Wait for `count` follow-up messages of one interaction."""
        assert self._sent is not None

        def mine() -> list[SentMessage]:
            return [m for m in self.messages if m.token == token]

        async with self._sent:
            await asyncio.wait_for(self._sent.wait_for(lambda: len(mine()) >= count), within)
        return mine()

    async def disconnect(self, code: int = 4000) -> None:
        """Close the gateway socket with a resumable code (the client reconnects)."""
        if self._ws is not None and not self._ws.closed:
            assert self._ready is not None
            self._ready.clear()
            await self._ws.close(code=code)

    # ------------------------------------------------------------------ gateway

    async def _gateway(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse(max_msg_size=0)
        await ws.prepare(request)
        self._ws = ws
        await ws.send_json({"op": 10, "d": {"heartbeat_interval": 41_250}, "s": None, "t": None})
        async for msg in ws:
            with contextlib.suppress(ValueError, KeyError, ConnectionError):
                data = json.loads(msg.data)
                await self._on_gateway(ws, data)
        return ws

    async def _on_gateway(self, ws: web.WebSocketResponse, data: dict[str, Any]) -> None:
        op = data["op"]
        if op == 1:
            await ws.send_json({"op": 11, "d": None, "s": None, "t": None})
        elif op == 2:
            self.identifies += 1
            self._seq = 0
            await self._dispatch("READY", {
                "v": 10, "user": self._bot_user(), "session_id": "fake-session",
                "resume_gateway_url": self.gateway_url, "shard": [0, 1],
                "guilds": [{"id": str(g), "unavailable": True} for g in self.guilds],
                "application": {"id": str(APP_ID), "flags": 0},
            })
            for guild in self.guilds:
                await self._dispatch("GUILD_CREATE", self._guild(guild))
            assert self._ready is not None
            self._ready.set()
        elif op == 6:
            self.resumes += 1
            await self._dispatch("RESUMED", {})
            assert self._ready is not None
            self._ready.set()

    async def _dispatch(self, event: str, payload: dict[str, Any]) -> None:
        assert self._ws is not None
        self._seq += 1
        await self._ws.send_json({"op": 0, "t": event, "s": self._seq, "d": payload})

    def _guild(self, guild: int) -> dict[str, Any]:
        return {
            "id": str(guild), "name": "Test guild", "owner_id": str(USER_ID), "icon": None,
            "unavailable": False, "large": False, "member_count": 2, "joined_at": TIMESTAMP,
            "channels": [{"id": str(c), "type": 0, "name": f"chan-{c}", "position": i,
                          "guild_id": str(guild), "permission_overwrites": []}
                         for i, c in enumerate(self.channels)],
            "roles": [{"id": str(guild), "name": "@everyone", "permissions": str(ADMIN_PERMS),
                       "position": 0, "color": 0, "hoist": False, "managed": False,
                       "mentionable": False, "flags": 0}],
            "members": [], "emojis": [], "stickers": [], "features": [], "threads": [],
            "stage_instances": [], "guild_scheduled_events": [], "voice_states": [],
            "presences": [], "verification_level": 0, "default_message_notifications": 0,
            "explicit_content_filter": 0, "mfa_level": 0, "premium_tier": 0,
            "preferred_locale": "en-US", "nsfw_level": 0, "system_channel_flags": 0,
        }

    @staticmethod
    def _bot_user() -> dict[str, Any]:
        return {"id": str(BOT_ID), "username": "liqradar", "discriminator": "0", "bot": True,
                "avatar": None, "global_name": None, "flags": 0}

    # ------------------------------------------------------------------ REST

    async def _rest(self, request: web.Request) -> web.StreamResponse:
        path = "/" + request.match_info["tail"]
        line = f"{request.method} {path}"
        self.calls.append(line)
        fault = self._fault(line) or (self.chaos(line) if self.chaos is not None else None)
        if fault is not None:
            return await self._fail(request, fault)
        for pattern, handler in self._routes():
            match = re.fullmatch(pattern, line)
            if match:
                return await handler(request, *match.groups())
        return self._json({"message": "404: Not Found", "code": 0}, 404)

    def _routes(self) -> list[tuple[str, Any]]:
        return [
            (r"GET /users/@me", self._me),
            (r"GET /oauth2/applications/@me", self._app_info),
            (r"GET /gateway(?:/bot)?", self._gateway_info),
            (r"PUT /applications/\d+(?:/guilds/\d+)?/commands", self._sync),
            (r"POST /interactions/(\d+)/([^/]+)/callback", self._callback),
            (r"POST /webhooks/\d+/([^/]+)", self._followup),
            (r"PATCH /webhooks/\d+/([^/]+)/messages/@original", self._followup),
            (r"POST /channels/(\d+)/messages", self._channel_message),
        ]

    def _fault(self, line: str) -> Fault | None:
        for fault in self.faults:
            if fault.times > 0 and re.search(fault.pattern, line):
                fault.times -= 1
                return fault
        return None

    async def _fail(self, request: web.Request, fault: Fault) -> web.StreamResponse:
        if fault.delay:
            await asyncio.sleep(fault.delay)
        if fault.drop:
            if request.transport is not None:
                request.transport.close()
            return web.Response(status=500)  # never reaches the client: the socket is closed
        if fault.status == 429:
            return self._json({"message": "You are being rate limited.",
                               "retry_after": fault.retry_after, "global": False}, 429,
                              {"Via": "1.1 google", "Retry-After": str(fault.retry_after)})
        return self._json({"message": "injected failure", "code": 0}, fault.status)

    @staticmethod
    def _json(payload: Any, status: int = 200,
              headers: dict[str, str] | None = None) -> web.Response:
        # discord.py decodes JSON only when Content-Type is exactly application/json.
        return web.Response(body=json.dumps(payload).encode(), status=status,
                            headers={"Content-Type": "application/json", **(headers or {})})

    async def _me(self, request: web.Request) -> web.Response:
        return self._json(self._bot_user())

    async def _app_info(self, request: web.Request) -> web.Response:
        return self._json({
            "id": str(APP_ID), "name": "liqradar", "description": "", "icon": None,
            "bot_public": True, "bot_require_code_grant": False, "verify_key": "00",
            "flags": 0, "owner": {"id": str(USER_ID), "username": "alice",
                                  "discriminator": "0", "avatar": None},
        })

    async def _gateway_info(self, request: web.Request) -> web.Response:
        return self._json({"url": self.gateway_url, "shards": 1,
                           "session_start_limit": {"total": 1000, "remaining": 1000,
                                                   "reset_after": 0, "max_concurrency": 1}})

    async def _sync(self, request: web.Request) -> web.Response:
        commands = await request.json()
        self.commands = [{**c, "id": str(next(self._ids)), "application_id": str(APP_ID),
                          "version": "1"} for c in commands]
        return self._json(self.commands)

    async def _callback(self, request: web.Request, interaction_id: str,
                        token: str) -> web.Response:
        body = await self._body(request)
        kind = int(body["payload"].get("type", 5))
        data = body["payload"].get("data") or {}
        if kind == 4:  # an immediate message reply
            await self._record(None, token, data, body["files"])
        return self._json({"interaction": {"id": interaction_id, "type": 2,
                                           "response_message_loading": kind == 5},
                           "resource": {"type": kind}})

    async def _followup(self, request: web.Request, token: str) -> web.Response:
        body = await self._body(request)
        return self._json(await self._record(None, token, body["payload"], body["files"]))

    async def _channel_message(self, request: web.Request, channel: str) -> web.Response:
        channel_id = int(channel)
        if channel_id in self.deleted:
            return self._json({"message": "Unknown Channel", "code": 10003}, 404)
        if channel_id in self.missing_access:
            return self._json({"message": "Missing Permissions", "code": 50013}, 403)
        body = await self._body(request)
        return self._json(await self._record(channel_id, None, body["payload"], body["files"]))

    async def _record(self, channel_id: int | None, token: str | None, payload: dict[str, Any],
                      files: list[tuple[str, bytes]]) -> dict[str, Any]:
        nonce = payload.get("nonce")
        # As Discord does: with enforce_nonce, a repeat of a nonce already created in the
        # channel returns that message and creates none (a resend after a crash or timeout).
        replay_key = (channel_id, str(nonce)) if nonce is not None and channel_id is not None \
            and payload.get("enforce_nonce") else None
        now = time.monotonic()
        if replay_key is not None and replay_key in self._by_nonce:
            created, earlier = self._by_nonce[replay_key]
            if now - created <= NONCE_WINDOW_S:
                self.nonce_replays += 1
                return earlier
        message = SentMessage(channel_id, token, payload.get("content") or "",
                              list(payload.get("embeds") or []), files,
                              None if nonce is None else str(nonce),
                              list(payload.get("components") or []))
        assert self._sent is not None
        async with self._sent:
            self.messages.append(message)
            self._sent.notify_all()
        response = {
            "id": str(next(self._ids)), "channel_id": str(channel_id or CHANNEL_ID),
            "author": self._bot_user(), "content": message.content, "timestamp": TIMESTAMP,
            "edited_timestamp": None, "tts": False, "mention_everyone": False, "mentions": [],
            "mention_roles": [], "embeds": message.embeds, "pinned": False, "type": 0,
            "attachments": [{"id": str(next(self._ids)), "filename": name, "size": len(data),
                             "url": f"http://127.0.0.1:{self.port}/a/{name}",
                             "proxy_url": f"http://127.0.0.1:{self.port}/a/{name}"}
                            for name, data in files],
            "flags": 0, "components": [],
        }
        if replay_key is not None:
            self._by_nonce[replay_key] = (now, response)
        return response

    @staticmethod
    async def _body(request: web.Request) -> dict[str, Any]:
        """`payload` (JSON) and `files` [(filename, bytes)] of a JSON or multipart request."""
        if request.content_type.startswith("multipart/"):
            payload: dict[str, Any] = {}
            files: list[tuple[str, bytes]] = []
            reader = await request.multipart()
            while (part := await reader.next()) is not None:
                data = await part.read()  # type: ignore[union-attr]
                if part.name == "payload_json":
                    payload = json.loads(data)
                elif part.filename:
                    files.append((part.filename, bytes(data)))
            return {"payload": payload, "files": files}
        raw = await request.read()
        return {"payload": json.loads(raw) if raw else {}, "files": []}
