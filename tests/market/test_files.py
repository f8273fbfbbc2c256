"""Offline loaders on real sample files, and on the same files corrupted."""

from __future__ import annotations

import math
import shutil
import zipfile
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from engine.types import Side, Venue
from market.errors import DataFileError
from market.files import (
    load_bench_bars,
    load_bench_liquidations,
    load_binance_folder,
    load_binance_liquidations,
)

FIXTURES = Path(__file__).parent / "fixtures"
SHARED_BENCH = Path("/work/shared/data/bench")
DAILY = FIXTURES / "binance_daily"
T_2340 = 1772667600000  # 2026-03-04T23:40Z
T_0000 = 1772668800000  # 2026-03-05T00:00Z


def test_binance_folder_csv_with_header_and_zip_without() -> None:
    bars = load_binance_folder(DAILY, "btc", "1m")
    assert len(bars) == 40 and bars.interval_ms == 60_000
    np.testing.assert_array_equal(bars.time, T_2340 + np.arange(40) * 60_000)
    first_row = (DAILY / "BTCUSDT-1m-2026-03-04.csv").read_text().splitlines()[1].split(",")
    assert (bars.open[0], bars.close[0]) == (float(first_row[1]), float(first_row[4]))
    assert bars.volume[0] == float(first_row[5])
    assert bars.taker_buy_volume[0] == float(first_row[9])


def test_binance_folder_context_is_carried_forward() -> None:
    bars = load_binance_folder(DAILY)
    midnight = int(np.searchsorted(bars.time, T_0000))
    assert midnight == 20
    np.testing.assert_array_equal(bars.open_interest_usd[:20], 6663302648.0)
    np.testing.assert_array_equal(bars.open_interest_usd[20:], 6649390277.0)
    np.testing.assert_array_equal(bars.funding_rate[:20], 0.00000121)
    np.testing.assert_array_equal(bars.funding_rate[20:], 0.00003521)
    assert np.isnan(bars.long_short_ratio).all()  # ratio columns are blank in the sample
    assert np.isnan(bars.long_liquidations_usd).all()


def test_binance_folder_prefers_csv_over_zip_of_the_same_day(tmp_path: Path) -> None:
    shutil.copytree(DAILY, tmp_path, dirs_exist_ok=True)
    with zipfile.ZipFile(tmp_path / "BTCUSDT-1m-2026-03-05.zip") as archive:
        text = archive.read("BTCUSDT-1m-2026-03-05.csv").decode()
    (tmp_path / "BTCUSDT-1m-2026-03-05.csv").write_text("\n".join(text.splitlines()[:5]))
    assert len(load_binance_folder(tmp_path)) == 25


def test_binance_folder_ignores_other_symbols_and_intervals(tmp_path: Path) -> None:
    shutil.copytree(DAILY, tmp_path, dirs_exist_ok=True)
    (tmp_path / "ETHUSDT-1m-2026-03-04.csv").write_text("garbage")
    (tmp_path / "BTCUSDT-5m-2026-03-04.csv").write_text("garbage")
    (tmp_path / "notes.txt").write_text("hello")
    assert len(load_binance_folder(tmp_path)) == 40


def test_binance_liquidation_snapshots_are_summed_per_bar() -> None:
    folder = FIXTURES / "binance_liquidations"
    bars = load_binance_folder(folder, "BTCUSDT")
    assert len(bars) == 20
    assert np.nansum(bars.long_liquidations_usd) == pytest.approx(0.020 * 103292.0)
    short = 0.010 * 104083.0 + 0.003 * 104241.9 + 0.001 * 104293.9 + 0.490 * 104301.2 \
        + 0.006 * 104307.2
    assert np.nansum(bars.short_liquidations_usd) == pytest.approx(short)
    assert not np.isnan(bars.long_liquidations_usd).any()  # the day is covered: zeros
    assert bars.short_liquidations_usd[4] == pytest.approx(1040.83)  # 20:59
    events = load_binance_liquidations(folder, "BTC")
    assert len(events) == 6 and events[2].side is Side.LONG
    assert all(e.venue is Venue.BINANCE and e.symbol == "BTC" for e in events)


