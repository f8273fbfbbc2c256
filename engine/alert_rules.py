"""Per-subscription alert decisions: kinds, strength, re-arming, cooldown, daily cap, quiet hours.

`decide` applies one subscription's `AlertRule` and its `Memory` to the `Trigger`s of one tick;
every outcome is a `Decision` with a `Reason`, fired or not. Pure: `now` is always passed in.

The spam rules, in the order they apply to one trigger:

1. *Kind and strength*: the most severe subscribed kind the zone reached; weak bands never fire.
2. *Once per arming epoch* (`choose`): a band fires each kind at most once per epoch; a more
   severe kind (approach -> enter -> cross) escalates. A repeat needs the band re-armed: a
   settled price went away from it after the last alert (see `engine.alert_watch`: judged on
   bar closes against the band's re-arm reference, not the jittering current edge), or
   `rearm_after` passed. Even re-armed, a band stays quiet for `min_interval` after it fired.
3. *Same place*: a band the subscription has no memory of, overlapping a band it was told
   about on the same side (a split, merged or re-identified band), inherits that memory, so
   a recomputed map does not make old news new.
4. *One alert per side at a time* (`side_anchor`): within `min_interval` of an alert on one
   side of price, another band on that side fires only when more severe (approach < enter <
   cross = swept). Otherwise it is COVERED: remembered as told at the time of the alert that
   covered it, not sent. In one tick the most severe, then largest, band leads.
5. *Quiet hours* hold alerts for one summary; the *daily cap* drops the rest of the day's.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, time, timedelta
from enum import StrEnum
from functools import lru_cache
from typing import NamedTuple

from engine.alert_identity import TrackedBand
from engine.alert_settings import AlertKind, AlertRule, zoneinfo
from engine.alert_watch import Trigger
from engine.alert_zones import Zone
from engine.types import Band, Side

MAX_HELD = 50

_KIND_FOR_ZONE = {Zone.NEAR: AlertKind.APPROACH, Zone.INSIDE: AlertKind.ENTER,
                  Zone.BEYOND: AlertKind.CROSS}
_SEVERITY = {AlertKind.APPROACH: 1, AlertKind.ENTER: 2, AlertKind.CROSS: 3, AlertKind.SWEPT: 4}
_RANK = {AlertKind.APPROACH: 1, AlertKind.ENTER: 2, AlertKind.CROSS: 3, AlertKind.SWEPT: 3}


class Reason(StrEnum):
    """Why a decision fired or did not; callers log it."""

    FIRED_FIRST = "fired_first"
    FIRED_ESCALATED = "fired_escalated"
    FIRED_REARMED = "fired_rearmed"
    FIRED_QUIET_SUMMARY = "fired_quiet_summary"
    SUPPRESSED_COOLDOWN = "suppressed_cooldown"
    SUPPRESSED_COVERED = "suppressed_covered"
    SUPPRESSED_NOT_REARMED = "suppressed_not_rearmed"
    SUPPRESSED_DAILY_CAP = "suppressed_daily_cap"
    HELD_QUIET_HOURS = "held_quiet_hours"
    BELOW_MIN_STRENGTH = "below_min_strength"
    KIND_NOT_SUBSCRIBED = "kind_not_subscribed"
    STALE_DATA = "stale_data"


FIRED_REASONS = frozenset({Reason.FIRED_FIRST, Reason.FIRED_ESCALATED, Reason.FIRED_REARMED,
                           Reason.FIRED_QUIET_SUMMARY})
REMEMBERED_REASONS = FIRED_REASONS | {Reason.HELD_QUIET_HOURS, Reason.SUPPRESSED_COVERED}


@dataclass(frozen=True, slots=True)
class BandMemory:
    """What one subscription remembers about one band: last alert and its arming epoch.

    `last_fired_at` is when the band was last told (fired or held); for a covered band it is
    the time of the alert that covered it. `fired_count` counts the day's sent or held alerts.
    """

    band_id: str
    side: Side
    low: float
    high: float
    peak: float
    epoch: int = 0
    last_kind: AlertKind | None = None
    last_fired_at: datetime | None = None
    fired_count: int = 0
    fired_day: str = ""

    @property
    def armed(self) -> bool:
        """True when the lowest kind may fire without re-arming."""
        return self.last_kind is None


@dataclass(frozen=True, slots=True)
class HeldEvent:
    """An alert held back during quiet hours, summarised when they end."""

    kind: AlertKind
    band_id: str
    side: Side
    low: float
    high: float
    price: float
    at: datetime
    key: str


@dataclass(frozen=True, slots=True)
class Memory:
    """Per-subscription alert state: band memories, today's count (local day) and held events."""

    bands: Mapping[str, BandMemory] = field(default_factory=dict)
    day: str = ""
    fired_today: int = 0
    held: tuple[HeldEvent, ...] = ()


