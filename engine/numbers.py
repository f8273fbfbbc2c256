"""Numbers the way traders write them: 116,000; 88k–89k; $1.2B; $450M; 0.1234–0.1251; 1.8%.

Every function takes finite numbers; callers decide what to say when a value is unknown.
"""

from __future__ import annotations

import math

_SUFFIXES = ((1e12, "T"), (1e9, "B"), (1e6, "M"), (1e3, "k"))


def _check(value: float) -> float:
    if not math.isfinite(value):
        raise ValueError(f"cannot format a non-finite number: {value!r}")
    return value


def nice_floor(value: float) -> float:
    """The largest 1, 2 or 5 × 10^k at or below a positive `value`."""
    _check(value)
    if value <= 0:
        raise ValueError("nice_floor needs a positive value")
    exponent = math.floor(math.log10(value))
    base = 10.0 ** exponent
    for mult in (5.0, 2.0, 1.0):
        if mult * base <= value * (1 + 1e-9):
            return mult * base
    return base


def nice_round(value: float) -> float:
    """The 1, 2 or 5 × 10^k nearest to a positive `value` on a log scale."""
    _check(value)
    if value <= 0:
        raise ValueError("nice_round needs a positive value")
    exponent = math.floor(math.log10(value))
    candidates = [m * 10.0 ** e for e in (exponent, exponent + 1) for m in (1.0, 2.0, 5.0)]
    return min(candidates, key=lambda c: abs(math.log10(c / value)))


def decimals_for(resolution: float) -> int:
    """Decimal places needed to show multiples of `resolution` (0 for 1 and above)."""
    _check(resolution)
    if resolution <= 0:
        raise ValueError("resolution must be positive")
    return max(0, -math.floor(math.log10(resolution) + 1e-9))


def _group(value: float, decimals: int) -> str:
    return f"{value:,.{decimals}f}"


def price_resolution(price: float) -> float:
    """Rounding step for a single price: whole units from 1,000 up, else four significant digits.

    90,123.4 -> 1 ("90,123"); 3,512.44 -> 1; 245.31 -> 0.1; 0.35121 -> 0.0001; 0.0000123456 ->
    0.00000001.
    """
    p = abs(_check(price))
    if p >= 1000:
        return 1.0
    if p == 0:
        return 1.0
    return 10.0 ** (math.floor(math.log10(p)) - 3)


def format_level(price: float, resolution: float | None = None) -> str:
    """A price rounded to `resolution` (default: `price_resolution`), with thousands commas."""
    res = price_resolution(price) if resolution is None else _check(resolution)
    rounded = round(_check(price) / res) * res
    return _group(rounded, decimals_for(res))


def format_price(price: float) -> str:
    """A single price: 116,000; 90,124; 3,512; 245.3; 0.3512; 0.00001234."""
    return format_level(price)


def _k(value: float, res: float) -> str:
    """Thousands with a k: 88000 -> 88k, 69400 -> 69.4k, 116250 -> 116.25k."""
    dec = decimals_for(res / 1000.0)
    text = f"{value / 1000.0:,.{dec}f}"
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return text + "k"


def range_resolution(low: float, high: float, ref: float | None = None) -> float:
    """Rounding step for a price range: about a tenth of its width, at least 2 bp of the price."""
    _check(low)
    _check(high)
    ref_price = abs(ref) if ref is not None and math.isfinite(ref) and ref > 0 else max(
        abs(low), abs(high))
    floor = max(ref_price * 2e-4, 1e-12)
    return nice_floor(max(abs(high - low) / 10.0, floor))


def format_range(low: float, high: float, ref: float | None = None, *, dash: str = "–") -> str:
    """A price range: 88k–89k, 67.6k–69.1k, 3,420–3,480, 0.1234–0.1251, 0.00001234–0.00001251.

    Ends are rounded to the nearest multiple of a step chosen from the width (`range_resolution`;
    below 1 the step is a power of ten); if rounding would merge them the step shrinks. From
    10,000 up, ends that are multiples of 100 are written with a k.
    """
    lo, hi = (low, high) if low <= high else (high, low)
    res = range_resolution(lo, hi, ref)
    if res < 1:
        # with decimals the last digit is shown anyway: round to it rather than to 2s or 5s
        res = 10.0 ** math.floor(math.log10(res) + 1e-9)
    for _ in range(6):
        a, b = round(lo / res) * res, round(hi / res) * res
        if b > a or hi - lo <= 0:
            break
        res = nice_floor(res * 0.99 / 2)
    a, b = round(lo / res) * res, round(hi / res) * res
    if b <= a:
        return format_level((lo + hi) / 2.0, res)
    big = max(abs(a), abs(b)) >= 10_000
    if (big and res >= 100) or (big and _multiple(a, 100) and _multiple(b, 100)):
        return f"{_k(a, max(res, 100.0))}{dash}{_k(b, max(res, 100.0))}"
    dec = decimals_for(res)
    return f"{_group(a, dec)}{dash}{_group(b, dec)}"


def _multiple(value: float, step: float) -> bool:
    return abs(value / step - round(value / step)) < 1e-6


def format_usd(amount: float, *, signed: bool = False) -> str:
    """Money: $1.2B, $12B, $450M, $3.4k, $950, $1.23, $0.0123 (1 decimal below 10 of a unit)."""
    value = _check(amount)
    sign = "-" if value < 0 else ("+" if signed and value > 0 else "")
    a = abs(value)
    for size, suffix in _SUFFIXES:
        # round first so 999.96M becomes $1.0B rather than $1000M
        if a >= size * 0.9995:
            scaled = a / size
            text = f"{scaled:.1f}" if scaled < 9.95 else f"{scaled:.0f}"
            if text.endswith(".0"):
                text = text[:-2]
            return f"{sign}${text}{suffix}"
    if a >= 10 or a == 0:
        return f"{sign}${a:.0f}"
    sig = 3
    dec = max(0, sig - 1 - math.floor(math.log10(a)))
    text = f"{a:.{dec}f}".rstrip("0").rstrip(".") if dec else f"{a:.0f}"
    return f"{sign}${text}"


def format_pct(value: float, *, signed: bool = False) -> str:
    """A percentage given in percent units: 0.23 -> 0.2%, 0.04 -> 0.04%, 12.4 -> 12%."""
    v = _check(value)
    a = abs(v)
    if a >= 9.95:
        text = f"{a:.0f}"
    elif a >= 0.095 or a == 0:
        text = f"{a:.1f}"
    else:
        text = f"{a:.2f}"
    if text.endswith(".0"):
        text = text[:-2]
    if text in ("0", "0.00"):
        text = "0"
    sign = "-" if v < 0 and text != "0" else ("+" if signed and v > 0 and text != "0" else "")
    return f"{sign}{text}%"


def format_rate(rate: float) -> str:
    """A funding rate given as a fraction, in percent with four decimals: 0.0001 -> +0.0100%."""
    v = _check(rate) * 100.0
    return f"{v:+.4f}%"


def format_ratio(value: float) -> str:
    """A ratio with two decimals: 1.8412 -> 1.84."""
    return f"{_check(value):.2f}"


def format_duration(ms: int) -> str:
    """A data age: <1 min, 4 min, 2 h 05 min, 3 d 4 h."""
    minutes = max(0, int(ms)) // 60_000
    if minutes < 1:
        return "<1 min"
    if minutes < 60:
        return f"{minutes} min"
    hours, mins = divmod(minutes, 60)
    if hours < 48:
        return f"{hours} h {mins:02d} min" if mins else f"{hours} h"
    days, hours = divmod(hours, 24)
    return f"{days} d {hours} h" if hours else f"{days} d"
