"""Send journal: accepted sends a crash left unrecorded are recorded on restart, not repeated."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from sqlmodel import select

from bot.delivery import OutboxWorker
from bot.send_journal import COMPACT_BYTES, SendJournal
from bot.settings import Settings
from storage import outbox
from storage.db import SessionFactory
from storage.models import Delivery
from tests.bot.test_delivery import T0, Clock, FakeNotifier, _chat, _depth, _enqueue


async def _row(db: SessionFactory, key: str) -> Delivery:
    async with db() as s:
        return (await s.exec(select(Delivery).where(Delivery.key == key))).one()


async def _enqueue_all(db: SessionFactory, *keys: str) -> None:
    pk = await _chat(db, "1")
    for key in keys:
        await _enqueue(db, key, pk)


async def _restart(db: SessionFactory, journal: Path, sends: int) -> FakeNotifier:
    """Start a worker on `journal` as a restarted service would; stop after `sends` sends."""
    fake = FakeNotifier()
    worker = OutboxWorker(db, [fake], clock=Clock(), poll_interval=0.01,
                          journal=SendJournal(journal))
    await worker.start()
    try:
        async with asyncio.timeout(5):
            await fake.wait_sent(sends)
    finally:
        await worker.stop()  # lets the batch in flight record its sends
    return fake


async def test_accepted_send_left_unrecorded_is_not_repeated(
    db: SessionFactory, tmp_path: Path
) -> None:
    await _enqueue_all(db, "accepted", "in-flight")
    async with db() as s, s.begin():
        await outbox.claim_due(s, T0)  # the crashed worker had claimed both
    path = tmp_path / "sends.jsonl"
    SendJournal(path).record("accepted", "m7")  # the platform had answered for one of them
    fake = await _restart(db, path, 1)
    assert [m.key for _, m in fake.sent] == ["in-flight"]
    accepted = await _row(db, "accepted")
    assert (accepted.status, accepted.receipt) == ("sent", "m7")
    assert await _depth(db) == {"pending": 0, "sending": 0, "sent": 2, "failed": 0, "held": 0}
    assert SendJournal(path).unsettled() == {"in-flight": "m1"}  # the reconciled line is gone


async def test_journal_never_marks_a_row_that_was_not_claimed(
    db: SessionFactory, tmp_path: Path
) -> None:
    # A stale line whose key is pending (never claimed, e.g. a fresh database) is sent normally.
    await _enqueue_all(db, "k")
    path = tmp_path / "sends.jsonl"
    SendJournal(path).record("k", "old")
    fake = await _restart(db, path, 1)
    assert [m.key for _, m in fake.sent] == ["k"]
    assert (await _row(db, "k")).receipt == "m1"


async def test_worker_journals_each_send_and_settles_it(
    db: SessionFactory, tmp_path: Path
) -> None:
    await _enqueue_all(db, "a", "b")
    journal = SendJournal(tmp_path / "sends.jsonl")
    fake = FakeNotifier()
    worker = OutboxWorker(db, [fake], clock=Clock(), journal=journal)
    assert await worker.drain() == 2
    assert journal.unsettled() == {}
    # The lines stay until the next compaction; a restart finds both rows sent and sends nothing.
    assert SendJournal(journal.path).unsettled() == {"a": "m1", "b": "m2"}
    again = FakeNotifier()
    restarted = OutboxWorker(db, [again], clock=Clock(), journal=SendJournal(journal.path))
    await restarted.start()
    await restarted.stop()
    assert again.sent == []


def test_torn_and_garbage_lines_are_skipped(tmp_path: Path) -> None:
    path = tmp_path / "sends.jsonl"
    path.write_text('["a", "m1"]\nnot json\n[1, 2]\n["b", null]\n["c", "m')
    assert SendJournal(path).unsettled() == {"a": "m1", "b": None}


def test_unwritable_journal_switches_itself_off(tmp_path: Path,
                                               caplog: pytest.LogCaptureFixture) -> None:
    journal = SendJournal(tmp_path)  # a directory: cannot be opened for appending
    journal.record("a", "m1")
    journal.record("b", "m2")
    journal.settle(["a"], rewrite=True)
    assert sum("cannot be written" in r.message for r in caplog.records) == 1


@pytest.mark.parametrize(("url", "setting", "expected"), [
    ("sqlite+aiosqlite:///./liqradar.db", None, "./liqradar.db-sends.jsonl"),
    ("sqlite+aiosqlite:////data/x.db", None, "/data/x.db-sends.jsonl"),
    ("sqlite+aiosqlite://", None, None),
    ("sqlite+aiosqlite:///:memory:", None, None),
    ("postgresql+asyncpg://u:p@db:5432/liqradar", None, "liqradar-sends.jsonl"),
    ("sqlite+aiosqlite:///./liqradar.db", "/var/lib/liqradar/sends.jsonl",
     "/var/lib/liqradar/sends.jsonl"),
    ("sqlite+aiosqlite:///./liqradar.db", "", None),
])
def test_journal_path_follows_the_database(url: str, setting: str | None,
                                           expected: str | None) -> None:
    settings = Settings(database_url=url, delivery_journal=setting, _env_file=None)
    path = settings.journal_path()
    assert (None if path is None else str(path)) == (None if expected is None
                                                     else str(Path(expected)))


def test_own_fresh_sends_wait_for_their_database_write(tmp_path: Path) -> None:
    path = tmp_path / "sends.jsonl"
    SendJournal(path).record("crashed", "m1")
    journal = SendJournal(path)
    journal.record("fresh", "m2")
    assert journal.unsettled(older_than_s=60.0) == {"crashed": "m1"}
    assert journal.unsettled() == {"crashed": "m1", "fresh": "m2"}


def test_big_journal_is_compacted_to_its_unsettled_lines(tmp_path: Path) -> None:
    journal = SendJournal(tmp_path / "sends.jsonl")
    keys = [f"alert:{i:06d}:some-band-key" for i in range(COMPACT_BYTES // 30)]
    for key in keys:
        journal.record(key, "m")
    journal.settle(keys[1:])
    assert journal.path.stat().st_size < 100
    assert SendJournal(journal.path).unsettled() == {keys[0]: "m"}