class Decision(NamedTuple):
    """Outcome of one candidate alert for one subscription; `key` is its idempotency key.

    An immutable named tuple rather than a frozen dataclass: the bulk path makes one per
    subscription and outcome, and a tuple is built several times faster.
    """

    kind: AlertKind
    reason: Reason
    subscription_id: int
    chat_id: int
    symbol: str
    at: datetime
    price: float
    key: str
    band_id: str | None = None
    band: Band | None = None
    next_band: Band | None = None
    realized_usd: float | None = None
    held: tuple[HeldEvent, ...] = ()

    @property
    def fired(self) -> bool:
        """True when this decision should be delivered."""
        return self.reason in FIRED_REASONS

    @property
    def remembered(self) -> bool:
        """True when this decision changed the subscription's memory (fired, held, covered):
        the memory must be stored with it."""
        return self.reason in REMEMBERED_REASONS


def alert_key(kind: AlertKind, subscription_id: int, band: str, epoch: int) -> str:
    """Idempotency key of a band alert: stable across crash-restart recomputation."""
    return f"{kind}:{subscription_id}:{band}:{epoch}"  # StrEnum formats as its value


def brief_key(chat_id: int, symbol: str, local_day: str) -> str:
    """Idempotency key of one chat's daily brief for one symbol and local day."""
    return f"{AlertKind.DAILY_BRIEF.value}:{chat_id}:{symbol}:{local_day}"


def in_quiet_hours(start: time | None, end: time | None, local: time) -> bool:
    """True when local time lies in [start, end), wrapping midnight; start == end means never."""
    if start is None or end is None or start == end:
        return False
    if start < end:
        return start <= local < end
    return local >= start or local < end


@lru_cache(maxsize=256)
def _kind_for(kinds: frozenset[AlertKind], reach: Zone) -> AlertKind | None:
    """Most severe subscribed band kind at or below the zone reached (None if none)."""
    wanted = [k for z, k in _KIND_FOR_ZONE.items() if z <= reach and k in kinds]
    return wanted[-1] if wanted else None


@lru_cache(maxsize=1024)
def _local(timezone: str, now: datetime) -> tuple[str, time]:
    """Local ISO day and naive time of day of `now` in a time zone."""
    local = now.astimezone(zoneinfo(timezone))
    return local.date().isoformat(), local.time().replace(tzinfo=None)


def choose(rule: AlertRule, memory: BandMemory | None, trigger: Trigger,
           now: datetime) -> tuple[Reason, AlertKind, int]:
    """Kind, epoch and reason for one trigger before quiet hours and the daily cap."""
    if trigger.swept is not None:
        kind = AlertKind.SWEPT
        if kind not in rule.kinds:
            return Reason.KIND_NOT_SUBSCRIBED, kind, 0
    else:
        chosen = _kind_for(rule.kinds, trigger.reach)
        if chosen is None:
            return Reason.KIND_NOT_SUBSCRIBED, _KIND_FOR_ZONE[trigger.reach], 0
        kind = chosen
    epoch = 0 if memory is None else memory.epoch
    if trigger.tracked.band.strength < rule.min_strength:
        return Reason.BELOW_MIN_STRENGTH, kind, epoch
    if (kind is AlertKind.SWEPT or memory is None or memory.last_kind is None
            or memory.last_fired_at is None):
        return Reason.FIRED_FIRST, kind, epoch
    if _SEVERITY.get(kind, 0) > _SEVERITY.get(memory.last_kind, 0):
        return Reason.FIRED_ESCALATED, kind, epoch
    moved_away = trigger.away_at is not None and trigger.away_at > memory.last_fired_at
    if not moved_away and now - memory.last_fired_at < rule.rearm_after:
        return Reason.SUPPRESSED_NOT_REARMED, kind, epoch
    if now - memory.last_fired_at < rule.min_interval:
        return Reason.SUPPRESSED_COOLDOWN, kind, epoch
    return Reason.FIRED_REARMED, kind, epoch + 1


