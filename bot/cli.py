"""The `liqradar` command line: map, brief, backtest, alerts replay and run."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bot.settings import Settings
from bot.sources import FileSource, MarketSnapshot, load_file_source
from engine.mapping import build_map
from engine.types import LiquidationMap, Window

MAP_SCHEMA = "liqradar.map/1"


class CliError(Exception):
    """A user mistake or bad input: printed as one line, exit code 2."""


def parse_time(text: str) -> int:
    """ISO 8601 (`2026-03-05T07:00Z`, offsets allowed, naive = UTC) or epoch s/ms -> epoch ms."""
    raw = text.strip()
    if raw.isdigit():
        value = int(raw)
        return value if value > 10**11 else value * 1000
    try:
        parsed = datetime.fromisoformat(raw.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError as exc:
        raise CliError(f"bad time {text!r}: use ISO 8601 like 2026-03-05T07:00Z") from exc
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return int(parsed.timestamp() * 1000)


def iso(ms: int) -> str:
    """Epoch ms as ISO 8601 UTC with a Z."""
    return datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def map_to_json(m: LiquidationMap) -> dict[str, Any]:
    """The documented `liqradar.map/1` schema (keys may be added, never renamed)."""
    grid = m.profile.grid
    return {
        "schema": MAP_SCHEMA,
        "symbol": m.symbol,
        "as_of": iso(m.as_of_ms),
        "price": m.price,
        "price_bins": {"low": grid.low, "step": grid.step, "count": grid.count},
        "long_usd": [round(float(x), 2) for x in m.profile.long_usd],
        "short_usd": [round(float(x), 2) for x in m.profile.short_usd],
        "bands": [
            {"side": b.side.value, "low": b.low, "high": b.high, "peak": b.peak,
             "usd": round(b.usd, 2), "distance_pct": round(b.distance_pct, 4),
             "strength": round(b.strength, 4)}
            for b in m.bands
        ],
        "window": m.window.value,
        "venues": [v.value for v in m.venues],
        "estimated": True,
        "data_age_s": m.data_age_ms / 1000,
    }


def write_json(payload: dict[str, Any], target: str) -> None:
    """Write JSON to a path or to stdout for `-`."""
    text = json.dumps(payload, indent=None if target == "-" else 1, allow_nan=False)
    if target == "-":
        sys.stdout.write(text + "\n")
    else:
        Path(target).write_text(text + "\n", encoding="utf-8")


def map_table(m: LiquidationMap) -> str:
    """A short human table of the map's bands."""
    lines = [
        f"{m.symbol}  price {m.price:,.2f}  as of {iso(m.as_of_ms)}  window {m.window.value}  "
        f"venues {', '.join(v.value for v in m.venues)}  (estimates)",
        f"{'side':<6} {'low':>14} {'high':>14} {'peak':>14} {'est. USD':>12} {'dist %':>8} "
        f"{'strength':>8}",
    ]
    for b in m.bands:
        lines.append(f"{b.side.value:<6} {b.low:>14,.2f} {b.high:>14,.2f} {b.peak:>14,.2f} "
                     f"{b.usd / 1e6:>11,.1f}M {b.distance_pct:>8.2f} {b.strength:>8.2f}")
    if not m.bands:
        lines.append("no pockets found in the displayed range")
    return "\n".join(lines)


def _data_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("symbol", help="BTC, BTCUSDT or BTC-USDT-SWAP")
    p.add_argument("--window", default="24h", help="12h, 24h, 3d, 7d or 30d (default 24h)")
    src = p.add_mutually_exclusive_group()
    src.add_argument("--data", type=Path, metavar="DIR", help="folder of Binance public-data files")
    src.add_argument("--bars", type=Path, metavar="FILE", help="bars CSV (bench schema)")
    p.add_argument("--liquidations", type=Path, metavar="FILE",
                   help="realized liquidations CSV (bench schema), with --bars or --data")
    p.add_argument("--at", metavar="TIME", help="cut the data at this instant (ISO 8601 or epoch)")


