"""Soak: the real service (a subprocess) replays the demo fast for 1,000 subscriptions on fakes.

Everything is on 127.0.0.1 and bounded in time. The Telegram and Discord fakes run in this
process and inject 429s, 500s, timeouts and dropped connections (plus gateway disconnects)
before a request is recorded, so a retried request that finally succeeds is not a duplicate.
The service is SIGKILLed once in the middle and restarted on the same database and virtual
clock. At the end every outbox row must be sent, and every platform message is matched back
to its row: Discord by nonce (derived from the row's key), Telegram by count per chat.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import os
import random
import re
import signal
import socket
import statistics
import sys
import time
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
from aiohttp import web
from sqlmodel import select

from bot.discord_bot import nonce_for
from bot.replay_source import replay_source
from storage import repo
from storage.db import make_engine, session_factory, upgrade
from storage.models import Chat, Delivery
from tests.bot.fake_discord import FakeDiscord, Fault
from tests.bot.fake_telegram import FakeTelegram

ROOT = Path(__file__).resolve().parents[2]
DEMO = ROOT / "data" / "demo"
SENSITIVITIES = ("aggressive", "balanced", "conservative", "1.5%")
DAILY_CAPS = (2, 3, 4)
TG_SEND = ("sendPhoto", "sendMessage")
SINGLE_PASS_MINUTES = 3.0
LOOP_SPEED = 600.0
DRAIN_ALLOWANCE_S = 150.0  # after the replay: deliveries catch up, then SIGTERM
# The worker gives up on a send after this; long enough that a send slowed by retries and
# rate limits finishes (a timeout after the platform accepted would duplicate it), short
# enough that an injected hang is cut.
SEND_TIMEOUT_S = 20.0


@dataclass(slots=True)
class SoakConfig:
    """Knobs of one soak run."""

    workdir: Path
    minutes: float = 1.5
    subscriptions: int = 1000
    kill_at: float = 0.25  # fraction of the replay after which the service is SIGKILLed
    fault_rate: float = 0.03  # share of send requests that fail (split over four kinds)
    seed: int = 7


@dataclass(slots=True)
class Sample:
    """One scrape of the service's /metrics."""

    at: float
    run: int
    rss_mb: float
    lag_p99_ms: float  # over the last five minutes
    lag_max_ms: float
    outbox: dict[str, int]
    lag_buckets: dict[float, int] = field(default_factory=dict)  # cumulative, since start

    def lifetime_p99_ms(self) -> float:
        """p99 lag since the process started (upper bound of the histogram bucket)."""
        total = self.lag_buckets.get(float("inf"), 0)
        for bound, count in sorted(self.lag_buckets.items()):
            if total and count >= 0.99 * total:
                return bound * 1000
        return 0.0