def same_place(known: Mapping[str, BandMemory], band: Band) -> BandMemory | None:
    """Memory of a told band on the same side whose remembered range overlaps `band` (the most
    recently told one), or None."""
    best: BandMemory | None = None
    for m in known.values():
        if (m.side is band.side and m.last_fired_at is not None
                and m.low <= band.high and band.low <= m.high
                and (best is None or best.last_fired_at is None
                     or m.last_fired_at > best.last_fired_at)):
            best = m
    return best


def side_anchor(known: Mapping[str, BandMemory], side: Side, kind: AlertKind, now: datetime,
                window: timedelta) -> datetime | None:
    """Time of the latest alert on `side` less than `window` ago at least as severe as `kind`
    (the alert that covers a `kind` alert now), or None."""
    rank = _RANK[kind]
    anchor: datetime | None = None
    for m in known.values():
        at = m.last_fired_at
        if (at is not None and m.side is side and m.last_kind is not None
                and now - at < window and _RANK[m.last_kind] >= rank
                and (anchor is None or at > anchor)):
            anchor = at
    return anchor


class Outcome(NamedTuple):
    """A decision before it is addressed to a subscription: what `decide_shared` returns, so
    subscriptions with the same rule and memory share it (`Outcome.decision` addresses it)."""

    kind: AlertKind
    reason: Reason
    band_id: str | None
    band: Band | None
    epoch: int
    next_band: Band | None = None
    realized_usd: float | None = None
    held: tuple[HeldEvent, ...] = ()

    def key(self, subscription_id: int) -> str:
        """The idempotency key for one subscription ("" for stale data)."""
        prefix, suffix = self._key_parts()
        return "" if prefix is None else f"{prefix}{subscription_id}{suffix}"

    def _key_parts(self) -> tuple[str | None, str]:
        """Key = prefix + subscription id + suffix (prefix None: no key)."""
        if self.reason is Reason.STALE_DATA:
            return None, ""
        if self.kind is AlertKind.QUIET_SUMMARY:
            return f"{AlertKind.QUIET_SUMMARY.value}:", f":{self.held[0].key}"
        return f"{self.kind.value}:", f":{self.band_id}:{self.epoch}"  # as `alert_key`

    def decision(self, rule: AlertRule, now: datetime, price: float) -> Decision:
        """This outcome as one subscription's decision."""
        return self.decisions((rule,), now, price)[0]

    def decisions(self, rules: Sequence[AlertRule], now: datetime,
                  price: float) -> list[Decision]:
        """This outcome as the decision of each subscription in `rules`."""
        prefix, suffix = self._key_parts()
        kind, reason, band_id, band, _, nxt, realized, held = self
        if prefix is None:
            return [Decision(kind, reason, r.subscription_id, r.chat_id, r.symbol, now, price,
                             "", band_id, band, nxt, realized, held) for r in rules]
        return [Decision(kind, reason, r.subscription_id, r.chat_id, r.symbol, now, price,
                         f"{prefix}{r.subscription_id}{suffix}", band_id, band, nxt, realized,
                         held) for r in rules]


def held_key(kind: AlertKind, band: str, epoch: int) -> str:
    """Key of a held event: the alert it stands for, whichever subscription held it."""
    return f"{kind}:{band}:{epoch}"


def decide(
    memory: Memory,
    triggers: Sequence[Trigger],
    rule: AlertRule,
    now: datetime,
    price: float,
    *,
    stale: bool = False,
    track_ids: frozenset[str] | None = None,
) -> tuple[Memory, list[Decision]]:
    """Apply one subscription's rule to this tick's triggers (`decide_shared`, addressed)."""
    new_memory, outcomes = decide_shared(memory, triggers, rule, now, price, stale=stale,
                                         track_ids=track_ids)
    return new_memory, [o.decision(rule, now, price) for o in outcomes]


