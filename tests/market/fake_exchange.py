"""A fake Binance/Bybit/OKX public REST API on 127.0.0.1 with scripted faults.

Data are smooth deterministic functions of time, so any range can be served and checked.
Each venue's documented paging is imitated: Binance oldest first from startTime, Bybit and
OKX newest first (OKX `after`, Bybit cursors), only the last 30 days of Binance statistics,
OKX `candles` holding only recent bars and `history-candles` the rest.
"""

from __future__ import annotations

import asyncio
import json
import math
from collections.abc import Callable
from dataclasses import dataclass, field

from aiohttp import web

MINUTE = 60_000
HOUR = 3_600_000
DAY = 86_400_000
NOW_MS = 1_772_712_000_000  # 2026-03-05T12:00:00Z
KNOWN = {"BTC", "ETH"}
CT_VAL = {"BTC": 0.01, "ETH": 0.1}

Json = object


def price(t: int) -> float:
    """Smooth price path around 70 000."""
    return 70_000 + 1_500 * math.sin(t / (6 * HOUR)) + 300 * math.sin(t / (37 * MINUTE))


def oi_usd(t: int) -> float:
    """Open interest in USD."""
    return 6e9 + 2e8 * math.sin(t / DAY)


def funding(t: int) -> float:
    """Funding rate per period."""
    return 1e-4 * math.sin(t / (3 * DAY))


def long_share(t: int) -> float:
    """Share of long accounts."""
    return 0.5 + 0.1 * math.sin(t / (12 * HOUR))


