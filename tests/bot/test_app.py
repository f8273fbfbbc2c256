"""The whole service in replay mode: Telegram and Discord fakes, console fallback, SIGTERM."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import signal
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import discord
import pytest
import yarl

from bot.app import serve
from bot.service import Service
from bot.settings import Settings
from storage import repo
from storage.db import make_engine, session_factory, upgrade
from storage.models import Delivery
from tests.bot.fake_discord import CHANNEL_ID, FakeDiscord
from tests.bot.fake_telegram import FakeTelegram
from tests.bot.fake_telegram import serve as serve_telegram

ROOT = Path(__file__).resolve().parents[2]
DEMO = ROOT / "data" / "demo"
TG_CHAT = "1001"


@pytest.fixture
async def fake_dc(monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[FakeDiscord]:
    """Fake Discord; the class attributes the service sets are restored afterwards."""
    fake = await FakeDiscord().start()
    monkeypatch.setattr(discord.http.Route, "BASE", discord.http.Route.BASE)
    monkeypatch.setattr(discord.gateway.DiscordWebSocket, "DEFAULT_GATEWAY",
                        yarl.URL(fake.gateway_url))
    yield fake
    await fake.stop()


def service_settings(tmp_path: Path, **extra: object) -> Settings:
    """Fast replay settings on a private SQLite file and an ephemeral web port."""
    values: dict[str, object] = {
        "database_url": f"sqlite+aiosqlite:///{tmp_path / 'service.db'}", "web_port": 0,
        "symbols": ["BTC"], "reconcile_seconds": 0.5, "replay_min_refresh_s": 0.3,
        "discord_guild_ready_timeout_s": 0.05, "default_sensitivity": "aggressive",
    }
    values.update(extra)
    return Settings(_env_file=None, **values)  # type: ignore[arg-type]


@contextlib.asynccontextmanager
async def killed_on_exit(proc: asyncio.subprocess.Process) -> AsyncIterator[None]:
    """A child that outlives a failed test is killed, so nothing hangs on to its pipes."""
    try:
        yield
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()


async def subscribe(url: str, platform: str, chat_id: str, daily: str | None = None) -> None:
    """A chat watching BTC with aggressive alerts (what /watch BTC aggressive stores), and
    optionally a daily brief at `daily` UTC."""
    await upgrade(url)
    engine = make_engine(url)
    async with session_factory(engine).begin() as db:
        chat = await repo.upsert_chat(db, platform, chat_id, title=f"{platform} chat")
        await repo.subscribe(db, chat.id or 0, "BTC", sensitivity="aggressive")
        if daily is not None:
            await repo.set_daily_brief(db, chat.id or 0, "BTC", daily, "UTC")
    await engine.dispose()


async def start(settings: Settings, speed: float) -> tuple[asyncio.Task[int], Service]:
    """Run `serve` in a task; return it with the service once everything is up."""
    ready: asyncio.Future[Service] = asyncio.get_running_loop().create_future()
    task = asyncio.create_task(serve(settings, replay=DEMO, speed=speed, install_signals=False,
                                     on_ready=ready.set_result))
    done, _ = await asyncio.wait({task, ready}, timeout=30, return_when=asyncio.FIRST_COMPLETED)
    if task in done:
        task.result()
    return task, await ready


async def test_replay_alerts_reach_telegram_and_discord(tmp_path: Path, fake_dc: FakeDiscord,
                                                        ) -> None:
    tg = FakeTelegram()
    async with serve_telegram(tg) as tg_url:
        settings = service_settings(
            tmp_path, telegram_token=tg.token, telegram_api_url=f"{tg_url}/bot",
            telegram_file_url=f"{tg_url}/file/bot", discord_token="fake-token",
            discord_api_url=fake_dc.api_url, discord_gateway_url=fake_dc.gateway_url)
        await subscribe(settings.database_url, "telegram", TG_CHAT, daily="02:00")
        await subscribe(settings.database_url, "discord", str(CHANNEL_ID))
        task, service = await start(settings, speed=1200)
        try:
            await fake_dc.wait_ready()
            await fake_dc.wait_messages(1, within=60)
            await tg.wait_for("sendPhoto", chat_id=TG_CHAT, within=60)
            for _ in range(120):  # the virtual clock passes 02:00 UTC a few seconds in
                captions = [c.fields.get("caption", "") + c.fields.get("text", "")
                            for c in tg.calls if c.chat_id == TG_CHAT]
                if any("liquidation brief" in c for c in captions):
                    break
                await asyncio.sleep(0.5)
            else:
                raise AssertionError("the daily brief never arrived")
            token = await fake_dc.slash("map", symbol="BTC")
            (reply,) = await fake_dc.replies(token, within=30)
            assert reply.files and reply.files[0][1].startswith(b"\x89PNG")
            async with aiohttp.ClientSession() as http:
                async with http.get(service.web_url + "healthz") as response:
                    health = json.loads(await response.read())
                async with http.get(service.web_url + "metrics") as response:
                    metrics = await response.text()
            assert health["symbols"]["BTC"]["status"] == "ok"
            assert 'reason="fired_first"' in metrics
        finally:
            service.stop.set()
            assert await asyncio.wait_for(task, 60) == 0
    alert = next(m for m in fake_dc.messages if m.channel_id == CHANNEL_ID)
    assert "liquidation band" in alert.embeds[0]["title"] and alert.files
    assert fake_dc.duplicates() == 0
    engine = make_engine(settings.database_url)
    async with session_factory(engine)() as db:
        rows = (await db.exec(Delivery.__table__.select())).all()  # type: ignore[attr-defined]
    await engine.dispose()
    assert rows and all(r.status in ("sent", "pending") for r in rows)


async def test_console_fallback_without_chat_platforms(tmp_path: Path,
                                                       capsys: pytest.CaptureFixture[str]) -> None:
    settings = service_settings(tmp_path)
    code = await serve(settings, replay=DEMO, speed=1200, run_for=6, install_signals=False)
    out = capsys.readouterr().out
    assert code == 0
    assert "liqradar: web page at http://127.0.0.1:" in out
    assert "--- console:stdout [approach]" in out and "liquidation band" in out


async def test_sigterm_stops_the_demo_cleanly(tmp_path: Path) -> None:
    env = {**os.environ, "LIQRADAR_DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'd.db'}",
           "LIQRADAR_WEB_PORT": "0", "PYTHONPATH": str(ROOT)}
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bot.cli", "run", "--replay", str(DEMO), "--speed", "600",
        cwd=tmp_path, env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    assert proc.stdout is not None and proc.stderr is not None
    async with killed_on_exit(proc):
        line = await asyncio.wait_for(proc.stdout.readline(), 30)
        assert line.startswith(b"liqradar: web page at http://127.0.0.1:")
        await asyncio.sleep(2)
        proc.send_signal(signal.SIGTERM)
        _, err = await asyncio.wait_for(proc.communicate(), 30)
    assert proc.returncode == 0, err.decode()[-2000:]
    assert b"bot.app: stopped" in err and b"Traceback" not in err


def test_env_example_documents_every_setting(tmp_path: Path,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    text = (ROOT / ".env.example").read_text(encoding="utf-8")
    documented = {m.group(1) for m in re.finditer(r"^#? ?(LIQRADAR_\w+)=", text, re.M)}
    fields = {f"LIQRADAR_{name.upper()}" for name in Settings.model_fields}
    assert documented == fields
    (tmp_path / ".env").write_text(text, encoding="utf-8")
    monkeypatch.chdir(tmp_path)
    loaded = Settings()
    assert loaded.telegram_token is None and loaded.discord_token is None
    assert loaded == Settings(_env_file=None)  # type: ignore[call-arg]


async def test_telegram_outage_at_start_does_not_stop_discord(tmp_path: Path,
                                                              fake_dc: FakeDiscord) -> None:
    settings = service_settings(
        tmp_path, telegram_token="123456:TEST-TOKEN", telegram_api_url="http://127.0.0.1:9/bot",
        telegram_file_url="http://127.0.0.1:9/file/bot", discord_token="fake-token",
        discord_api_url=fake_dc.api_url, discord_gateway_url=fake_dc.gateway_url)
    await subscribe(settings.database_url, "discord", str(CHANNEL_ID))
    task, service = await start(settings, speed=1200)
    try:
        await fake_dc.wait_messages(1, within=60)
    finally:
        service.stop.set()
        assert await asyncio.wait_for(task, 60) == 0


async def test_demo_twice_uses_a_fresh_scratch_database(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LIQRADAR_")}
    env.update({"LIQRADAR_WEB_PORT": "0", "PYTHONPATH": str(ROOT)})
    for _ in range(2):
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "bot.cli", "run", "--replay", str(DEMO), "--speed", "1200",
            "--for", "6", cwd=tmp_path, env=env, stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.DEVNULL)
        async with killed_on_exit(proc):
            out, _ = await asyncio.wait_for(proc.communicate(), 60)
        assert proc.returncode == 0
        assert b"--- console:stdout [approach]" in out
    assert not [p for p in os.listdir(tmp_path) if p.endswith(".db")]