def decide_shared(
    memory: Memory,
    triggers: Sequence[Trigger],
    rule: AlertRule,
    now: datetime,
    price: float,
    *,
    stale: bool = False,
    track_ids: frozenset[str] | None = None,
) -> tuple[Memory, list[Outcome]]:
    """Apply a rule to this tick's triggers; flush held events after quiet hours.

    Uses nothing of the rule's subscription and chat ids, so subscriptions with the same rule
    otherwise and the same memory get the same outcomes and the same new memory.

    Stale data decides nothing but STALE_DATA and leaves the memory as it was. The memory of a
    band no longer tracked (`track_ids`; swept bands included) is kept until its last alert is
    `min_interval` old (it still covers its side and its place), then dropped before it is
    used, so the outcome does not depend on which ticks called `decide`. Outcomes come in
    trigger order, after a quiet-hours summary if one is due.
    """
    if stale:
        return memory, [
            Outcome(choose(rule, memory.bands.get(t.tracked.id), t, now)[1], Reason.STALE_DATA,
                    t.tracked.id, t.tracked.band, 0)
            for t in triggers
        ]
    day, clock = _local(rule.timezone, now)
    quiet = in_quiet_hours(rule.quiet_start, rule.quiet_end, clock)
    fired_today = memory.fired_today if memory.day == day else 0
    held = list(memory.held)
    bands: dict[str, BandMemory] | None = None  # copied on first write
    known = memory.bands
    if track_ids is not None and known and not track_ids.issuperset(known):
        window = rule.min_interval
        kept = {k: m for k, m in known.items() if k in track_ids or (
            m.last_fired_at is not None and now - m.last_fired_at < window)}
        if len(kept) != len(known):
            bands = known = kept
    outcomes: list[Outcome] = []
    if held and not quiet:
        outcomes.append(Outcome(AlertKind.QUIET_SUMMARY, Reason.FIRED_QUIET_SUMMARY, None, None,
                                0, held=tuple(held)))
        held = []
        fired_today += 1
    picks: list[tuple[Reason, AlertKind, int]] = []
    for trigger in triggers:
        tracked = trigger.tracked
        prior = known.get(tracked.id)
        if prior is None and trigger.swept is None and known:
            prior = same_place(known, tracked.band)
        picks.append(choose(rule, prior, trigger, now))
    made: list[Outcome | None] = [None] * len(triggers)
    for i in _by_priority(triggers, picks):
        trigger = triggers[i]
        reason, kind, epoch = picks[i]
        tracked = trigger.tracked
        band = tracked.band
        told_at = now
        fired = reason in FIRED_REASONS
        if fired:
            anchor = side_anchor(known, band.side, kind, now, rule.min_interval)
            if anchor is not None:
                reason, fired, told_at = Reason.SUPPRESSED_COVERED, False, anchor
            elif quiet:
                reason, fired = Reason.HELD_QUIET_HOURS, False
            elif fired_today >= rule.daily_cap:
                reason, fired = Reason.SUPPRESSED_DAILY_CAP, False
        swept = trigger.swept
        made[i] = Outcome(kind, reason, tracked.id, band, epoch,
                          None if swept is None else swept.next_band,
                          None if swept is None else swept.realized_usd)
        held_now = reason is Reason.HELD_QUIET_HOURS
        if held_now and len(held) < MAX_HELD:
            held.append(HeldEvent(kind, tracked.id, band.side, band.low, band.high,
                                  price, now, held_key(kind, tracked.id, epoch)))
        if fired or held_now or reason is Reason.SUPPRESSED_COVERED:
            fired_today += fired
            if bands is None:
                bands = dict(known)
                known = bands
            bands[tracked.id] = _remember(bands.get(tracked.id), tracked, kind, epoch, told_at,
                                          day, sent=fired or held_now)
    outcomes.extend(o for o in made if o is not None)
    if (bands is None and fired_today == memory.fired_today and day == memory.day
            and len(held) == len(memory.held)):
        return memory, outcomes
    return Memory(memory.bands if bands is None else bands, day, fired_today,
                  tuple(held)), outcomes


def _by_priority(triggers: Sequence[Trigger],
                 picks: Sequence[tuple[Reason, AlertKind, int]]) -> Sequence[int]:
    """Trigger indices, those that would fire first: most severe, then largest band."""
    if len(triggers) < 2:
        return range(len(triggers))
    return sorted(range(len(triggers)), key=lambda i: (
        picks[i][0] not in FIRED_REASONS, -_RANK[picks[i][1]], -triggers[i].tracked.band.usd, i))


def _remember(prev: BandMemory | None, tracked: TrackedBand, kind: AlertKind, epoch: int,
              at: datetime, day: str, *, sent: bool) -> BandMemory:
    """Band memory after an alert of `kind` in `epoch` told at `at` (sent, held or covered)."""
    band = tracked.band
    count = prev.fired_count if prev is not None and prev.fired_day == day else 0
    return BandMemory(tracked.id, band.side, band.low, band.high, band.peak, epoch, kind, at,
                      count + sent, day)

