"""Timeouts, retries and backoff of get_json against the fake exchange."""

from __future__ import annotations

import random
import time

import aiohttp
import pytest

from engine.types import Venue
from market import binance, bybit, okx
from market.errors import (
    BadResponseError,
    RequestRejectedError,
    UnknownSymbolError,
    VenueUnavailableError,
)
from market.http import HttpPolicy, backoff_delay, get_json
from tests.market.fake_exchange import FakeExchange, Fault

PREMIUM = "/fapi/v1/premiumIndex"
QUERY = {"symbol": "BTCUSDT"}


class Sleeps:
    """Records requested sleeps instead of sleeping."""

    def __init__(self) -> None:
        self.delays: list[float] = []

    async def __call__(self, delay: float) -> None:
        self.delays.append(delay)


async def call(session: aiohttp.ClientSession, base_url: str, policy: HttpPolicy) -> object:
    return await get_json(session, base_url, PREMIUM, QUERY, venue=Venue.BINANCE,
                          policy=policy)


@pytest.mark.parametrize("fault", [
    Fault(status=500, times=2),
    Fault(status=503, times=1),
    Fault(status=429, headers={"Retry-After": "0"}, times=2),
    Fault(delay_s=0.6, times=2),  # slower than the 0.3 s timeout
])
async def test_transient_failures_are_retried(fake: FakeExchange, base_url: str,
                                              session: aiohttp.ClientSession,
                                              policy: HttpPolicy, fault: Fault) -> None:
    times = fault.times
    fake.fail(PREMIUM, fault)
    payload = await call(session, base_url, policy)
    assert isinstance(payload, dict) and payload["symbol"] == "BTCUSDT"
    assert len(fake.calls(PREMIUM)) == times + 1


@pytest.mark.parametrize(("fault", "problem"), [
    (Fault(status=502, times=9), "HTTP 502"),
    (Fault(delay_s=0.6, times=9), "timed out after 0.3 s"),
])
async def test_persistent_failures_become_venue_unavailable(
        fake: FakeExchange, base_url: str, session: aiohttp.ClientSession, policy: HttpPolicy,
        fault: Fault, problem: str) -> None:
    fake.fail(PREMIUM, fault)
    with pytest.raises(VenueUnavailableError) as info:
        await call(session, base_url, policy)
    assert len(fake.calls(PREMIUM)) == policy.retries + 1
    assert str(info.value) == f"binance {PREMIUM}: {problem} (after 3 attempts)"


@pytest.mark.parametrize(("fault", "error"), [
    (Fault(status=404, body="Not Found"), RequestRejectedError),
    (Fault(status=403, body="<html>Forbidden</html>"), RequestRejectedError),
    (Fault(status=418, body='{"code": -1003, "msg": "banned"}'), RequestRejectedError),
    (Fault(body="<html>gateway says hi</html>"), BadResponseError),
    (Fault(body=""), BadResponseError),
])
async def test_other_answers_are_not_retried(fake: FakeExchange, base_url: str,
                                             session: aiohttp.ClientSession, policy: HttpPolicy,
                                             fault: Fault, error: type[Exception]) -> None:
    fake.fail(PREMIUM, fault)
    with pytest.raises(error) as info:
        await binance.fetch_mark(session, base_url, "BTC", policy=policy)
    assert len(fake.calls(PREMIUM)) == 1
    assert "\n" not in str(info.value)


async def test_rejection_carries_status(fake: FakeExchange, base_url: str,
                                        session: aiohttp.ClientSession,
                                        policy: HttpPolicy) -> None:
    fake.fail(PREMIUM, Fault(status=404, body="Not Found"))
    with pytest.raises(RequestRejectedError) as info:
        await call(session, base_url, policy)
    assert info.value.status == 404


@pytest.mark.parametrize(("fetch", "path"), [
    (binance.fetch_mark, "/fapi/v1/premiumIndex"),
    (bybit.fetch_mark, "/v5/market/tickers"),
    (okx.fetch_mark, "/api/v5/public/mark-price"),
])
async def test_unlisted_symbol_is_unknown_and_not_retried(
        fake: FakeExchange, base_url: str, session: aiohttp.ClientSession, policy: HttpPolicy,
        fetch: object, path: str) -> None:
    with pytest.raises(UnknownSymbolError) as info:
        await fetch(session, base_url, "DOESNOTEXIST", policy=policy)  # type: ignore[operator]
    assert "DOESNOTEXIST" in str(info.value)
    assert len(fake.calls(path)) == 1


async def test_connection_refused_is_unavailable(session: aiohttp.ClientSession,
                                                 policy: HttpPolicy) -> None:
    with pytest.raises(VenueUnavailableError, match="after 3 attempts"):
        await call(session, "http://127.0.0.1:9", policy)


async def test_backoff_schedule_is_exponential_with_jitter(
        fake: FakeExchange, base_url: str, session: aiohttp.ClientSession) -> None:
    sleeps = Sleeps()
    policy = HttpPolicy(timeout_s=1, retries=4, backoff_s=0.1, max_backoff_s=0.5, jitter=0.5,
                        rng=random.Random(1), sleep=sleeps)
    fake.fail(PREMIUM, Fault(status=500, times=4))
    await call(session, base_url, policy)
    assert len(sleeps.delays) == 4
    for attempt, delay in enumerate(sleeps.delays):
        ceiling = min(0.1 * 2**attempt, 0.5)
        assert ceiling * 0.5 <= delay <= ceiling


async def test_retry_after_is_honoured(fake: FakeExchange, base_url: str,
                                       session: aiohttp.ClientSession) -> None:
    sleeps = Sleeps()
    policy = HttpPolicy(retries=1, max_backoff_s=5, sleep=sleeps)
    fake.fail(PREMIUM, Fault(status=429, headers={"Retry-After": "2"}))
    await call(session, base_url, policy)
    assert sleeps.delays == [2.0]


@pytest.mark.parametrize(("attempt", "retry_after", "low", "high"), [
    (0, None, 0.25, 0.5),
    (1, None, 0.5, 1.0),
    (3, None, 2.0, 4.0),
    (10, None, 2.0, 4.0),  # capped
    (0, 1.5, 1.5, 1.5),
    (0, 60.0, 4.0, 4.0),  # Retry-After is capped too
    (0, -3.0, 0.0, 0.0),
])
def test_backoff_delay(attempt: int, retry_after: float | None, low: float,
                       high: float) -> None:
    policy = HttpPolicy(backoff_s=0.5, max_backoff_s=4.0, jitter=0.5, rng=random.Random(3))
    for _ in range(20):
        assert low <= backoff_delay(attempt, policy, retry_after) <= high


async def test_real_sleeps_stay_short(fake: FakeExchange, base_url: str,
                                      session: aiohttp.ClientSession,
                                      policy: HttpPolicy) -> None:
    fake.fail(PREMIUM, Fault(status=500, times=2))
    started = time.perf_counter()
    await call(session, base_url, policy)
    assert time.perf_counter() - started < 1.0
