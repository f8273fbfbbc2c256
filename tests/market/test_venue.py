"""fetch_bars / fetch_mark of each venue client against the fake exchange."""

from __future__ import annotations

from dataclasses import dataclass, field

import aiohttp
import numpy as np
import pytest

from bot.settings import Settings
from engine.types import Venue
from market.errors import BadResponseError, UnknownSymbolError, VenueUnavailableError
from market.http import HttpPolicy
from market.venue import (
    BinanceClient,
    BybitClient,
    OkxClient,
    VenueClient,
    build_venue_clients,
    fetch_bars_by_venue,
)
from tests.market.fake_exchange import (
    DAY,
    HOUR,
    MINUTE,
    NOW_MS,
    FakeExchange,
    Fault,
    funding,
    kline,
    long_share,
    oi_usd,
    price,
)

SINCE = NOW_MS - DAY


def client(venue: Venue, session: aiohttp.ClientSession, base_url: str,
           policy: HttpPolicy) -> VenueClient:
    """A client of `venue` pointed at the fake."""
    if venue is Venue.BINANCE:
        return BinanceClient(session, base_url, policy, clock=lambda: NOW_MS)
    if venue is Venue.BYBIT:
        return BybitClient(session, base_url, policy)
    return OkxClient(session, base_url, policy)


@pytest.mark.parametrize("venue", list(Venue))
@pytest.mark.parametrize(("interval", "iv", "period"), [
    ("1m", MINUTE, 5 * MINUTE), ("5m", 5 * MINUTE, 5 * MINUTE), ("1h", HOUR, HOUR)])
async def test_fetch_bars_matches_the_venue_data(venue: Venue, interval: str, iv: int,
                                                 period: int, base_url: str,
                                                 session: aiohttp.ClientSession,
                                                 policy: HttpPolicy) -> None:
    bars = await client(venue, session, base_url, policy).fetch_bars(
        "btc", interval, SINCE, NOW_MS)
    assert list(bars.time) == list(range(SINCE, NOW_MS, iv))
    assert bars.interval_ms == iv
    expected = np.array([kline(int(t), iv) for t in bars.time])
    np.testing.assert_allclose(bars.open, expected[:, 0])
    np.testing.assert_allclose(bars.close, expected[:, 3])
    np.testing.assert_allclose(bars.volume, expected[:, 4], rtol=1e-6)
    # context: the latest point stamped at or before each bar's open
    stamp = bars.time // period * period
    oi = np.array([oi_usd(int(t)) for t in stamp])
    if venue is Venue.BYBIT:  # base units, valued at each bar's open
        oi = oi / np.array([price(int(t)) for t in stamp]) * bars.open
    np.testing.assert_allclose(bars.open_interest_usd, oi, rtol=1e-4)
    shares = np.array([long_share(int(t)) for t in stamp])
    np.testing.assert_allclose(bars.long_short_ratio, shares / (1 - shares), rtol=1e-3)
    settled = bars.time // (8 * HOUR) * (8 * HOUR)
    np.testing.assert_allclose(bars.funding_rate, [funding(int(t)) for t in settled],
                               atol=1e-8)


@pytest.mark.parametrize(("venue", "interval", "has_taker"), [
    (Venue.BINANCE, "1m", True), (Venue.BYBIT, "5m", False), (Venue.OKX, "5m", True),
    (Venue.OKX, "1m", False),
])
async def test_taker_buy_volume_where_the_venue_has_it(
        venue: Venue, interval: str, has_taker: bool, base_url: str,
        session: aiohttp.ClientSession, policy: HttpPolicy) -> None:
    bars = await client(venue, session, base_url, policy).fetch_bars(
        "BTC", interval, NOW_MS - 6 * HOUR, NOW_MS)
    assert bool(np.all(np.isfinite(bars.taker_buy_volume))) is has_taker
    assert np.all(np.isfinite(bars.taker_buy_volume)) or np.all(np.isnan(bars.taker_buy_volume))


@pytest.mark.parametrize(("venue", "path", "max_limit", "pages"), [
    (Venue.BINANCE, "/fapi/v1/klines", 1500, 3),
    (Venue.BYBIT, "/v5/market/kline", 1000, 5),
])
async def test_klines_are_paginated_within_limits(venue: Venue, path: str, max_limit: int,
                                                  pages: int, fake: FakeExchange,
                                                  base_url: str, session: aiohttp.ClientSession,
                                                  policy: HttpPolicy) -> None:
    bars = await client(venue, session, base_url, policy).fetch_bars(
        "ETH", "1m", NOW_MS - 3 * DAY, NOW_MS)
    assert len(bars) == 3 * 1440
    calls = fake.calls(path)
    assert len(calls) == pages
    assert all(int(q["limit"]) <= max_limit for q in calls)


