"""Many subscriptions at once: the `AlertBook` and one price tick of a symbol (`evaluate_book`).

Band identity is tracked once per symbol, zones once per (symbol, approach distance) group,
and the per-subscription rules once per *cohort*: the subscriptions of a group whose rules
differ only in their ids and whose memories are equal. `decide_shared` ignores the ids, so a
cohort's members get the same outcomes and the same new memory and stay one cohort; only the
decisions (with each member's keys) are made per member. Decides exactly like evaluating each
subscription alone (`engine.alert_evaluate`), which the property tests check.
"""

from __future__ import annotations

from collections.abc import Hashable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime

from engine.alert_identity import BandTrack, seed_track, track_bands
from engine.alert_rules import Decision, Memory, decide_shared
from engine.alert_settings import AlertKind, AlertRule, GroupKey, require_aware
from engine.alert_watch import Sight, Trigger, measure, swept_triggers, watch_bands
from engine.types import Band

Slot = tuple[str, GroupKey, int]  # (symbol, group, cohort index): where a subscription is

_NO_MEMORY = Memory()
_NO_SIGHTS: Mapping[str, Sight] = {}


@dataclass(frozen=True, slots=True)
class Cohort:
    """Subscriptions decided together: `rule` is the first member's (its ids are not used)."""

    rule: AlertRule
    memory: Memory
    members: tuple[AlertRule, ...]


class MemoryView(Mapping[int, Memory]):
    """Each subscription's memory (its cohort's), by subscription id, without copying."""

    __slots__ = ("_cohorts", "_where")

    def __init__(self, cohorts: Mapping[str, Mapping[GroupKey, tuple[Cohort, ...]]],
                 where: Mapping[int, Slot]) -> None:
        self._cohorts = cohorts
        self._where = where

    def __getitem__(self, subscription_id: int) -> Memory:
        symbol, group, i = self._where[subscription_id]
        return self._cohorts[symbol][group][i].memory

    def __iter__(self) -> Iterator[int]:
        return iter(self._where)

    def __len__(self) -> int:
        return len(self._where)


@dataclass(frozen=True, slots=True)
class AlertBook:
    """State of every subscription, grouped so geometry is computed once per symbol and group
    and decisions once per cohort. `settled_at` is each symbol's last settled tick."""

    rules: Mapping[int, AlertRule]
    tracks: Mapping[str, BandTrack]
    watches: Mapping[GroupKey, Mapping[str, Sight]]
    cohorts: Mapping[str, Mapping[GroupKey, tuple[Cohort, ...]]]
    where: Mapping[int, Slot]
    settled_at: Mapping[str, datetime] = field(default_factory=dict)
    holding: frozenset[Slot] = frozenset()

    @property
    def memories(self) -> Mapping[int, Memory]:
        """Each subscription's memory by subscription id."""
        return MemoryView(self.cohorts, self.where)

    @property
    def groups(self) -> Mapping[str, Mapping[GroupKey, tuple[Cohort, ...]]]:
        """Cohorts by symbol and group (the symbols are those someone subscribes to)."""
        return self.cohorts


def _memory_key(memory: Memory) -> Hashable:
    """Equal memories, equal keys (a memory's parts are all hashable)."""
    return (memory.day, memory.fired_today, frozenset(memory.bands.items()), memory.held)


def build_book(rules: Iterable[AlertRule], memories: Mapping[int, Memory], now: datetime,
               *, previous: AlertBook | None = None) -> AlertBook:
    """Book for these rules; memories, tracks and zones come from `previous` (else memories
    from `memories`, tracks seeded from them). Subscriptions of a group with the same rule
    (ids aside) and equal memories form one cohort."""
    by_id = {r.subscription_id: r for r in sorted(rules, key=lambda r: r.subscription_id)}
    old = None if previous is None else previous.memories
    keys: dict[int, Hashable] = {}  # memory key by id(memory): members share memory objects
    buckets: dict[str, dict[GroupKey, dict[tuple[AlertRule, Hashable],
                                           tuple[Memory, list[AlertRule]]]]] = {}
    for sid, rule in by_id.items():
        memory = old[sid] if old is not None and sid in old else memories.get(sid, _NO_MEMORY)
        mkey = keys.get(id(memory))
        if mkey is None:
            mkey = keys[id(memory)] = _memory_key(memory)
        shape = replace(rule, subscription_id=0, chat_id=0)
        bucket = buckets.setdefault(rule.symbol, {}).setdefault(rule.group, {})
        bucket.setdefault((shape, mkey), (memory, []))[1].append(rule)
    cohorts: dict[str, dict[GroupKey, tuple[Cohort, ...]]] = {}
    where: dict[int, Slot] = {}
    holding: set[Slot] = set()
    for symbol, by_group in buckets.items():
        cohorts[symbol] = {}
        for group, by_shape in by_group.items():
            made = tuple(Cohort(members[0], memory, tuple(members))
                         for memory, members in by_shape.values())
            cohorts[symbol][group] = made
            for i, cohort in enumerate(made):
                for member in cohort.members:
                    where[member.subscription_id] = (symbol, group, i)
                if cohort.memory.held:
                    holding.add((symbol, group, i))
    tracks: dict[str, BandTrack] = {}
    for symbol, made_by_group in cohorts.items():
        if previous is not None and symbol in previous.tracks:
            tracks[symbol] = previous.tracks[symbol]
        else:
            tracks[symbol] = seed_track(
                (m for made in made_by_group.values() for c in made
                 for m in c.memory.bands.values() if m.last_kind is not AlertKind.SWEPT), now)
    watches = {} if previous is None else {
        g: w for g, w in previous.watches.items() if g[0] in cohorts and g in cohorts[g[0]]}
    settled = {} if previous is None else {
        s: t for s, t in previous.settled_at.items() if s in cohorts}
    return AlertBook(rules=by_id, tracks=tracks, watches=watches, cohorts=cohorts, where=where,
                     settled_at=settled, holding=frozenset(holding))


