"""Liquidation websockets against fake servers: parsing, filtering, keepalive, reconnects."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
import random
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web

from engine.types import LiquidationEvent, Side, Venue
from market.streams import (
    Reconnect,
    StreamSpec,
    binance_stream,
    build_stream_specs,
    bybit_stream,
    merge_streams,
    okx_stream,
    stream_liquidations,
)
from tests.market.fake_ws import FakeStream

FIXTURES = Path(__file__).parent / "fixtures"
FAST = Reconnect(initial_s=0.01, max_s=0.05, heartbeat_s=5, connect_timeout_s=1,
                 rng=random.Random(5))
Serve = Callable[[FakeStream], Awaitable[str]]


def messages(name: str) -> list[str]:
    """The recorded messages of a fixture, as texts."""
    return [json.dumps(m) for m in json.loads((FIXTURES / name).read_text())]


@pytest.fixture
async def serve() -> AsyncIterator[Serve]:
    """Start fake streams on ephemeral loopback ports; returns their ws:// URLs."""
    runners: list[web.AppRunner] = []

    async def start(stream: FakeStream) -> str:
        runner = web.AppRunner(stream.app())
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", 0).start()
        runners.append(runner)
        host, port = runner.addresses[0][:2]
        return f"ws://{host}:{port}/ws"

    yield start
    for runner in runners:
        await runner.cleanup()


async def collect(session: aiohttp.ClientSession, spec: StreamSpec,
                  count: int) -> list[LiquidationEvent]:
    """The first `count` events, then stop the stream and check it ends."""
    stop = asyncio.Event()
    events: list[LiquidationEvent] = []
    stream = stream_liquidations(session, spec, stop, reconnect=FAST)

    async def run() -> None:
        async for event in stream:
            events.append(event)
            if len(events) == count:
                stop.set()

    await asyncio.wait_for(run(), 5)
    return events


async def test_binance_reconnects_after_a_drop(serve: Serve,
                                               session: aiohttp.ClientSession) -> None:
    recorded = messages("binance_force_orders.json")
    stream = FakeStream(scripts=[recorded[:2], recorded[2:3]])
    url = await serve(stream)
    events = await collect(session, binance_stream(url, ["BTC"]), 3)
    assert [e.side for e in events] == [Side.SHORT, Side.SHORT, Side.LONG]
    assert all(e.venue is Venue.BINANCE and e.symbol == "BTC" for e in events)
    assert stream.connections == 2


async def test_binance_keeps_only_requested_symbols(serve: Serve,
                                                    session: aiohttp.ClientSession) -> None:
    recorded = messages("binance_force_orders.json")  # BTC, BTC, BTC, SOL, BTCUSDC, BTC
    url = await serve(FakeStream(scripts=[recorded, recorded]))
    sol = await collect(session, binance_stream(url, ["sol"]), 1)
    assert [e.symbol for e in sol] == ["SOL"]
    every = await collect(session, binance_stream(url), 5)
    assert [e.symbol for e in every] == ["BTC", "BTC", "BTC", "SOL", "BTC"]


async def test_malformed_messages_are_logged_and_skipped(
        serve: Serve, session: aiohttp.ClientSession, caplog: pytest.LogCaptureFixture) -> None:
    recorded = messages("binance_force_orders.json")
    junk = ["{not json", json.dumps({"e": "forceOrder", "o": "oops"}), "[]",
            json.dumps({"e": "forceOrder", "o": {"s": "BTCUSDT", "S": "SELL", "p": "NaN",
                                                 "q": "1", "T": 1}})]
    url = await serve(FakeStream(scripts=[[recorded[0], *junk, recorded[1]]]))
    with caplog.at_level(logging.WARNING, logger="market.streams"):
        events = await collect(session, binance_stream(url, ["BTC"]), 2)
    assert len(events) == 2
    skipped = [r for r in caplog.records if "skipped" in r.getMessage()]
    assert len(skipped) == 4


async def test_bybit_subscribes_pings_and_parses(serve: Serve,
                                                 session: aiohttp.ClientSession) -> None:
    stream = FakeStream(scripts=[messages("bybit_all_liquidation.json")],
                        wait_for_subscribe=True)
    url = await serve(stream)
    spec = dataclasses.replace(bybit_stream(url, ["btcusdt", "ETH"]), ping_interval_s=0.02)
    events = await collect(session, spec, 2)
    assert [(e.side, e.price) for e in events] == [(Side.LONG, 72388.2), (Side.SHORT, 72460.1)]
    assert stream.received_json()[0] == {
        "op": "subscribe", "args": ["allLiquidation.BTCUSDT", "allLiquidation.ETHUSDT"]}


async def test_bybit_keepalive_is_sent(serve: Serve, session: aiohttp.ClientSession) -> None:
    stream = FakeStream()  # stays open and quiet
    url = await serve(stream)
    spec = dataclasses.replace(bybit_stream(url, ["BTC"]), ping_interval_s=0.02)
    stop = asyncio.Event()

    async def run() -> None:
        async for _ in stream_liquidations(session, spec, stop, reconnect=FAST):
            pass

    task = asyncio.create_task(run())
    await asyncio.sleep(0.2)
    stop.set()
    await asyncio.wait_for(task, 2)
    assert stream.received_json().count({"op": "ping"}) >= 2