def test_bench_bars_sample() -> None:
    bars = load_bench_bars(FIXTURES / "bench" / "btcusdt-1m-sample.bars.csv")
    assert len(bars) == 20 and bars.interval_ms == 60_000
    at_20 = 10  # 19:50 + 10 minutes
    assert np.isnan(bars.open_interest_usd[:at_20]).all()
    np.testing.assert_array_equal(bars.open_interest_usd[at_20:], 6734488537.0)
    np.testing.assert_array_equal(bars.funding_rate[at_20:], -0.00004887)
    assert np.isnan(bars.long_liquidations_usd).all()
    assert bars.taker_buy_volume[0] > 0


def test_bench_hourly_sample_has_everything() -> None:
    bars = load_bench_bars(FIXTURES / "bench" / "btcusdt-1h-sample.bars.csv")
    assert len(bars) == 24 and bars.interval_ms == 3_600_000
    for column in (bars.open_interest_usd, bars.funding_rate, bars.long_liquidations_usd,
                   bars.short_liquidations_usd):
        assert np.isfinite(column).all()
    assert np.isnan(bars.volume).all()


def test_bench_liquidations_sample() -> None:
    events = load_bench_liquidations(FIXTURES / "bench" / "btc-okx-liquidations-sample.csv")
    assert len(events) == 20
    first = events[0]
    assert (first.venue, first.side, first.price, first.quantity, first.usd) == (
        Venue.OKX, Side.LONG, 72431.4, 0.0021, 152.11)
    assert first.time_ms == 1772664343000


@pytest.mark.skipif(not SHARED_BENCH.is_dir(), reason="shared data folder not mounted")
@pytest.mark.parametrize(("name", "count", "interval_ms"), [
    ("btcusdt-1h-2025-12-04_2026-06-02.bars.csv", 4312, 3_600_000),
    ("btcusdt-1m-2026-03-04_05.bars.csv", 982, 60_000),
])
def test_full_bench_bars(name: str, count: int, interval_ms: int) -> None:
    bars = load_bench_bars(SHARED_BENCH / name)
    assert (len(bars), bars.interval_ms) == (count, interval_ms)
    known = np.isfinite(bars.open_interest_usd)
    assert known[int(np.argmax(known)):].all()  # carried forward once known


@pytest.mark.skipif(not SHARED_BENCH.is_dir(), reason="shared data folder not mounted")
def test_full_bench_liquidations() -> None:
    events = load_bench_liquidations(SHARED_BENCH / "btc-okx-liquidations-2026-03-04_05.csv")
    assert len(events) == 1611
    assert sum(e.side is Side.LONG for e in events) == 611


Edit = Callable[[list[str]], list[str]]


def cell(line: int, column: int, value: str) -> Edit:
    """Replace one cell of one line (1-based line numbers, as in messages)."""
    def edit(lines: list[str]) -> list[str]:
        cells = lines[line - 1].split(",")
        cells[column] = value
        lines[line - 1] = ",".join(cells)
        return lines
    return edit


def swap(a: int, b: int) -> Edit:
    def edit(lines: list[str]) -> list[str]:
        lines[a - 1], lines[b - 1] = lines[b - 1], lines[a - 1]
        return lines
    return edit


KLINES = "BTCUSDT-1m-2026-03-04.csv"
METRICS = "BTCUSDT-metrics-2026-03-04.csv"
FUNDING = "BTCUSDT-fundingRate-2026-03.csv"