def kline(t: int, iv: int) -> tuple[float, float, float, float, float, float]:
    """open, high, low, close, volume, taker buy volume of the bar opening at t."""
    o, c = round(price(t), 1), round(price(t + iv), 1)
    volume = 10.0 + (t // iv) % 7
    return o, round(max(o, c) * 1.001, 1), round(min(o, c) * 0.999, 1), c, volume, volume * 0.4


@dataclass
class Fault:
    """One scripted misbehaviour of a path, used `times` times."""

    status: int | None = None
    delay_s: float = 0.0
    body: str | None = None
    transform: Callable[[Json], Json] | None = None
    headers: dict[str, str] = field(default_factory=dict)
    times: int = 1


@dataclass
class FakeExchange:
    """State of the fake: the clock, scripted faults and a log of requests."""

    now_ms: int = NOW_MS
    okx_recent_bars: int = 1440
    faults: dict[str, list[Fault]] = field(default_factory=dict)
    requests: list[tuple[str, dict[str, str]]] = field(default_factory=list)

    def fail(self, path: str, fault: Fault) -> None:
        """Script `fault` for the next request(s) to `path`."""
        self.faults.setdefault(path, []).append(fault)

    def calls(self, path: str) -> list[dict[str, str]]:
        """Queries received on `path`."""
        return [query for p, query in self.requests if p == path]

    def app(self) -> web.Application:
        """The aiohttp application."""
        app = web.Application()
        for path, handler in self._routes().items():
            app.router.add_get(path, self._wrap(path, handler))
        return app

    def _wrap(self, path: str, handler: Callable[[dict[str, str]], tuple[int, Json]],
              ) -> Callable[[web.Request], object]:
        async def serve(request: web.Request) -> web.StreamResponse:
            query = dict(request.query)
            self.requests.append((path, query))
            fault = self._next_fault(path)
            if fault is not None and fault.delay_s:
                await asyncio.sleep(fault.delay_s)
            if fault is not None and fault.body is not None:
                return web.Response(status=fault.status or 200, text=fault.body,
                                    headers=fault.headers)
            if fault is not None and fault.status is not None:
                return web.Response(status=fault.status, text="busy", headers=fault.headers)
            status, payload = handler(query)
            if fault is not None and fault.transform is not None:
                payload = fault.transform(payload)
            return web.Response(status=status, text=json.dumps(payload),
                                content_type="application/json")
        return serve

    def _next_fault(self, path: str) -> Fault | None:
        queue = self.faults.get(path)
        if not queue:
            return None
        fault = queue[0]
        fault.times -= 1
        if fault.times <= 0:
            queue.pop(0)
        return fault

    def _routes(self) -> dict[str, Callable[[dict[str, str]], tuple[int, Json]]]:
        return {
            "/fapi/v1/klines": self.binance_klines,
            "/fapi/v1/premiumIndex": self.binance_premium,
            "/fapi/v1/fundingRate": self.binance_funding,
            "/futures/data/openInterestHist": self.binance_oi,
            "/futures/data/globalLongShortAccountRatio": self.binance_ratio,
            "/v5/market/kline": self.bybit_kline,
            "/v5/market/open-interest": self.bybit_oi,
            "/v5/market/funding/history": self.bybit_funding,
            "/v5/market/account-ratio": self.bybit_ratio,
            "/v5/market/tickers": self.bybit_tickers,
            "/api/v5/market/candles": self.okx_candles,
            "/api/v5/market/history-candles": self.okx_history_candles,
            "/api/v5/rubik/stat/contracts/open-interest-history": self.okx_oi,
            "/api/v5/rubik/stat/taker-volume-contract": self.okx_taker,
            "/api/v5/rubik/stat/contracts/long-short-account-ratio-contract": self.okx_ratio,
            "/api/v5/public/funding-rate": self.okx_funding_now,
            "/api/v5/public/funding-rate-history": self.okx_funding_history,
            "/api/v5/public/mark-price": self.okx_mark,
            "/api/v5/market/index-tickers": self.okx_index,
            "/api/v5/public/instruments": self.okx_instruments,
        }

    # helpers

    def _times(self, step: int, start: int, end: int, limit: int = 5000,
               newest: bool = False) -> list[int]:
        """Up to `limit` multiples of step in [start, end], not after now; the earliest ones,
        or the latest ones when `newest`; oldest first."""
        first = -(-start // step) * step
        last = min(end, self.now_ms) // step * step
        if newest:
            first = max(first, last - (limit - 1) * step)
        else:
            last = min(last, first + (limit - 1) * step)
        return list(range(first, last + 1, step))

    # Binance: oldest first, errors as HTTP 400 {"code","msg"}

    def _binance_symbol(self, q: dict[str, str]) -> str | None:
        symbol = q.get("symbol", "")
        return symbol[:-4] if symbol.endswith("USDT") and symbol[:-4] in KNOWN else None

    def _binance_range(self, q: dict[str, str], step: int, limit_max: int,
                       history: int | None = None) -> tuple[int, list[int]] | tuple[int, Json]:
        limit = int(q.get("limit", "500"))
        if limit > limit_max:
            return 400, {"code": -1130, "msg": "Data sent for paramter 'limit' is not valid."}
        end = int(q.get("endTime", self.now_ms))
        start = int(q.get("startTime", end - step * (limit - 1)))
        if history is not None and start < self.now_ms - history:
            return 400, {"code": -1130, "msg": "parameter 'startTime' is invalid."}
        return 200, self._times(step, start, end, limit)

    def binance_klines(self, q: dict[str, str]) -> tuple[int, Json]:
        if self._binance_symbol(q) is None:
            return 400, {"code": -1121, "msg": "Invalid symbol."}
        iv = {"1m": MINUTE, "5m": 5 * MINUTE, "15m": 15 * MINUTE, "1h": HOUR}[q["interval"]]
        status, times = self._binance_range(q, iv, 1500)
        if status != 200:
            return status, times
        rows = []
        for t in times:  # type: ignore[union-attr]
            o, h, lo, c, v, tb = kline(t, iv)
            rows.append([t, f"{o:.1f}", f"{h:.1f}", f"{lo:.1f}", f"{c:.1f}", f"{v:.3f}",
                         t + iv - 1, f"{v * c:.2f}", 100, f"{tb:.3f}", f"{tb * c:.2f}", "0"])
        return 200, rows

    def _binance_stat(self, q: dict[str, str], row: Callable[[int], dict[str, object]],
                      ) -> tuple[int, Json]:
        if self._binance_symbol(q) is None:
            return 400, {"code": -1121, "msg": "Invalid symbol."}
        period = {"5m": 5 * MINUTE, "15m": 15 * MINUTE, "1h": HOUR, "4h": 4 * HOUR}[q["period"]]
        status, times = self._binance_range(q, period, 500, history=30 * DAY)
        if status != 200:
            return status, times
        return 200, [row(t) for t in times]  # type: ignore[union-attr]

    def binance_oi(self, q: dict[str, str]) -> tuple[int, Json]:
        return self._binance_stat(q, lambda t: {
            "symbol": q["symbol"], "sumOpenInterest": f"{oi_usd(t) / price(t):.3f}",
            "sumOpenInterestValue": f"{oi_usd(t):.2f}", "timestamp": t})

    def binance_ratio(self, q: dict[str, str]) -> tuple[int, Json]:
        def row(t: int) -> dict[str, object]:
            share = long_share(t)
            return {"symbol": q["symbol"], "longShortRatio": f"{share / (1 - share):.4f}",
                    "longAccount": f"{share:.4f}", "shortAccount": f"{1 - share:.4f}",
                    "timestamp": t}
        return self._binance_stat(q, row)

    def binance_funding(self, q: dict[str, str]) -> tuple[int, Json]:
        if self._binance_symbol(q) is None:
            return 400, {"code": -1121, "msg": "Invalid symbol."}
        status, times = self._binance_range(q, 8 * HOUR, 1000)
        if status != 200:
            return status, times
        return 200, [{"symbol": q["symbol"], "fundingTime": t, "fundingRate": f"{funding(t):.8f}",
                      "markPrice": f"{price(t):.2f}"} for t in times]  # type: ignore[union-attr]

    def binance_premium(self, q: dict[str, str]) -> tuple[int, Json]:
        if self._binance_symbol(q) is None:
            return 400, {"code": -1121, "msg": "Invalid symbol."}
        t = self.now_ms
        return 200, {"symbol": q["symbol"], "markPrice": f"{price(t):.2f}",
                     "indexPrice": f"{price(t) - 5:.2f}", "estimatedSettlePrice": "0",
                     "lastFundingRate": f"{funding(t):.8f}", "interestRate": "0.0001",
                     "nextFundingTime": t + 8 * HOUR, "time": t}

    # Bybit: envelope, newest first, retCode errors with HTTP 200

    def _bybit(self, result: dict[str, object]) -> tuple[int, Json]:
        return 200, {"retCode": 0, "retMsg": "OK", "result": result, "retExtInfo": {},
                     "time": self.now_ms}

    def _bybit_bad_symbol(self, q: dict[str, str]) -> tuple[int, Json] | None:
        symbol = q.get("symbol", "")
        if symbol.endswith("USDT") and symbol[:-4] in KNOWN:
            return None
        return 200, {"retCode": 10001, "retMsg": "params error: symbol invalid", "result": {},
                     "retExtInfo": {}, "time": self.now_ms}

    def bybit_kline(self, q: dict[str, str]) -> tuple[int, Json]:
        if (bad := self._bybit_bad_symbol(q)) is not None:
            return bad
        iv = {"1": MINUTE, "5": 5 * MINUTE, "15": 15 * MINUTE, "60": HOUR}[q["interval"]]
        limit = min(int(q.get("limit", "200")), 1000)
        end = int(q.get("end", self.now_ms))
        times = self._times(iv, int(q.get("start", 0)), end, limit, newest=True)
        rows = []
        for t in reversed(times):
            o, h, lo, c, v, _ = kline(t, iv)
            rows.append([str(t), f"{o:.1f}", f"{h:.1f}", f"{lo:.1f}", f"{c:.1f}", f"{v:.3f}",
                         f"{v * c:.2f}"])
        return self._bybit({"category": "linear", "symbol": q["symbol"], "list": rows})

    def _bybit_cursor(self, q: dict[str, str], period_key: str, limit_max: int,
                      row: Callable[[int], dict[str, str]]) -> tuple[int, Json]:
        if (bad := self._bybit_bad_symbol(q)) is not None:
            return bad
        period = {"5min": 5 * MINUTE, "15min": 15 * MINUTE, "1h": HOUR, "4h": 4 * HOUR}[
            q[period_key]]
        limit = min(int(q.get("limit", "50")), limit_max)
        times = list(reversed(self._times(period, int(q.get("startTime", 0)),
                                          int(q.get("endTime", self.now_ms)), 100_000,
                                          newest=True)))
        offset = int(q.get("cursor", "0") or "0")
        page = times[offset:offset + limit]
        cursor = str(offset + limit) if offset + limit < len(times) else ""
        return self._bybit({"symbol": q["symbol"], "category": "linear",
                            "list": [row(t) for t in page], "nextPageCursor": cursor})

    def bybit_oi(self, q: dict[str, str]) -> tuple[int, Json]:
        return self._bybit_cursor(q, "intervalTime", 200, lambda t: {
            "openInterest": f"{oi_usd(t) / price(t):.4f}", "timestamp": str(t)})

    def bybit_ratio(self, q: dict[str, str]) -> tuple[int, Json]:
        return self._bybit_cursor(q, "period", 500, lambda t: {
            "symbol": q["symbol"], "buyRatio": f"{long_share(t):.4f}",
            "sellRatio": f"{1 - long_share(t):.4f}", "timestamp": str(t)})

    def bybit_funding(self, q: dict[str, str]) -> tuple[int, Json]:
        if (bad := self._bybit_bad_symbol(q)) is not None:
            return bad
        limit = min(int(q.get("limit", "200")), 200)
        times = self._times(8 * HOUR, int(q.get("startTime", 0)),
                            int(q.get("endTime", self.now_ms)), limit, newest=True)
        return self._bybit({"category": "linear", "list": [
            {"symbol": q["symbol"], "fundingRate": f"{funding(t):.8f}",
             "fundingRateTimestamp": str(t)} for t in reversed(times)]})

    def bybit_tickers(self, q: dict[str, str]) -> tuple[int, Json]:
        if (bad := self._bybit_bad_symbol(q)) is not None:
            return bad
        t = self.now_ms
        return self._bybit({"category": "linear", "list": [{
            "symbol": q["symbol"], "lastPrice": f"{price(t):.2f}",
            "indexPrice": f"{price(t) - 5:.2f}", "markPrice": f"{price(t):.2f}",
            "fundingRate": f"{funding(t):.8f}", "nextFundingTime": str(t + 8 * HOUR),
            "openInterest": "50000", "openInterestValue": "3500000000.00"}]})

    # OKX: envelope with string code, newest first

    def _okx(self, data: list[object]) -> tuple[int, Json]:
        return 200, {"code": "0", "msg": "", "data": data}

    def _okx_bad(self, inst_id: str, suffix: str = "-USDT-SWAP") -> tuple[int, Json] | None:
        if inst_id.endswith(suffix) and inst_id[: -len(suffix)] in KNOWN:
            return None
        return 200, {"code": "51001", "msg": "Instrument ID does not exist", "data": []}

    def _okx_candles(self, q: dict[str, str], recent: bool) -> tuple[int, Json]:
        if (bad := self._okx_bad(q.get("instId", ""))) is not None:
            return bad
        iv = {"1m": MINUTE, "5m": 5 * MINUTE, "15m": 15 * MINUTE, "1H": HOUR}[q["bar"]]
        limit = min(int(q.get("limit", "100")), 300 if recent else 100)
        after = int(q.get("after", self.now_ms + 1))
        before = int(q.get("before", 0))
        oldest_recent = self.now_ms - self.okx_recent_bars * iv
        start = max(before + 1, oldest_recent) if recent else before + 1
        times = self._times(iv, start, after - 1, limit, newest=True)
        rows = []
        for t in reversed(times):
            o, h, lo, c, v, _ = kline(t, iv)
            rows.append([str(t), f"{o:.1f}", f"{h:.1f}", f"{lo:.1f}", f"{c:.1f}",
                         f"{v * 100:.0f}", f"{v:.3f}", f"{v * c:.1f}",
                         "0" if t + iv > self.now_ms else "1"])
        return self._okx(rows)

    def okx_candles(self, q: dict[str, str]) -> tuple[int, Json]:
        return self._okx_candles(q, recent=True)

    def okx_history_candles(self, q: dict[str, str]) -> tuple[int, Json]:
        return self._okx_candles(q, recent=False)

    def _okx_rubik(self, q: dict[str, str], row: Callable[[int], list[str]]) -> tuple[int, Json]:
        if (bad := self._okx_bad(q.get("instId", ""))) is not None:
            return bad
        period = {"5m": 5 * MINUTE, "15m": 15 * MINUTE, "1H": HOUR, "4H": 4 * HOUR}[q["period"]]
        limit = min(int(q.get("limit", "100")), 100)
        times = self._times(period, int(q.get("begin", 0)),
                            int(q.get("end", self.now_ms)), limit, newest=True)
        return self._okx([row(t) for t in reversed(times)])

    def okx_oi(self, q: dict[str, str]) -> tuple[int, Json]:
        def row(t: int) -> list[str]:
            base = oi_usd(t) / price(t)
            return [str(t), f"{base / 0.01:.0f}", f"{base:.2f}", f"{oi_usd(t):.1f}"]
        return self._okx_rubik(q, row)

    def okx_taker(self, q: dict[str, str]) -> tuple[int, Json]:
        return self._okx_rubik(q, lambda t: [str(t), "3.5", f"{(t // MINUTE) % 11 + 1:.1f}"])

    def okx_ratio(self, q: dict[str, str]) -> tuple[int, Json]:
        return self._okx_rubik(q, lambda t: [
            str(t), f"{long_share(t) / (1 - long_share(t)):.6f}"])

    def okx_funding_history(self, q: dict[str, str]) -> tuple[int, Json]:
        if (bad := self._okx_bad(q.get("instId", ""))) is not None:
            return bad
        limit = min(int(q.get("limit", "100")), 100)
        after = int(q.get("after", self.now_ms + 1))
        times = self._times(8 * HOUR, int(q.get("before", 0)) + 1, after - 1, limit,
                            newest=True)
        return self._okx([{"instType": "SWAP", "instId": q["instId"],
                           "fundingRate": f"{funding(t):.8f}",
                           "realizedRate": f"{funding(t):.8f}", "fundingTime": str(t),
                           "method": "current_period"} for t in reversed(times)])

    def okx_funding_now(self, q: dict[str, str]) -> tuple[int, Json]:
        if (bad := self._okx_bad(q.get("instId", ""))) is not None:
            return bad
        t = self.now_ms
        return self._okx([{"instType": "SWAP", "instId": q["instId"],
                           "fundingRate": f"{funding(t):.8f}", "fundingTime": str(t + HOUR),
                           "nextFundingTime": str(t + 9 * HOUR), "ts": str(t)}])

    def okx_mark(self, q: dict[str, str]) -> tuple[int, Json]:
        if (bad := self._okx_bad(q.get("instId", ""))) is not None:
            return bad
        t = self.now_ms
        return self._okx([{"instType": "SWAP", "instId": q["instId"],
                           "markPx": f"{price(t):.1f}", "ts": str(t)}])

    def okx_index(self, q: dict[str, str]) -> tuple[int, Json]:
        if (bad := self._okx_bad(q.get("instId", ""), "-USDT")) is not None:
            return bad
        t = self.now_ms
        return self._okx([{"instId": q["instId"], "idxPx": f"{price(t) - 5:.1f}",
                           "high24h": "0", "low24h": "0", "open24h": "0", "sodUtc0": "0",
                           "sodUtc8": "0", "ts": str(t)}])

    def okx_instruments(self, q: dict[str, str]) -> tuple[int, Json]:
        if (bad := self._okx_bad(q.get("instId", ""))) is not None:
            return bad
        base = q["instId"].split("-")[0]
        return self._okx([{"instType": "SWAP", "instId": q["instId"],
                           "ctVal": str(CT_VAL[base]), "ctValCcy": base, "ctMult": "1",
                           "settleCcy": "USDT", "state": "live"}])
