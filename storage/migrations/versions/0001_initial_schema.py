"""initial schema

Revision ID: 0001
Revises:
Create Date: 2026-11-23 00:42:45.394584
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel.sql.sqltypes
from alembic import op

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_ = sqlmodel  # autogenerate renders sqlmodel types


def upgrade() -> None:
    """Apply this revision."""
    op.create_table(
        "chats",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("platform", sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
        sa.Column("chat_id", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("title", sqlmodel.sql.sqltypes.AutoString(length=200), nullable=True),
        sa.Column("timezone", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("paused_reason", sqlmodel.sql.sqltypes.AutoString(length=200), nullable=True),
        sa.Column("created_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
        sa.Column("updated_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("platform", "chat_id", name="uq_chats_platform_chat"),
    )
    op.create_table(
        "daily_briefs",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("chat_pk", sa.Integer(), nullable=False),
        sa.Column("symbol", sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
        sa.Column("local_time", sqlmodel.sql.sqltypes.AutoString(length=5), nullable=False),
        sa.Column("timezone", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("created_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(["chat_pk"], ["chats.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("chat_pk", "symbol", name="uq_daily_briefs_chat_symbol"),
    )
    with op.batch_alter_table("daily_briefs", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_daily_briefs_chat_pk"), ["chat_pk"], unique=False)

    op.create_table(
        "outbox",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("key", sqlmodel.sql.sqltypes.AutoString(length=200), nullable=False),
        sa.Column("chat_pk", sa.Integer(), nullable=False),
        sa.Column("kind", sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
        sa.Column("payload", sa.JSON(), nullable=False),
        sa.Column("status", sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_attempt_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
        sa.Column("last_error", sqlmodel.sql.sqltypes.AutoString(length=500), nullable=True),
        sa.Column("receipt", sqlmodel.sql.sqltypes.AutoString(length=200), nullable=True),
        sa.Column("created_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
        sa.Column("claimed_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True),
        sa.Column("sent_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True),
        sa.ForeignKeyConstraint(["chat_pk"], ["chats.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("key"),
    )
    with op.batch_alter_table("outbox", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_outbox_chat_pk"), ["chat_pk"], unique=False)
        batch_op.create_index(
            "ix_outbox_status_next_attempt", ["status", "next_attempt_at"], unique=False
        )

    op.create_table(
        "subscriptions",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("chat_pk", sa.Integer(), nullable=False),
        sa.Column("symbol", sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
        sa.Column("kinds", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("sensitivity", sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
        sa.Column("min_strength", sa.Float(), nullable=True),
        sa.Column("quiet_start", sqlmodel.sql.sqltypes.AutoString(length=5), nullable=True),
        sa.Column("quiet_end", sqlmodel.sql.sqltypes.AutoString(length=5), nullable=True),
        sa.Column("daily_cap", sa.Integer(), nullable=False),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("paused_reason", sqlmodel.sql.sqltypes.AutoString(length=200), nullable=True),
        sa.Column("created_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
        sa.Column("updated_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(["chat_pk"], ["chats.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("chat_pk", "symbol", name="uq_subscriptions_chat_symbol"),
    )
    with op.batch_alter_table("subscriptions", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_subscriptions_chat_pk"), ["chat_pk"], unique=False)
        batch_op.create_index(batch_op.f("ix_subscriptions_symbol"), ["symbol"], unique=False)

    op.create_table(
        "alert_counters",
        sa.Column("subscription_id", sa.Integer(), nullable=False),
        sa.Column("day", sqlmodel.sql.sqltypes.AutoString(length=10), nullable=False),
        sa.Column("fired_today", sa.Integer(), nullable=False),
        sa.Column("held", sa.JSON(), nullable=False),
        sa.Column("updated_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(["subscription_id"], ["subscriptions.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("subscription_id"),
    )
    op.create_table(
        "alert_states",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("subscription_id", sa.Integer(), nullable=False),
        sa.Column("band_key", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("side", sqlmodel.sql.sqltypes.AutoString(length=8), nullable=False),
        sa.Column("low", sa.Float(), nullable=False),
        sa.Column("high", sa.Float(), nullable=False),
        sa.Column("peak", sa.Float(), nullable=False),
        sa.Column("armed", sa.Boolean(), nullable=False),
        sa.Column("epoch", sa.Integer(), nullable=False),
        sa.Column("last_kind", sqlmodel.sql.sqltypes.AutoString(length=16), nullable=True),
        sa.Column("last_fired_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True),
        sa.Column("fired_count", sa.Integer(), nullable=False),
        sa.Column("fired_day", sqlmodel.sql.sqltypes.AutoString(length=10), nullable=False),
        sa.ForeignKeyConstraint(["subscription_id"], ["subscriptions.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("subscription_id", "band_key", name="uq_alert_states_sub_band"),
    )
    with op.batch_alter_table("alert_states", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_alert_states_subscription_id"), ["subscription_id"], unique=False
        )


def downgrade() -> None:
    """Revert this revision."""
    with op.batch_alter_table("alert_states", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_alert_states_subscription_id"))

    op.drop_table("alert_states")
    op.drop_table("alert_counters")
    with op.batch_alter_table("subscriptions", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_subscriptions_symbol"))
        batch_op.drop_index(batch_op.f("ix_subscriptions_chat_pk"))

    op.drop_table("subscriptions")
    with op.batch_alter_table("outbox", schema=None) as batch_op:
        batch_op.drop_index("ix_outbox_status_next_attempt")
        batch_op.drop_index(batch_op.f("ix_outbox_chat_pk"))

    op.drop_table("outbox")
    with op.batch_alter_table("daily_briefs", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_daily_briefs_chat_pk"))

    op.drop_table("daily_briefs")
    op.drop_table("chats")
