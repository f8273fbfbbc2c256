"""Alert state in the database: rules from rows, memory round trip, ledger commits and restarts."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta
from typing import Any

from engine.alerts import AlertKind, BandMemory, Decision, HeldEvent, Memory, Reason
from engine.types import Band, Side
from storage import outbox, repo
from storage.alert_store import AlertLedger, active_rules, load_memories, save_memory
from storage.db import SessionFactory

T0 = datetime(2026, 1, 5, 12, 0, tzinfo=UTC)
BANDS = (Band(Side.LONG, 95.0, 97.0, 96.0, 5e6, 3.0, 0.9),
         Band(Side.SHORT, 103.0, 105.0, 104.0, 5e6, 3.0, 0.9))


def _payload(decision: Decision) -> dict[str, Any]:
    return {"title": decision.kind.value, "sections": [decision.key]}


async def _subscribe(db: SessionFactory, chat_id: str = "1", **kwargs: Any) -> tuple[int, int]:
    async with db() as s, s.begin():
        chat = await repo.upsert_chat(s, "telegram", chat_id, timezone="Europe/Berlin")
        assert chat.id is not None
        sub = await repo.subscribe(s, chat.id, "BTC", **kwargs)
        assert sub.id is not None
        return chat.id, sub.id


async def test_rules_from_rows(db: SessionFactory) -> None:
    chat_pk, sub_id = await _subscribe(db, kinds="cross", sensitivity="conservative",
                                       daily_cap=5)
    async with db() as s, s.begin():
        await repo.set_quiet_hours(s, chat_pk, "23:00", "06:30")
    async with db() as s:
        (rule,) = await active_rules(s)
    assert (rule.subscription_id, rule.chat_id, rule.symbol) == (sub_id, chat_pk, "BTC")
    assert rule.kinds == frozenset({AlertKind.CROSS}) and rule.daily_cap == 5
    assert (rule.approach_pct, rule.min_strength) == (0.5, 0.6)
    assert (rule.quiet_start, rule.quiet_end, rule.timezone) == (time(23), time(6, 30),
                                                                 "Europe/Berlin")


async def test_memory_round_trip(db: SessionFactory) -> None:
    _, sub_id = await _subscribe(db)
    memory = Memory(
        bands={"L96@1": BandMemory("L96@1", Side.LONG, 95, 97, 96, 2, AlertKind.ENTER, T0, 3,
                                   "2026-01-05")},
        day="2026-01-05", fired_today=4,
        held=(HeldEvent(AlertKind.APPROACH, "S104@1", Side.SHORT, 103, 105, 102.5, T0, "k"),),
    )
    async with db() as s, s.begin():
        await save_memory(s, sub_id, memory, T0)
    async with db() as s:
        assert (await load_memories(s))[sub_id] == memory
    smaller = Memory(day="2026-01-06")
    async with db() as s, s.begin():
        await save_memory(s, sub_id, smaller, T0)
    async with db() as s:
        assert (await load_memories(s, [sub_id]))[sub_id] == smaller


async def test_ledger_commits_state_with_outbox_and_survives_restart(db: SessionFactory) -> None:
    _, sub_id = await _subscribe(db)
    ledger = await AlertLedger.load(db, _payload, T0)
    await ledger.tick("BTC", BANDS, 100.0, 100.0, T0)
    decisions = await ledger.tick("BTC", BANDS, 97.5, 100.0, T0 + timedelta(minutes=1))
    assert [(d.kind, d.reason) for d in decisions] == [(AlertKind.APPROACH, Reason.FIRED_FIRST)]
    async with db() as s:
        row = await outbox.get_delivery(s, decisions[0].key)
        stored = (await load_memories(s))[sub_id]
    assert row is not None and row.payload["sections"] == [decisions[0].key]
    assert stored.fired_today == 1 and list(stored.bands) == [decisions[0].band_id]

    restarted = await AlertLedger.load(db, _payload, T0 + timedelta(minutes=2))
    again = await restarted.tick("BTC", BANDS, 97.4, 97.5, T0 + timedelta(minutes=2))
    assert [(d.band_id, d.reason) for d in again] == [
        (decisions[0].band_id, Reason.SUPPRESSED_NOT_REARMED)]  # same band id after restart
    async with db() as s:
        assert (await outbox.depth(s))["pending"] == 1


async def test_ledger_reload_picks_up_new_subscriptions(db: SessionFactory) -> None:
    await _subscribe(db, "1")
    ledger = await AlertLedger.load(db, _payload, T0)
    await ledger.tick("BTC", BANDS, 100.0, 100.0, T0)
    await _subscribe(db, "2")
    await ledger.reload(T0)
    fired = [d for d in await ledger.tick("BTC", BANDS, 106.0, 100.0, T0) if d.fired]
    assert len(fired) == 2 and len({d.key for d in fired}) == 2
