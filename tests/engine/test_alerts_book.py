"""The bulk path: cohorts of subscriptions decided once, addressed to each member."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, time, timedelta

from engine.alerts import (
    AlertKind,
    AlertRule,
    BandMemory,
    Memory,
    Reason,
    build_book,
    evaluate_book,
)
from engine.types import Band, Side

T0 = datetime(2026, 1, 5, 12, 0, tzinfo=UTC)
LONG = Band(Side.LONG, 95.0, 97.0, 96.0, 5e6, 3.0, 0.8)
BANDS = (LONG,)


def _rules() -> list[AlertRule]:
    base = AlertRule(1, 10, "BTC")
    return [base, replace(base, subscription_id=2, chat_id=20),
            replace(base, subscription_id=3, chat_id=30, min_strength=0.9),
            replace(base, subscription_id=4, chat_id=40, quiet_start=time(1), quiet_end=time(2)),
            replace(base, subscription_id=5, chat_id=50, symbol="ETH")]


def test_same_rule_and_memory_make_one_cohort() -> None:
    book = build_book(_rules(), {}, T0)
    btc = book.cohorts["BTC"][("BTC", 1.0, 0.5)]
    assert sorted(tuple(m.subscription_id for m in c.members) for c in btc) == [
        (1, 2), (3,), (4,)]
    assert set(book.cohorts) == {"BTC", "ETH"}
    assert {sid: book.where[sid][0] for sid in book.where} == {
        1: "BTC", 2: "BTC", 3: "BTC", 4: "BTC", 5: "ETH"}


def test_different_memories_split_a_cohort_equal_ones_join() -> None:
    told = Memory(bands={"L96@1": BandMemory("L96@1", Side.LONG, 95, 97, 96, 0,
                                             AlertKind.APPROACH, T0, 1, "2026-01-05")},
                  day="2026-01-05", fired_today=1)
    same = Memory(bands=dict(told.bands), day="2026-01-05", fired_today=1)  # equal, not same
    book = build_book(_rules()[:2], {1: told, 2: same}, T0)
    assert len(book.cohorts["BTC"][("BTC", 1.0, 0.5)]) == 1
    book = build_book(_rules()[:2], {1: told}, T0)
    assert len(book.cohorts["BTC"][("BTC", 1.0, 0.5)]) == 2
    assert book.memories[1] == told and book.memories[2] == Memory()


def test_a_cohort_decides_once_and_addresses_each_member() -> None:
    book = build_book(_rules(), {}, T0)
    book, _ = evaluate_book(book, "BTC", BANDS, 100.0, 100.0, T0)
    book, decisions = evaluate_book(book, "BTC", BANDS, 97.5, 100.0, T0 + timedelta(minutes=1))
    by_sub = {d.subscription_id: d for d in decisions}
    assert sorted(by_sub) == [1, 2, 3, 4]
    assert [by_sub[s].reason for s in (1, 2, 3)] == [
        Reason.FIRED_FIRST, Reason.FIRED_FIRST, Reason.BELOW_MIN_STRENGTH]
    assert (by_sub[1].chat_id, by_sub[2].chat_id) == (10, 20)
    assert by_sub[1].key == f"approach:1:{by_sub[1].band_id}:0"
    assert by_sub[2].key == f"approach:2:{by_sub[2].band_id}:0"
    assert book.memories[1] is book.memories[2]  # still one cohort, one memory
    assert book.memories[1].fired_today == 1 and book.memories[3].fired_today == 0


def test_rebuilding_keeps_memories_tracks_and_zones() -> None:
    book = build_book(_rules(), {}, T0)
    book, _ = evaluate_book(book, "BTC", BANDS, 100.0, 100.0, T0)
    book, _ = evaluate_book(book, "BTC", BANDS, 97.5, 100.0, T0 + timedelta(minutes=1))
    rules = [*_rules(), replace(_rules()[0], subscription_id=6, chat_id=60)]
    rebuilt = build_book(rules, {}, T0, previous=book)
    assert rebuilt.tracks["BTC"] is book.tracks["BTC"]
    assert rebuilt.memories[1] is book.memories[1] and rebuilt.memories[6] == Memory()
    _, decisions = evaluate_book(rebuilt, "BTC", BANDS, 97.4, 97.5, T0 + timedelta(minutes=2))
    assert decisions == []  # no new trigger: zones kept, nothing re-decided
    _, decisions = evaluate_book(rebuilt, "BTC", BANDS, 96.5, 97.4, T0 + timedelta(minutes=3))
    fired = {d.subscription_id: d.reason for d in decisions if d.fired}
    assert fired == {6: Reason.FIRED_FIRST}  # 1 and 2 were told; 6 is new
