"""Briefs: regime table, trader rounding, golden texts for hand-built maps, hygiene checks.

Regenerate the golden texts after an intended wording change with
`LIQRADAR_UPDATE_GOLDEN=1 pytest tests/engine/test_brief.py` and review the diff.
"""

from __future__ import annotations

import dataclasses
import math
import os
import re
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest

from engine.brief import Brief, build_brief, nearest_pocket, size_to_oi
from engine.numbers import (
    format_duration,
    format_level,
    format_pct,
    format_price,
    format_range,
    format_rate,
    format_usd,
    nice_floor,
    nice_round,
)
from engine.regime import RegimeKind, RegimeParams, classify_regime, key_pocket, pull
from engine.types import (
    HOUR_MS,
    MINUTE_MS,
    Band,
    Heatmap,
    LiquidationMap,
    MarketContext,
    PriceGrid,
    Profile,
    Side,
    Venue,
    Window,
)
from tests.engine.synthetic import trend_dump_bounce_bars

GOLDEN = Path(__file__).parent / "golden"
NAN = float("nan")


def ms(text: str) -> int:
    """Epoch ms of an ISO time in UTC."""
    return int(datetime.fromisoformat(text).replace(tzinfo=UTC).timestamp() * 1000)


def band(side: Side, low: float, high: float, usd: float, price: float,
         strength: float = 1.0) -> Band:
    """A band with its distance computed the way engine.bands does (nearer edge, signed %)."""
    edge = high if side is Side.LONG else low
    return Band(side=side, low=low, high=high, peak=(low + high) / 2, usd=usd,
                distance_pct=(edge - price) / price * 100.0, strength=strength)