async def test_okx_walks_back_into_history_candles(fake: FakeExchange, base_url: str,
                                                   session: aiohttp.ClientSession,
                                                   policy: HttpPolicy) -> None:
    bars = await client(Venue.OKX, session, base_url, policy).fetch_bars(
        "BTC-USDT-SWAP", "1m", NOW_MS - 2 * DAY, NOW_MS)
    assert list(bars.time) == list(range(NOW_MS - 2 * DAY, NOW_MS, MINUTE))
    assert fake.calls("/api/v5/market/history-candles")
    assert all(int(q["limit"]) <= 100 for q in fake.calls("/api/v5/market/history-candles"))
    assert all(int(q["limit"]) <= 100
               for q in fake.calls("/api/v5/rubik/stat/contracts/open-interest-history"))


async def test_bybit_open_interest_follows_cursor_pages(fake: FakeExchange, base_url: str,
                                                        session: aiohttp.ClientSession,
                                                        policy: HttpPolicy) -> None:
    await client(Venue.BYBIT, session, base_url, policy).fetch_bars(
        "BTC", "5m", NOW_MS - 2 * DAY, NOW_MS)
    calls = fake.calls("/v5/market/open-interest")
    assert len(calls) == 3  # 577 points, 200 per page
    assert "cursor" not in calls[0] and calls[1]["cursor"] == "200"


async def test_binance_statistics_stop_at_thirty_days(fake: FakeExchange, base_url: str,
                                                      session: aiohttp.ClientSession,
                                                      policy: HttpPolicy) -> None:
    since = NOW_MS - 40 * DAY
    bars = await client(Venue.BINANCE, session, base_url, policy).fetch_bars(
        "BTC", "1h", since, NOW_MS)
    assert len(bars) == 40 * 24
    known = np.isfinite(bars.open_interest_usd)
    first = int(np.argmax(known))
    assert not known[:first].any() and known[first:].all()
    assert NOW_MS - 30 * DAY <= bars.time[first] <= NOW_MS - 29 * DAY
    assert np.isfinite(bars.funding_rate).all()
    for query in fake.calls("/futures/data/openInterestHist"):
        assert int(query["startTime"]) >= NOW_MS - 30 * DAY


@pytest.mark.parametrize("venue", list(Venue))
async def test_unlisted_symbol(venue: Venue, base_url: str, session: aiohttp.ClientSession,
                               policy: HttpPolicy) -> None:
    with pytest.raises(UnknownSymbolError) as info:
        await client(venue, session, base_url, policy).fetch_bars("DOGE", "1h", SINCE, NOW_MS)
    assert info.value.venue is venue
    assert "DOGE" in str(info.value)


@pytest.mark.parametrize("venue", list(Venue))
async def test_garbage_symbol_never_reaches_the_venue(venue: Venue, fake: FakeExchange,
                                                      base_url: str,
                                                      session: aiohttp.ClientSession,
                                                      policy: HttpPolicy) -> None:
    with pytest.raises(UnknownSymbolError):
        await client(venue, session, base_url, policy).fetch_bars("B!TC", "1h", SINCE, NOW_MS)
    assert fake.requests == []


@pytest.mark.parametrize(("venue", "path"), [
    (Venue.BINANCE, "/fapi/v1/klines"), (Venue.BYBIT, "/v5/market/kline"),
    (Venue.OKX, "/api/v5/market/candles"),
])
async def test_a_transient_failure_mid_range_is_retried(venue: Venue, path: str,
                                                        fake: FakeExchange, base_url: str,
                                                        session: aiohttp.ClientSession,
                                                        policy: HttpPolicy) -> None:
    fake.fail(path, Fault(status=500))
    bars = await client(venue, session, base_url, policy).fetch_bars(
        "BTC", "1m", NOW_MS - 2 * DAY, NOW_MS - DAY)
    assert len(bars) == 1440


def _nan_close(payload: object) -> object:
    rows = payload if isinstance(payload, list) else (
        payload["result"]["list"] if "result" in payload else payload["data"])  # type: ignore
    rows[-1][4] = "NaN"
    return payload


def _negative_oi(payload: object) -> object:
    if isinstance(payload, list):
        payload[0]["sumOpenInterestValue"] = "-1"
    elif "result" in payload:  # type: ignore[operator]
        payload["result"]["list"][0]["openInterest"] = "-1"  # type: ignore[index]
    else:
        payload["data"][0][3] = "-1"  # type: ignore[index]
    return payload


BAD_ANSWERS = [
    (Venue.BINANCE, "/fapi/v1/klines", Fault(transform=_nan_close)),
    (Venue.BYBIT, "/v5/market/kline", Fault(transform=_nan_close)),
    (Venue.OKX, "/api/v5/market/candles", Fault(transform=_nan_close)),
    (Venue.BINANCE, "/futures/data/openInterestHist", Fault(transform=_negative_oi)),
    (Venue.BYBIT, "/v5/market/open-interest", Fault(transform=_negative_oi)),
    (Venue.OKX, "/api/v5/rubik/stat/contracts/open-interest-history",
     Fault(transform=_negative_oi)),
    (Venue.BINANCE, "/fapi/v1/fundingRate", Fault(body="<html>maintenance</html>")),
    (Venue.BYBIT, "/v5/market/account-ratio", Fault(transform=lambda p: {"retCode": 0})),
    (Venue.OKX, "/api/v5/public/funding-rate-history",
     Fault(transform=lambda p: {**p, "data": list(reversed(p["data"]))})),  # type: ignore
]


