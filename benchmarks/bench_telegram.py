"""Benchmark `/map` through Telegram: `python benchmarks/bench_telegram.py [-n 40]`.

The real PTB 22 application polls a fake Bot API on 127.0.0.1; market data is the bars CSV in
tests/data. Each sample is the time from the update being queued on the fake to the fake
receiving `sendPhoto` (the follow-up text is awaited, then a short pause, before the next
sample). Three cases:

- cached:   map, PNG and Telegram file_id are cached (the common case: many chats, one image);
- rendered: the map is cached but the PNG is rendered and uploaded again;
- cold:     the map is rebuilt, rendered and uploaded (first request after new data).

Targets: cached p95 <= 100 ms, rendered p95 <= 400 ms.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("PTB_TIMEDELTA", "true")

from bot.mapservice import MapService  # noqa: E402
from bot.services import Services  # noqa: E402
from bot.settings import Settings  # noqa: E402
from bot.sources import FileSource  # noqa: E402
from bot.telegram_bot import TelegramBot  # noqa: E402
from engine.types import Venue  # noqa: E402
from market.files import load_bench_bars  # noqa: E402
from storage.db import make_engine, session_factory, upgrade  # noqa: E402
from tests.bot.fake_telegram import FakeTelegram, serve  # noqa: E402

BARS = ROOT / "tests" / "data" / "btcusdt-1m-2026-03-04T20_05T08.bars.csv"
TARGETS = {"cached": 100.0, "rendered": 400.0}
PACE_S = 0.1
"""Pause between samples: each /map sends two messages, and AIORateLimiter (rightly) holds the
bot to Telegram's 30 messages/s overall, so back-to-back samples would measure the limiter."""


async def sample(fake: FakeTelegram, chat_id: int) -> float:
    """Milliseconds from queueing `/map BTC` to the photo reaching the fake."""
    photos = len(fake.calls_to("sendPhoto"))
    texts = len(fake.calls_to("sendMessage"))
    start = time.perf_counter()
    await fake.push_command("/map BTC", chat_id=chat_id)
    photo = (await fake.wait_for("sendPhoto", photos + 1, within=30))[photos]
    await fake.wait_for("sendMessage", texts + 1, within=30)
    return (photo.at - start) * 1000


async def measure(fake: FakeTelegram, n: int, reset: Callable[[], None]) -> list[float]:
    """`n` sequential samples, calling `reset` before each."""
    out = []
    for i in range(n):
        reset()
        out.append(await sample(fake, 5000 + i))
        await asyncio.sleep(PACE_S)
    return out


def report(name: str, values: list[float]) -> bool:
    """Print p50/p95 (and the target); True when the target is met."""
    p50 = statistics.median(values)
    p95 = statistics.quantiles(values, n=20, method="inclusive")[18]
    target = TARGETS.get(name)
    verdict = "" if target is None else f"  target p95 <= {target:.0f} ms: " + (
        "OK" if p95 <= target else "MISSED")
    print(f"{name:<9} n={len(values):<3} p50 {p50:7.1f} ms  p95 {p95:7.1f} ms  "
          f"max {max(values):7.1f} ms{verdict}")
    return target is None or p95 <= target


async def main(n: int) -> int:
    """Run the three cases; exit status 1 when a target is missed."""
    fake = FakeTelegram()
    bars = load_bench_bars(BARS)
    data_end_s = (int(bars.time[-1]) + bars.interval_ms) / 1000 + 30
    source = FileSource(bars={Venue.BINANCE: bars}, prints={}, symbol="BTC")
    maps = MapService(source, clock=lambda: data_end_s)
    with tempfile.TemporaryDirectory() as tmp:
        url = f"sqlite+aiosqlite:///{Path(tmp) / 'bench.db'}"
        await upgrade(url)
        engine = make_engine(url)
        async with serve(fake) as base:
            settings = Settings(_env_file=None, telegram_token=fake.token,
                                telegram_api_url=f"{base}/bot",
                                telegram_file_url=f"{base}/file/bot", map_cooldown_s=0)
            bot = TelegramBot(Services(maps, session_factory(engine), settings), poll_timeout=5)
            await bot.start()
            try:
                await sample(fake, 4999)  # warm-up: imports, first build, first upload

                def uncache_png() -> None:
                    maps._pngs.clear()
                    bot.photos.file_ids.clear()

                def uncache_all() -> None:
                    maps._maps.clear()
                    uncache_png()

                ok = report("cached", await measure(fake, n, lambda: None))
                ok &= report("rendered", await measure(fake, n, uncache_png))
                report("cold", await measure(fake, max(n // 2, 5), uncache_all))
            finally:
                await bot.stop()
                await engine.dispose()
    return 0 if ok else 1


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", type=int, default=40, help="samples per case (default 40)")
    raise SystemExit(asyncio.run(main(parser.parse_args().n)))
