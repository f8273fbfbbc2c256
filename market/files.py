"""Offline loaders: a folder of Binance public-data files, and the bench "bars" and
"liquidations" CSVs. Corrupt or inconsistent files raise DataFileError (file and line);
nothing partial is returned."""

from __future__ import annotations

import csv
import io
import logging
import math
import re
import zipfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from engine.types import Bars, FloatArray, IntArray, LiquidationEvent, Side, Venue
from market.assemble import align
from market.errors import DataFileError
from market.intervals import Interval
from market.symbols import Symbol, resolve

logger = logging.getLogger(__name__)

KLINE_COLUMNS = 11  # open_time .. taker_buy_quote_volume (+ ignore)
METRICS_HEADER = ("create_time", "symbol", "sum_open_interest", "sum_open_interest_value",
                  "count_toptrader_long_short_ratio", "sum_toptrader_long_short_ratio",
                  "count_long_short_ratio", "sum_taker_long_short_vol_ratio")
FUNDING_HEADER = ("calc_time", "funding_interval_hours", "last_funding_rate")
SNAPSHOT_HEADER = ("time", "side", "order_type", "time_in_force", "original_quantity", "price",
                   "average_price", "order_status", "last_fill_quantity",
                   "accumulated_fill_quantity")
BENCH_BARS_REQUIRED = ("time", "open", "high", "low", "close")
BENCH_BARS_OPTIONAL = ("volume", "taker_buy_volume", "open_interest_usd", "funding_rate",
                       "long_liquidations_usd", "short_liquidations_usd")
BENCH_LIQUIDATIONS_HEADER = ("time", "venue", "side", "price", "quantity", "usd")
MICROSECONDS_AFTER = 10**14  # Binance switched some files to microsecond stamps
DATE = r"(?P<date>\d{4}-\d{2}(?:-\d{2})?)"


@dataclass(frozen=True, slots=True)
class Table:
    """Rows of one CSV file (or zip member) with their line numbers."""

    name: str
    rows: list[tuple[int, list[str]]]

    def error(self, message: str, line: int | None = None) -> DataFileError:
        """A DataFileError located in this file."""
        return DataFileError(self.name, message, line=line)


class Cells:
    """Typed access to one row's cells, raising DataFileError with file and line."""

    def __init__(self, table: Table, line: int, cells: list[str]) -> None:
        self.table, self.line, self.cells = table, line, cells

    def error(self, message: str) -> DataFileError:
        """A DataFileError at this row."""
        return self.table.error(message, self.line)

    def text(self, index: int, what: str) -> str:
        """A cell's stripped text."""
        try:
            return self.cells[index].strip()
        except IndexError:
            raise self.error(f"missing {what}") from None

    def number(self, index: int, what: str, *, positive: bool = False, signed: bool = False,
               optional: bool = False) -> float:
        """A finite float (NaN for a blank optional cell); non-negative unless `signed`."""
        raw = self.text(index, what)
        if raw == "" and optional:
            return math.nan
        try:
            value = float(raw)
        except ValueError:
            raise self.error(f"{what} is {raw!r}, expected a number") from None
        if not math.isfinite(value):
            raise self.error(f"{what} is {raw!r}, expected a finite number")
        if (positive and value <= 0) or (not signed and value < 0):
            kind = "positive" if positive else "non-negative"
            raise self.error(f"{what} is {raw!r}, expected a {kind} number")
        return value

    def epoch_ms(self, index: int, what: str) -> int:
        """Epoch milliseconds from ms or µs digits, `YYYY-MM-DD HH:MM:SS` or ISO 8601."""
        raw = self.text(index, what)
        if raw.isdigit():
            value = int(raw)
            return value // 1000 if value >= MICROSECONDS_AFTER else value
        try:
            stamp = datetime.fromisoformat(raw)
        except ValueError:
            raise self.error(f"{what} is {raw!r}, expected a time") from None
        if stamp.tzinfo is None:
            stamp = stamp.replace(tzinfo=UTC)
        return int(stamp.timestamp() * 1000)


