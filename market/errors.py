"""Typed market-data errors; each carries the venue and endpoint (or file and line) it came from.

Who handles what: the bot's refresh job catches `MarketDataError`, marks the venue stale and
keeps the previous map; `UnknownSymbolError` is shown to the user as is (one line);
`DataFileError` ends `liqradar run --replay` with its message.
"""

from __future__ import annotations

from pathlib import Path

from engine.types import Venue


class MarketDataError(Exception):
    """Any failure to get trustworthy market data; never reaches the engine."""

    def __init__(self, message: str, *, venue: Venue | None = None, endpoint: str = "") -> None:
        self.venue = venue
        self.endpoint = endpoint
        self.reason = message
        where = " ".join(part for part in (venue.value if venue else "", endpoint) if part)
        super().__init__(f"{where}: {message}" if where else message)


class BadResponseError(MarketDataError):
    """A venue answered, but with a malformed, empty, NaN, negative or out-of-order payload."""


class RequestRejectedError(MarketDataError):
    """A venue refused the request (4xx other than 429, or an error code); not retried."""

    def __init__(self, message: str, *, venue: Venue | None = None, endpoint: str = "",
                 status: int = 0) -> None:
        self.status = status
        super().__init__(message, venue=venue, endpoint=endpoint)


class VenueUnavailableError(MarketDataError):
    """Timeouts, connection failures, 5xx or 429 persisted after all retries."""


class UnknownSymbolError(MarketDataError):
    """The text is not a symbol we understand, or a venue does not list it."""

    def __init__(self, symbol: str, message: str = "", *, venue: Venue | None = None,
                 endpoint: str = "") -> None:
        self.symbol = symbol
        if not message:
            message = f"unknown symbol {symbol!r}: use a base asset like BTC or a pair like BTCUSDT"
        super().__init__(message, venue=venue, endpoint=endpoint)


class DataFileError(MarketDataError):
    """A data file is missing, corrupt or inconsistent; names the file and line."""

    def __init__(self, path: Path | str, message: str, *, line: int | None = None) -> None:
        self.path = Path(path)
        self.line = line
        where = self.path.name if line is None else f"{self.path.name} line {line}"
        super().__init__(f"{where}: {message}")
