"""Walk a time range page by page, for venues that answer oldest first or newest first."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TypeVar

from market.validate import Timed, Where

T = TypeVar("T", bound=Timed)

MAX_PAGES = 2000


async def windowed(fetch_window: Callable[[int, int], Awaitable[list[T]]], since_ms: int,
                   until_ms: int, step_ms: int, where: Where) -> list[T]:
    """Items in [since_ms, until_ms) from consecutive windows [start, start + step_ms), each
    small enough for one page of an oldest-first venue."""
    if step_ms <= 0:
        raise ValueError("step_ms must be positive")
    found: list[T] = []
    starts = range(since_ms, until_ms, step_ms)
    if len(starts) > MAX_PAGES:
        raise where.bad(f"range needs {len(starts)} pages, more than {MAX_PAGES}")
    for start in starts:
        end = min(start + step_ms, until_ms)
        page = await fetch_window(start, end)
        found.extend(p for p in where.oldest_first(page) if start <= p.time_ms < end)
    return where.oldest_first(found)


async def backward(fetch_page: Callable[[int], Awaitable[list[T]]], since_ms: int,
                   until_ms: int, where: Where) -> list[T]:
    """Items in [since_ms, until_ms) from pages of items strictly before an end time
    (each page oldest first), walking back from `until_ms`."""
    pages: list[list[T]] = []
    end = until_ms
    for _ in range(MAX_PAGES):
        if end <= since_ms:
            break
        page = await fetch_page(end)
        if not page:
            break
        if page[0].time_ms >= end:
            raise where.bad(f"page starts at {page[0].time_ms}, not before the requested end {end}")
        pages.append([p for p in page if since_ms <= p.time_ms < until_ms])
        end = page[0].time_ms
    else:
        raise where.bad(f"more than {MAX_PAGES} pages for one range")
    return where.oldest_first([p for page in reversed(pages) for p in page])


async def cursored(fetch_page: Callable[[str], Awaitable[tuple[list[T], str]]], since_ms: int,
                   until_ms: int, where: Where) -> list[T]:
    """Items in [since_ms, until_ms) from newest-first pages linked by an opaque cursor."""
    pages: list[list[T]] = []
    cursor = ""
    seen: set[str] = set()
    for _ in range(MAX_PAGES):
        page, cursor = await fetch_page(cursor)
        pages.append([p for p in page if since_ms <= p.time_ms < until_ms])
        if not page or not cursor or page[0].time_ms <= since_ms:
            break
        if cursor in seen:
            raise where.bad(f"cursor {cursor!r} repeats")
        seen.add(cursor)
    else:
        raise where.bad(f"more than {MAX_PAGES} pages for one range")
    return where.oldest_first([p for page in reversed(pages) for p in page])
