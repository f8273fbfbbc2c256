"""Composition root: one process, one event loop, every part of the service wired once.

`run_service` (behind `liqradar run`) takes the database's service lock (standing by while
another service holds it), upgrades the database, opens one aiohttp session, builds
the market source (live venues + liquidation websockets, or a replay), the map service, the
alert pipeline, the outbox worker with its notifiers (Telegram and/or Discord when their
tokens are set, else the console), the scheduler and the web site, then waits for SIGINT or
SIGTERM and shuts down in reverse order, letting in-flight deliveries finish.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
from sqlalchemy import event
from sqlmodel import col, select

from bot.alert_messages import payload_for
from bot.alerting import AlertPipeline
from bot.delivery import OutboxWorker
from bot.logs import configure_logging
from bot.mapservice import MapService
from bot.metrics import Metrics, watch_loop_lag
from bot.notifier import ConsoleNotifier, Notifier
from bot.scheduler import ServiceScheduler
from bot.send_journal import SendJournal
from bot.service import Service
from bot.services import Services
from bot.settings import Settings
from bot.sources import MarketSource
from bot.standby import stand_by, watch_lock
from bot.web import Site, start_site
from engine.types import DAY_MS, LiquidationMap
from market.symbols import resolve
from storage import repo
from storage.db import SessionFactory, make_engine, session_factory, upgrade
from storage.instance_lock import InstanceLock, instance_lock
from storage.models import Platform, Subscription

logger = logging.getLogger(__name__)

CONSOLE_CHAT = "stdout"
# Maps are built in worker threads; a short GIL switch interval keeps the loop responsive.
SWITCH_INTERVAL_S = 0.001
SQLITE_BUSY_TIMEOUT_MS = 30_000


# ---------------------------------------------------------------------- wiring


def _service_busy_timeout(dbapi_connection: Any, _record: Any) -> None:
    """Let SQLite writers wait longer than storage's default: a burst of alert commits for
    thousands of subscriptions holds the write lock in many short transactions, and SQLite's
    polling busy handler can starve a delivery's `mark_sent` past 5 s (seen in the soak)."""
    cursor = dbapi_connection.cursor()
    cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
    cursor.close()


def _build_source(settings: Settings, http: aiohttp.ClientSession, replay: Path | None,
                  speed: float) -> tuple[MarketSource, Callable[[], float], Any]:
    """The market source, its clock (epoch seconds) and the replay source if any."""
    if replay is not None:
        from bot.replay_source import replay_source

        source = replay_source(replay, speed, warmup_ms=settings.replay_warmup_minutes * 60_000,
                               anchor=settings.replay_anchor, loops=settings.replay_loops,
                               keep_ms=settings.history_days * DAY_MS)
        logger.info("replaying %s at %gx from %s", replay, speed,
                    source.clock.now().strftime("%Y-%m-%d %H:%M UTC"))
        return source, source.clock.time, source
    from bot.feeds import PrintBuffer, live_source

    return live_source(http, settings, PrintBuffer()), time.time, None


async def _ensure_console_watch(sessions: SessionFactory, symbols: list[str],
                                sensitivity: str) -> None:
    """With no chat platform, the console 'chat' watches every tracked symbol (demo alerts)."""
    async with sessions.begin() as db:
        chat = await repo.upsert_chat(db, Platform.CONSOLE.value, CONSOLE_CHAT, title="console")
        have = {s.symbol for s in (await db.exec(
            select(Subscription).where(col(Subscription.chat_pk) == chat.id))).all()}
        for symbol in symbols:
            if symbol not in have:
                await repo.subscribe(db, chat.id or 0, symbol, sensitivity=sensitivity)


def _brief_text(m: LiquidationMap, now_ms: int) -> str:
    """The brief as plain text for the web page (it marks stale data itself)."""
    from engine.brief import build_brief

    return build_brief(m, now_ms=now_ms).to_text()


def _describe(metrics: Metrics) -> None:
    for name, kind, text in (
        ("liqradar_refresh_seconds", "summary", "time to fetch data, build the map and alert"),
        ("liqradar_refreshes_total", "counter", "successful refreshes"),
        ("liqradar_refresh_failures_total", "counter", "refreshes that kept the previous map"),
        ("liqradar_alerts_decided_total", "counter", "alert decisions by kind and reason"),
        ("liqradar_outbox_rows", "gauge", "outbox rows by status (sent, failed, pending...)"),
        ("liqradar_data_age_seconds", "gauge", "age of the newest closed bar per symbol"),
        ("liqradar_subscriptions_active", "gauge", "active subscriptions in the alert book"),
        ("liqradar_price", "gauge", "last price per symbol"),
        ("liqradar_bands", "gauge", "estimated liquidation bands on the current map"),
        ("liqradar_event_loop_lag_seconds", "histogram", "how late the loop wakes a timer"),
        ("liqradar_event_loop_lag_p99_seconds", "gauge", "p99 event-loop lag, last 5 minutes"),
        ("liqradar_event_loop_lag_max_seconds", "gauge", "worst event-loop lag, last 5 minutes"),
        ("process_resident_memory_bytes", "gauge", "resident memory of the process"),
    ):
        metrics.describe(name, kind, text)


