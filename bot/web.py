"""A small aiohttp site: /healthz, /metrics, /map/{SYMBOL}.png and a self-refreshing symbol page."""

from __future__ import annotations

import html
import json
import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from aiohttp import web
from sqlalchemy import func
from sqlmodel import col, select

from bot.mapservice import MapService
from bot.metrics import LabelKey, Metrics
from engine.palette import DARK
from engine.types import LiquidationMap, Window
from market.errors import MarketDataError, UnknownSymbolError
from market.symbols import resolve
from storage import outbox
from storage.db import SessionFactory
from storage.models import Delivery

logger = logging.getLogger(__name__)

BriefText = Callable[[LiquidationMap, int], str]


@dataclass(slots=True)
class Site:
    """What the pages read: maps, tracked symbols, metrics and the database."""

    maps: MapService
    symbols: Callable[[], list[str]]
    metrics: Metrics
    sessions: SessionFactory
    brief_text: BriefText
    refresh_seconds: float = 60.0

    def app(self) -> web.Application:
        """The aiohttp application."""
        app = web.Application()
        app.router.add_get("/", self.index)
        app.router.add_get("/s/{symbol}", self.page)
        app.router.add_get("/map/{symbol}.png", self.png)
        app.router.add_get("/healthz", self.healthz)
        app.router.add_get("/metrics", self.prometheus)
        return app

    # ------------------------------------------------------------------ data

    def _symbol(self, request: web.Request) -> str:
        try:
            return resolve(request.match_info["symbol"]).base
        except UnknownSymbolError as exc:
            raise web.HTTPNotFound(text=str(exc)) from None

    async def _map(self, symbol: str) -> LiquidationMap:
        if symbol not in self.symbols() and symbol not in self.maps.snapshots:
            raise web.HTTPNotFound(text=f"{symbol} is not tracked")
        try:
            return await self.maps.get_map(symbol, Window.H24)
        except (MarketDataError, ValueError) as exc:
            raise web.HTTPServiceUnavailable(text=f"no map for {symbol} yet: {exc}") from None

    def _stale(self, symbol: str) -> bool:
        snap = self.maps.snapshots.get(symbol)
        return snap is None or self.maps.is_stale(snap)

    async def _deliveries(self) -> tuple[dict[str, int], datetime | None]:
        async with self.sessions() as session:
            counts = await outbox.depth(session)
            last = (await session.exec(select(func.max(col(Delivery.sent_at))))).one()
        return counts, last

    # ------------------------------------------------------------------ routes

    async def healthz(self, request: web.Request) -> web.Response:
        """Data freshness per symbol, outbox counts and the last delivery, as JSON."""
        now = self.maps.now_ms()
        symbols: dict[str, Any] = {}
        for symbol in self.symbols():
            snap = self.maps.snapshots.get(symbol)
            if snap is None:
                symbols[symbol] = {"status": "waiting"}
                continue
            age = (now - snap.last_close_ms) / 1000.0
            symbols[symbol] = {
                "status": "stale" if self.maps.is_stale(snap) else "ok",
                "data_age_s": round(age, 1),
                "venues": sorted(v.value for v in snap.bars),
                "failed_venues": {v.value: why for v, why in snap.failed.items()},
            }
        counts, last = await self._deliveries()
        fresh = [s for s in symbols.values() if s.get("status") == "ok"]
        status = "ok" if fresh or not symbols else "degraded"
        body = {"status": status, "symbols": symbols, "outbox": counts,
                "last_delivery": None if last is None else last.astimezone(UTC).isoformat()}
        return web.json_response(body, status=200 if status == "ok" else 503,
                                 dumps=lambda o: json.dumps(o, indent=1))

    async def prometheus(self, request: web.Request) -> web.Response:
        """Prometheus text exposition."""
        counts, _ = await self._deliveries()
        extra: dict[tuple[str, LabelKey], float] = {
            ("liqradar_outbox_rows", (("status", status),)): float(n)
            for status, n in counts.items()}
        now = self.maps.now_ms()
        for symbol, snap in self.maps.snapshots.items():
            extra[("liqradar_data_age_seconds", (("symbol", symbol),))] = \
                (now - snap.last_close_ms) / 1000.0
        text = self.metrics.render(extra)
        return web.Response(text=text, content_type="text/plain",
                            headers={"X-Content-Type-Options": "nosniff"}, charset="utf-8")

    async def png(self, request: web.Request) -> web.Response:
        """The current 24h heatmap image of a symbol."""
        symbol = self._symbol(request)
        await self._map(symbol)
        data = await self.maps.get_png(symbol, Window.H24)
        return web.Response(body=data, content_type="image/png",
                            headers={"Cache-Control": "no-cache"})

    async def index(self, request: web.Request) -> web.Response:
        """The first tracked symbol's page (or a waiting page)."""
        symbols = self.symbols()
        if not symbols:
            return self._html("liqradar", "<p>No symbol is tracked yet.</p>", symbols, None)
        return await self._page(symbols[0])

    async def page(self, request: web.Request) -> web.Response:
        """One symbol's map image, bands and brief; reloads itself."""
        return await self._page(self._symbol(request))

    async def _page(self, symbol: str) -> web.Response:
        try:
            m = await self._map(symbol)
        except web.HTTPServiceUnavailable as exc:
            body = f"<p>Waiting for data: {html.escape(exc.text or '')}</p>"
            return self._html(f"{symbol} · liqradar", body, self.symbols(), symbol)
        body = render_page(m, self._stale(symbol), self.brief_text(m, self.maps.now_ms()))
        return self._html(f"{symbol} · liqradar", body, self.symbols(), symbol)

    def _html(self, title: str, body: str, symbols: list[str], current: str | None) -> web.Response:
        nav = " ".join(
            f'<a href="/s/{s}"{" class=cur" if s == current else ""}>{s}</a>' for s in symbols)
        refresh = max(5, min(60, round(self.refresh_seconds)))
        text = PAGE.format(title=html.escape(title), refresh=refresh, nav=nav, body=body,
                           long=_css(DARK.long), short=_css(DARK.short))
        return web.Response(text=text, content_type="text/html", charset="utf-8")


