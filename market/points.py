"""Small typed values the venue parsers return besides engine `Bars`."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Kline:
    """One OHLCV bar; `taker_buy_volume` is NaN where the venue does not give it."""

    time_ms: int
    open: float
    high: float
    low: float
    close: float
    volume: float
    taker_buy_volume: float = float("nan")


@dataclass(frozen=True, slots=True)
class OpenInterestPoint:
    """Open interest in USD, known from `time_ms` on."""

    time_ms: int
    usd: float


@dataclass(frozen=True, slots=True)
class OpenInterestAmount:
    """Open interest in base-asset units (Bybit); valued in USD when aligned to bars."""

    time_ms: int
    base: float


@dataclass(frozen=True, slots=True)
class FundingPoint:
    """A funding rate per funding period as a fraction, known from `time_ms` on."""

    time_ms: int
    rate: float


@dataclass(frozen=True, slots=True)
class RatioPoint:
    """Share of accounts that are net long (0..1), known from `time_ms` on."""

    time_ms: int
    long_share: float

    @property
    def long_short_ratio(self) -> float:
        """Longs per short, as Binance's `longShortRatio` (inf when nobody is short)."""
        short = 1.0 - self.long_share
        return self.long_share / short if short > 0 else float("inf")


@dataclass(frozen=True, slots=True)
class TakerVolumePoint:
    """Taker buy volume (base units) of the period that opens at `time_ms`."""

    time_ms: int
    buy: float


@dataclass(frozen=True, slots=True)
class MarkPrice:
    """Latest mark and index price with the current funding rate (NaN where unknown)."""

    time_ms: int
    mark: float
    index: float
    funding_rate: float