@dataclass(slots=True)
class SoakReport:
    """What a soak run measured."""

    config: SoakConfig
    speed: float = 0.0
    loops: int = 1
    replay_wall_s: float = 0.0
    decided: int = 0
    sent_rows: int = 0
    not_sent: dict[str, int] = field(default_factory=dict)
    delivered: int = 0
    duplicates: int = 0
    duplicates_telegram: int = 0
    nonce_replays: int = 0  # Discord resends answered with the message their nonce created
    missing: int = 0
    in_flight_at_kill: int = 0
    faults: Counter[str] = field(default_factory=Counter)
    samples: list[Sample] = field(default_factory=list)
    exit_codes: list[int] = field(default_factory=list)
    elapsed_s: float = 0.0
    telegram_messages: int = 0
    discord_messages: int = 0

    def lag_p99_ms(self) -> float:
        """p99 event-loop lag over each process's whole life (the worse of the two runs)."""
        last = {s.run: s for s in self.samples}
        return max((s.lifetime_p99_ms() for s in last.values()), default=0.0)

    def memory(self) -> tuple[float, float, float]:
        """RSS (MB) of the restarted process mid-run (caches warm) and at the end, and growth."""
        run = [s for s in self.samples if s.run == 2]
        if len(run) < 10:
            return 0.0, 0.0, 0.0
        n = len(run)
        start = statistics.median(s.rss_mb for s in run[int(n * 0.4):int(n * 0.6)])
        end = statistics.median(s.rss_mb for s in run[int(n * 0.8):])
        return start, end, end - start

    def problems(self) -> list[str]:
        """Every violated expectation (empty when the run passed)."""
        out = []
        if self.decided == 0:
            out.append("no alert was decided")
        if self.not_sent:
            out.append(f"rows not sent: {self.not_sent}")
        if self.missing:
            out.append(f"{self.missing} sent rows never reached a fake")
        if self.duplicates > self.in_flight_at_kill:
            out.append(f"{self.duplicates} duplicates > {self.in_flight_at_kill} rows in flight "
                       "at the kill")
        if self.lag_p99_ms() >= 100:
            out.append(f"event-loop lag p99 {self.lag_p99_ms():.0f} ms >= 100 ms")
        start, _, growth = self.memory()
        if growth > max(48.0, 0.2 * start):
            out.append(f"memory grew {growth:.0f} MB after warm-up")
        if self.exit_codes[-1:] != [0]:
            out.append(f"exit codes {self.exit_codes} (the last must be 0)")
        return out

    def text(self) -> str:
        """A human summary."""
        start, end, growth = self.memory()
        lags = [s.lag_p99_ms for s in self.samples]
        runs = {s.run: s for s in self.samples}
        lifetime = ", ".join(f"run {r} {s.lifetime_p99_ms():.0f} ms over "
                             f"{s.lag_buckets.get(float('inf'), 0)} probes"
                             for r, s in sorted(runs.items()))
        return "\n".join([
            f"soak: {self.config.subscriptions} subscriptions, replay at {self.speed:.0f}x "
            f"({self.loops} pass{'es' if self.loops > 1 else ''} over the data, "
            f"{self.replay_wall_s / 60:.1f} min of replay), {self.elapsed_s:.0f} s in all, "
            "SIGKILL + restart once",
            f"alerts decided {self.decided}, rows sent {self.sent_rows}, not sent "
            f"{self.not_sent or 0}",
            f"messages at the fakes: telegram {self.telegram_messages}, discord "
            f"{self.discord_messages}; matched {self.delivered}, duplicates {self.duplicates} "
            f"(telegram {self.duplicates_telegram}; rows in flight at the kill: "
            f"{self.in_flight_at_kill}), missing {self.missing}; discord resends answered by "
            f"their nonce: {self.nonce_replays}",
            f"faults injected: {dict(sorted(self.faults.items()))}",
            f"memory after restart: {start:.0f} MB after warm-up -> {end:.0f} MB at the end "
            f"({growth:+.0f} MB)",
            f"event-loop lag p99 over each process's life: {lifetime}; 5-minute-window p99 "
            f"median {statistics.median(lags) if lags else 0:.1f} ms; worst single lag "
            f"{max((s.lag_max_ms for s in self.samples), default=0):.0f} ms",
            f"exit codes {self.exit_codes}",
            "PASS" if not self.problems() else "FAIL: " + "; ".join(self.problems()),
        ])


# ---------------------------------------------------------------- fakes with faults


class Chaos:
    """Chooses a fault for a share of send requests (deterministic for a seed)."""

    def __init__(self, rate: float, seed: int, counts: Counter[str]) -> None:
        self.rate = rate
        self.rng = random.Random(seed)
        self.counts = counts

    def pick(self, platform: str) -> str | None:
        """None, or one of 429 / 500 / timeout / disconnect."""
        if self.rng.random() >= self.rate:
            return None
        kind = self.rng.choices(("429", "500", "timeout", "disconnect"), (2, 3, 1, 3))[0]
        self.counts[f"{platform} {kind}"] += 1
        return kind


def telegram_chaos(chaos: Chaos) -> Callable[[web.Request, Callable[[web.Request],
                                                                 Awaitable[web.StreamResponse]]],
                                              Awaitable[web.StreamResponse]]:
    """aiohttp middleware failing Telegram send calls before the fake records them."""

    @web.middleware
    async def middleware(request: web.Request, handler: Callable[
            [web.Request], Awaitable[web.StreamResponse]]) -> web.StreamResponse:
        kind = chaos.pick("telegram") if request.match_info.get("method") in TG_SEND else None
        if kind is None:
            return await handler(request)
        await request.read()
        if kind == "429":
            return web.json_response({"ok": False, "error_code": 429,
                                      "description": "Too Many Requests: retry after 1",
                                      "parameters": {"retry_after": 1}}, status=429)
        if kind == "500":
            return web.json_response({"ok": False, "error_code": 500,
                                      "description": "Internal Server Error"}, status=500)
        if kind == "timeout":
            await asyncio.sleep(6.0)  # PTB's read timeout is 5 s
        if request.transport is not None:
            request.transport.close()
        return web.Response(status=500)

    return middleware


