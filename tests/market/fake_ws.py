"""A fake liquidation websocket on 127.0.0.1: scripted connections, then a quiet one."""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass, field

from aiohttp import WSMsgType, web


@dataclass
class FakeStream:
    """Connection n sends `scripts[n]` and then drops; later connections stay open and quiet.

    With `wait_for_subscribe`, nothing is sent before the client's first message. The server
    answers "ping" with "pong" and {"op": "ping"} with Bybit's pong.
    """

    scripts: list[list[str]] = field(default_factory=list)
    wait_for_subscribe: bool = False
    received: list[str] = field(default_factory=list)
    connections: int = 0

    def app(self) -> web.Application:
        """An application serving the stream at `/ws`."""
        app = web.Application()
        app.router.add_get("/ws", self._serve)
        return app

    def received_json(self) -> list[object]:
        """Client messages that were JSON."""
        out = []
        for text in self.received:
            try:
                out.append(json.loads(text))
            except ValueError:
                continue
        return out

    async def _serve(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        number = self.connections
        self.connections += 1
        subscribed = asyncio.Event()
        reader = asyncio.create_task(self._read(ws, subscribed))
        try:
            if number < len(self.scripts):
                if self.wait_for_subscribe:
                    await asyncio.wait_for(subscribed.wait(), timeout=5)
                for text in self.scripts[number]:
                    await ws.send_str(text)
                await ws.close()
            else:
                await reader
        finally:
            reader.cancel()
        return ws

    async def _read(self, ws: web.WebSocketResponse, subscribed: asyncio.Event) -> None:
        async for message in ws:
            if message.type is not WSMsgType.TEXT:
                continue
            self.received.append(message.data)
            subscribed.set()
            if message.data == "ping":
                await ws.send_str("pong")
            elif message.data == '{"op": "ping"}':
                await ws.send_str(json.dumps({"success": True, "ret_msg": "pong", "op": "ping"}))
