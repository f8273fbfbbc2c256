"""Realized-liquidation websockets (Binance, Bybit, OKX) as one stream of LiquidationEvent.

Each connection subscribes, keeps itself alive, and reconnects with capped, jittered backoff
until `stop` is set. Malformed messages are logged and skipped.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import random
from collections.abc import AsyncIterator, Callable, Collection, Mapping
from dataclasses import dataclass, field
from typing import Protocol

import aiohttp

from engine.types import LiquidationEvent, Venue
from market import binance, bybit, okx
from market.errors import MarketDataError
from market.http import HttpPolicy, JsonValue
from market.symbols import Symbol, resolve

logger = logging.getLogger(__name__)

Parser = Callable[[JsonValue], list[LiquidationEvent]]
AckCheck = Callable[[JsonValue], str | None]


@dataclass(frozen=True, slots=True)
class StreamSpec:
    """How to talk to one venue's liquidation websocket."""

    venue: Venue
    url: str
    parse: Parser
    symbols: frozenset[str] | None = None  # canonical bases to keep; None keeps all
    subscribe: tuple[JsonValue, ...] = ()
    ping: str | None = None  # application-level keepalive text
    ping_interval_s: float = 20.0
    ack_error: AckCheck | None = None


@dataclass(frozen=True, slots=True)
class Reconnect:
    """Backoff between connection attempts, and the websocket heartbeat."""

    initial_s: float = 1.0
    max_s: float = 60.0
    jitter: float = 0.3
    heartbeat_s: float = 30.0
    connect_timeout_s: float = 10.0
    rng: random.Random = field(default_factory=random.Random, compare=False, repr=False)

    def delay(self, failures: int) -> float:
        """Seconds before attempt number `failures` + 1 (failures >= 1)."""
        base = min(self.initial_s * 2.0 ** (failures - 1), self.max_s)
        return base * (1.0 - self.jitter * self.rng.random())


class StreamSettings(Protocol):
    """The part of `bot.settings.Settings` the streams need."""

    @property
    def venues(self) -> list[str]: ...
    @property
    def binance_ws_url(self) -> str: ...
    @property
    def bybit_ws_url(self) -> str: ...
    @property
    def okx_ws_url(self) -> str: ...
    @property
    def okx_api_url(self) -> str: ...


def binance_stream(url: str, symbols: Collection[str | Symbol] | None = None) -> StreamSpec:
    """`!forceOrder@arr` (all markets; the URL carries the stream name), kept to `symbols`."""
    return StreamSpec(Venue.BINANCE, url, binance.parse_force_order, _bases(symbols))


def bybit_stream(url: str, symbols: Collection[str | Symbol]) -> StreamSpec:
    """`allLiquidation.{symbol}` topics, with Bybit's `{"op":"ping"}` keepalive."""
    resolved = sorted({resolve(s) for s in symbols}, key=str)
    return StreamSpec(Venue.BYBIT, url, bybit.parse_liquidations, _bases(resolved),
                      subscribe=(bybit.subscribe_message(resolved),),
                      ping=json.dumps({"op": "ping"}), ack_error=bybit.ack_error)


def okx_stream(url: str, contract_values: Mapping[str, float]) -> StreamSpec:
    """`liquidation-orders` for SWAP, kept to the instIds in `contract_values` (their ctVal)."""
    values = dict(contract_values)

    def parse(message: JsonValue) -> list[LiquidationEvent]:
        return okx.parse_liquidations(message, values)

    return StreamSpec(Venue.OKX, url, parse, _bases(values.keys()),
                      subscribe=(okx.subscribe_message(),), ping="ping", ack_error=okx.ack_error)


async def build_stream_specs(session: aiohttp.ClientSession, settings: StreamSettings,
                             symbols: Collection[str | Symbol], *,
                             policy: HttpPolicy | None = None) -> list[StreamSpec]:
    """Specs for the configured venues; asks OKX for contract values first."""
    resolved = sorted({resolve(s) for s in symbols}, key=str)
    specs = []
    for name in settings.venues:
        venue = Venue(name.strip().lower())
        if venue is Venue.BINANCE:
            specs.append(binance_stream(settings.binance_ws_url, resolved))
        elif venue is Venue.BYBIT:
            specs.append(bybit_stream(settings.bybit_ws_url, resolved))
        else:
            values = await okx.fetch_contract_values(session, settings.okx_api_url, resolved,
                                                     policy=policy or HttpPolicy())
            specs.append(okx_stream(settings.okx_ws_url, values))
    return specs