CORRUPT_DAILY: list[tuple[str, Edit, str]] = [
    (KLINES, cell(3, 4, "NaN"), f"{KLINES} line 3: close is 'NaN'"),
    (KLINES, cell(4, 4, "x"), f"{KLINES} line 4: close is 'x', expected a number"),
    (KLINES, cell(5, 5, "-1.5"), f"{KLINES} line 5: volume is '-1.5'"),
    (KLINES, cell(6, 3, "99999"), f"{KLINES} line 6: low 99999 / high"),
    (KLINES, cell(7, 9, "9999"), f"{KLINES} line 7: taker_buy_volume 9999 exceeds"),
    (KLINES, cell(8, 1, "0"), f"{KLINES} line 8: open is '0'"),
    (KLINES, swap(3, 4), f"{KLINES} line 4: open_time"),
    (KLINES, lambda ls: [*ls[:3], ls[2], *ls[3:]], f"{KLINES} line 4: open_time"),
    (KLINES, cell(3, 0, "1772667630000"), f"{KLINES} line 3: open_time 1772667630000 does not"),
    (KLINES, lambda ls: [*ls[:2], "1772667660000,1,2", *ls[3:]], f"{KLINES} line 3: 3 columns"),
    (KLINES, lambda ls: [*ls[:2], "hello world", *ls[3:]], f"{KLINES} line 3: 1 columns"),
    (KLINES, lambda ls: ls[:1], f"{KLINES}: no rows"),
    (KLINES, lambda ls: [], f"{KLINES}: no rows"),
    (METRICS, lambda ls: ["create_time,symbol", *ls[1:]], f"{METRICS} line 1: header is"),
    (METRICS, cell(2, 1, "ETHUSDT"), f"{METRICS} line 2: symbol is 'ETHUSDT'"),
    (METRICS, cell(2, 3, "lots"), f"{METRICS} line 2: sum_open_interest_value is 'lots'"),
    (METRICS, cell(2, 6, "-2"), f"{METRICS} line 2: count_long_short_ratio is '-2'"),
    (METRICS, cell(2, 0, "2026-03-05 01:00:00"),
     "BTCUSDT-metrics-2026-03-05.csv line 2: create_time"),
    (METRICS, cell(2, 0, "yesterday"), f"{METRICS} line 2: create_time is 'yesterday'"),
    (FUNDING, cell(3, 2, "inf"), f"{FUNDING} line 3: last_funding_rate is 'inf'"),
    (FUNDING, swap(2, 3), f"{FUNDING} line 3: calc_time"),
]


@pytest.mark.parametrize(("name", "edit", "message"), CORRUPT_DAILY)
def test_corrupt_binance_files(tmp_path: Path, name: str, edit: Edit, message: str) -> None:
    shutil.copytree(DAILY, tmp_path, dirs_exist_ok=True)
    path = tmp_path / name
    path.write_text("\n".join(edit(path.read_text().splitlines())) + "\n")
    with pytest.raises(DataFileError) as info:
        load_binance_folder(tmp_path)
    assert message in str(info.value)
    assert "\n" not in str(info.value)


def test_overlapping_days_are_refused(tmp_path: Path) -> None:
    shutil.copytree(DAILY, tmp_path, dirs_exist_ok=True)
    (tmp_path / "BTCUSDT-1m-2026-03-05.zip").unlink()
    last = (DAILY / KLINES).read_text().splitlines()[-1]
    (tmp_path / "BTCUSDT-1m-2026-03-05.csv").write_text(last + "\n")
    with pytest.raises(DataFileError, match=r"BTCUSDT-1m-2026-03-05.csv line 1: open_time"):
        load_binance_folder(tmp_path)


@pytest.mark.parametrize(("content", "message"), [
    (b"PK\x03\x04 this is not a zip", "cannot read"),
    (None, "zip holds 2 .csv files, expected 1"),
])
def test_bad_zip(tmp_path: Path, content: bytes | None, message: str) -> None:
    shutil.copytree(DAILY, tmp_path, dirs_exist_ok=True)
    path = tmp_path / "BTCUSDT-1m-2026-03-05.zip"
    if content is None:
        with zipfile.ZipFile(path, "a") as archive:
            archive.writestr("second.csv", "1,2,3")
    else:
        path.write_bytes(content)
    with pytest.raises(DataFileError, match=f"BTCUSDT-1m-2026-03-05.zip: {message}"):
        load_binance_folder(tmp_path)


