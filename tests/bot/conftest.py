"""Fixtures for the chat adapters: market data from a CSV, a fixed clock, SQLite, fake Telegram."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from bot.mapservice import MapService
from bot.services import Services
from bot.settings import Settings
from bot.sources import FileSource
from bot.telegram_bot import TelegramBot
from engine.types import Bars, Venue
from market.files import load_bench_bars
from storage.db import SessionFactory, make_engine, session_factory, upgrade
from tests.bot.fake_telegram import FakeTelegram, serve

os.environ.setdefault("PTB_TIMEDELTA", "true")

DATA = Path(__file__).resolve().parents[1] / "data"
BARS_CSV = DATA / "btcusdt-1m-2026-03-04T20_05T08.bars.csv"
DATA_END = datetime(2026, 3, 5, 8, 0, tzinfo=UTC)


def load_bars(path: Path = BARS_CSV) -> Bars:
    """The bars CSV excerpt, loaded by the project's bench loader."""
    return load_bench_bars(path)


def file_source(bars: Bars) -> FileSource:
    """BTC from the CSV excerpt; any other symbol is unknown."""
    return FileSource(bars={Venue.BINANCE: bars}, prints={}, symbol="BTC")


@dataclass
class FixedClock:
    """A clock tests move by hand."""

    now: datetime = DATA_END + timedelta(seconds=30)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        """Move the clock forward."""
        self.now += timedelta(**delta)


@pytest.fixture(scope="session")
def map_service() -> MapService:
    """One map service for the session (maps and PNGs are cached by data time)."""
    return MapService(file_source(load_bars()), clock=lambda: DATA_END.timestamp() + 30)


@pytest.fixture
def clock() -> FixedClock:
    """The services clock, just after the data's last bar closed."""
    return FixedClock()


@pytest.fixture
async def sessions(tmp_path: Path) -> AsyncIterator[SessionFactory]:
    """A SQLite database in tmp_path, upgraded to head."""
    url = f"sqlite+aiosqlite:///{tmp_path / 'bot.db'}"
    await upgrade(url)
    engine = make_engine(url)
    yield session_factory(engine)
    await engine.dispose()


@pytest.fixture
def tg_fake() -> FakeTelegram:
    """State of the fake Bot API."""
    return FakeTelegram()


@pytest.fixture
async def tg_url(tg_fake: FakeTelegram) -> AsyncIterator[str]:
    """Base URL of the fake Bot API on 127.0.0.1."""
    async with serve(tg_fake) as url:
        yield url


@pytest.fixture
def settings(tg_url: str, tg_fake: FakeTelegram) -> Settings:
    """Settings pointing Telegram at the fake (and nothing at the network)."""
    return Settings(_env_file=None, telegram_token=tg_fake.token,
                    telegram_api_url=f"{tg_url}/bot", telegram_file_url=f"{tg_url}/file/bot",
                    symbols=["BTC", "ETH"], map_cooldown_s=20)


@pytest.fixture
def services(map_service: MapService, sessions: SessionFactory, settings: Settings,
             clock: FixedClock) -> Services:
    """What command handlers receive."""
    return Services(maps=map_service, sessions=sessions, settings=settings, clock=clock)


@pytest.fixture
async def tg_bot(services: Services) -> AsyncIterator[TelegramBot]:
    """The Telegram bot, polling the fake."""
    bot = TelegramBot(services, poll_timeout=1)
    await bot.start()
    yield bot
    await bot.stop()
