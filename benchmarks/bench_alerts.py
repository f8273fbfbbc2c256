"""Benchmark the alert rules and the outbox: `python benchmarks/bench_alerts.py`.

1. Evaluation: 10,000 subscriptions over 50 symbols, 20 bands per symbol, one price tick for
   every symbol = one "tick" (5 s, 0.03 % price noise). Prints the median and p90 time per
   tick with the band maps unchanged, with 1/12 of the maps recomputed per tick (a 60 s
   refresh), and with every map recomputed every tick (jittered bands, all re-matched: the
   worst case), and how many alerts fired, for three subscription mixes:
   * presets: three presets plus two custom percentages, default settings otherwise;
   * mixed: 70 % as above, 30 % with their own kinds, daily cap, strength or quiet hours in
     one of four time zones (many cohorts per group);
   * all distinct: no two rules alike (a unique min strength each), so nothing is shared:
     the per-subscription worst case.
2. Delivery: N outbox rows on SQLite delivered through a no-op notifier, without and with the
   send journal (interleaved runs); prints rows/second.
"""

from __future__ import annotations

import asyncio
import random
import statistics
import sys
import tempfile
import time as time_
from datetime import UTC, datetime, time, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bot.delivery import OutboxWorker
from bot.notifier import DeliveryReceipt, OutgoingMessage, Target
from bot.send_journal import SendJournal
from engine.alerts import (
    DEFAULT_KINDS,
    SUBSCRIBABLE_KINDS,
    AlertKind,
    AlertRule,
    build_book,
    evaluate_book,
)
from engine.types import Band, Side
from storage import outbox, repo
from storage.db import make_engine, session_factory, upgrade

T0 = datetime(2026, 1, 5, 12, 0, tzinfo=UTC)
SYMBOLS = 50
SUBSCRIPTIONS = 10_000
BANDS = 20
TICKS = 200
VOL = 0.0003  # per-tick (5 s) price move, about BTC's typical 5 s volatility