def test_snapshot_with_bad_side(tmp_path: Path) -> None:
    shutil.copytree(FIXTURES / "binance_liquidations", tmp_path, dirs_exist_ok=True)
    path = tmp_path / "BTCUSDT-liquidationSnapshot-2025-06-23.csv"
    path.write_text(path.read_text().replace("SELL", "HOLD"))
    with pytest.raises(DataFileError, match="line 4: side is 'HOLD'"):
        load_binance_folder(tmp_path)
    with pytest.raises(DataFileError, match="line 4: side is 'HOLD'"):
        load_binance_liquidations(tmp_path)


@pytest.mark.parametrize(("folder", "symbol", "message"), [
    (DAILY, "ETH", "no ETHUSDT-1m-*.csv or .zip files"),
    (FIXTURES / "missing", "BTC", "missing: not a folder"),
])
def test_nothing_to_load(folder: Path, symbol: str, message: str) -> None:
    with pytest.raises(DataFileError, match=message.replace("*", r"\*")):
        load_binance_folder(folder, symbol)


BARS_SAMPLE = FIXTURES / "bench" / "btcusdt-1m-sample.bars.csv"

CORRUPT_BENCH_BARS: list[tuple[Edit, str]] = [
    (lambda ls: [ls[0].replace("high,", ""), *ls[1:]], "line 1: header lacks high"),
    (cell(3, 0, "2026-03-04T19:50:00Z"), "line 3: time 2026-03-04T19:50:00Z is not after"),
    (cell(4, 0, "tuesday"), "line 4: time is 'tuesday'"),
    (cell(5, 2, "1"), "line 5: low 73"),
    (cell(6, 7, "-5"), "line 6: open_interest_usd is '-5'"),
    (cell(7, 9, "nan"), "line 7: long_liquidations_usd is 'nan'"),
    (lambda ls: ls[:1], ": no rows"),
]


@pytest.mark.parametrize(("edit", "message"), CORRUPT_BENCH_BARS)
def test_corrupt_bench_bars(tmp_path: Path, edit: Edit, message: str) -> None:
    path = tmp_path / BARS_SAMPLE.name
    path.write_text("\n".join(edit(BARS_SAMPLE.read_text().splitlines())) + "\n")
    with pytest.raises(DataFileError) as info:
        load_bench_bars(path)
    assert str(info.value).startswith(BARS_SAMPLE.name)
    assert message in str(info.value)


LIQ_SAMPLE = FIXTURES / "bench" / "btc-okx-liquidations-sample.csv"


@pytest.mark.parametrize(("edit", "message"), [
    (cell(2, 1, "kraken"), "line 2: venue is 'kraken'"),
    (cell(3, 2, "sideways"), "line 3: side is 'sideways'"),
    (cell(4, 3, "0"), "line 4: price is '0'"),
    (cell(5, 4, ""), "line 5: quantity is ''"),
    (swap(2, 6), "line 3: time goes back"),
    (lambda ls: ["when,where", *ls[1:]], "line 1: header is"),
])
def test_corrupt_bench_liquidations(tmp_path: Path, edit: Edit, message: str) -> None:
    path = tmp_path / LIQ_SAMPLE.name
    path.write_text("\n".join(edit(LIQ_SAMPLE.read_text().splitlines())) + "\n")
    with pytest.raises(DataFileError, match=message):
        load_bench_liquidations(path)


def test_liquidation_usd_may_be_blank_only_in_bars() -> None:
    bars = load_bench_bars(BARS_SAMPLE)
    assert math.isnan(bars.short_liquidations_usd[0])