def discord_chaos(chaos: Chaos) -> Callable[[str], Fault | None]:
    """Fault for the fake Discord's channel messages."""
    faults = {"429": Fault("", status=429, retry_after=0.2),
              "500": Fault("", status=500),
              "timeout": Fault("", delay=SEND_TIMEOUT_S + 5.0, drop=True),
              "disconnect": Fault("", drop=True)}

    def pick(line: str) -> Fault | None:
        if not re.fullmatch(r"POST /channels/\d+/messages", line):
            return None
        kind = chaos.pick("discord")
        return None if kind is None else faults[kind]

    return pick


@contextlib.asynccontextmanager
async def telegram_fake(chaos: Chaos) -> AsyncIterator[tuple[FakeTelegram, str]]:
    """The Telegram fake with faults, on an ephemeral loopback port."""
    fake = FakeTelegram()
    app = fake.app()
    app.middlewares.append(telegram_chaos(chaos))
    runner = web.AppRunner(app, handle_signals=False, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    try:
        yield fake, f"http://127.0.0.1:{runner.addresses[0][1]}"
    finally:
        fake._closing = True
        async with fake.changed:
            fake.changed.notify_all()
        await runner.cleanup()


# ---------------------------------------------------------------- the service process


def free_port() -> int:
    """An unused loopback TCP port."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


async def seed(url: str, count: int) -> None:
    """`count` subscriptions to BTC, half Telegram chats and half Discord channels."""
    await upgrade(url)
    engine = make_engine(url)
    async with session_factory(engine).begin() as db:
        for i in range(count):
            platform, chat_id = (("telegram", str(2_000_000 + i)) if i % 2 == 0
                                 else ("discord", str(800_000_000_000_000_000 + i)))
            chat = await repo.upsert_chat(db, platform, chat_id, title=f"soak {i}")
            await repo.subscribe(db, chat.id or 0, "BTC",
                                 sensitivity=SENSITIVITIES[i % len(SENSITIVITIES)],
                                 daily_cap=DAILY_CAPS[i % len(DAILY_CAPS)])
    await engine.dispose()


async def outbox_rows(url: str) -> list[tuple[Delivery, Chat]]:
    """Every outbox row with its chat."""
    engine = make_engine(url)
    async with session_factory(engine)() as db:
        rows = (await db.exec(select(Delivery, Chat).join(
            Chat, Chat.id == Delivery.chat_pk))).all()  # type: ignore[arg-type]
    await engine.dispose()
    return list(rows)


async def scrape(http: aiohttp.ClientSession, url: str, run: int) -> Sample | None:
    """Parse the few metrics the soak watches."""
    try:
        async with http.get(url + "metrics", timeout=aiohttp.ClientTimeout(total=3)) as resp:
            text = await resp.text()
    except (aiohttp.ClientError, TimeoutError):
        return None

    def value(pattern: str) -> float:
        found = re.search(pattern + r" ([\d.e+-]+)", text)
        return float(found.group(1)) if found else 0.0

    outbox = {m.group(1): int(float(m.group(2))) for m in re.finditer(
        r'liqradar_outbox_rows\{status="(\w+)"\} ([\d.e+]+)', text)}
    buckets = {float(m.group(1)): int(m.group(2)) for m in re.finditer(
        r'liqradar_event_loop_lag_seconds_bucket\{le="([^"]+)"\} (\d+)', text)}
    return Sample(time.monotonic(), run, value("process_resident_memory_bytes") / 2**20,
                  value("liqradar_event_loop_lag_p99_seconds") * 1000,
                  value("liqradar_event_loop_lag_max_seconds") * 1000, outbox, buckets)


async def start_service(env: dict[str, str], log: Path) -> asyncio.subprocess.Process:
    """`liqradar run --replay data/demo` with the soak's environment."""
    with log.open("ab") as sink:
        return await asyncio.create_subprocess_exec(
            sys.executable, "-m", "bot.cli", "run", "--replay", str(DEMO), "--speed",
            env["SOAK_SPEED"], cwd=ROOT, env=env, stdout=sink, stderr=sink)


# ---------------------------------------------------------------- the run


async def run_soak(config: SoakConfig) -> SoakReport:
    """One bounded soak run; returns what it measured."""
    report = SoakReport(config)
    config.workdir.mkdir(parents=True, exist_ok=True)
    db_url = f"sqlite+aiosqlite:///{config.workdir / 'soak.db'}"
    with contextlib.suppress(FileNotFoundError):
        for suffix in ("", "-wal", "-shm"):
            (config.workdir / f"soak.db{suffix}").unlink()
    await seed(db_url, config.subscriptions)
    one = replay_source(DEMO, 1.0)
    first_pass_s = (one.end_ms - one.clock.start_ms) / 1000.0
    period_s = one.data["BTC"].period_ms / 1000.0
    budget = config.minutes * 60.0
    if config.minutes <= SINGLE_PASS_MINUTES:  # one pass over the data, paced to the budget
        report.loops, report.speed = 1, first_pass_s / (budget * 0.7)
    else:  # demo speed, enough passes to replay for the whole budget (daily caps reset
        # every virtual day); the drain after the replay comes on top
        report.speed = LOOP_SPEED
        report.loops = 1 + max(0, math.ceil((budget * LOOP_SPEED - first_pass_s) / period_s))
    replay_s = first_pass_s + (report.loops - 1) * period_s
    report.replay_wall_s = replay_s / report.speed
    chaos = Chaos(config.fault_rate, config.seed, report.faults)
    started = time.monotonic()
    async with telegram_fake(chaos) as (tg, tg_url), aiohttp.ClientSession() as http:
        dc = await FakeDiscord(chaos=discord_chaos(chaos)).start()
        port = free_port()
        web_url = f"http://127.0.0.1:{port}/"
        anchor = time.time() + 2.0
        env = {**os.environ, "PYTHONPATH": str(ROOT), "PTB_TIMEDELTA": "true",
               "SOAK_SPEED": f"{report.speed:.3f}",
               "LIQRADAR_DATABASE_URL": db_url, "LIQRADAR_WEB_PORT": str(port),
               "LIQRADAR_WEB_HOST": "127.0.0.1", "LIQRADAR_SYMBOLS": '["BTC"]',
               "LIQRADAR_TELEGRAM_TOKEN": tg.token,
               "LIQRADAR_TELEGRAM_API_URL": f"{tg_url}/bot",
               "LIQRADAR_TELEGRAM_FILE_URL": f"{tg_url}/file/bot",
               "LIQRADAR_DISCORD_TOKEN": "soak-token", "LIQRADAR_DISCORD_API_URL": dc.api_url,
               "LIQRADAR_DISCORD_GATEWAY_URL": dc.gateway_url,
               "LIQRADAR_DISCORD_GUILD_READY_TIMEOUT_S": "0.1",
               "LIQRADAR_REPLAY_ANCHOR": f"{anchor:.3f}", "LIQRADAR_RECONCILE_SECONDS": "5",
               "LIQRADAR_DELIVERY_TIMEOUT_S": str(SEND_TIMEOUT_S), "MALLOC_ARENA_MAX": "2",
               "LIQRADAR_REPLAY_MIN_REFRESH_S": "0.5",
               "LIQRADAR_SHUTDOWN_TIMEOUT_S": "20", "LIQRADAR_HISTORY_DAYS": "1",
               "LIQRADAR_REPLAY_LOOPS": str(report.loops),
               "LIQRADAR_LOG_LEVEL": "INFO"}
        log = config.workdir / "service.log"
        log.unlink(missing_ok=True)
        replay_end = anchor + replay_s / report.speed
        kill_time = anchor + config.kill_at * (replay_end - anchor)
        deadline = started + max(budget, report.replay_wall_s) + DRAIN_ALLOWANCE_S
        try:
            proc = await start_service(env, log)
            run = 1
            next_drop = time.monotonic() + 15.0
            quiet = 0
            while time.monotonic() < deadline:
                await asyncio.sleep(1.0)
                sample = await scrape(http, web_url, run)
                if sample is not None:
                    report.samples.append(sample)
                if time.monotonic() > next_drop:
                    await dc.disconnect()
                    next_drop = time.monotonic() + 15.0
                if run == 1 and time.time() >= kill_time:
                    proc.kill()
                    report.exit_codes.append(await proc.wait())
                    rows = await outbox_rows(db_url)
                    report.in_flight_at_kill = sum(d.status == "sending" for d, _ in rows)
                    proc = await start_service(env, log)
                    run = 2
                    continue
                if run == 2 and time.time() > replay_end and sample is not None:
                    busy = sample.outbox.get("pending", 0) + sample.outbox.get("sending", 0)
                    quiet = quiet + 1 if busy == 0 else 0
                    if quiet >= 3:
                        break
            proc.send_signal(signal.SIGTERM)
            report.exit_codes.append(await asyncio.wait_for(proc.wait(), 60))
        finally:
            if proc.returncode is None:
                proc.kill()
                await proc.wait()
            await dc.stop()
        report.elapsed_s = time.monotonic() - started
        await tally(report, db_url, tg, dc)
    return report


async def tally(report: SoakReport, db_url: str, tg: FakeTelegram, dc: FakeDiscord) -> None:
    """Match messages at the fakes to outbox rows."""
    rows = await outbox_rows(db_url)
    report.decided = len(rows)
    status = Counter(d.status for d, _ in rows)
    report.sent_rows = status.pop("sent", 0)
    report.not_sent = dict(status)
    # Discord: by nonce.
    nonces = Counter(m.nonce for m in dc.messages if m.channel_id is not None)
    report.discord_messages = sum(nonces.values())
    for delivery, chat in rows:
        if chat.platform != "discord" or delivery.status != "sent":
            continue
        seen = nonces.pop(nonce_for(delivery.key), 0)
        report.delivered += min(seen, 1)
        report.duplicates += max(seen - 1, 0)
        report.missing += seen == 0
    report.duplicates += sum(nonces.values())  # messages of no sent row
    # Telegram: one send call per row and chat (alerts fit one captioned photo).
    calls = Counter(c.chat_id for c in tg.calls if c.method in TG_SEND)
    report.telegram_messages = sum(calls.values())
    per_chat = Counter(chat.chat_id for d, chat in rows
                       if chat.platform == "telegram" and d.status == "sent")
    for chat_id in set(calls) | set(per_chat):
        got, want = calls.get(chat_id, 0), per_chat.get(chat_id, 0)
        report.delivered += min(got, want)
        report.duplicates += max(got - want, 0)
        report.duplicates_telegram += max(got - want, 0)
        report.missing += max(want - got, 0)
    report.nonce_replays = dc.nonce_replays


def main(argv: list[str] | None = None) -> int:
    """`python -m tests.soak --minutes 30`."""
    import argparse

    parser = argparse.ArgumentParser(prog="python -m tests.soak", description=__doc__)
    parser.add_argument("--minutes", type=float, default=30.0)
    parser.add_argument("--subscriptions", type=int, default=1000)
    parser.add_argument("--fault-rate", type=float, default=0.03)
    parser.add_argument("--workdir", type=Path, default=ROOT / "out" / "soak")
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args(argv)
    config = SoakConfig(args.workdir, args.minutes, args.subscriptions,
                        fault_rate=args.fault_rate, seed=args.seed)
    report = asyncio.run(run_soak(config))
    print(report.text())
    (args.workdir / "report.json").write_text(json.dumps({
        "decided": report.decided, "sent": report.sent_rows, "duplicates": report.duplicates,
        "duplicates_telegram": report.duplicates_telegram, "nonce_replays": report.nonce_replays,
        "missing": report.missing, "in_flight_at_kill": report.in_flight_at_kill,
        "lag_p99_ms": report.lag_p99_ms(), "memory_mb": report.memory(),
        "faults": dict(report.faults), "problems": report.problems()}, indent=1))
    return 0 if not report.problems() else 1
