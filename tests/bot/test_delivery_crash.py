"""Crash safety: a worker process SIGKILLed between deciding and sending, then restarted.

A child process (`python -c`, running `node`) evaluates a tick that fires one alert through
`AlertLedger` (state + outbox row in one transaction) and delivers it with `OutboxWorker`
through a file-backed fake platform. The parent kills it at a chosen point, then runs the
restarted service (`node` again, in-process) which recomputes the same tick and drains the
outbox.
"""

from __future__ import annotations

import asyncio
import os
import select
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from bot.alert_messages import payload_for
from bot.delivery import OutboxWorker
from bot.notifier import DeliveryReceipt, OutgoingMessage, Target
from engine.alerts import Decision
from engine.types import Band, Side
from storage import outbox, repo
from storage.alert_store import AlertLedger
from storage.db import make_engine, session_factory, upgrade
from tests.conftest import DatabaseFactory

ROOT = Path(__file__).resolve().parents[2]

T0 = datetime(2026, 1, 5, 12, 0, tzinfo=UTC)
BANDS = (Band(Side.LONG, 95.0, 97.0, 96.0, 5e6, 3.0, 0.9),)
DRAIN_WITHIN_S = 60.0
MARKER_WITHIN_S = 60.0
CHILD = "import sys; from tests.bot.test_delivery_crash import main; main(sys.argv[1:])"


def _mark(text: str) -> None:
    print(text, flush=True)


def _accept(sink: Path, key: str) -> int:
    """Log the attempt; store the message unless its key was seen; return the stored count."""
    with open(f"{sink}.attempts", "a") as f:
        f.write(key + "\n")
    seen = sink.read_text().split() if sink.exists() else []
    if key not in seen:
        with open(sink, "a") as f:
            f.write(key + "\n")
            f.flush()
            os.fsync(f.fileno())
        seen.append(key)
    return len(seen)


class FilePlatform:
    """A fake chat platform: one line per accepted message; dedupes on the idempotency key."""

    name = "telegram"

    def __init__(self, sink: Path, mode: str) -> None:
        self.sink, self.mode = sink, mode

    async def send(self, target: Target, message: OutgoingMessage) -> DeliveryReceipt:
        if self.mode == "sending":
            _mark("SENDING")
            await asyncio.Event().wait()
        accepted = _accept(self.sink, message.key)
        if self.mode == "after_send":
            _mark("SENT")
            await asyncio.Event().wait()
        return DeliveryReceipt("telegram", str(accepted))


async def node(url: str, sink: Path, mode: str) -> dict[str, int]:
    """One service life: evaluate a tick that fires one alert, then deliver the outbox."""

    def payload(decision: Decision) -> dict[str, Any]:
        if mode == "before_commit":
            _mark("DECIDED")
            time.sleep(60)  # blocks inside the open transaction, before the commit
        return payload_for(decision)

    engine = make_engine(url)
    sessions = session_factory(engine)
    ledger = await AlertLedger.load(sessions, payload, T0)
    await ledger.tick("BTC", BANDS, 100.0, 100.0, T0)
    await ledger.tick("BTC", BANDS, 97.5, 100.0, T0 + timedelta(minutes=1))
    if mode == "after_commit":
        _mark("COMMITTED")
        await asyncio.sleep(60)
    worker = OutboxWorker(sessions, [FilePlatform(sink, mode)], poll_interval=0.02)
    await worker.start()
    deadline = time.monotonic() + DRAIN_WITHIN_S
    while True:
        async with sessions() as s:
            counts = await outbox.depth(s)
        if counts["pending"] == counts["sending"] == 0:
            break
        if time.monotonic() > deadline:
            raise TimeoutError(f"outbox not drained within {DRAIN_WITHIN_S} s: {counts}")
        await asyncio.sleep(0.02)
    await worker.stop()
    await engine.dispose()
    return counts


def main(argv: list[str]) -> None:
    """Child process entry: `URL SINK MODE`."""
    asyncio.run(node(argv[0], Path(argv[1]), argv[2]))


async def _seed(url: str) -> None:
    await upgrade(url)
    engine = make_engine(url)
    async with session_factory(engine)() as s, s.begin():
        chat = await repo.upsert_chat(s, "telegram", "-1001")
        assert chat.id is not None
        await repo.subscribe(s, chat.id, "BTC", sensitivity="balanced")
    await engine.dispose()


def _child(url: str, sink: Path, mode: str) -> subprocess.Popen[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.Popen([sys.executable, "-c", CHILD, url, str(sink), mode], cwd=ROOT,
                            env=env, stdout=subprocess.PIPE, text=True)


CASES = [("sqlite", m) for m in ("before_commit", "after_commit", "sending", "after_send")]
CASES += [("postgresql", "sending")]


@pytest.mark.parametrize(("database", "mode"), CASES, ids=[f"{d}-{m}" for d, m in CASES])
def test_killed_worker_delivers_exactly_once_after_restart(
        database: str, mode: str, make_database_url: DatabaseFactory, tmp_path: Path) -> None:
    url = make_database_url(database)
    asyncio.run(_seed(url))
    sink = tmp_path / "platform.txt"
    marker = {"before_commit": "DECIDED", "after_commit": "COMMITTED", "sending": "SENDING",
              "after_send": "SENT"}[mode]

    child = _child(url, sink, mode)
    try:
        assert child.stdout is not None
        ready, _, _ = select.select([child.stdout], [], [], MARKER_WITHIN_S)
        assert ready, f"the child printed nothing within {MARKER_WITHIN_S} s"
        line = child.stdout.readline().strip()
        assert line == marker, line
    finally:
        os.kill(child.pid, signal.SIGKILL)
        child.wait(timeout=30)
    assert child.returncode == -signal.SIGKILL

    counts = asyncio.run(node(url, sink, "restart"))
    assert counts["sent"] == 1 and counts["failed"] == 0

    delivered = sink.read_text().split()
    attempts = (tmp_path / "platform.txt.attempts").read_text().split()
    assert len(delivered) == 1 and delivered[0].startswith("approach:")
    # Only a kill after the platform accepted the message repeats the send; the platform
    # dedupes it by the idempotency key, so the chat still sees one message.
    assert len(attempts) == (2 if mode == "after_send" else 1)
