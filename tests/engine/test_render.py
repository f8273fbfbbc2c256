"""Heatmap images: format, size, legend and badge present, honest fixed scale, determinism."""

from __future__ import annotations

import io
import math
from dataclasses import replace
from datetime import UTC, datetime

import numpy as np
import pytest
from PIL import Image

from engine.mapping import build_map
from engine.numbers import nice_round
from engine.palette import DARK, LIGHT, viridis_lut
from engine.render import (
    BADGE,
    COLOURBAR,
    HEIGHT,
    OI_TOP_SHARE,
    PLOT,
    SIDE,
    WIDTH,
    colour_scale,
    render_heatmap,
    slice_sums,
)
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

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def ms(text: str) -> int:
    return int(datetime.fromisoformat(text).replace(tzinfo=UTC).timestamp() * 1000)


@pytest.fixture(scope="module")
def maps() -> dict[Window, LiquidationMap]:
    """Maps from the real model on 40 days of synthetic hourly bars (trend, dump, bounce)."""
    bars = trend_dump_bounce_bars(11)
    return {w: build_map("BTCUSDT", {Venue.BINANCE: bars}, w) for w in Window}


def hand_map(*, bands: bool = True, oi: float = 5e9, columns: int = 48,
             data_age_ms: int = MINUTE_MS) -> LiquidationMap:
    """A small hand-built map: one long pocket below, one short pocket above."""
    price, step = 50_000.0, 25.0
    lo = math.floor(price * 0.93 / step)
    grid = PriceGrid(low=(lo - 0.5) * step, step=step, count=int(price * 0.14 / step) + 1)
    c = grid.centers()
    long_usd = np.where(c < price, 2e6 + 4e7 * np.exp(-((c - 48_500) / 300) ** 2), 0.0)
    short_usd = np.where(c > price, 2e6 + 3e7 * np.exp(-((c - 51_800) / 250) ** 2), 0.0)
    as_of = ms("2026-03-04T12:00:00")
    times = as_of - Window.H24.ms + np.arange(1, columns + 1) * (Window.H24.ms // max(columns, 1))
    ramp = np.linspace(0.2, 1.0, columns)[:, None]
    path = price * (1 + 0.01 * np.sin(np.arange(columns) / 5))
    band_list = (
        Band(Side.LONG, 48_000, 49_000, 48_500, 6e8, -2.0, 1.0),
        Band(Side.SHORT, 51_400, 52_200, 51_800, 4e8, 2.8, 0.67),
    ) if bands else ()
    return LiquidationMap(
        symbol="BTCUSDT", as_of_ms=as_of, price=price, venues=(Venue.BINANCE, Venue.OKX),
        window=Window.H24, profile=Profile(grid, long_usd, short_usd),
        heatmap=Heatmap(grid=grid, times=times.astype(np.int64)[:columns],
                        long_usd=ramp * long_usd, short_usd=ramp * short_usd,
                        price_close=path, price_high=path * 1.003, price_low=path * 0.997),
        bands=band_list, context=MarketContext(open_interest_usd=oi), data_age_ms=data_age_ms,
    )


def decode(png: bytes) -> np.ndarray:
    img = Image.open(io.BytesIO(png))
    assert img.format == "PNG"
    assert img.size == (WIDTH, HEIGHT)
    return np.asarray(img.convert("RGB"), dtype=np.int16)


def region(pixels: np.ndarray, x0: int, y0: int, x1: int, y1: int) -> np.ndarray:
    return pixels[y0:y1, x0:x1].reshape(-1, 3)


def share_of_colour(pixels: np.ndarray, colour: tuple[int, int, int], tol: int = 12) -> float:
    return float(np.mean(np.all(np.abs(pixels - np.asarray(colour)) <= tol, axis=-1)))


@pytest.mark.parametrize("window", list(Window), ids=[w.value for w in Window])
def test_every_window_renders(maps: dict[Window, LiquidationMap], window: Window) -> None:
    png = render_heatmap(maps[window])
    assert png.startswith(PNG_MAGIC)
    assert len(png) < 1_000_000
    pixels = decode(png)
    assert pixels.std() > 20, "image is not blank"
    heat = region(pixels, PLOT.x0 + 5, PLOT.y0 + 5, PLOT.x1 - 5, PLOT.y1 - 5)
    assert len(np.unique(heat, axis=0)) > 50, "heatmap shows a range of colours"


def test_identical_inputs_give_identical_bytes(maps: dict[Window, LiquidationMap]) -> None:
    m = maps[Window.H24]
    first = render_heatmap(m)
    assert render_heatmap(m) == first
    copy = replace(m, heatmap=replace(m.heatmap, long_usd=m.heatmap.long_usd.copy()))
    assert render_heatmap(copy) == first
    assert render_heatmap(hand_map()) == render_heatmap(hand_map())


def test_badge_and_legend_are_drawn() -> None:
    pixels = decode(render_heatmap(hand_map()))
    bg = np.asarray(DARK.background)
    badge = region(pixels, BADGE.x0 + 4, BADGE.y0 + 4, BADGE.x1 - 4, BADGE.y1 - 4)
    assert np.mean(np.any(badge != bg, axis=1)) > 0.9, "badge box fills its area"
    assert badge.std() > 10, "badge carries text"
    assert share_of_colour(badge, DARK.warning, tol=40) > 0.002, "the word ESTIMATED stands out"
    bar = region(pixels, COLOURBAR.x0 + 1, COLOURBAR.y0 + 1, COLOURBAR.x1 - 1, COLOURBAR.y1 - 1)
    assert len(np.unique(bar, axis=0)) > 100, "colour bar is a gradient"
    first, last = viridis_lut(256)[0].astype(int), viridis_lut(256)[-1].astype(int)
    assert np.abs(bar[0] - first).max() < 12 and np.abs(bar[-1] - last).max() < 12
    ticks = region(pixels, COLOURBAR.x0 - 40, COLOURBAR.y1 + 3, COLOURBAR.x1,
                   COLOURBAR.y1 + 46)
    assert np.mean(np.any(ticks != bg, axis=1)) > 0.02, "USD tick labels and scale note"
    side = region(pixels, SIDE.x0 + 2, SIDE.y0 + 2, SIDE.x1 - 2, SIDE.y1 - 2)
    assert share_of_colour(side, DARK.long_fill) > 0.02, "cumulative longs drawn"
    assert share_of_colour(side, DARK.short_fill) > 0.02, "cumulative shorts drawn"
    plot = region(pixels, PLOT.x0, PLOT.y0, PLOT.x1, PLOT.y1)
    assert share_of_colour(plot, DARK.long, tol=20) > 0.001, "long pocket bracket and label"
    assert share_of_colour(plot, DARK.short, tol=20) > 0.001, "short pocket bracket and label"


def test_stale_data_changes_the_badge() -> None:
    fresh = decode(render_heatmap(hand_map()))
    stale = decode(render_heatmap(hand_map(data_age_ms=3 * HOUR_MS)))
    box = (BADGE.x0, BADGE.y0, BADGE.x1, BADGE.y1)
    warm_fresh = share_of_colour(region(fresh, *box), DARK.warning, tol=40)
    warm_stale = share_of_colour(region(stale, *box), DARK.warning, tol=40)
    assert warm_stale > warm_fresh * 2


def test_colour_scale_is_pinned_to_open_interest(maps: dict[Window, LiquidationMap]) -> None:
    scales = {w: colour_scale(m) for w, m in maps.items()}
    oi = maps[Window.H24].context.open_interest_usd
    for scale in scales.values():
        assert scale.top == nice_round(oi * OI_TOP_SHARE)
        assert scale.top / scale.bottom == pytest.approx(100.0)
        assert "open interest" in scale.basis
    assert len({(s.top, s.slice_width) for s in scales.values()}) == 1, "same scale per window"
    values = np.array([0.0, scale.bottom, scale.bottom * 1.01, scale.top, scale.top * 50])
    idx = scale.index(values)
    assert list(idx[:2]) == [0, 0] and idx[2] >= 1 and idx[3] == idx[4] == 255


def test_scale_is_not_relative_to_the_window_max() -> None:
    m = hand_map()
    louder = replace(m, heatmap=replace(m.heatmap, long_usd=m.heatmap.long_usd * 10,
                                        short_usd=m.heatmap.short_usd * 10))
    a = region(decode(render_heatmap(m)), PLOT.x0 + 5, PLOT.y0 + 5, PLOT.x0 + 300, PLOT.y1 - 5)
    b = region(decode(render_heatmap(louder)), PLOT.x0 + 5, PLOT.y0 + 5, PLOT.x0 + 300,
               PLOT.y1 - 5)
    yellow = viridis_lut(256)[-1].astype(int)
    assert share_of_colour(b, tuple(yellow), tol=40) > share_of_colour(a, tuple(yellow), tol=40)


def test_scale_without_open_interest_says_so() -> None:
    scale = colour_scale(hand_map(oi=float("nan")))
    assert "OI unknown" in scale.basis
    assert math.isfinite(scale.top) and scale.top > 0
    empty = hand_map(oi=float("nan"))
    zero = replace(empty, profile=replace(empty.profile, long_usd=empty.profile.long_usd * 0,
                                          short_usd=empty.profile.short_usd * 0))
    assert colour_scale(zero).basis == "fixed absolute scale"


def test_slice_sums() -> None:
    usd = np.array([[1.0, 2.0, 3.0, 4.0, 5.0]])
    np.testing.assert_allclose(slice_sums(usd, 1), usd)
    np.testing.assert_allclose(slice_sums(usd, 3), [[3.0, 6.0, 9.0, 12.0, 9.0]])
    np.testing.assert_allclose(slice_sums(usd, 4), [[6.0, 10.0, 14.0, 12.0, 9.0]])
    assert slice_sums(np.ones((7, 40)), 4).shape == (7, 40)


@pytest.mark.parametrize("case", ["no_bands", "no_columns", "one_column", "nan_path",
                                  "light", "stale", "path_outside_grid"])
def test_edge_cases_render(case: str) -> None:
    theme = "dark"
    m = hand_map()
    if case == "no_bands":
        m = hand_map(bands=False)
    elif case == "no_columns":
        m = hand_map(columns=0)
    elif case == "one_column":
        m = hand_map(columns=1)
    elif case == "nan_path":
        close = m.heatmap.price_close.copy()
        close[5:9] = np.nan
        m = replace(m, heatmap=replace(m.heatmap, price_close=close))
    elif case == "light":
        theme = "light"
    elif case == "stale":
        m = hand_map(data_age_ms=2 * 24 * HOUR_MS)
    elif case == "path_outside_grid":
        m = replace(m, heatmap=replace(m.heatmap, price_high=m.heatmap.price_high * 1.2))
    pixels = decode(render_heatmap(m, theme=theme))
    assert pixels.std() > 20
    if theme == "light":
        assert np.all(pixels[2, 2] == np.asarray(LIGHT.background))


def test_unknown_theme_is_refused() -> None:
    with pytest.raises(ValueError, match="dark"):
        render_heatmap(hand_map(), theme="sepia")


def test_viridis_lut() -> None:
    lut = viridis_lut(256)
    assert lut.shape == (256, 3) and lut.dtype == np.uint8
    assert tuple(lut[0]) == (68, 1, 84) and tuple(lut[-1]) == (253, 231, 37)
    luminance = lut @ np.array([0.2126, 0.7152, 0.0722])
    assert np.all(np.diff(luminance) > -0.5), "perceptually ordered: brightness rises"


def test_sizes_above_open_interest_are_flagged_on_the_image() -> None:
    note = (COLOURBAR.x0 - 60, COLOURBAR.y1 + 28, COLOURBAR.x1, COLOURBAR.y1 + 44)
    fine = region(decode(render_heatmap(hand_map())), *note)
    inflated = region(decode(render_heatmap(hand_map(oi=5e8))), *note)
    assert share_of_colour(fine, DARK.warning, tol=40) == 0
    assert share_of_colour(inflated, DARK.warning, tol=40) > 0.01