def bands_for(price: float, rng: random.Random, jitter: float = 0.0) -> tuple[Band, ...]:
    """Ten long bands below and ten short bands above `price`."""
    out = []
    for i in range(BANDS // 2):
        gap = 0.004 + 0.006 * i
        width = price * 0.003
        shift = price * jitter * rng.uniform(-1, 1)
        lo = price * (1 - gap) - width + shift
        out.append(Band(Side.LONG, lo, lo + width, lo + width / 2, 1e6 * (i + 1),
                        gap * 100, rng.random()))
        hi = price * (1 + gap) + shift
        out.append(Band(Side.SHORT, hi, hi + width, hi + width / 2, 1e6 * (i + 1),
                        gap * 100, rng.random()))
    return tuple(out)


SENSITIVITIES = ["aggressive", "balanced", "conservative", "1.5%", "0.8%"]
TIMEZONES = ["UTC", "Europe/Berlin", "America/New_York", "Asia/Tokyo"]
KINDS = [DEFAULT_KINDS, SUBSCRIBABLE_KINDS, frozenset({AlertKind.CROSS, AlertKind.SWEPT})]


def population(mix: str, rng: random.Random) -> list[AlertRule]:
    """SUBSCRIPTIONS rules over SYMBOLS symbols for one mix (see the module docstring)."""
    rules = []
    for i in range(SUBSCRIPTIONS):
        symbol, sensitivity = f"S{i % SYMBOLS}", SENSITIVITIES[i % 5]
        if mix == "all distinct":
            rules.append(AlertRule.from_sensitivity(i, i, symbol, sensitivity,
                                                    min_strength=0.3 + i * 1e-6))
        elif mix == "mixed" and rng.random() < 0.3:
            quiet = rng.random() < 0.5
            rules.append(AlertRule.from_sensitivity(
                i, i, symbol, sensitivity, kinds=rng.choice(KINDS),
                daily_cap=rng.choice([10, 20, 50]),
                min_strength=rng.choice([None, 0.5, 0.7]),
                quiet_start=time(22) if quiet else None, quiet_end=time(7) if quiet else None,
                timezone=rng.choice(TIMEZONES)))
        else:
            rules.append(AlertRule.from_sensitivity(i, i, symbol, sensitivity))
    return rules


def bench_evaluation(mixes: tuple[str, ...] = ("presets", "mixed", "all distinct")) -> None:
    """Median and p90 wall time per tick of all symbols, per subscription mix and map churn."""
    scenarios = (("maps unchanged", 0), ("1/12 of maps recomputed per tick (60 s refresh)", 12),
                 ("every map recomputed every tick (worst case)", 1))
    for mix in mixes:
        rng = random.Random(7)
        rules = population(mix, rng)
        for label, every in scenarios:
            prices = {f"S{i}": 100.0 * (1 + i) for i in range(SYMBOLS)}
            maps = {s: bands_for(p, rng) for s, p in prices.items()}
            book = build_book(rules, {}, T0)
            cohorts = sum(len(c) for g in book.cohorts.values() for c in g.values())
            times, fired, now = [], 0, T0
            for tick in range(TICKS):
                now += timedelta(seconds=5)
                moves = {s: p * (1 + rng.gauss(0, VOL)) for s, p in prices.items()}
                if every:
                    maps.update({s: bands_for(prices[s], rng, 0.0005)
                                 for i, s in enumerate(prices) if (i + tick) % every == 0})
                start = time_.perf_counter()
                for symbol, price in moves.items():
                    book, decisions = evaluate_book(book, symbol, maps[symbol], price,
                                                    prices[symbol], now)
                    fired += sum(d.fired for d in decisions)
                elapsed = time_.perf_counter() - start
                if tick >= 10:
                    times.append(elapsed)
                prices = moves
            print(f"evaluate {SUBSCRIPTIONS} subscriptions ({mix}, {cohorts} cohorts) x "
                  f"{SYMBOLS} symbols, {label}: "
                  f"median {statistics.median(times) * 1e3:.2f} ms/tick, "
                  f"p90 {statistics.quantiles(times, n=10)[-1] * 1e3:.2f} ms "
                  f"({fired} alerts fired over {TICKS} ticks; target <= 20 ms)", flush=True)


class NullNotifier:
    """Accepts everything instantly."""

    name = "console"

    async def send(self, target: Target, message: OutgoingMessage) -> DeliveryReceipt:
        return DeliveryReceipt(self.name, None)


async def bench_delivery(journal: bool, rows: int = 2000, chats: int = 200) -> float:
    """Rows per second through the outbox worker on SQLite (with or without the send journal
    the service keeps by default)."""
    with tempfile.TemporaryDirectory() as tmp:
        url = f"sqlite+aiosqlite:///{Path(tmp) / 'bench.db'}"
        await upgrade(url)
        engine = make_engine(url)
        sessions = session_factory(engine)
        async with sessions() as s, s.begin():
            pks = []
            for c in range(chats):
                chat = await repo.upsert_chat(s, "console", str(c))
                assert chat.id is not None
                pks.append(chat.id)
            payload = {"title": "BTC traded through a long band", "sections": ["x"],
                       "image": None, "buttons": []}
            for i in range(rows):
                await outbox.enqueue(s, f"k{i}", pks[i % chats], "cross", payload, now=T0)
        log = SendJournal(Path(tmp) / "sends.jsonl") if journal else None
        worker = OutboxWorker(sessions, [NullNotifier()], batch_size=100, concurrency=16,
                              journal=log)
        start = time_.perf_counter()
        done = await worker.drain()
        elapsed = time_.perf_counter() - start
        await engine.dispose()
    return done / elapsed


async def bench_deliveries(rounds: int = 3) -> None:
    """Outbox throughput without and with the send journal, interleaved (the disk is noisy)."""
    rates: dict[bool, list[float]] = {False: [], True: []}
    for _ in range(rounds):
        for journal in (False, True):
            rates[journal].append(await bench_delivery(journal))
    for journal, label in ((False, "no journal"), (True, "send journal")):
        runs = ", ".join(f"{r:.0f}" for r in rates[journal])
        print(f"deliver 2000 outbox rows (SQLite, no-op notifier, {label}): median "
              f"{statistics.median(rates[journal]):.0f} rows/s ({runs})")


if __name__ == "__main__":
    if "--no-delivery" not in sys.argv:
        asyncio.run(bench_deliveries())
    bench_evaluation()