def load_binance_folder(folder: Path | str, symbol: str | Symbol = "BTC",
                        interval: str | Interval = "1m") -> Bars:
    """Bars from Binance public-data files in `folder` (daily or monthly, .csv or .zip):
    `SYMBOL-1m-*.csv` klines (header optional), plus when present `SYMBOL-metrics-*`
    (open interest, long/short account ratio), `SYMBOL-fundingRate-*` and
    `SYMBOL-liquidationSnapshot-*` (realized liquidations, summed per bar)."""
    root = Path(folder)
    if not root.is_dir():
        raise DataFileError(root, "not a folder")
    instrument = resolve(symbol).instrument(Venue.BINANCE)
    bar = Interval.parse(interval)
    kline_files = _find(root, instrument, bar.value)
    if not kline_files:
        raise DataFileError(root, f"no {instrument}-{bar.value}-*.csv or .zip files")
    time, columns = _read_klines([_table(p) for p in kline_files], bar)
    oi_times, oi, ratio_times, ratio = _read_metrics(
        [_table(p) for p in _find(root, instrument, "metrics")], instrument)
    funding_times, funding = _read_funding([_table(p) for p in _find(root, instrument,
                                                                      "fundingRate")])
    snapshot_files = _find(root, instrument, "liquidationSnapshot")
    long_usd = short_usd = np.full(time.shape, np.nan)
    if snapshot_files:
        events = _read_snapshots([_table(p) for p in snapshot_files])
        days = {_period_range(_date_of(p)) for p in snapshot_files}
        long_usd, short_usd = _sum_per_bar(events, time, bar.ms, days)
    return _bars(root.name, time, bar.ms, **columns,
                 open_interest_usd=align(oi_times, oi, time),
                 long_short_ratio=align(ratio_times, ratio, time),
                 funding_rate=align(funding_times, funding, time),
                 long_liquidations_usd=long_usd, short_liquidations_usd=short_usd)


def load_binance_liquidations(folder: Path | str, symbol: str | Symbol = "BTC",
                              ) -> list[LiquidationEvent]:
    """Realized liquidations from `SYMBOL-liquidationSnapshot-*` files, oldest first."""
    root = Path(folder)
    instrument = resolve(symbol).instrument(Venue.BINANCE)
    files = _find(root, instrument, "liquidationSnapshot")
    if not files:
        raise DataFileError(root, f"no {instrument}-liquidationSnapshot-* files")
    base = resolve(symbol).base
    return [LiquidationEvent(t, Venue.BINANCE, base, side, price, qty, price * qty)
            for t, side, price, qty in _read_snapshots([_table(p) for p in files])]


def load_bench_bars(path: Path | str) -> Bars:
    """Bars from a bench "bars" CSV; open interest and funding are carried forward from their
    first value, liquidation columns stay blank (NaN) where blank."""
    table = _table(Path(path))
    header = [h.strip() for h in (table.rows[0][1] if table.rows else [])]
    missing = [c for c in BENCH_BARS_REQUIRED if c not in header]
    if missing:
        raise table.error(f"header lacks {', '.join(missing)}", 1)
    index = {name: header.index(name) for name in (*BENCH_BARS_REQUIRED, *BENCH_BARS_OPTIONAL)
             if name in header}
    times: list[int] = []
    values: dict[str, list[float]] = {name: [] for name in index if name != "time"}
    for line, raw in table.rows[1:]:
        row = Cells(table, line, raw)
        t = row.epoch_ms(index["time"], "time")
        if times and t <= times[-1]:
            raise row.error(f"time {raw[index['time']]} is not after the previous row")
        times.append(t)
        for name in values:
            required = name in BENCH_BARS_REQUIRED
            values[name].append(row.number(index[name], name, positive=required,
                                           signed=name == "funding_rate",
                                           optional=not required))
        _check_ohlc(row, *(values[c][-1] for c in ("open", "high", "low", "close")))
    if not times:
        raise table.error("no rows")
    time = np.array(times, dtype=np.int64)
    columns = {name: np.array(v, dtype=np.float64) for name, v in values.items()}
    for name in ("open_interest_usd", "funding_rate"):
        if name in columns:
            columns[name] = _forward_fill(columns[name])
    interval_ms = int(np.median(np.diff(time))) if len(time) > 1 else Interval.M1.ms
    return _bars(table.name, time, interval_ms, **columns)