async def test_bybit_failed_subscription_is_logged(
        serve: Serve, session: aiohttp.ClientSession, caplog: pytest.LogCaptureFixture) -> None:
    failure = json.dumps({"success": False, "ret_msg": "error:handler not found",
                          "op": "subscribe"})
    url = await serve(FakeStream(scripts=[[failure, *messages("bybit_all_liquidation.json")]],
                                 wait_for_subscribe=True))
    with caplog.at_level(logging.WARNING, logger="market.streams"):
        await collect(session, bybit_stream(url, ["BTC"]), 2)
    assert any("handler not found" in r.getMessage() for r in caplog.records)


async def test_okx_subscribes_and_converts_contracts(serve: Serve,
                                                     session: aiohttp.ClientSession) -> None:
    recorded = messages("okx_liquidation_orders.json")
    error = json.dumps({"event": "error", "code": "60018", "msg": "Invalid sign"})
    stream = FakeStream(scripts=[[recorded[0], error, "pong", recorded[1]], [recorded[2]]],
                        wait_for_subscribe=True)
    url = await serve(stream)
    events = await collect(session, okx_stream(url, {"BTC-USDT-SWAP": 0.01}), 5)
    assert [e.side for e in events] == [Side.LONG] * 3 + [Side.SHORT] * 2
    assert events[1].quantity == pytest.approx(0.6483)
    assert stream.connections == 2
    subscribe = {"op": "subscribe",
                 "args": [{"channel": "liquidation-orders", "instType": "SWAP"}]}
    assert stream.received_json() == [subscribe, subscribe]


async def test_refused_connections_back_off_until_stopped(
        session: aiohttp.ClientSession, caplog: pytest.LogCaptureFixture) -> None:
    stop = asyncio.Event()
    spec = binance_stream("ws://127.0.0.1:9/ws")
    events: list[LiquidationEvent] = []

    async def run() -> None:
        async for event in stream_liquidations(session, spec, stop, reconnect=FAST):
            events.append(event)

    with caplog.at_level(logging.WARNING, logger="market.streams"):
        task = asyncio.create_task(run())
        await asyncio.sleep(0.3)
        stop.set()
        await asyncio.wait_for(task, 2)
    retries = [r for r in caplog.records if "reconnecting" in r.getMessage()]
    assert events == [] and 3 <= len(retries) <= 40  # capped backoff, no busy loop


async def test_stop_ends_a_quiet_stream_promptly(serve: Serve,
                                                 session: aiohttp.ClientSession) -> None:
    stream = FakeStream()
    url = await serve(stream)
    stop = asyncio.Event()

    async def run() -> list[LiquidationEvent]:
        return [e async for e in stream_liquidations(session, binance_stream(url), stop,
                                                     reconnect=FAST)]

    task = asyncio.create_task(run())
    await asyncio.sleep(0.1)
    stop.set()
    assert await asyncio.wait_for(task, 1) == []
    assert stream.connections == 1


@pytest.mark.parametrize(("failures", "low", "high"), [
    (1, 0.7, 1.0), (2, 1.4, 2.0), (4, 5.6, 8.0), (9, 42.0, 60.0), (30, 42.0, 60.0)])
def test_reconnect_delay(failures: int, low: float, high: float) -> None:
    policy = Reconnect(initial_s=1.0, max_s=60.0, jitter=0.3, rng=random.Random(2))
    for _ in range(20):
        assert low <= policy.delay(failures) <= high


async def test_merge_streams_of_three_venues(serve: Serve,
                                             session: aiohttp.ClientSession) -> None:
    specs = [
        binance_stream(await serve(FakeStream(
            scripts=[messages("binance_force_orders.json")[:1]])), ["BTC"]),
        bybit_stream(await serve(FakeStream(
            scripts=[messages("bybit_all_liquidation.json")], wait_for_subscribe=True)),
            ["BTC"]),
        okx_stream(await serve(FakeStream(
            scripts=[messages("okx_liquidation_orders.json")[:2]], wait_for_subscribe=True)),
            {"BTC-USDT-SWAP": 0.01}),
    ]
    stop = asyncio.Event()
    seen: list[LiquidationEvent] = []

    async def run() -> None:
        async for event in merge_streams(session, specs, stop, reconnect=FAST):
            seen.append(event)
            if len(seen) == 6:
                stop.set()

    await asyncio.wait_for(run(), 5)
    counts = {venue: sum(e.venue is venue for e in seen) for venue in Venue}
    assert counts == {Venue.BINANCE: 1, Venue.BYBIT: 2, Venue.OKX: 3}


@dataclass
class StreamSettings:
    okx_api_url: str
    binance_ws_url: str = "ws://127.0.0.1:1/binance"
    bybit_ws_url: str = "ws://127.0.0.1:1/bybit"
    okx_ws_url: str = "ws://127.0.0.1:1/okx"
    venues: list[str] = field(default_factory=lambda: ["binance", "bybit", "okx"])


async def test_build_stream_specs_fetches_okx_contract_values(
        base_url: str, session: aiohttp.ClientSession) -> None:
    specs = await build_stream_specs(session, StreamSettings(okx_api_url=base_url),
                                     ["BTC", "eth"])
    assert [s.venue for s in specs] == list(Venue)
    binance, bybit, okx = specs
    assert binance.symbols == bybit.symbols == okx.symbols == frozenset({"BTC", "ETH"})
    assert bybit.subscribe == ({"op": "subscribe",
                                "args": ["allLiquidation.BTCUSDT", "allLiquidation.ETHUSDT"]},)
    event = okx.parse(json.loads(messages("okx_liquidation_orders.json")[1]))[0]
    assert event.quantity == pytest.approx(0.0021)  # 0.21 contracts × ctVal 0.01
