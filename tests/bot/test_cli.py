"""The `liqradar` command line on the real bench files: schemas, no look-ahead, bad input."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from bot.cli import main, parse_time

BENCH = Path(__file__).resolve().parents[2] / "data" / "bench"
BARS_1M = BENCH / "btcusdt-1m-2026-03-04_05.bars.csv"
BARS_1H = BENCH / "btcusdt-1h-2025-12-04_2026-06-02.bars.csv"
OKX = BENCH / "btc-okx-liquidations-2026-03-04_05.csv"


def run_json(capsys: pytest.CaptureFixture[str], *argv: str) -> dict[str, object]:
    assert main(list(argv)) == 0
    out: dict[str, object] = json.loads(capsys.readouterr().out)
    return out


def test_map_json_follows_the_schema(capsys: pytest.CaptureFixture[str]) -> None:
    doc = run_json(capsys, "map", "btc", "--bars", str(BARS_1M), "--liquidations", str(OKX),
                   "--json", "-")
    assert doc["schema"] == "liqradar.map/1"
    assert doc["symbol"] == "BTC"
    assert isinstance(doc["as_of"], str) and doc["as_of"].endswith("Z")
    bins = doc["price_bins"]
    assert isinstance(bins, dict) and set(bins) == {"low", "step", "count"}
    long_usd, short_usd = doc["long_usd"], doc["short_usd"]
    assert isinstance(long_usd, list) and isinstance(short_usd, list)
    assert len(long_usd) == len(short_usd) == bins["count"]
    price = doc["price"]
    assert isinstance(price, float)
    assert bins["low"] < price < bins["low"] + bins["count"] * bins["step"]
    bands = doc["bands"]
    assert isinstance(bands, list) and bands
    for band in bands:
        assert set(band) >= {"side", "low", "high", "peak", "usd", "distance_pct", "strength"}
        assert band["low"] <= band["peak"] <= band["high"]
        if band["side"] == "long":
            assert band["high"] <= price and band["distance_pct"] <= 0
        else:
            assert band["low"] >= price and band["distance_pct"] >= 0
        assert 0 < band["strength"] <= 1


def test_map_at_sees_no_later_data(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    at = "2026-03-05T07:00Z"
    full = run_json(capsys, "map", "BTC", "--bars", str(BARS_1M), "--at", at, "--json", "-")
    cut = tmp_path / "btcusdt-cut.bars.csv"
    lines = BARS_1M.read_text().splitlines()
    kept = [lines[0]] + [ln for ln in lines[1:] if ln < "2026-03-05T07:00"]
    cut.write_text("\n".join(kept) + "\n")
    short = run_json(capsys, "map", "BTC", "--bars", str(cut), "--json", "-")
    assert full["as_of"] == short["as_of"] == "2026-03-05T07:00:00Z"
    np.testing.assert_allclose(full["long_usd"], short["long_usd"])  # type: ignore[arg-type]
    np.testing.assert_allclose(full["short_usd"], short["short_usd"])  # type: ignore[arg-type]


def test_map_table_and_json_file(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    assert main(["map", "BTCUSDT", "--bars", str(BARS_1H), "--window", "7d"]) == 0
    table = capsys.readouterr().out
    assert "BTC" in table and "estimates" in table and "long" in table
    target = tmp_path / "map.json"
    assert main(["map", "BTC-USDT-SWAP", "--bars", str(BARS_1H), "--json", str(target)]) == 0
    assert json.loads(target.read_text())["window"] == "24h"


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["map", "B!TC", "--bars", str(BARS_1M)], "unknown symbol"),
        (["map", "ETH", "--bars", str(BARS_1M)], "holds BTC"),
        (["map", "BTC", "--bars", str(BARS_1M), "--at", "yesterday"], "bad time"),
        (["map", "BTC", "--bars", str(BARS_1M), "--window", "2h"], "unknown window"),
        (["map", "BTC", "--bars", "/nonexistent/bars.csv"], "error"),
        (["map", "BTC", "--bars", str(BARS_1M), "--at", "2020-01-01T00:00Z"], "no"),
        (["map", "BTC", "--liquidations", str(OKX)], "--liquidations needs"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(
    capsys: pytest.CaptureFixture[str], argv: list[str], message: str
) -> None:
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("liqradar: error:") and message in err
    assert "\n" not in err and "Traceback" not in err


def test_corrupt_file_is_rejected(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    bad = tmp_path / "btcusdt-bad.bars.csv"
    text = BARS_1M.read_text().splitlines()
    text[5] = text[5].replace(",", ",x", 1)
    bad.write_text("\n".join(text) + "\n")
    assert main(["map", "BTC", "--bars", str(bad)]) == 2
    assert "line" in capsys.readouterr().err


def test_backtest_reports_model_and_baseline(capsys: pytest.CaptureFixture[str]) -> None:
    doc = run_json(capsys, "backtest", "--bars", str(BARS_1H), "--json", "-")
    sweep = doc["sweep"]
    assert isinstance(sweep, dict)
    assert sweep["baseline"]["all"]["long"] == pytest.approx(0.744, abs=0.002)
    assert sweep["baseline"]["all"]["short"] == pytest.approx(0.707, abs=0.002)
    for part in ("all", "first half", "second half"):
        assert -1 <= sweep["model"][part]["long"] <= 1


def test_backtest_band_hit_test_on_the_minute_window(capsys: pytest.CaptureFixture[str]) -> None:
    doc = run_json(capsys, "backtest", "--bars", str(BARS_1M), "--liquidations", str(OKX),
                   "--json", "-")
    hit = doc["band_hit"]
    assert isinstance(hit, dict) and set(hit) == {"long", "short"}
    assert hit["long"]["events"] + hit["short"]["events"] > 1000
    assert "skipped" in doc["sweep"]  # type: ignore[operator]


@pytest.mark.parametrize(
    ("text", "ms"),
    [("2026-03-05T07:00Z", 1772694000000), ("2026-03-05T08:00+01:00", 1772694000000),
     ("2026-03-05 07:00", 1772694000000), ("1772694000", 1772694000000),
     ("1772694000000", 1772694000000)],
)
def test_parse_time(text: str, ms: int) -> None:
    assert parse_time(text) == ms
