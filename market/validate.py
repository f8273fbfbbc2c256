"""Checks shared by the venue parsers: every raw value becomes a finite, typed number or a
BadResponseError naming the venue and endpoint."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, replace
from itertools import pairwise
from typing import Protocol, TypeVar

from engine.types import Venue
from market.errors import BadResponseError
from market.points import Kline


class Timed(Protocol):
    """Anything stamped with epoch milliseconds."""

    @property
    def time_ms(self) -> int: ...


T = TypeVar("T", bound=Timed)


@dataclass(frozen=True, slots=True)
class Where:
    """The venue and endpoint a payload came from, for error messages."""

    venue: Venue
    endpoint: str

    def bad(self, message: str) -> BadResponseError:
        """A BadResponseError located here."""
        return BadResponseError(message, venue=self.venue, endpoint=self.endpoint)

    def mapping(self, value: object, what: str) -> dict[str, object]:
        """`value` as a JSON object."""
        if not isinstance(value, dict):
            raise self.bad(f"{what} is {type(value).__name__}, expected an object")
        return value

    def items(self, value: object, what: str) -> list[object]:
        """`value` as a JSON array."""
        if not isinstance(value, list):
            raise self.bad(f"{what} is {type(value).__name__}, expected an array")
        return value

    def field(self, obj: dict[str, object], key: str) -> object:
        """obj[key], or an error naming the missing key."""
        if key not in obj:
            raise self.bad(f"missing field {key!r}")
        return obj[key]

    def row(self, value: object, size: int, what: str) -> list[object]:
        """An array row with at least `size` cells."""
        cells = self.items(value, what)
        if len(cells) < size:
            raise self.bad(f"{what} has {len(cells)} cells, expected at least {size}")
        return cells

    def number(self, value: object, what: str, *, positive: bool = False,
               signed: bool = False) -> float:
        """A finite float from a JSON number or numeric string; non-negative unless `signed`."""
        if isinstance(value, bool) or not isinstance(value, (int, float, str)):
            raise self.bad(f"{what} is {value!r}, expected a number")
        try:
            result = float(value)
        except ValueError:
            raise self.bad(f"{what} is {value!r}, expected a number") from None
        if not math.isfinite(result):
            raise self.bad(f"{what} is {value!r}, expected a finite number")
        if positive and result <= 0:
            raise self.bad(f"{what} is {value!r}, expected a positive number")
        if not signed and result < 0:
            raise self.bad(f"{what} is {value!r}, must not be negative")
        return result

    def time(self, value: object, what: str = "timestamp") -> int:
        """Epoch milliseconds from a JSON integer or digit string."""
        if isinstance(value, str) and value.isdigit():
            result = int(value)
        elif isinstance(value, int) and not isinstance(value, bool):
            result = value
        else:
            raise self.bad(f"{what} is {value!r}, expected epoch milliseconds")
        if result <= 0:
            raise self.bad(f"{what} is {value!r}, expected epoch milliseconds")
        return result

    def kline(self, row: object, what: str, *, time: str, volume_at: int = 5,
              volume_name: str = "volume", taker_buy_at: int | None = None) -> Kline:
        """A checked Kline from an array row `[time, open, high, low, close, ...]`."""
        cells = self.row(row, max(volume_at, taker_buy_at or 0) + 1, what)
        kline = Kline(
            time_ms=self.time(cells[0], time),
            open=self.number(cells[1], "open", positive=True),
            high=self.number(cells[2], "high", positive=True),
            low=self.number(cells[3], "low", positive=True),
            close=self.number(cells[4], "close", positive=True),
            volume=self.number(cells[volume_at], volume_name),
        )
        if taker_buy_at is not None:  # else the default NaN, so equal Klines compare equal
            taker = self.number(cells[taker_buy_at], "taker buy volume")
            kline = replace(kline, taker_buy_volume=taker)
        self._check_kline(kline, what)
        return kline

    def _check_kline(self, kline: Kline, what: str) -> None:
        """Raise when low/high do not enclose open and close or taker volume exceeds volume."""
        if kline.low > min(kline.open, kline.close) or kline.high < max(kline.open, kline.close):
            raise self.bad(f"{what} at {kline.time_ms}: low/high do not enclose open and close")
        if kline.taker_buy_volume > kline.volume * (1 + 1e-9):
            raise self.bad(f"{what} at {kline.time_ms}: taker buy volume exceeds volume")

    def oldest_first(self, points: Sequence[T], *, newest_first: bool = False) -> list[T]:
        """Points oldest first; raise when the venue's documented order is broken."""
        ordered = list(reversed(points)) if newest_first else list(points)
        for before, after in pairwise(ordered):
            if after.time_ms <= before.time_ms:
                order = "newest first" if newest_first else "oldest first"
                raise self.bad(f"times out of order at {after.time_ms} (expected {order})")
        return ordered