def _css(rgb: tuple[int, int, int]) -> str:
    """An RGB triple as a CSS colour."""
    return "#{:02x}{:02x}{:02x}".format(*rgb)


# Sides are coloured as in the heatmap image (engine.palette.DARK), so a table row and its
# pocket on the picture match.
PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta http-equiv="refresh" content="{refresh}">
<title>{title}</title>
<style>
body{{font-family:system-ui,sans-serif;background:#0f1117;color:#e6e6e6;margin:0 auto;
max-width:1240px;padding:1rem}}
a{{color:#8ab4f8}} nav a{{margin-right:.8rem}} nav a.cur{{font-weight:bold}}
img{{max-width:100%;height:auto;border:1px solid #333}}
table{{border-collapse:collapse}} td,th{{padding:.2rem .8rem;text-align:right}}
.long{{color:{long}}} .short{{color:{short}}} .stale{{color:#fdd663;font-weight:bold}}
pre{{white-space:pre-wrap;background:#1a1d26;padding:.8rem}}
footer{{color:#888;font-size:.85rem;margin-top:1rem}}
</style></head><body>
<nav>{nav}</nav>
{body}
<footer>Estimated from public derivatives data; not financial advice. This page reloads
itself every {refresh} s.</footer>
</body></html>
"""


def _price(value: float) -> str:
    return f"{value:,.0f}" if value >= 1000 else f"{value:,.4g}"


def render_page(m: LiquidationMap, stale: bool, brief: str) -> str:
    """The body of a symbol's page (escaped HTML)."""
    as_of = datetime.fromtimestamp(m.as_of_ms / 1000, UTC).strftime("%Y-%m-%d %H:%M UTC")
    venues = ", ".join(v.value for v in m.venues)
    stale_note = (f' <span class="stale" id="stale">stale: data is '
                  f"{m.data_age_ms / 60000:.0f} min old</span>" if stale else "")
    rows = "".join(
        f'<tr class="{b.side.value}"><td>{b.side.value}</td><td>{_price(b.low)}</td>'
        f"<td>{_price(b.high)}</td><td>{b.usd / 1e6:,.1f}M</td><td>{b.distance_pct:+.2f}%</td>"
        f"<td>{b.strength:.2f}</td></tr>" for b in m.bands)
    if not rows:
        rows = '<tr><td colspan="6">no pockets in the displayed range</td></tr>'
    sym = html.escape(m.symbol)
    return (
        f"<h1>{sym} estimated liquidation map</h1>"
        f'<p id="meta">price {_price(m.price)} · as of {as_of} · {m.window.value} · '
        f"venues {html.escape(venues)}{stale_note}</p>"
        f'<img id="map" src="/map/{sym}.png?v={m.as_of_ms}" width="1200" '
        f'alt="{sym} liquidation heatmap" onload="this.dataset.loaded=this.naturalWidth">'
        "<h2>Bands</h2><table id=\"bands\"><tr><th>side</th><th>low</th><th>high</th>"
        f"<th>est. USD</th><th>distance</th><th>strength</th></tr>{rows}</table>"
        f'<h2>Brief</h2><pre id="brief">{html.escape(brief)}</pre>'
    )


async def start_site(site: Site, host: str, port: int) -> tuple[web.AppRunner, str]:
    """Serve `site`; returns the runner (for cleanup) and the base URL."""
    runner = web.AppRunner(site.app(), handle_signals=False, access_log=None)
    await runner.setup()
    tcp = web.TCPSite(runner, host, port)
    await tcp.start()
    bound_host, bound_port = runner.addresses[0][:2]
    shown = "127.0.0.1" if bound_host in ("0.0.0.0", "::") else bound_host
    return runner, f"http://{shown}:{bound_port}/"


