"""GET JSON from a public endpoint with a timeout and bounded, jittered retries."""

from __future__ import annotations

import asyncio
import json
import logging
import random
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field

import aiohttp

from engine.types import Venue
from market.errors import (
    BadResponseError,
    MarketDataError,
    RequestRejectedError,
    VenueUnavailableError,
)

logger = logging.getLogger(__name__)

JsonValue = object
Params = Mapping[str, str | int]
# Turns a decoded body into the venue's own error (bad symbol, error code), or None when fine.
ErrorCheck = Callable[[JsonValue], MarketDataError | None]
Sleep = Callable[[float], Awaitable[None]]

RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})


@dataclass(frozen=True, slots=True)
class HttpPolicy:
    """Timeout per attempt and retry schedule: attempt n waits ~backoff_s * 2**n (capped)."""

    timeout_s: float = 10.0
    retries: int = 3
    backoff_s: float = 0.5
    max_backoff_s: float = 8.0
    jitter: float = 0.5
    rng: random.Random = field(default_factory=random.Random, compare=False, repr=False)
    sleep: Sleep = field(default=asyncio.sleep, compare=False, repr=False)


def backoff_delay(attempt: int, policy: HttpPolicy, retry_after_s: float | None = None) -> float:
    """Seconds to wait before retry `attempt` (0-based): exponential, capped, with jitter."""
    if retry_after_s is not None:
        return min(max(retry_after_s, 0.0), policy.max_backoff_s)
    base = min(policy.backoff_s * 2.0**attempt, policy.max_backoff_s)
    return base * (1.0 - policy.jitter * policy.rng.random())


async def get_json(
    session: aiohttp.ClientSession,
    base_url: str,
    endpoint: str,
    params: Params,
    *,
    venue: Venue,
    policy: HttpPolicy,
    check: ErrorCheck | None = None,
) -> JsonValue:
    """Decoded JSON of GET base_url + endpoint; typed errors naming venue and endpoint.

    Timeouts, connection failures, 5xx and 429 are retried `policy.retries` times, then raise
    VenueUnavailableError; other 4xx are not retried. `check` maps venue error payloads
    (also on 4xx bodies) to errors such as UnknownSymbolError.
    """
    url = base_url.rstrip("/") + endpoint
    query = {k: str(v) for k, v in params.items()}
    timeout = aiohttp.ClientTimeout(total=policy.timeout_s)
    last_problem = ""
    for attempt in range(policy.retries + 1):
        retry_after: float | None = None
        try:
            async with session.get(url, params=query, timeout=timeout) as response:
                status = response.status
                text = await response.text()
                if status in RETRY_STATUSES:
                    last_problem = f"HTTP {status}"
                    retry_after = _retry_after(response.headers.get("Retry-After"))
                else:
                    return _decode(text, status, venue=venue, endpoint=endpoint, check=check)
        except TimeoutError:
            last_problem = f"timed out after {policy.timeout_s:g} s"
        except aiohttp.ClientError as exc:
            last_problem = f"{type(exc).__name__}: {exc}"
        if attempt < policy.retries:
            delay = backoff_delay(attempt, policy, retry_after)
            logger.warning("%s %s: %s; retry %d/%d in %.2f s", venue, endpoint, last_problem,
                           attempt + 1, policy.retries, delay)
            await policy.sleep(delay)
    raise VenueUnavailableError(f"{last_problem} (after {policy.retries + 1} attempts)",
                                venue=venue, endpoint=endpoint)


def _decode(text: str, status: int, *, venue: Venue, endpoint: str,
            check: ErrorCheck | None) -> JsonValue:
    """Body to JSON, applying the venue's error check; non-2xx always raises."""
    try:
        payload: JsonValue = json.loads(text)
    except ValueError:
        payload = None
        if 200 <= status < 300:
            raise BadResponseError(f"body is not JSON: {_snippet(text)}",
                                   venue=venue, endpoint=endpoint) from None
    if payload is not None and check is not None:
        error = check(payload)
        if error is not None:
            raise error
    if not 200 <= status < 300:
        raise RequestRejectedError(f"HTTP {status}: {_snippet(text)}", venue=venue,
                                   endpoint=endpoint, status=status)
    return payload


def _retry_after(value: str | None) -> float | None:
    """Seconds from a numeric Retry-After header, if any."""
    try:
        return float(value) if value is not None else None
    except ValueError:
        return None


def _snippet(text: str, limit: int = 120) -> str:
    """One-line excerpt of a body for error messages."""
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[:limit] + "…"


DEFAULT_POLICY = HttpPolicy()
