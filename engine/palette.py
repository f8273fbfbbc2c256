"""Colours of the images: a viridis lookup table computed in code and the dark and light themes."""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import numpy.typing as npt

RGB = tuple[int, int, int]

# viridis sampled at 0.0, 0.1, ..., 1.0 (van der Walt & Smith, the matplotlib default map).
# Linear interpolation between these eleven stops stays within a few levels of the original.
_VIRIDIS_STOPS: tuple[RGB, ...] = (
    (68, 1, 84), (72, 36, 117), (65, 68, 135), (53, 95, 141), (42, 120, 142), (33, 145, 140),
    (34, 168, 132), (68, 191, 112), (122, 209, 81), (189, 223, 38), (253, 231, 37),
)


@lru_cache(maxsize=4)
def viridis_lut(size: int = 256) -> npt.NDArray[np.uint8]:
    """`size` × 3 RGB viridis colours, dark purple (low) to yellow (high)."""
    stops = np.asarray(_VIRIDIS_STOPS, dtype=np.float64)
    at = np.linspace(0.0, 1.0, stops.shape[0])
    x = np.linspace(0.0, 1.0, size)
    lut = np.stack([np.interp(x, at, stops[:, c]) for c in range(3)], axis=1)
    out = np.asarray(np.rint(lut), dtype=np.uint8)
    out.setflags(write=False)
    return out


@dataclass(frozen=True, slots=True)
class Theme:
    """Colours of one image theme."""

    name: str
    background: RGB
    panel: RGB
    empty: RGB
    """Heatmap cells below the bottom of the colour scale."""
    grid: RGB
    text: RGB
    muted: RGB
    price: RGB
    price_halo: RGB
    wick: RGB
    long: RGB
    """Long pockets (below the price): warm."""
    short: RGB
    """Short pockets (above the price): cool."""
    long_fill: RGB
    short_fill: RGB
    label_box: RGB
    badge: RGB
    badge_text: RGB
    warning: RGB


DARK = Theme(
    name="dark",
    background=(14, 15, 20),
    panel=(22, 23, 31),
    empty=(26, 12, 38),
    grid=(52, 54, 66),
    text=(232, 233, 238),
    muted=(150, 153, 168),
    price=(255, 255, 255),
    price_halo=(10, 10, 14),
    wick=(200, 200, 210),
    long=(255, 99, 110),
    short=(72, 190, 255),
    long_fill=(122, 46, 58),
    short_fill=(30, 86, 124),
    label_box=(12, 12, 18),
    badge=(30, 32, 42),
    badge_text=(214, 216, 226),
    warning=(255, 170, 40),
)

LIGHT = Theme(
    name="light",
    background=(250, 250, 252),
    panel=(240, 241, 245),
    empty=(38, 16, 54),
    grid=(205, 207, 216),
    text=(24, 26, 34),
    muted=(100, 104, 120),
    price=(255, 255, 255),
    price_halo=(10, 10, 14),
    wick=(200, 200, 210),
    long=(214, 40, 60),
    short=(0, 120, 200),
    long_fill=(246, 190, 196),
    short_fill=(186, 220, 246),
    label_box=(255, 255, 255),
    badge=(228, 230, 238),
    badge_text=(34, 36, 46),
    warning=(200, 110, 0),
)

THEMES = {t.name: t for t in (DARK, LIGHT)}


def theme_named(name: str) -> Theme:
    """The theme called `name`; ValueError naming the choices otherwise."""
    try:
        return THEMES[name.strip().lower()]
    except KeyError:
        raise ValueError(f"unknown theme {name!r}: use one of {', '.join(THEMES)}") from None
