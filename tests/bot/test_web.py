"""The web site on 127.0.0.1: health, metrics, the PNG route and the self-refreshing page."""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import shutil
import signal
import tempfile
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest

from bot.mapservice import MapService
from bot.metrics import Metrics
from bot.web import Site, start_site
from engine.brief import build_brief
from engine.types import LiquidationMap
from storage.db import SessionFactory

CHROMIUM_FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                  "--no-first-run", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync", "--hide-scrollbars")


def _brief(m: LiquidationMap, now_ms: int) -> str:
    return build_brief(m, now_ms=now_ms).to_text()


@pytest.fixture
async def site_url(map_service: MapService, sessions: SessionFactory) -> AsyncIterator[str]:
    """The site for BTC (from the test CSV) on an ephemeral loopback port."""
    metrics = Metrics()
    metrics.inc("liqradar_alerts_decided_total", kind="approach", reason="fired_first")
    metrics.observe("liqradar_refresh_seconds", 0.25, symbol="BTC")
    for lag in (0.001, 0.002, 0.05):
        metrics.record_lag(lag)
    await map_service.refresh("BTC")
    site = Site(map_service, lambda: ["BTC"], metrics, sessions, _brief, refresh_seconds=30)
    runner, url = await start_site(site, "127.0.0.1", 0)
    yield url
    await runner.cleanup()


async def _get(url: str) -> tuple[int, str, bytes]:
    async with aiohttp.ClientSession() as http, http.get(url) as response:
        return response.status, response.content_type, await response.read()


async def test_healthz_reports_freshness_and_outbox(site_url: str) -> None:
    status, kind, body = await _get(site_url + "healthz")
    assert kind == "application/json"
    import json

    data = json.loads(body)
    assert set(data["symbols"]) == {"BTC"}
    assert data["symbols"]["BTC"]["status"] == "ok"
    assert data["symbols"]["BTC"]["venues"] == ["binance"]
    assert data["outbox"]["pending"] == 0 and data["last_delivery"] is None
    assert status == 200


async def test_metrics_are_prometheus_text(site_url: str) -> None:
    status, kind, body = await _get(site_url + "metrics")
    text = body.decode()
    assert status == 200 and kind == "text/plain"
    assert 'liqradar_alerts_decided_total{kind="approach",reason="fired_first"} 1' in text
    assert 'liqradar_refresh_seconds_count{symbol="BTC"} 1' in text
    assert 'liqradar_outbox_rows{status="pending"} 0' in text
    assert re.search(r'liqradar_data_age_seconds\{symbol="BTC"\} [\d.]+', text)
    assert 'liqradar_event_loop_lag_seconds_bucket{le="0.05"} 3' in text
    assert 'liqradar_event_loop_lag_seconds_bucket{le="0.02"} 2' in text
    assert "liqradar_event_loop_lag_p99_seconds 0.05" in text
    assert "# TYPE liqradar_alerts_decided_total counter" in text
    for line in text.splitlines():  # every sample line is `name{labels} number`
        if not line.startswith("#"):
            assert re.fullmatch(r"[a-z_0-9]+(\{[^}]*\})? -?[\d.e+-]+", line), line


async def test_png_and_page(site_url: str) -> None:
    status, kind, png = await _get(site_url + "map/btc.png")
    assert status == 200 and kind == "image/png" and png.startswith(b"\x89PNG")
    status, kind, body = await _get(site_url + "s/BTC")
    page = body.decode()
    assert status == 200 and kind == "text/html"
    assert 'http-equiv="refresh"' in page and 'id="map"' in page and "/map/BTC.png?v=" in page
    assert "liquidation brief" in page and 'id="bands"' in page
    assert ".long{color:#ff636e}" in page and ".short{color:#48beff}" in page  # as in the image
    assert (await _get(site_url))[0] == 200


async def test_unknown_symbols_are_404(site_url: str) -> None:
    assert (await _get(site_url + "s/DOGE"))[0] == 404
    assert (await _get(site_url + "map/NOT-A-SYMBOL!.png"))[0] == 404


def _chromium() -> str | None:
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found is None and not os.environ.get("CI"):
        pytest.skip("Debian's chromium is not installed (apt-get install chromium); "
                    "CI installs it and runs this test")
    assert found is not None, "CI must install chromium (apt-get install -y chromium)"
    return found


async def _run_chromium(*args: str) -> str:
    exe = _chromium()
    assert exe is not None
    with tempfile.TemporaryDirectory() as profile:
        proc = await asyncio.create_subprocess_exec(
            exe, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", *args,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.DEVNULL,
            start_new_session=True)
        try:
            out, _ = await asyncio.wait_for(proc.communicate(), 90)
        finally:  # chromium's helpers hold the pipe open: end the whole process group
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
    assert proc.returncode == 0
    return out.decode(errors="replace")


@pytest.mark.slow
async def test_headless_chromium_shows_image_and_brief(site_url: str, tmp_path: Path) -> None:
    dom = await _run_chromium("--virtual-time-budget=4000", "--dump-dom", site_url + "s/BTC")
    assert "liquidation brief" in dom and "Bottom line" in dom
    loaded = re.search(r'<img id="map"[^>]*data-loaded="(\d+)"', dom)
    assert loaded is not None, "the heatmap image did not load in the browser"
    assert int(loaded.group(1)) > 100  # natural width in pixels
    shot = tmp_path / "page.png"
    await _run_chromium("--window-size=1280,1600", f"--screenshot={shot}", site_url + "s/BTC")
    assert shot.read_bytes().startswith(b"\x89PNG") and shot.stat().st_size > 20_000
