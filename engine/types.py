"""Domain values shared by every layer: bars, liquidation events, bands and maps."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]

MINUTE_MS = 60_000
HOUR_MS = 3_600_000
DAY_MS = 86_400_000


class Side(StrEnum):
    """Side of a leveraged position: a long is liquidated by a fall, a short by a rise."""

    LONG = "long"
    SHORT = "short"


class Venue(StrEnum):
    """Exchanges whose public data liqradar reads."""

    BINANCE = "binance"
    BYBIT = "bybit"
    OKX = "okx"


class Window(StrEnum):
    """Heatmap windows offered to users."""

    H12 = "12h"
    H24 = "24h"
    D3 = "3d"
    D7 = "7d"
    D30 = "30d"

    @property
    def ms(self) -> int:
        """Length of the window in milliseconds."""
        return _WINDOW_MS[self]

    @classmethod
    def parse(cls, text: str) -> Window:
        """Parse `24h`, `3D`, `7d` ...; raise ValueError naming the choices."""
        key = text.strip().lower()
        for window in cls:
            if window.value == key:
                return window
        choices = ", ".join(w.value for w in cls)
        raise ValueError(f"unknown window {text!r}: use one of {choices}")


_WINDOW_MS = {
    Window.H12: 12 * HOUR_MS,
    Window.H24: 24 * HOUR_MS,
    Window.D3: 3 * DAY_MS,
    Window.D7: 7 * DAY_MS,
    Window.D30: 30 * DAY_MS,
}


@dataclass(frozen=True, slots=True, eq=False)
class Bars:
    """Columnar OHLC bars of one venue and symbol, oldest first, with optional context columns.

    Optional columns hold NaN where the value is unknown. `open_interest_usd` is already
    forward-filled by the loaders. `time` is the bar's open time in epoch milliseconds.
    """

    time: IntArray
    open: FloatArray
    high: FloatArray
    low: FloatArray
    close: FloatArray
    volume: FloatArray
    taker_buy_volume: FloatArray
    open_interest_usd: FloatArray
    funding_rate: FloatArray
    long_short_ratio: FloatArray
    long_liquidations_usd: FloatArray
    short_liquidations_usd: FloatArray
    interval_ms: int

    def __len__(self) -> int:
        return int(self.time.shape[0])

    @classmethod
    def from_columns(
        cls,
        time: npt.ArrayLike,
        open: npt.ArrayLike,
        high: npt.ArrayLike,
        low: npt.ArrayLike,
        close: npt.ArrayLike,
        *,
        interval_ms: int | None = None,
        volume: npt.ArrayLike | None = None,
        taker_buy_volume: npt.ArrayLike | None = None,
        open_interest_usd: npt.ArrayLike | None = None,
        funding_rate: npt.ArrayLike | None = None,
        long_short_ratio: npt.ArrayLike | None = None,
        long_liquidations_usd: npt.ArrayLike | None = None,
        short_liquidations_usd: npt.ArrayLike | None = None,
    ) -> Bars:
        """Build validated bars; missing optional columns become NaN."""
        t = np.asarray(time, dtype=np.int64)
        n = t.shape[0]

        def col(values: npt.ArrayLike | None) -> FloatArray:
            if values is None:
                return np.full(n, np.nan)
            arr = np.asarray(values, dtype=np.float64)
            if arr.shape != (n,):
                raise ValueError(f"column has {arr.shape} values, expected ({n},)")
            return arr

        if interval_ms is None:
            interval_ms = int(np.median(np.diff(t))) if n > 1 else MINUTE_MS
        bars = cls(
            time=t,
            open=col(open),
            high=col(high),
            low=col(low),
            close=col(close),
            volume=col(volume),
            taker_buy_volume=col(taker_buy_volume),
            open_interest_usd=col(open_interest_usd),
            funding_rate=col(funding_rate),
            long_short_ratio=col(long_short_ratio),
            long_liquidations_usd=col(long_liquidations_usd),
            short_liquidations_usd=col(short_liquidations_usd),
            interval_ms=interval_ms,
        )
        bars.validate()
        return bars

    def validate(self) -> None:
        """Raise ValueError when prices are not finite and positive, OHLC is inconsistent or time
        does not increase."""
        n = len(self)
        if n and np.any(np.diff(self.time) <= 0):
            raise ValueError("bar times must strictly increase")
        prices = np.stack([self.open, self.high, self.low, self.close])
        if n and (not np.all(np.isfinite(prices)) or np.any(prices <= 0)):
            raise ValueError("bar prices must be finite and positive")
        if n and (np.any(self.low > np.minimum(self.open, self.close) * (1 + 1e-9))
                  or np.any(self.high < np.maximum(self.open, self.close) * (1 - 1e-9))):
            raise ValueError("bar low/high must enclose open and close")
        for name in ("volume", "taker_buy_volume", "open_interest_usd",
                     "long_liquidations_usd", "short_liquidations_usd"):
            arr = getattr(self, name)
            if np.any(arr < 0):
                raise ValueError(f"{name} must not be negative")

    def slice(self, start: int, stop: int) -> Bars:
        """Bars [start, stop) as a new object sharing no mutable state."""
        return Bars(
            time=self.time[start:stop].copy(),
            open=self.open[start:stop].copy(),
            high=self.high[start:stop].copy(),
            low=self.low[start:stop].copy(),
            close=self.close[start:stop].copy(),
            volume=self.volume[start:stop].copy(),
            taker_buy_volume=self.taker_buy_volume[start:stop].copy(),
            open_interest_usd=self.open_interest_usd[start:stop].copy(),
            funding_rate=self.funding_rate[start:stop].copy(),
            long_short_ratio=self.long_short_ratio[start:stop].copy(),
            long_liquidations_usd=self.long_liquidations_usd[start:stop].copy(),
            short_liquidations_usd=self.short_liquidations_usd[start:stop].copy(),
            interval_ms=self.interval_ms,
        )

    def until(self, time_ms: int) -> Bars:
        """Bars that closed at or before `time_ms` (no look-ahead)."""
        stop = int(np.searchsorted(self.time + self.interval_ms, time_ms, side="right"))
        return self.slice(0, stop)

    def concat(self, other: Bars) -> Bars:
        """These bars followed by `other` (which must start later)."""
        names = ("time", "open", "high", "low", "close", "volume", "taker_buy_volume",
                 "open_interest_usd", "funding_rate", "long_short_ratio",
                 "long_liquidations_usd", "short_liquidations_usd")
        merged = {k: np.concatenate([getattr(self, k), getattr(other, k)]) for k in names}
        bars = Bars(**merged, interval_ms=self.interval_ms)
        bars.validate()
        return bars


@dataclass(frozen=True, slots=True)
class LiquidationEvent:
    """One realized liquidation: `side` is the side of the position that was liquidated."""

    time_ms: int
    venue: Venue
    symbol: str
    side: Side
    price: float
    quantity: float
    usd: float


@dataclass(frozen=True, slots=True)
class LiquidationPrints:
    """Columnar realized liquidations, oldest first (for the engine's consumption step)."""

    time: IntArray
    price: FloatArray
    usd: FloatArray
    is_long: npt.NDArray[np.bool_]

    @classmethod
    def from_events(cls, events: list[LiquidationEvent]) -> LiquidationPrints:
        """Columns from events, sorted by time."""
        ordered = sorted(events, key=lambda e: e.time_ms)
        return cls(
            time=np.array([e.time_ms for e in ordered], dtype=np.int64),
            price=np.array([e.price for e in ordered], dtype=np.float64),
            usd=np.array([e.usd for e in ordered], dtype=np.float64),
            is_long=np.array([e.side is Side.LONG for e in ordered], dtype=np.bool_),
        )

    @classmethod
    def empty(cls) -> LiquidationPrints:
        """No prints."""
        return cls(np.zeros(0, np.int64), np.zeros(0), np.zeros(0), np.zeros(0, np.bool_))

    def __len__(self) -> int:
        return int(self.time.shape[0])


@dataclass(frozen=True, slots=True)
class PriceGrid:
    """Linear price bins: bin i covers [low + i*step, low + (i+1)*step)."""

    low: float
    step: float
    count: int

    def centers(self) -> FloatArray:
        """Bin centre prices."""
        return np.asarray(self.low + (np.arange(self.count) + 0.5) * self.step, dtype=np.float64)

    def edges(self) -> FloatArray:
        """count + 1 bin edges."""
        return np.asarray(self.low + np.arange(self.count + 1) * self.step, dtype=np.float64)

    def index(self, price: float) -> int:
        """Bin of a price, clipped to the grid."""
        return int(min(max((price - self.low) // self.step, 0), self.count - 1))


@dataclass(frozen=True, slots=True)
class Band:
    """A pocket of estimated liquidations: longs below price or shorts above."""

    side: Side
    low: float
    high: float
    peak: float
    usd: float
    distance_pct: float
    strength: float
    # Realized liquidation USD printed inside the band (swept bands only; None = no prints seen).
    realized_usd: float | None = None

    def contains(self, price: float) -> bool:
        """True when the price lies inside the band's range."""
        return self.low <= price <= self.high


@dataclass(frozen=True, slots=True, eq=False)
class Profile:
    """Estimated USD of open positions whose liquidation price lies in each bin."""

    grid: PriceGrid
    long_usd: FloatArray
    short_usd: FloatArray


@dataclass(frozen=True, slots=True, eq=False)
class Heatmap:
    """Estimated liquidation USD per (time column, price bin) over a window."""

    grid: PriceGrid
    times: IntArray
    long_usd: FloatArray
    short_usd: FloatArray
    price_close: FloatArray
    price_high: FloatArray
    price_low: FloatArray


@dataclass(frozen=True, slots=True)
class MarketContext:
    """Latest context numbers for the brief; NaN where unknown."""

    funding_rate: float = float("nan")
    open_interest_usd: float = float("nan")
    open_interest_change_pct_24h: float = float("nan")
    long_short_ratio: float = float("nan")
    price_change_pct_24h: float = float("nan")


@dataclass(frozen=True, slots=True, eq=False)
class LiquidationMap:
    """Everything the brief, the image and the alerts need about one symbol at one instant."""

    symbol: str
    as_of_ms: int
    price: float
    venues: tuple[Venue, ...]
    window: Window
    profile: Profile
    heatmap: Heatmap
    bands: tuple[Band, ...]
    context: MarketContext = field(default_factory=MarketContext)
    data_age_ms: int = 0
    swept: tuple[Band, ...] = ()