async def serve(settings: Settings, *, replay: Path | None = None, speed: float = 60.0,
                run_for: float | None = None, install_signals: bool = True,
                on_ready: Callable[[Service], None] | None = None) -> int:
    """Run the whole service until a signal, `run_for` seconds, or `Service.stop` is set."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    sys.setswitchinterval(SWITCH_INTERVAL_S)
    if install_signals:
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
    lock = instance_lock(settings.database_url)
    try:
        # a standby given `run_for` gives up waiting then; once active, `_run` counts it anew
        give_up = None if run_for is None else loop.call_later(run_for, stop.set)
        if not await stand_by(lock, stop, settings.standby_retry_s):
            return 0
        if give_up is not None:
            give_up.cancel()
        return await _serve_locked(settings, lock, stop, replay, speed, run_for, on_ready)
    finally:
        await lock.release()
        if install_signals:
            for sig in (signal.SIGINT, signal.SIGTERM):
                loop.remove_signal_handler(sig)


async def _serve_locked(settings: Settings, lock: InstanceLock, stop: asyncio.Event,
                        replay: Path | None, speed: float, run_for: float | None,
                        on_ready: Callable[[Service], None] | None) -> int:
    """The service proper, once this process holds the database's lock; 1 if it lost it."""
    await upgrade(settings.database_url)
    engine = make_engine(settings.database_url)
    if engine.dialect.name == "sqlite":
        event.listen(engine.sync_engine, "connect", _service_busy_timeout)
    sessions = session_factory(engine)
    metrics = Metrics()
    _describe(metrics)
    timeout = aiohttp.ClientTimeout(total=settings.http_timeout_s * 3)
    lost = asyncio.Event()
    try:
        async with aiohttp.ClientSession(timeout=timeout) as http:
            service = await _assemble(settings, sessions, metrics, stop, http, replay, speed)
            service.spawn(watch_lock(lock, stop, lost, settings.standby_retry_s), "lock-watch")
            await _run(service, run_for, on_ready)
    finally:
        await engine.dispose()
    return 1 if lost.is_set() else 0


async def _assemble(settings: Settings, sessions: SessionFactory, metrics: Metrics,
                    stop: asyncio.Event, http: aiohttp.ClientSession, replay: Path | None,
                    speed: float) -> Service:
    """Build every part (nothing is started yet)."""
    from bot.alert_messages import map_images

    source, clock, replayed = _build_source(settings, http, replay, speed)
    refresh_s = float(settings.refresh_seconds)
    stale_after_ms = settings.stale_after_s * 1000
    if replayed is not None:  # a wall second is `speed` virtual seconds
        refresh_s = max(refresh_s / speed, settings.replay_min_refresh_s)
        stale_after_ms = max(stale_after_ms, int(5 * refresh_s * speed * 1000))
    maps = MapService(source, stale_after_ms=stale_after_ms, clock=clock,
                      wide_source=getattr(source, "wide", None))
    services = Services(maps, sessions, settings,
                        clock=lambda: datetime.fromtimestamp(clock(), UTC))
    notifiers: list[Notifier] = []
    telegram = discord_bot = None
    if settings.telegram_token is not None:
        from bot.telegram_bot import TelegramBot

        telegram = TelegramBot(services)
        notifiers.append(telegram.notifier)
    if settings.discord_token is not None:
        from bot.discord_bot import DiscordBot, DiscordNotifier, configure_endpoints

        configure_endpoints(settings.discord_api_url, settings.discord_gateway_url)
        discord_bot = DiscordBot(services, sync_guild=settings.discord_sync_guild_id,
                                 guild_ready_timeout=settings.discord_guild_ready_timeout_s)
        notifiers.append(DiscordNotifier(discord_bot))
    if not notifiers:
        notifiers.append(ConsoleNotifier())
    journal_path = settings.journal_path()
    journal = None if journal_path is None else SendJournal(journal_path)
    worker = OutboxWorker(sessions, notifiers, image_provider=map_images(maps),
                          send_timeout=settings.delivery_timeout_s,
                          max_attempts=settings.delivery_max_attempts, journal=journal)
    pipeline = AlertPipeline(sessions, payload_for, worker.wake, metrics)
    scheduler = ServiceScheduler(refresh_s)
    service = Service(settings, sessions, maps, services, pipeline, worker, scheduler, metrics,
                      stop, replay=replayed, telegram=telegram, discord=discord_bot, http=http)
    scheduler.bind(service.refresh, None if replayed is not None else service.daily_brief)
    return service