def make_map(
    symbol: str,
    price: float,
    step: float,
    spec: list[tuple[Side, float, float, float]],
    *,
    span: float = 0.08,
    background: float = 0.0,
    context: MarketContext | None = None,
    venues: tuple[Venue, ...] = (Venue.BINANCE,),
    window: Window = Window.H24,
    as_of: str = "2026-03-04T14:30:00",
    data_age_ms: int = 2 * MINUTE_MS,
    swept: list[tuple[Side, float, float, float]] | None = None,
    columns: int = 24,
) -> LiquidationMap:
    """A map built by hand: each band's USD spread evenly over its bins, plus `background` USD
    per bin on each side, a gently moving price path and a heatmap that grows to the profile."""
    lo_bin = math.floor(price * (1 - span) / step)
    hi_bin = math.ceil(price * (1 + span) / step)
    grid = PriceGrid(low=(lo_bin - 0.5) * step, step=step, count=hi_bin - lo_bin + 1)
    centers = grid.centers()
    long_usd = np.where(centers < price, background, 0.0)
    short_usd = np.where(centers > price, background, 0.0)
    for side, low, high, usd in spec:
        inside = (centers >= low) & (centers <= high)
        target = long_usd if side is Side.LONG else short_usd
        target[inside] += usd / max(int(inside.sum()), 1)
    top = max((u for *_, u in spec), default=1.0)
    bands = tuple(band(s, lo, hi, u, price, u / top) for s, lo, hi, u in spec)
    as_of_ms = ms(as_of)
    times = as_of_ms - window.ms + (np.arange(1, columns + 1) * (window.ms // columns))
    ramp = np.linspace(0.3, 1.0, columns)[:, None]
    wiggle = price * (1 + 0.004 * np.sin(np.arange(columns) / 3.0))
    heatmap = Heatmap(grid=grid, times=times.astype(np.int64), long_usd=ramp * long_usd,
                      short_usd=ramp * short_usd, price_close=wiggle,
                      price_high=wiggle * 1.002, price_low=wiggle * 0.998)
    swept_bands = tuple(band(s, lo, hi, u, price) for s, lo, hi, u in (swept or []))
    return LiquidationMap(
        symbol=symbol, as_of_ms=as_of_ms, price=price, venues=venues, window=window,
        profile=Profile(grid, long_usd, short_usd), heatmap=heatmap, bands=bands,
        context=context or MarketContext(), data_age_ms=data_age_ms, swept=swept_bands,
    )


L, S = Side.LONG, Side.SHORT


def btc_between() -> LiquidationMap:
    return make_map(
        "BTCUSDT", 90_150.0, 50.0,
        [(L, 88_012.0, 88_987.0, 1.2e9), (L, 85_520.0, 86_410.0, 2.1e9),
         (S, 90_610.0, 90_790.0, 6.0e7), (S, 91_210.0, 92_090.0, 9.5e8),
         (S, 95_020.0, 95_980.0, 4.5e8)],
        background=2e6,
        context=MarketContext(funding_rate=0.00012, open_interest_usd=9.84e9,
                              open_interest_change_pct_24h=2.4, long_short_ratio=1.35,
                              price_change_pct_24h=1.1),
        venues=(Venue.BINANCE, Venue.BYBIT, Venue.OKX),
    )


def eth_magnet_up_stale() -> LiquidationMap:
    return make_map(
        "ETHUSDT", 3_512.4, 1.0,
        [(S, 3_561.0, 3_589.0, 4.2e8), (L, 3_300.0, 3_340.0, 3.8e8)],
        background=1e5, window=Window.D3, as_of="2026-03-07T22:10:00",
        context=MarketContext(funding_rate=-0.00008),
        data_age_ms=3 * HOUR_MS + 5 * MINUTE_MS,
    )


def alt_swept_subdollar() -> LiquidationMap:
    return make_map(
        "ADAUSDT", 0.3512, 0.0001,
        [(L, 0.3420, 0.3455, 1.2e7), (S, 0.3611, 0.3650, 9.5e6)],
        swept=[(L, 0.3530, 0.3561, 1.8e7)], window=Window.D7, as_of="2026-03-05T03:00:00",
        venues=(Venue.BYBIT,), span=0.15,
    )


def tiny_one_sided() -> LiquidationMap:
    return make_map(
        "1000SATSUSDT", 0.00001234, 5e-9,
        [(L, 0.00001180, 0.00001195, 2.3e6), (L, 0.00001120, 0.00001131, 6.1e6)],
        background=2e3, window=Window.H12, as_of="2026-03-05T18:45:00",
        context=MarketContext(funding_rate=0.0005, open_interest_usd=4.5e7,
                              open_interest_change_pct_24h=-6.5, long_short_ratio=0.82,
                              price_change_pct_24h=3.2),
        venues=(Venue.BINANCE, Venue.BYBIT), span=0.05,
    )


def no_bands() -> LiquidationMap:
    return make_map("BTCUSDT", 64_000.0, 25.0, [], window=Window.D30,
                    as_of="2026-03-08T09:00:00",
                    context=MarketContext(funding_rate=NAN, open_interest_usd=NAN))


FIXTURES = {
    "btc_between": btc_between,
    "eth_magnet_up_stale": eth_magnet_up_stale,
    "alt_swept_subdollar": alt_swept_subdollar,
    "tiny_one_sided": tiny_one_sided,
    "no_bands": no_bands,
}


# ---------------------------------------------------------------- regime classifier table

P = 100.0


def b(side: Side, distance: float, usd: float) -> Band:
    """A 1%-wide band whose nearer edge is `distance` % from a price of 100."""
    if side is Side.LONG:
        return band(side, P * (1 + (distance - 1) / 100), P * (1 + distance / 100), usd, P)
    return band(side, P * (1 + distance / 100), P * (1 + (distance + 1) / 100), usd, P)


REGIME_TABLE = [
    # (name, bands, swept, kind, lean)
    ("nothing", [], [], RegimeKind.NO_POCKETS, None),
    ("balanced", [b(L, -1.0, 100), b(S, 1.0, 100)], [], RegimeKind.BETWEEN_POCKETS, None),
    ("just under ratio 2", [b(L, -1.0, 190), b(S, 1.0, 100)], [],
     RegimeKind.BETWEEN_POCKETS, None),
    ("longs twice the size", [b(L, -1.0, 200), b(S, 1.0, 100)], [],
     RegimeKind.MAGNET_DOWN, L),
    ("shorts much nearer", [b(L, -3.0, 100), b(S, 0.5, 100)], [], RegimeKind.MAGNET_UP, S),
    ("nearer but smaller balances", [b(L, -0.5, 50), b(S, 1.0, 100)], [],
     RegimeKind.BETWEEN_POCKETS, None),
    ("only longs", [b(L, -2.0, 10)], [], RegimeKind.MAGNET_DOWN, L),
    ("only shorts", [b(S, 4.0, 10)], [], RegimeKind.MAGNET_UP, S),
    ("touching pocket uses distance floor", [b(L, 0.0, 100), b(S, 0.05, 100)], [],
     RegimeKind.BETWEEN_POCKETS, None),
    ("far big pocket beats near small", [b(L, -0.5, 10), b(L, -2.0, 400), b(S, 1.0, 100)], [],
     RegimeKind.MAGNET_DOWN, L),
    ("swept wins over geometry", [b(L, -1.0, 100), b(S, 1.0, 100)], [b(L, 0.5, 60)],
     RegimeKind.JUST_SWEPT, None),
    ("tiny sweep ignored", [b(L, -1.0, 100), b(S, 1.0, 100)], [b(L, 0.5, 10)],
     RegimeKind.BETWEEN_POCKETS, None),
    ("sweep with no live pockets", [], [b(S, -0.4, 5)], RegimeKind.JUST_SWEPT, None),
    ("swept keeps the lean", [b(L, -1.0, 300), b(S, 1.0, 100)], [b(S, -0.5, 200)],
     RegimeKind.JUST_SWEPT, L),
]


@pytest.mark.parametrize(("bands", "swept", "kind", "lean"),
                         [row[1:] for row in REGIME_TABLE], ids=[r[0] for r in REGIME_TABLE])
def test_regime_table(bands: list[Band], swept: list[Band], kind: RegimeKind,
                      lean: Side | None) -> None:
    regime = classify_regime(bands, swept)
    assert regime.kind is kind
    assert regime.lean is lean


def test_regime_reports_the_pockets_it_used() -> None:
    near_small, far_big = b(L, -0.5, 10), b(L, -2.0, 400)
    short = b(S, 1.0, 100)
    regime = classify_regime([near_small, far_big, short])
    assert regime.below is far_big and regime.above is short
    assert regime.pull_ratio == pytest.approx((400 / 2.0) / (100 / 1.0))
    assert regime.swept is None


def test_regime_params() -> None:
    bands = [b(L, -1.0, 150), b(S, 1.0, 100)]
    assert classify_regime(bands).kind is RegimeKind.BETWEEN_POCKETS
    assert classify_regime(bands, params=RegimeParams(magnet_ratio=1.4)).kind is \
        RegimeKind.MAGNET_DOWN
    assert pull(b(L, 0.0, 100)) == pytest.approx(1000.0)
    assert key_pocket([b(S, 1.0, 1)], Side.LONG) is None
    with pytest.raises(ValueError):
        RegimeParams(magnet_ratio=0.5)
    with pytest.raises(ValueError):
        RegimeParams(min_distance_pct=0)


def test_nearest_pocket_skips_crumbs() -> None:
    crumb, real = b(S, 0.3, 5), b(S, 1.5, 100)
    assert nearest_pocket((crumb, real), Side.SHORT) is real
    assert nearest_pocket((crumb, real), Side.LONG) is None
    assert nearest_pocket((crumb, real), Side.SHORT, min_share=0.0) is crumb


# ---------------------------------------------------------------- trader rounding

@pytest.mark.parametrize(("low", "high", "ref", "text"), [
    (88_012, 88_987, None, "88k–89k"),
    (67_588, 69_062, 70_324, "67.6k–69.1k"),
    (69_388, 70_162, 70_324, "69,400–70,150"),
    (115_890, 116_120, None, "115,880–116,120"),
    (3_420.4, 3_480.2, 3_500, "3,420–3,480"),
    (0.12341, 0.12512, None, "0.1234–0.1251"),
    (0.3420, 0.3455, 0.3512, "0.3420–0.3455"),
    (0.00001234, 0.00001251, None, "0.00001234–0.00001251"),
    (0.00001180, 0.00001195, 0.00001234, "0.00001180–0.00001195"),
    (90_100, 90_100, None, "90,100"),
])
def test_format_range(low: float, high: float, ref: float | None, text: str) -> None:
    assert format_range(low, high, ref) == text


@pytest.mark.parametrize(("price", "text"), [
    (116_000.4, "116,000"), (90_123.4, "90,123"), (3_512.44, "3,512"), (245.31, "245.3"),
    (3.45121, "3.451"), (0.35121, "0.3512"), (0.0000123456, "0.00001235"),
])
def test_format_price(price: float, text: str) -> None:
    assert format_price(price) == text


@pytest.mark.parametrize(("usd", "text"), [
    (1.2e9, "$1.2B"), (1.0e9, "$1B"), (12.34e9, "$12B"), (4.5e8, "$450M"), (999.96e6, "$1B"),
    (9.96e6, "$10M"), (3_400, "$3.4k"), (950, "$950"), (1.234, "$1.23"), (0.01234, "$0.0123"),
    (0, "$0"), (-4.5e7, "-$45M"),
])
def test_format_usd(usd: float, text: str) -> None:
    assert format_usd(usd) == text


def test_other_formats() -> None:
    assert format_pct(0.23) == "0.2%"
    assert format_pct(0.04) == "0.04%"
    assert format_pct(12.4, signed=True) == "+12%"
    assert format_pct(-1.83) == "-1.8%"
    assert format_pct(0.001, signed=True) == "0%"
    assert format_rate(0.0001) == "+0.0100%"
    assert format_rate(-0.000025) == "-0.0025%"
    assert format_level(70_162, 50) == "70,150"
    assert format_level(0.35121, 0.0005) == "0.3510"
    assert format_duration(30_000) == "<1 min"
    assert format_duration(125 * MINUTE_MS) == "2 h 05 min"
    assert format_duration(4 * 24 * HOUR_MS + 3 * HOUR_MS) == "4 d 3 h"
    assert nice_floor(7.4) == 5 and nice_round(74) == 100 and nice_round(0.00021) == 0.0002
    for bad in (NAN, math.inf):
        with pytest.raises(ValueError):
            format_usd(bad)
        with pytest.raises(ValueError):
            format_range(bad, 1.0)


# ---------------------------------------------------------------- golden texts

@pytest.mark.parametrize("name", sorted(FIXTURES))
def test_golden_brief(name: str) -> None:
    text = build_brief(FIXTURES[name]()).to_text()
    path = GOLDEN / f"brief_{name}.txt"
    if os.environ.get("LIQRADAR_UPDATE_GOLDEN"):
        path.write_text(text, encoding="utf-8")
    assert text == path.read_text(encoding="utf-8")


@pytest.mark.parametrize("name", sorted(FIXTURES))
def test_brief_hygiene(name: str) -> None:
    brief = build_brief(FIXTURES[name]())
    text = brief.to_text()
    assert not re.search(r"\b(nan|inf|infinity|none)\b", text, re.IGNORECASE)
    assert not re.search(r"[*_`<>#\[\]]", text), "no Markdown or HTML in a neutral brief"
    assert len(brief.sections) == 5
    for heading, lines in brief.sections:
        assert heading and lines, f"empty section {heading!r}"
        assert all(line.strip() for line in lines)
    assert brief.bottom_line.strip()
    assert "estimate" in text.lower()
    assert "estimates" in brief.bottom_line.lower()


def _numbers_in(text: str) -> list[float]:
    """Price-like numbers written in the text: 88k, 67.6k, 70,150 (not %, $ or times)."""
    values = []
    for match in re.finditer(r"(?<![\w$.+-])(\d{1,3}(?:,\d{3})+|\d+(?:\.\d+)?k)(?![\w%:])",
                             text):
        token = match.group(1)
        values.append(float(token[:-1]) * 1000 if token.endswith("k")
                      else float(token.replace(",", "")))
    return values


def test_btc_levels_come_from_the_model() -> None:
    m = btc_between()
    text = build_brief(m).to_text()
    grid = m.profile.grid
    known = [m.price, grid.low, grid.low + grid.count * grid.step]
    for x in (*m.bands, *m.swept):
        known += [x.low, x.high]
    found = [v for v in _numbers_in(text) if v > 1000]
    assert found, "the brief names levels"
    for value in found:
        assert min(abs(value - k) / k for k in known) < 0.0015, f"{value} is not a model level"
    assert "88k–89k" in text and "91.2k–92.1k" in text and "$1.2B" in text


def test_rounding_for_small_coins() -> None:
    alt = build_brief(alt_swept_subdollar()).to_text()
    assert "0.3420–0.3455" in alt and "0.3611–0.3650" in alt and "$12M" in alt
    tiny = build_brief(tiny_one_sided()).to_text()
    assert "0.00001180–0.00001195" in tiny and "0.00001234" in tiny
    assert "e-0" not in tiny


def test_stale_data_is_said_prominently() -> None:
    m = btc_between()
    fresh = build_brief(m, now_ms=m.as_of_ms + 5 * MINUTE_MS)
    assert fresh.warning is None and "STALE" not in fresh.to_text()
    stale = build_brief(m, now_ms=m.as_of_ms + 2 * HOUR_MS)
    assert stale.warning is not None and stale.warning.startswith("STALE DATA")
    lines = stale.to_text().splitlines()
    assert lines[3].startswith("STALE DATA")
    assert "STALE" in stale.bottom_line
    assert "2 h" in stale.warning


def test_brief_is_frozen_and_deterministic() -> None:
    one, two = build_brief(btc_between()), build_brief(btc_between())
    assert one == two and one.to_text() == two.to_text()
    with pytest.raises(dataclasses.FrozenInstanceError):
        one.bottom_line = "x"  # type: ignore[misc]
    assert isinstance(one, Brief)
    assert one.sections[0].heading == one.sections[0][0] == "One-minute map"


def test_context_is_omitted_when_unknown() -> None:
    context = dict(build_brief(alt_swept_subdollar()).sections)["Context that changes the odds"]
    assert not any(line.startswith(("Funding", "Open interest", "Long/short"))
                   for line in context)
    assert any(line.startswith("Session") for line in context)
    full = dict(build_brief(btc_between()).sections)["Context that changes the odds"]
    assert [line.split(" ")[0] for line in full] == [
        "Funding", "Open", "Long/short", "Venues:", "Session:"]


def test_no_order_book_claims() -> None:
    for factory in FIXTURES.values():
        assert "order book" not in build_brief(factory()).to_text().lower()
        assert "depth" not in build_brief(factory()).to_text().lower()


def test_brief_on_modelled_maps(modelled_maps: dict[Window, LiquidationMap]) -> None:
    for window, m in modelled_maps.items():
        brief = build_brief(m)
        text = brief.to_text()
        assert f"{window.value} map" in brief.title
        assert not re.search(r"\b(nan|inf)\b", text, re.IGNORECASE)
        assert all(lines for _, lines in brief.sections)


@pytest.fixture(scope="module")
def modelled_maps() -> dict[Window, LiquidationMap]:
    """Maps from the real model on synthetic hourly bars (a trend, a dump and a bounce)."""
    from engine.mapping import build_map
    bars = trend_dump_bounce_bars(7)
    return {w: build_map("BTCUSDT", {Venue.BINANCE: bars}, w, columns=96) for w in Window}


def test_sizes_above_open_interest_are_flagged() -> None:
    calibrated = btc_between()
    assert size_to_oi(calibrated) < 1.0
    assert "relative weight" not in build_brief(calibrated).to_text()
    inflated = replace(calibrated, context=replace(calibrated.context, open_interest_usd=1.5e9))
    assert size_to_oi(inflated) > 2.0
    risks = dict(build_brief(inflated).sections)["Risks and caveats"]
    assert any("times the open interest" in line and "relative weight" in line
               for line in risks)
    assert math.isnan(size_to_oi(no_bands()))
