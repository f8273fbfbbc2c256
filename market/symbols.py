"""Resolve what a user types (`btc`, `BTCUSDT`, `BTC-USDT-SWAP`, `BTC/USDT`) to per-venue ids."""

from __future__ import annotations

import re
from dataclasses import dataclass

from engine.types import Venue
from market.errors import UnknownSymbolError

QUOTE = "USDT"
_BASE = re.compile(r"[A-Z0-9]{1,20}")
# BASE, BASE-USDT(-SWAP), BASE/USDT(:USDT), BASE_USDT; the separators are optional with USDT.
_PAIR = re.compile(r"(?P<base>[A-Z0-9]+?)(?:[-/_ ]?(?P<quote>USDT)(?:-SWAP|:USDT|\.P)?)?")
_OTHER_QUOTE = re.compile(r"[A-Z0-9]+[-/_](?P<quote>[A-Z]+)(?:-SWAP|:[A-Z]+)?")


@dataclass(frozen=True, slots=True)
class Symbol:
    """A USDT-margined linear perpetual, named by its base asset (`BTC`)."""

    base: str

    def instrument(self, venue: Venue) -> str:
        """The venue's instrument id: BTCUSDT on Binance and Bybit, BTC-USDT-SWAP on OKX."""
        if venue is Venue.OKX:
            return f"{self.base}-{QUOTE}-SWAP"
        return f"{self.base}{QUOTE}"

    def __str__(self) -> str:
        return self.base


def resolve(text: str | Symbol) -> Symbol:
    """Parse a user's symbol; raise UnknownSymbolError (one line) for anything else."""
    if isinstance(text, Symbol):
        return text
    key = text.strip().upper()
    match = _PAIR.fullmatch(key)
    if match is None:
        other = _OTHER_QUOTE.fullmatch(key)
        if other is not None:
            raise UnknownSymbolError(
                text, f"unsupported symbol {text!r}: only USDT-margined perpetuals are supported")
        raise UnknownSymbolError(text)
    base = match.group("base")
    if not _BASE.fullmatch(base) or base == QUOTE:
        raise UnknownSymbolError(text)
    return Symbol(base)


def from_instrument(venue: Venue, instrument: str) -> Symbol | None:
    """The symbol of a venue's USDT perpetual id, or None for other instruments."""
    if venue is Venue.OKX:
        head, sep, _ = instrument.partition(f"-{QUOTE}-SWAP")
        ok = bool(sep) and instrument == f"{head}-{QUOTE}-SWAP"
    else:
        head, ok = instrument[: -len(QUOTE)], instrument.endswith(QUOTE)
    if not ok or not _BASE.fullmatch(head):
        return None
    return Symbol(head)