@pytest.mark.parametrize(("venue", "path", "fault"), BAD_ANSWERS)
async def test_bad_answers_never_reach_the_engine(venue: Venue, path: str, fault: Fault,
                                                  fake: FakeExchange, base_url: str,
                                                  session: aiohttp.ClientSession,
                                                  policy: HttpPolicy) -> None:
    fake.fail(path, fault)
    with pytest.raises(BadResponseError) as info:
        await client(venue, session, base_url, policy).fetch_bars("BTC", "5m", SINCE, NOW_MS)
    assert info.value.venue is venue
    assert info.value.endpoint == path


@pytest.mark.parametrize("venue", list(Venue))
async def test_no_klines_in_range_is_an_error(venue: Venue, base_url: str,
                                              session: aiohttp.ClientSession,
                                              policy: HttpPolicy) -> None:
    with pytest.raises(BadResponseError, match="no 1h klines for BTC"):
        await client(venue, session, base_url, policy).fetch_bars(
            "BTC", "1h", NOW_MS + DAY, NOW_MS + 2 * DAY)


async def test_an_unavailable_endpoint_cancels_the_rest(fake: FakeExchange, base_url: str,
                                                        session: aiohttp.ClientSession,
                                                        policy: HttpPolicy) -> None:
    fake.fail("/v5/market/funding/history", Fault(status=503, times=10))
    with pytest.raises(VenueUnavailableError, match="funding/history: HTTP 503"):
        await client(Venue.BYBIT, session, base_url, policy).fetch_bars(
            "BTC", "1m", NOW_MS - 3 * DAY, NOW_MS)


@pytest.mark.parametrize("venue", list(Venue))
async def test_empty_range_is_refused(venue: Venue, base_url: str,
                                      session: aiohttp.ClientSession, policy: HttpPolicy) -> None:
    with pytest.raises(ValueError, match="empty range"):
        await client(venue, session, base_url, policy).fetch_bars("BTC", "1h", NOW_MS, NOW_MS)


@pytest.mark.parametrize("venue", list(Venue))
async def test_fetch_mark(venue: Venue, base_url: str, session: aiohttp.ClientSession,
                          policy: HttpPolicy) -> None:
    mark = await client(venue, session, base_url, policy).fetch_mark("BTC")
    assert mark.time_ms == NOW_MS
    assert mark.mark - mark.index == pytest.approx(5.0, abs=0.2)
    assert mark.funding_rate == pytest.approx(funding(NOW_MS), abs=1e-8)


@dataclass
class PlainSettings:
    venues: list[str] = field(default_factory=lambda: ["okx", "Binance"])
    binance_api_url: str = "http://127.0.0.1:1"
    bybit_api_url: str = "http://127.0.0.1:2"
    okx_api_url: str = "http://127.0.0.1:3"
    http_timeout_s: float = 1.5
    http_retries: int = 5


async def test_build_venue_clients_from_settings(session: aiohttp.ClientSession) -> None:
    clients = build_venue_clients(session, PlainSettings())
    assert list(clients) == [Venue.OKX, Venue.BINANCE]
    okx_client = clients[Venue.OKX]
    assert isinstance(okx_client, OkxClient)
    assert okx_client.base_url == "http://127.0.0.1:3"
    assert okx_client.session is session
    assert okx_client.policy.timeout_s == 1.5 and okx_client.policy.retries == 5


async def test_build_venue_clients_from_the_bot_settings(
        base_url: str, session: aiohttp.ClientSession) -> None:
    settings = Settings(binance_api_url=base_url, bybit_api_url=base_url, okx_api_url=base_url,
                        http_timeout_s=2.0, http_retries=1)
    clients = build_venue_clients(session, settings)
    assert set(clients) == set(Venue)
    mark = await clients[Venue.BYBIT].fetch_mark("eth")
    assert mark.mark > 0


async def test_build_venue_clients_from_arguments(session: aiohttp.ClientSession) -> None:
    clients = build_venue_clients(session, venues=["bybit"], bybit_api_url="http://x",
                                  timeout_s=3, retries=0)
    bybit_client = clients[Venue.BYBIT]
    assert isinstance(bybit_client, BybitClient)
    assert (bybit_client.base_url, bybit_client.policy.retries) == ("http://x", 0)


async def test_fetch_bars_by_venue_isolates_failures(fake: FakeExchange, base_url: str,
                                                     session: aiohttp.ClientSession,
                                                     policy: HttpPolicy) -> None:
    clients = {venue: client(venue, session, base_url, policy) for venue in Venue}
    fake.fail("/v5/market/kline", Fault(status=500, times=10))
    results = await fetch_bars_by_venue(clients, "BTC", "1h", SINCE, NOW_MS)
    assert list(results) == list(Venue)
    assert isinstance(results[Venue.BYBIT], VenueUnavailableError)
    for venue in (Venue.BINANCE, Venue.OKX):
        bars = results[venue]
        assert not isinstance(bars, Exception) and len(bars) == 24
    with pytest.raises(UnknownSymbolError):
        await fetch_bars_by_venue(clients, "B!TC", "1h", SINCE, NOW_MS)