def load_bench_liquidations(path: Path | str, symbol: str | Symbol = "BTC",
                            ) -> list[LiquidationEvent]:
    """Events from a bench "liquidations" CSV (time, venue, side, price, quantity, usd)."""
    table = _table(Path(path))
    _expect_header(table, BENCH_LIQUIDATIONS_HEADER)
    base = resolve(symbol).base
    events: list[LiquidationEvent] = []
    for line, raw in table.rows[1:]:
        row = Cells(table, line, raw)
        t = row.epoch_ms(0, "time")
        if events and t < events[-1].time_ms:
            raise row.error("time goes back")
        venue, side = row.text(1, "venue").lower(), row.text(2, "side").lower()
        if venue not in {v.value for v in Venue}:
            raise row.error(f"venue is {venue!r}, expected one of {', '.join(Venue)}")
        if side not in {s.value for s in Side}:
            raise row.error(f"side is {side!r}, expected long or short")
        events.append(LiquidationEvent(
            time_ms=t, venue=Venue(venue), symbol=base, side=Side(side),
            price=row.number(3, "price", positive=True),
            quantity=row.number(4, "quantity", positive=True),
            usd=row.number(5, "usd")))
    if not events:
        raise table.error("no rows")
    return events


def _find(root: Path, instrument: str, kind: str) -> list[Path]:
    """Files `INSTRUMENT-KIND-DATE.csv|zip`, by date; a .csv wins over a .zip of the same date."""
    pattern = re.compile(rf"{re.escape(instrument)}-{re.escape(kind)}-{DATE}\.(csv|zip)")
    by_date: dict[str, Path] = {}
    for path in sorted(root.iterdir()):
        found = pattern.fullmatch(path.name)
        if found is None:
            continue
        date = found.group("date")
        if date in by_date and by_date[date].suffix == ".csv":
            logger.debug("%s: using the .csv of the same date", path.name)
            continue
        by_date[date] = path
    return [by_date[d] for d in sorted(by_date)]


def _date_of(path: Path) -> str:
    """The date part of a Binance file name."""
    found = re.search(DATE + r"\.(csv|zip)$", path.name)
    return found.group("date") if found else ""


def _period_range(date: str) -> tuple[int, int]:
    """[start, end) in epoch ms of a `YYYY-MM-DD` day or `YYYY-MM` month."""
    if len(date) == 7:
        first = datetime.strptime(date, "%Y-%m").replace(tzinfo=UTC)
        following = first.replace(year=first.year + first.month // 12,
                                  month=first.month % 12 + 1)
    else:
        first = datetime.strptime(date, "%Y-%m-%d").replace(tzinfo=UTC)
        following = datetime.fromtimestamp(first.timestamp() + 86_400, UTC)
    return int(first.timestamp() * 1000), int(following.timestamp() * 1000)


