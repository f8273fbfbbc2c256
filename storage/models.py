"""SQLModel tables: chats, subscriptions, daily briefs, alert state and the delivery outbox.

Conventions (see shared/docs/stack.md §5): chat ids are TEXT, enumerations are plain str
columns (never database ENUMs), every datetime is UTC-aware.
"""

from __future__ import annotations

from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import JSON, Column, Index, UniqueConstraint
from sqlmodel import Field, SQLModel


def utcnow() -> datetime:
    """The current time, UTC-aware."""
    return datetime.now(UTC)


class Platform(StrEnum):
    """Chat platforms a subscription can live on."""

    TELEGRAM = "telegram"
    DISCORD = "discord"
    CONSOLE = "console"


class DeliveryStatus(StrEnum):
    """Life of an outbox row: pending -> sending -> sent, or back to pending, failed or held."""

    PENDING = "pending"
    SENDING = "sending"
    SENT = "sent"
    FAILED = "failed"
    HELD = "held"


class Chat(SQLModel, table=True):
    """A Telegram chat, Discord channel or console sink that receives messages."""

    __tablename__ = "chats"
    __table_args__ = (UniqueConstraint("platform", "chat_id", name="uq_chats_platform_chat"),)

    id: int | None = Field(default=None, primary_key=True)
    platform: str = Field(max_length=16)
    chat_id: str = Field(max_length=64)
    title: str | None = Field(default=None, max_length=200)
    timezone: str = Field(default="UTC", max_length=64)
    active: bool = True
    paused_reason: str | None = Field(default=None, max_length=200)
    created_at: datetime = Field(default_factory=utcnow)
    updated_at: datetime = Field(default_factory=utcnow)


class Subscription(SQLModel, table=True):
    """One chat's alerts for one symbol."""

    __tablename__ = "subscriptions"
    __table_args__ = (UniqueConstraint("chat_pk", "symbol", name="uq_subscriptions_chat_symbol"),)

    id: int | None = Field(default=None, primary_key=True)
    chat_pk: int = Field(foreign_key="chats.id", ondelete="CASCADE", index=True)
    symbol: str = Field(max_length=32, index=True)
    kinds: str = Field(default="approach,cross,swept", max_length=64)
    sensitivity: str = Field(default="balanced", max_length=16)
    min_strength: float | None = None
    quiet_start: str | None = Field(default=None, max_length=5)
    quiet_end: str | None = Field(default=None, max_length=5)
    daily_cap: int = 20
    active: bool = True
    paused_reason: str | None = Field(default=None, max_length=200)
    created_at: datetime = Field(default_factory=utcnow)
    updated_at: datetime = Field(default_factory=utcnow)


class DailyBrief(SQLModel, table=True):
    """A chat's daily brief for one symbol at a local time of day."""

    __tablename__ = "daily_briefs"
    __table_args__ = (UniqueConstraint("chat_pk", "symbol", name="uq_daily_briefs_chat_symbol"),)

    id: int | None = Field(default=None, primary_key=True)
    chat_pk: int = Field(foreign_key="chats.id", ondelete="CASCADE", index=True)
    symbol: str = Field(max_length=32)
    local_time: str = Field(max_length=5)
    timezone: str = Field(default="UTC", max_length=64)
    active: bool = True
    created_at: datetime = Field(default_factory=utcnow)


class AlertBandState(SQLModel, table=True):
    """What one subscription remembers about one band (engine.alerts.BandMemory)."""

    __tablename__ = "alert_states"
    __table_args__ = (
        UniqueConstraint("subscription_id", "band_key", name="uq_alert_states_sub_band"),
    )

    id: int | None = Field(default=None, primary_key=True)
    subscription_id: int = Field(foreign_key="subscriptions.id", ondelete="CASCADE", index=True)
    band_key: str = Field(max_length=64)
    side: str = Field(max_length=8)
    low: float
    high: float
    peak: float
    armed: bool = True
    epoch: int = 0
    last_kind: str | None = Field(default=None, max_length=16)
    last_fired_at: datetime | None = None
    fired_count: int = 0
    fired_day: str = Field(default="", max_length=10)


class AlertCounter(SQLModel, table=True):
    """Per-subscription alert counters: today's count (local day) and quiet-hour events held."""

    __tablename__ = "alert_counters"

    subscription_id: int = Field(
        foreign_key="subscriptions.id", ondelete="CASCADE", primary_key=True
    )
    day: str = Field(default="", max_length=10)
    fired_today: int = 0
    held: list[dict[str, Any]] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    updated_at: datetime = Field(default_factory=utcnow)


class Delivery(SQLModel, table=True):
    """One outbox row: a transport-neutral message for one chat, delivered at least once."""

    __tablename__ = "outbox"
    __table_args__ = (Index("ix_outbox_status_next_attempt", "status", "next_attempt_at"),)

    id: int | None = Field(default=None, primary_key=True)
    key: str = Field(max_length=200, unique=True)
    chat_pk: int = Field(foreign_key="chats.id", ondelete="CASCADE", index=True)
    kind: str = Field(max_length=32)
    payload: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    status: str = Field(default=DeliveryStatus.PENDING.value, max_length=16)
    attempts: int = 0
    next_attempt_at: datetime = Field(default_factory=utcnow)
    last_error: str | None = Field(default=None, max_length=500)
    receipt: str | None = Field(default=None, max_length=200)
    created_at: datetime = Field(default_factory=utcnow)
    claimed_at: datetime | None = None
    sent_at: datetime | None = None