async def stream_liquidations(session: aiohttp.ClientSession, spec: StreamSpec,
                              stop: asyncio.Event, *, reconnect: Reconnect | None = None,
                              ) -> AsyncIterator[LiquidationEvent]:
    """Events from one venue until `stop` is set, reconnecting after drops and failures."""
    policy = reconnect or Reconnect()
    failures = 0
    while not stop.is_set():
        try:
            async with asyncio.timeout(policy.connect_timeout_s):
                ws = await session.ws_connect(spec.url, heartbeat=policy.heartbeat_s)
            async with ws:
                for request in spec.subscribe:
                    await ws.send_json(request)
                logger.info("%s liquidation stream connected", spec.venue)
                async for event in _receive(ws, spec, stop):
                    failures = 0
                    if event is not None:
                        yield event
            problem = "connection closed"
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            problem = f"{type(exc).__name__}: {exc}"
        if stop.is_set():
            break
        failures += 1
        delay = policy.delay(failures)
        logger.warning("%s liquidation stream: %s; reconnecting in %.2f s", spec.venue,
                       problem, delay)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), timeout=delay)
    logger.info("%s liquidation stream stopped", spec.venue)


async def merge_streams(session: aiohttp.ClientSession, specs: Collection[StreamSpec],
                        stop: asyncio.Event, *, reconnect: Reconnect | None = None,
                        ) -> AsyncIterator[LiquidationEvent]:
    """Events from several venues in arrival order, until `stop` is set."""
    queue: asyncio.Queue[LiquidationEvent | None] = asyncio.Queue()

    async def pump(spec: StreamSpec) -> None:
        try:
            async for event in stream_liquidations(session, spec, stop, reconnect=reconnect):
                await queue.put(event)
        except Exception:
            logger.exception("%s liquidation stream failed", spec.venue)
        finally:
            await queue.put(None)

    tasks = [asyncio.create_task(pump(spec)) for spec in specs]
    running = len(tasks)
    try:
        while running:
            event = await queue.get()
            if event is None:
                running -= 1
            else:
                yield event
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


async def _receive(ws: aiohttp.ClientWebSocketResponse, spec: StreamSpec,
                   stop: asyncio.Event) -> AsyncIterator[LiquidationEvent | None]:
    """Events of one connection (None marks a message without events) until it closes or
    `stop` is set."""
    stopper = asyncio.create_task(stop.wait())
    pinger = (asyncio.create_task(_keepalive(ws, spec.ping, spec.ping_interval_s))
              if spec.ping else None)
    try:
        while True:
            receiver = asyncio.create_task(ws.receive())
            await asyncio.wait({receiver, stopper}, return_when=asyncio.FIRST_COMPLETED)
            if not receiver.done():
                receiver.cancel()
                return
            message = receiver.result()
            if message.type is not aiohttp.WSMsgType.TEXT:
                if message.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSING,
                                    aiohttp.WSMsgType.CLOSED, aiohttp.WSMsgType.ERROR):
                    return
                continue
            events = _events(spec, message.data)
            yield None
            for event in events:
                yield event
    finally:
        stopper.cancel()
        if pinger is not None:
            pinger.cancel()


def _events(spec: StreamSpec, text: str) -> list[LiquidationEvent]:
    """Events of one text message; malformed ones are logged and yield nothing."""
    if text == "pong":
        return []
    try:
        message: JsonValue = json.loads(text)
    except ValueError:
        logger.warning("%s: skipped a message that is not JSON: %.120s", spec.venue, text)
        return []
    if spec.ack_error is not None and (problem := spec.ack_error(message)) is not None:
        logger.warning("%s: venue reported %s", spec.venue, problem)
        return []
    try:
        events = spec.parse(message)
    except (MarketDataError, ValueError, TypeError, KeyError) as exc:
        logger.warning("%s: skipped a malformed message (%s): %.120s", spec.venue, exc, text)
        return []
    if spec.symbols is None:
        return events
    return [e for e in events if e.symbol in spec.symbols]


async def _keepalive(ws: aiohttp.ClientWebSocketResponse, text: str, interval_s: float) -> None:
    """Send the venue's ping text every `interval_s` while the socket is open."""
    while not ws.closed:
        await asyncio.sleep(interval_s)
        with contextlib.suppress(ConnectionError, RuntimeError):
            await ws.send_str(text)


def _bases(symbols: Collection[str | Symbol] | None) -> frozenset[str] | None:
    """Canonical bases of `symbols`, or None for all."""
    if symbols is None:
        return None
    return frozenset(resolve(s).base for s in symbols)