def evaluate_book(
    book: AlertBook,
    symbol: str,
    bands: Sequence[Band],
    price: float,
    prev_price: float,
    now: datetime,
    *,
    stale: bool = False,
    swept: Sequence[Band] = (),
    settled: bool = True,
) -> tuple[AlertBook, list[Decision]]:
    """Decisions for every subscription to `symbol` on one price tick.

    `settled` says whether `price` is a settled price (a bar's close, a last trade) that may
    re-arm bands; pass False for the intermediate points of a bar's path (its wicks).

    Cohorts are visited only when their group has triggers or they hold quiet-hour events.
    """
    require_aware(now)
    by_group = book.cohorts.get(symbol)
    if not by_group:
        return book, []
    low, high = min(price, prev_price), max(price, prev_price)
    old_track = book.tracks.get(symbol, BandTrack())
    track, gone = track_bands(old_track, bands, low, high, now, swept=swept)
    ids = track.ids()
    geometry = measure(track, low, high, price)
    extra = swept_triggers(gone)
    settled_price = price if settled else None
    settled_at = book.settled_at.get(symbol)
    prune = track is not old_track
    watches: dict[GroupKey, Mapping[str, Sight]] | None = None
    groups: dict[GroupKey, tuple[Cohort, ...]] | None = None
    holding = book.holding
    decisions: list[Decision] = []
    for group, cohorts in by_group.items():
        old_watch = book.watches.get(group, _NO_SIGHTS)
        watch, triggers = watch_bands(old_watch, geometry, ids, now, group[1], group[2],
                                      settled=settled_price, settled_at=settled_at, prune=prune)
        if watch is not old_watch:
            if watches is None:
                watches = dict(book.watches)
            watches[group] = watch
        if extra:
            triggers.extend(extra)
        if triggers:
            visit: Iterable[int] = range(len(cohorts))
        elif holding:
            visit = sorted(i for s, g, i in holding if s == symbol and g == group)
        else:
            continue
        changed = _decide_cohorts(cohorts, visit, triggers, now, price, stale, ids, decisions)
        if changed is not None:
            if groups is None:
                groups = dict(by_group)
            groups[group] = changed
            holding = _holding(holding, symbol, group, changed)
    if stale:
        return book, decisions
    if (track is old_track and watches is None and groups is None
            and (not settled or book.settled_at.get(symbol) == now)):
        return book, decisions
    return AlertBook(
        rules=book.rules,
        tracks=book.tracks if track is old_track else {**book.tracks, symbol: track},
        watches=book.watches if watches is None else watches,
        cohorts=book.cohorts if groups is None else {**book.cohorts, symbol: groups},
        where=book.where,
        settled_at={**book.settled_at, symbol: now} if settled else book.settled_at,
        holding=holding,
    ), decisions


def _decide_cohorts(cohorts: tuple[Cohort, ...], visit: Iterable[int],
                    triggers: Sequence[Trigger], now: datetime, price: float, stale: bool,
                    ids: frozenset[str], out: list[Decision]) -> tuple[Cohort, ...] | None:
    """Decide each visited cohort once and address its outcomes to every member (appended to
    `out`); the group's cohorts with new memories, or None when no memory changed."""
    changed: list[Cohort] | None = None
    for i in visit:
        cohort = cohorts[i]
        memory, outcomes = decide_shared(cohort.memory, triggers, cohort.rule, now, price,
                                         stale=stale, track_ids=ids)
        for outcome in outcomes:
            out.extend(outcome.decisions(cohort.members, now, price))
        if memory is not cohort.memory:
            if changed is None:
                changed = list(cohorts)
            changed[i] = Cohort(cohort.rule, memory, cohort.members)
    return None if changed is None else tuple(changed)


def _holding(holding: frozenset[Slot], symbol: str, group: GroupKey,
             cohorts: tuple[Cohort, ...]) -> frozenset[Slot]:
    """`holding` with this group's cohorts that hold quiet-hour events (same set if equal)."""
    now_holding = {(symbol, group, i) for i, c in enumerate(cohorts) if c.memory.held}
    before = {s for s in holding if s[0] == symbol and s[1] == group}
    if now_holding == before:
        return holding
    return (holding - before) | now_holding
