"""Fired alert decision -> the neutral outbox message (plain text; transports add markup), and
the image keys those messages (and daily briefs) carry, with the provider that renders them."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any

from bot.mapservice import MapService
from bot.notifier import Button, ImageRef, OutgoingMessage, to_payload
from engine.alerts import AlertKind, Decision
from engine.types import Band, Side, Window

IMAGE_BUCKET_S = 300
ALERT_WINDOW = Window.H24


def image_key(symbol: str, window: Window, at: datetime) -> str:
    """Image key shared by alerts and daily briefs: one image per symbol, window and 5-minute
    bucket."""
    return f"{symbol}:{window.value}:{int(at.timestamp()) // IMAGE_BUCKET_S}"


def map_images(maps: MapService) -> Callable[[str], Awaitable[bytes]]:
    """Image provider for the outbox worker: `BTC:24h:<bucket>` -> the current PNG."""
    async def provide(key: str) -> bytes:
        symbol, window, _ = key.split(":")
        return await maps.get_png(symbol, Window.parse(window))
    return provide


def _price(value: float) -> str:
    """Price with sensible precision for its size."""
    if value >= 1000:
        return f"{value:,.0f}"
    if value >= 1:
        return f"{value:,.2f}"
    return f"{value:.4g}"


def _usd(value: float) -> str:
    """USD amount in K/M/B."""
    for unit, size in (("B", 1e9), ("M", 1e6), ("K", 1e3)):
        if abs(value) >= size:
            return f"${value / size:,.1f}{unit}"
    return f"${value:,.0f}"


def _band_text(band: Band) -> str:
    """`long band 95,000-97,000 (est. $12.0M)`."""
    return f"{band.side.value} band {_price(band.low)}-{_price(band.high)} (est. {_usd(band.usd)})"


_TITLES = {
    AlertKind.APPROACH: "{symbol} is nearing a {side} liquidation band",
    AlertKind.ENTER: "{symbol} entered a {side} liquidation band",
    AlertKind.CROSS: "{symbol} traded through a {side} liquidation band",
    AlertKind.SWEPT: "{symbol} swept a {side} liquidation band",
}


def alert_message(decision: Decision) -> OutgoingMessage:
    """Plain-language message for a fired decision (no markup: adapters format)."""
    symbol = decision.symbol
    buttons = (Button("Open map", action=f"map {symbol} {ALERT_WINDOW.value}"),)
    if decision.kind is AlertKind.QUIET_SUMMARY:
        lines = [f"{e.at:%H:%M} UTC {e.kind.value}: {e.side.value} band "
                 f"{_price(e.low)}-{_price(e.high)}, price {_price(e.price)}"
                 for e in decision.held]
        title = f"{symbol}: {len(decision.held)} alert(s) during your quiet hours"
        return OutgoingMessage(title, tuple(lines), buttons=buttons, kind=decision.kind.value,
                               key=decision.key)
    band = decision.band
    if band is None:
        raise ValueError(f"decision {decision.key} has no band")
    title = _TITLES[decision.kind].format(symbol=symbol, side=band.side.value)
    sections = [f"Price {_price(decision.price)}, {_band_text(band)}."]
    if decision.kind is AlertKind.APPROACH:
        edge = band.high if band.side is Side.LONG else band.low
        distance = abs(decision.price - edge) / decision.price * 100
        sections[0] = (f"Price {_price(decision.price)} is {distance:.2f}% from the "
                       f"{_band_text(band)}.")
    if decision.kind is AlertKind.SWEPT:
        if decision.realized_usd is not None:
            sections.append(f"Realized liquidations printed in the band: "
                            f"{_usd(decision.realized_usd)}.")
        nxt = decision.next_band
        sections.append(f"Next {band.side.value} pocket: {_band_text(nxt)}." if nxt is not None
                        else f"No further {band.side.value} pocket on the map.")
    image = ImageRef(image_key(symbol, ALERT_WINDOW, decision.at), symbol, ALERT_WINDOW.value)
    return OutgoingMessage(title, tuple(sections), image=image, buttons=buttons,
                           kind=decision.kind.value, key=decision.key)


def payload_for(decision: Decision) -> dict[str, Any]:
    """Outbox payload of a fired decision (pass to `storage.alert_store.record_decisions`)."""
    return to_payload(alert_message(decision))
