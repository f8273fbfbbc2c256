"""The service in live mode against the fake exchange: one venue down, the others carry the map."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web

from bot.app import serve
from bot.service import Service
from bot.settings import Settings
from tests.market.fake_exchange import FakeExchange, Fault

CLOSED_WS = "ws://127.0.0.1:9/ws"  # nothing listens here: streams keep reconnecting


@pytest.fixture
async def exchange() -> AsyncIterator[tuple[FakeExchange, str]]:
    """The fake Binance/Bybit/OKX REST API, its clock set to now."""
    fake = FakeExchange(now_ms=int(time.time() * 1000))
    runner = web.AppRunner(fake.app(), access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    yield fake, f"http://127.0.0.1:{runner.addresses[0][1]}"
    await runner.cleanup()


async def test_live_service_degrades_to_the_venues_that_answer(
        tmp_path: Path, exchange: tuple[FakeExchange, str]) -> None:
    fake, base = exchange
    fake.fail("/api/v5/market/candles", Fault(status=503, times=10_000))
    settings = Settings(
        _env_file=None, database_url=f"sqlite+aiosqlite:///{tmp_path / 'live.db'}",  # type: ignore[call-arg]
        web_port=0, symbols=["BTC"], history_days=1, http_retries=1, http_timeout_s=5,
        binance_api_url=base, bybit_api_url=base, okx_api_url=base, binance_ws_url=CLOSED_WS,
        bybit_ws_url=CLOSED_WS, okx_ws_url=CLOSED_WS, reconcile_seconds=1)
    ready: asyncio.Future[Service] = asyncio.get_running_loop().create_future()
    task = asyncio.create_task(serve(settings, install_signals=False,
                                     on_ready=ready.set_result))
    service = await asyncio.wait_for(ready, 30)
    try:
        health: dict[str, object] = {}
        async with aiohttp.ClientSession() as http:
            for _ in range(120):
                async with http.get(service.web_url + "healthz") as response:
                    health = json.loads(await response.read())
                btc = health["symbols"]["BTC"]  # type: ignore[index]
                if btc.get("status") == "ok":
                    break
                await asyncio.sleep(0.5)
            async with http.get(service.web_url + "map/BTC.png") as response:
                assert response.status == 200
                assert (await response.read()).startswith(b"\x89PNG")
        btc = health["symbols"]["BTC"]  # type: ignore[index]
        assert btc["status"] == "ok"
        assert btc["venues"] == ["binance", "bybit"]
        assert "okx" in btc["failed_venues"]
    finally:
        service.stop.set()
        assert await asyncio.wait_for(task, 60) == 0