async def _run_discord(client: Any, token: str) -> None:
    """Run the Discord client; a rejected token turns Discord off instead of the service."""
    import discord

    try:
        await client.start(token)
    except discord.LoginFailure:
        logger.error("discord: the token was rejected; Discord is off")
    except (discord.HTTPException, discord.GatewayNotFound, aiohttp.ClientError,
            OSError) as exc:
        logger.error("discord stopped: %s", exc)


async def _keep_starting_telegram(s: Service) -> None:
    """Start the Telegram bot; while the Bot API is unreachable, retry with backoff (alerts
    wait in the outbox meanwhile) instead of failing the whole service."""
    delay = 5.0
    while not s.stop.is_set():
        try:
            await s.telegram.start()
            return
        except Exception as exc:  # an outage at the edge: logged, retried
            logger.warning("telegram: start failed (%s); retrying in %.0f s", exc, delay)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(s.stop.wait(), delay)
        delay = min(delay * 2, 300.0)


async def _run(s: Service, run_for: float | None,
               on_ready: Callable[[Service], None] | None) -> None:
    """Start everything, wait for the stop signal, shut down in reverse order."""
    settings = s.settings
    s.spawn(watch_loop_lag(s.metrics, s.stop), "loop-lag")
    if s.telegram is None and s.discord is None:
        symbols = s.replay.symbols if s.replay is not None else \
            [resolve(x).base for x in settings.symbols]
        await _ensure_console_watch(s.sessions, symbols, settings.default_sensitivity)
    await s.worker.start()
    site = Site(s.maps, s.symbols, s.metrics, s.sessions, _brief_text,
                s.scheduler.refresh_seconds)
    runner, s.web_url = await start_site(site, settings.web_host, settings.web_port)
    print(f"liqradar: web page at {s.web_url}", flush=True)
    logger.info("web page at %s", s.web_url)
    try:
        if s.telegram is not None:
            s.spawn(_keep_starting_telegram(s), "telegram-start")
        if s.discord is not None and settings.discord_token is not None:
            s.spawn(_run_discord(s.discord, settings.discord_token.get_secret_value()),
                    "discord")
        s.scheduler.start()
        await s.reconcile()
        s.scheduler.every("reconcile", settings.reconcile_seconds, s.reconcile)
        if s.replay is not None:
            s.scheduler.every("replay-tick", s.scheduler.refresh_seconds, s.replay_tick)
        if run_for is not None:
            asyncio.get_running_loop().call_later(run_for, s.stop.set)
        if on_ready is not None:
            on_ready(s)
        await s.stop.wait()
    finally:
        await _shutdown(s, runner)


async def _shutdown(s: Service, runner: Any) -> None:
    """Stop jobs, let refreshes and deliveries in flight finish, close every connection."""
    timeout = s.settings.shutdown_timeout_s
    logger.info("shutting down")
    s.stop.set()
    s.scheduler.pause()  # no new runs; the scheduler would cancel the ones in flight
    if s.refreshing:
        await asyncio.wait(set(s.refreshing), timeout=timeout)
    s.scheduler.shutdown()
    await s.worker.stop(timeout)
    if s.discord is not None:
        with contextlib.suppress(Exception):
            await s.discord.close()
    if s.telegram is not None:
        try:
            await s.telegram.stop()
        except Exception:
            logger.exception("telegram did not stop cleanly")
    for task in list(s.tasks):
        task.cancel()
    await asyncio.gather(*s.tasks, return_exceptions=True)
    await runner.cleanup()
    logger.info("stopped")


def run_service(settings: Settings, replay: Path | None = None, speed: float = 60.0,
                run_for: float | None = None) -> int:
    """`liqradar run`: configure logging and run the service until SIGINT/SIGTERM."""
    secrets = [t.get_secret_value() for t in (settings.telegram_token, settings.discord_token)
               if t is not None]
    configure_logging(settings.log_level, settings.log_json, secrets)
    if speed <= 0:
        raise ValueError("--speed must be positive")
    if replay is None or "database_url" in settings.model_fields_set:
        return asyncio.run(serve(settings, replay=replay, speed=speed, run_for=run_for))
    # A replay replays the same alerts (same keys) every time: unless a database was chosen,
    # use a scratch one so each demo starts fresh and the real database is never touched.
    with tempfile.TemporaryDirectory(prefix="liqradar-replay-") as scratch:
        url = f"sqlite+aiosqlite:///{Path(scratch) / 'replay.db'}"
        logger.info("replay database: %s (set LIQRADAR_DATABASE_URL to keep one)", url)
        scratch_settings = settings.model_copy(update={"database_url": url})
        return asyncio.run(serve(scratch_settings, replay=replay, speed=speed, run_for=run_for))