def _table(path: Path) -> Table:
    """All rows of a CSV file, or of the single CSV inside a zip."""
    try:
        if path.suffix == ".zip":
            with zipfile.ZipFile(path) as archive:
                members = [m for m in archive.namelist() if m.endswith(".csv")]
                if len(members) != 1:
                    raise DataFileError(path, f"zip holds {len(members)} .csv files, expected 1")
                name = f"{path.name}!{members[0]}"
                data = archive.read(members[0])
        else:
            name, data = path.name, path.read_bytes()
        text = data.decode("utf-8-sig")
    except (OSError, zipfile.BadZipFile, UnicodeDecodeError) as exc:
        raise DataFileError(path, f"cannot read: {exc}") from None
    reader = csv.reader(io.StringIO(text))
    rows: list[tuple[int, list[str]]] = []
    try:
        for cells in reader:
            if cells and any(c.strip() for c in cells):
                rows.append((reader.line_num, cells))
    except csv.Error as exc:
        raise DataFileError(name, f"malformed CSV: {exc}", line=reader.line_num) from None
    return Table(name, rows)


def _expect_header(table: Table, header: Sequence[str]) -> None:
    """Raise unless the first row is exactly `header`."""
    if not table.rows:
        raise table.error("empty file")
    line, first = table.rows[0]
    if tuple(c.strip() for c in first) != tuple(header):
        raise table.error(f"header is {','.join(first)!r}, expected {','.join(header)!r}",
                          line)


def _data_rows(table: Table) -> Iterator[Cells]:
    """Rows after an optional header (a first row whose first cell is not a number)."""
    rows = table.rows
    if rows and not rows[0][1][0].strip().isdigit():
        rows = rows[1:]
    if not rows:
        raise table.error("no rows")
    for line, cells in rows:
        yield Cells(table, line, cells)


def _check_ohlc(row: Cells, o: float, h: float, low: float, c: float) -> None:
    """Raise when low/high do not enclose open and close."""
    if low > min(o, c) or h < max(o, c):
        raise row.error(f"low {low:g} / high {h:g} do not enclose open {o:g} and close {c:g}")


def _read_klines(tables: list[Table], bar: Interval) -> tuple[IntArray, dict[str, FloatArray]]:
    """Open times and OHLCV columns of kline files, checked row by row."""
    times: list[int] = []
    cols: list[list[float]] = [[] for _ in range(6)]
    for table in tables:
        for row in _data_rows(table):
            if len(row.cells) < KLINE_COLUMNS:
                raise row.error(f"{len(row.cells)} columns, expected at least {KLINE_COLUMNS}")
            t = row.epoch_ms(0, "open_time")
            if times and (t <= times[-1] or (t - times[-1]) % bar.ms):
                raise row.error(f"open_time {t} does not follow {times[-1]} "
                                f"by a multiple of {bar.value}")
            o, h, low, c = (row.number(i, n, positive=True)
                            for i, n in enumerate(("open", "high", "low", "close"), start=1))
            _check_ohlc(row, o, h, low, c)
            volume, taker = row.number(5, "volume"), row.number(9, "taker_buy_volume")
            if taker > volume * (1 + 1e-9):
                raise row.error(f"taker_buy_volume {taker:g} exceeds volume {volume:g}")
            times.append(t)
            for col, value in zip(cols, (o, h, low, c, volume, taker), strict=True):
                col.append(value)
    names = ("open", "high", "low", "close", "volume", "taker_buy_volume")
    return (np.array(times, dtype=np.int64),
            {n: np.array(c, dtype=np.float64) for n, c in zip(names, cols, strict=True)})


def _read_metrics(tables: list[Table], instrument: str,
                  ) -> tuple[IntArray, FloatArray, IntArray, FloatArray]:
    """(times, OI USD) and (times, long/short ratio) of metrics files; blanks are skipped."""
    oi: list[tuple[int, float]] = []
    ratio: list[tuple[int, float]] = []
    last = -1
    for table in tables:
        _expect_header(table, METRICS_HEADER)
        for line, raw in table.rows[1:]:
            row = Cells(table, line, raw)
            t = row.epoch_ms(0, "create_time")
            if t <= last:
                raise row.error(f"create_time {raw[0]} is not after the previous row")
            last = t
            if row.text(1, "symbol") != instrument:
                raise row.error(f"symbol is {raw[1]!r}, expected {instrument!r}")
            for index in (2, 4, 5, 7):
                row.number(index, METRICS_HEADER[index], optional=True)
            value = row.number(3, "sum_open_interest_value", optional=True)
            if not math.isnan(value):
                oi.append((t, value))
            accounts = row.number(6, "count_long_short_ratio", optional=True)
            if not math.isnan(accounts):
                ratio.append((t, accounts))
    return (*_arrays(oi), *_arrays(ratio))


