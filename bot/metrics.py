"""In-process metrics in the Prometheus text format (by hand) and an event-loop lag probe."""

from __future__ import annotations

import asyncio
import bisect
import os
import time
from collections import deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

LabelKey = tuple[tuple[str, str], ...]
LAG_BUCKETS = (0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.075, 0.1, 0.15, 0.25, 0.5, 1.0, 2.5)


def _labels(labels: Mapping[str, str]) -> LabelKey:
    return tuple(sorted(labels.items()))


def _fmt(key: LabelKey) -> str:
    if not key:
        return ""
    inner = ",".join(f'{k}="{_escape(v)}"' for k, v in key)
    return "{" + inner + "}"


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def quantile(values: Iterable[float], q: float) -> float:
    """The q-quantile (nearest rank) of values; 0.0 when empty."""
    ordered = sorted(values)
    if not ordered:
        return 0.0
    rank = min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))
    return ordered[rank]


def resident_memory_bytes() -> int:
    """Resident set size of this process (0 where /proc is missing)."""
    try:
        with open("/proc/self/statm", encoding="ascii") as fh:
            return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return 0


@dataclass(slots=True)
class Metrics:
    """Counters, gauges and summaries by name and labels; `render()` gives the exposition text."""

    counters: dict[tuple[str, LabelKey], float] = field(default_factory=dict)
    gauges: dict[tuple[str, LabelKey], float] = field(default_factory=dict)
    sums: dict[tuple[str, LabelKey], tuple[int, float]] = field(default_factory=dict)
    help: dict[str, tuple[str, str]] = field(default_factory=dict)
    loop_lag: deque[float] = field(default_factory=lambda: deque(maxlen=6000))
    lag_buckets: list[int] = field(default_factory=lambda: [0] * (len(LAG_BUCKETS) + 1))
    lag_count: int = 0
    lag_sum: float = 0.0

    def record_lag(self, seconds: float) -> None:
        """One event-loop lag observation (recent window and lifetime histogram)."""
        self.loop_lag.append(seconds)
        self.lag_buckets[bisect.bisect_left(LAG_BUCKETS, seconds)] += 1
        self.lag_count += 1
        self.lag_sum += seconds

    def describe(self, name: str, kind: str, text: str) -> None:
        """Set a metric's TYPE and HELP lines."""
        self.help[name] = (kind, text)

    def inc(self, name: str, amount: float = 1.0, **labels: str) -> None:
        """Add to a counter."""
        key = (name, _labels(labels))
        self.counters[key] = self.counters.get(key, 0.0) + amount

    def set(self, name: str, value: float, **labels: str) -> None:
        """Set a gauge."""
        self.gauges[(name, _labels(labels))] = value

    def observe(self, name: str, value: float, **labels: str) -> None:
        """Add an observation to a summary (count and sum)."""
        key = (name, _labels(labels))
        count, total = self.sums.get(key, (0, 0.0))
        self.sums[key] = (count + 1, total + value)

    def counter(self, name: str, **labels: str) -> float:
        """Current value of a counter."""
        return self.counters.get((name, _labels(labels)), 0.0)

    def lag_quantiles(self) -> dict[str, float]:
        """Event-loop lag p50, p99 and max in seconds over the recent window (5 minutes)."""
        lags = list(self.loop_lag)
        return {"0.5": quantile(lags, 0.5), "0.99": quantile(lags, 0.99),
                "max": max(lags, default=0.0)}

    def render(self, extra_gauges: Mapping[tuple[str, LabelKey], float] | None = None) -> str:
        """The Prometheus text exposition (version 0.0.4)."""
        lines: list[str] = []
        seen: set[str] = set()

        def head(name: str, default_kind: str) -> None:
            if name in seen:
                return
            seen.add(name)
            kind, text = self.help.get(name, (default_kind, name.replace("_", " ")))
            lines.append(f"# HELP {name} {text}")
            lines.append(f"# TYPE {name} {kind}")

        for (name, key), value in sorted(self.counters.items()):
            head(name, "counter")
            lines.append(f"{name}{_fmt(key)} {value:g}")
        gauges = dict(self.gauges)
        gauges.update(extra_gauges or {})
        for (name, key), value in sorted(gauges.items()):
            head(name, "gauge")
            lines.append(f"{name}{_fmt(key)} {value:.6g}")
        for (name, key), (count, total) in sorted(self.sums.items()):
            head(name, "summary")
            lines.append(f"{name}_count{_fmt(key)} {count}")
            lines.append(f"{name}_sum{_fmt(key)} {total:.6f}")
        head("liqradar_event_loop_lag_seconds", "histogram")
        cumulative = 0
        for bound, count in zip(LAG_BUCKETS, self.lag_buckets, strict=False):
            cumulative += count
            lines.append(f'liqradar_event_loop_lag_seconds_bucket{{le="{bound:g}"}} {cumulative}')
        lines.append(f'liqradar_event_loop_lag_seconds_bucket{{le="+Inf"}} {self.lag_count}')
        lines.append(f"liqradar_event_loop_lag_seconds_count {self.lag_count}")
        lines.append(f"liqradar_event_loop_lag_seconds_sum {self.lag_sum:.6f}")
        lag = self.lag_quantiles()
        for label, quantile in (("p99", "0.99"), ("max", "max")):
            head(f"liqradar_event_loop_lag_{label}_seconds", "gauge")
            lines.append(f"liqradar_event_loop_lag_{label}_seconds {lag[quantile]:.6f}")
        head("process_resident_memory_bytes", "gauge")
        lines.append(f"process_resident_memory_bytes {resident_memory_bytes()}")
        return "\n".join(lines) + "\n"


async def watch_loop_lag(metrics: Metrics, stop: asyncio.Event, interval: float = 0.05) -> None:
    """Measure how late the loop wakes a sleeper, every `interval` seconds, until `stop`."""
    loop = asyncio.get_running_loop()
    while not stop.is_set():
        start = loop.time()
        await asyncio.sleep(interval)
        metrics.record_lag(max(0.0, loop.time() - start - interval))


def monotonic() -> float:
    """Monotonic seconds (for timing refreshes)."""
    return time.perf_counter()
