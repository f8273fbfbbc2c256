"""Public crypto-derivatives data -> validated engine values.

Live:    `build_venue_clients(session, settings)[venue].fetch_bars(symbol, "1m", since, until)`
         and `.fetch_mark(symbol)`; liquidations via `market.streams.merge_streams`.
Offline: `load_binance_folder`, `load_bench_bars`, `load_bench_liquidations`; `replay`.
Errors:  everything raised is a `market.errors.MarketDataError`.
"""

from market.errors import (
    BadResponseError,
    DataFileError,
    MarketDataError,
    RequestRejectedError,
    UnknownSymbolError,
    VenueUnavailableError,
)
from market.files import (
    load_bench_bars,
    load_bench_liquidations,
    load_binance_folder,
    load_binance_liquidations,
)
from market.http import HttpPolicy
from market.intervals import Interval
from market.points import MarkPrice
from market.replay import replay
from market.streams import Reconnect, build_stream_specs, merge_streams, stream_liquidations
from market.symbols import Symbol, resolve
from market.venue import VenueClient, build_venue_clients, fetch_bars_by_venue

__all__ = [
    "BadResponseError",
    "DataFileError",
    "HttpPolicy",
    "Interval",
    "MarkPrice",
    "MarketDataError",
    "Reconnect",
    "RequestRejectedError",
    "Symbol",
    "UnknownSymbolError",
    "VenueClient",
    "VenueUnavailableError",
    "build_stream_specs",
    "build_venue_clients",
    "fetch_bars_by_venue",
    "load_bench_bars",
    "load_bench_liquidations",
    "load_binance_folder",
    "load_binance_liquidations",
    "merge_streams",
    "replay",
    "resolve",
    "stream_liquidations",
]