def _read_funding(tables: list[Table]) -> tuple[IntArray, FloatArray]:
    """(times, rate) of fundingRate files."""
    points: list[tuple[int, float]] = []
    for table in tables:
        _expect_header(table, FUNDING_HEADER)
        for line, raw in table.rows[1:]:
            row = Cells(table, line, raw)
            t = row.epoch_ms(0, "calc_time")
            if points and t <= points[-1][0]:
                raise row.error(f"calc_time {raw[0]} is not after the previous row")
            row.number(1, "funding_interval_hours", positive=True)
            points.append((t, row.number(2, "last_funding_rate", signed=True)))
    return _arrays(points)


def _read_snapshots(tables: list[Table]) -> list[tuple[int, Side, float, float]]:
    """(time, liquidated side, price, quantity) of liquidationSnapshot files; SELL = long."""
    sides = {"SELL": Side.LONG, "BUY": Side.SHORT}
    events: list[tuple[int, Side, float, float]] = []
    for table in tables:
        _expect_header(table, SNAPSHOT_HEADER)
        for line, raw in table.rows[1:]:
            row = Cells(table, line, raw)
            t = row.epoch_ms(0, "time")
            if events and t < events[-1][0]:
                raise row.error("time goes back")
            side = row.text(1, "side").upper()
            if side not in sides:
                raise row.error(f"side is {raw[1]!r}, expected BUY or SELL")
            price = row.number(6, "average_price") or row.number(5, "price", positive=True)
            qty = row.number(9, "accumulated_fill_quantity") or row.number(
                4, "original_quantity", positive=True)
            events.append((t, sides[side], price, qty))
    return events


def _sum_per_bar(events: list[tuple[int, Side, float, float]], time: IntArray,
                 interval_ms: int, days: set[tuple[int, int]]) -> tuple[FloatArray, FloatArray]:
    """Long and short liquidation USD per bar: 0 in covered days without events, NaN outside."""
    covered = np.zeros(time.shape, dtype=np.bool_)
    for start, end in days:
        covered |= (time >= start) & (time < end)
    sums = {Side.LONG: np.where(covered, 0.0, np.nan), Side.SHORT: np.where(covered, 0.0, np.nan)}
    for t, side, price, qty in events:
        i = int(np.searchsorted(time, t, side="right")) - 1
        if i >= 0 and t < time[i] + interval_ms and covered[i]:
            sums[side][i] += price * qty
    return sums[Side.LONG], sums[Side.SHORT]


def _arrays(points: list[tuple[int, float]]) -> tuple[IntArray, FloatArray]:
    """Time and value columns."""
    return (np.array([p[0] for p in points], dtype=np.int64),
            np.array([p[1] for p in points], dtype=np.float64))


def _forward_fill(values: FloatArray) -> FloatArray:
    """Carry the last known value over NaNs, never before the first one."""
    index = np.where(np.isnan(values), -1, np.arange(values.size))
    index = np.maximum.accumulate(index)
    out = np.full(values.shape, np.nan)
    known = index >= 0
    out[known] = values[index[known]]
    return out


def _bars(name: str, time: IntArray, interval_ms: int, **columns: FloatArray) -> Bars:
    """Validated Bars, or a DataFileError naming the source."""
    try:
        return Bars.from_columns(time, columns.pop("open"), columns.pop("high"),
                                 columns.pop("low"), columns.pop("close"),
                                 interval_ms=interval_ms, **columns)
    except ValueError as exc:
        raise DataFileError(name, str(exc)) from exc
