"""Fixtures: a fake exchange on 127.0.0.1, one shared client session, fast HTTP policies."""

from __future__ import annotations

import random
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web

from market.http import HttpPolicy
from tests.market.fake_exchange import FakeExchange

FIXTURES = Path(__file__).parent / "fixtures"


@pytest.fixture
def fixtures() -> Path:
    """Folder of recorded payloads and sample files."""
    return FIXTURES


@pytest.fixture
def fake() -> FakeExchange:
    """The fake exchange's state (faults, request log)."""
    return FakeExchange()


@pytest.fixture
async def base_url(fake: FakeExchange) -> AsyncIterator[str]:
    """Base URL of the fake exchange, served on an ephemeral loopback port."""
    runner = web.AppRunner(fake.app())
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    host, port = runner.addresses[0][:2]
    yield f"http://{host}:{port}"
    await runner.cleanup()


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    """The one client session every call shares."""
    async with aiohttp.ClientSession() as client:
        yield client


@pytest.fixture
def policy() -> HttpPolicy:
    """Short timeouts and tiny backoffs so fault tests stay fast."""
    return HttpPolicy(timeout_s=0.3, retries=2, backoff_s=0.01, max_backoff_s=0.05,
                      rng=random.Random(7))