def build_parser() -> argparse.ArgumentParser:
    """All sub-commands and their options."""
    parser = argparse.ArgumentParser(prog="liqradar", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    p_map = sub.add_parser("map", help="estimate a liquidation map (table, JSON or PNG)")
    _data_args(p_map)
    p_map.add_argument("--json", metavar="PATH", help="write the liqradar.map/1 JSON (- = stdout)")
    p_map.add_argument("--png", metavar="PATH", help="write the heatmap image")
    p_brief = sub.add_parser("brief", help="print the plain-language brief")
    _data_args(p_brief)
    p_bt = sub.add_parser("backtest", help="sweep test and band hit test vs the baseline")
    p_bt.add_argument("--bars", type=Path, required=True, metavar="FILE")
    p_bt.add_argument("--liquidations", type=Path, metavar="FILE")
    p_bt.add_argument("--json", metavar="PATH")
    p_alerts = sub.add_parser("alerts", help="alert tools")
    alerts_sub = p_alerts.add_subparsers(dest="alerts_command", required=True)
    p_replay = alerts_sub.add_parser("replay", help="replay history and list alerts that fire")
    p_replay.add_argument("symbol")
    p_replay.add_argument("--bars", type=Path, required=True, metavar="FILE")
    p_replay.add_argument("--sensitivity", default="balanced",
                          help="aggressive, balanced, conservative or a percentage like 1.5%%")
    p_replay.add_argument("--json", metavar="PATH")
    p_run = sub.add_parser("run", help="run the service (scheduler, bots, web page)")
    p_run.add_argument("--replay", type=Path, metavar="DIR|FILE",
                       help="replay shipped data as if live (no network, no tokens needed)")
    p_run.add_argument("--speed", type=float, default=60.0, help="replay speed factor")
    p_run.add_argument("--for", dest="run_for", type=float, metavar="SECONDS",
                       help="stop after this many seconds")
    return parser


async def _snapshot(args: argparse.Namespace, settings: Settings) -> MarketSnapshot:
    """Files when given, else live venues."""
    at = parse_time(args.at) if args.at else None
    if args.data or args.bars:
        source: FileSource = load_file_source(
            args.symbol, data_dir=args.data, bars_file=args.bars,
            liquidations_file=args.liquidations, as_of_ms=at)
        return await source.snapshot(args.symbol)
    if args.liquidations:
        raise CliError("--liquidations needs --bars or --data")
    import aiohttp

    from bot.sources import LiveSource
    from market.venue import build_venue_clients

    async with aiohttp.ClientSession() as session:
        live = LiveSource(build_venue_clients(session, settings), settings.history_days)
        snap = await live.snapshot(args.symbol)
    if at is not None:
        cut = {v: b.until(at) for v, b in snap.bars.items()}
        snap = MarketSnapshot(snap.symbol, {v: b for v, b in cut.items() if len(b) >= 2})
    return snap


def _build(args: argparse.Namespace, settings: Settings) -> LiquidationMap:
    window = _window(args.window)
    snap = asyncio.run(_snapshot(args, settings))
    if not snap.bars:
        raise CliError(f"no data for {args.symbol} before the requested time")
    return build_map(snap.symbol, snap.bars, window, prints=snap.prints or None)


def _window(text: str) -> Window:
    try:
        return Window.parse(text)
    except ValueError as exc:
        raise CliError(str(exc)) from exc


def cmd_map(args: argparse.Namespace, settings: Settings) -> int:
    """`liqradar map`."""
    m = _build(args, settings)
    if args.png:
        from engine.render import render_heatmap

        Path(args.png).write_bytes(render_heatmap(m))
    if args.json:
        write_json(map_to_json(m), args.json)
    elif not args.png or args.json is None:
        print(map_table(m))
    return 0


def cmd_brief(args: argparse.Namespace, settings: Settings) -> int:
    """`liqradar brief`."""
    from engine.brief import build_brief

    m = _build(args, settings)
    print(build_brief(m).to_text())
    return 0


def cmd_backtest(args: argparse.Namespace, settings: Settings) -> int:
    """`liqradar backtest`."""
    from bot.backtest_report import backtest_payload, backtest_table

    payload = backtest_payload(args.bars, args.liquidations)
    if args.json:
        write_json(payload, args.json)
    if args.json != "-":
        print(backtest_table(payload))
    return 0


def cmd_alerts(args: argparse.Namespace, settings: Settings) -> int:
    """`liqradar alerts replay`."""
    from bot.alerts_replay import run_replay

    return run_replay(args)


def cmd_run(args: argparse.Namespace, settings: Settings) -> int:
    """`liqradar run`."""
    from bot.app import run_service

    return run_service(settings, replay=args.replay, speed=args.speed, run_for=args.run_for)


COMMANDS = {"map": cmd_map, "brief": cmd_brief, "backtest": cmd_backtest, "alerts": cmd_alerts,
            "run": cmd_run}


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point: run a sub-command; user errors print one line and exit 2."""
    from market.errors import MarketDataError

    args = build_parser().parse_args(argv)
    try:
        settings = Settings()
        return COMMANDS[args.command](args, settings)
    except (CliError, MarketDataError, ValueError, FileNotFoundError, IsADirectoryError,
            PermissionError) as exc:
        message = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        print(f"liqradar: error: {message}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
