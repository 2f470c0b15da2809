"""Tables of the shared `platform` schema: the tenant registry, placement, outbox, jobs."""

from __future__ import annotations

import datetime as dt
import enum
import uuid
from typing import Any

from sqlalchemy import (
    Boolean,
    CheckConstraint,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB, UUID
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from ordersmith.platform.database import PLATFORM_SCHEMA, make_metadata


class PlatformBase(DeclarativeBase):
    metadata = make_metadata(PLATFORM_SCHEMA)


class TenantStatus(enum.StrEnum):
    # Working normally.
    ACTIVE = "active"
    # Kept, but nobody may reach its data until it is restored; dropping needs this first.
    ARCHIVED = "archived"


class BillingStatus(enum.StrEnum):
    # Paid up, or on its trial (whose end is `trial_ends_at`).
    ACTIVE = "active"
    # A payment failed; writes keep working for a grace period from `past_due_since`.
    PAST_DUE = "past_due"
    # Payment retries ran out: read-only until an invoice is paid.
    UNPAID = "unpaid"
    # The subscription ended: read-only until a plan is chosen again.
    CANCELED = "canceled"


class Tenant(PlatformBase):
    """One merchant: its slug, its schema and database role, its plan and state."""

    __tablename__ = "tenants"
    __table_args__ = (
        CheckConstraint("slug ~ '^[a-z0-9-]{3,40}$'", name="slug_format"),
        CheckConstraint("status IN ('active', 'archived')", name="status_known"),
        CheckConstraint(
            "billing_status IN ('active', 'past_due', 'unpaid', 'canceled')", name="billing_status_known"
        ),
    )

    id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True)
    slug: Mapped[str] = mapped_column(String(40), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    schema_name: Mapped[str] = mapped_column(String(63), unique=True)
    db_role: Mapped[str] = mapped_column(String(63), unique=True)
    status: Mapped[str] = mapped_column(String(20), server_default=TenantStatus.ACTIVE.value)
    plan: Mapped[str] = mapped_column(String(40), server_default="trial")
    trial_ends_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
    billing_status: Mapped[str] = mapped_column(String(20), server_default=BillingStatus.ACTIVE.value)
    past_due_since: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
    # Bumped by every change to the plan or the overrides: per-process entitlement caches
    # compare it to the revision they hold.
    entitlements_revision: Mapped[int] = mapped_column(Integer, server_default="0")
    # The tenant-stream revision the schema is at, as recorded by the last migration.
    revision: Mapped[str | None] = mapped_column(String(64))
    migrated_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
    migration_error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    archived_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))


class TenantPlacement(PlatformBase):
    """Which PostgreSQL cluster and database hold a tenant's schema."""

    __tablename__ = "tenant_placements"

    tenant_id: Mapped[uuid.UUID] = mapped_column(
        UUID(as_uuid=True), ForeignKey("platform.tenants.id", ondelete="CASCADE"), primary_key=True
    )
    cluster: Mapped[str] = mapped_column(String(63))
    database_name: Mapped[str] = mapped_column(String(63))
    placed_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class OutboxEvent(PlatformBase):
    """A domain event written in the same transaction as the change it announces."""

    __tablename__ = "outbox"
    __table_args__ = (
        # The relay reads unpublished rows oldest first.
        Index("ix_outbox_unpublished", "created_at", postgresql_where=text("published_at IS NULL")),
    )

    id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True)
    tenant_id: Mapped[uuid.UUID | None] = mapped_column(UUID(as_uuid=True))
    topic: Mapped[str] = mapped_column(String(100))
    payload: Mapped[dict[str, Any]] = mapped_column(JSONB)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    published_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
    publish_attempts: Mapped[int] = mapped_column(Integer, server_default="0")
    last_error: Mapped[str | None] = mapped_column(Text)


class ProcessedEvent(PlatformBase):
    """Idempotency record of platform-level consumers (tenant consumers keep their own)."""

    __tablename__ = "processed_events"

    consumer: Mapped[str] = mapped_column(String(100), primary_key=True)
    event_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True)
    processed_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class ScheduledJob(PlatformBase):
    """When the scheduler last enqueued each periodic job, so restarts keep the rhythm."""

    __tablename__ = "scheduled_jobs"

    name: Mapped[str] = mapped_column(String(100), primary_key=True)
    last_enqueued_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))


class EntitlementOverride(PlatformBase):
    """A vendor-staff override of one feature or limit for one tenant: it wins over the plan.

    A feature's override holds `enabled`; a limit's holds `limit_value` (NULL: unlimited).
    Replacing or removing one ends it (`ended_at`); ended rows stay as its history.
    """

    __tablename__ = "entitlement_overrides"
    __table_args__ = (
        CheckConstraint("kind IN ('feature', 'limit')", name="kind_known"),
        CheckConstraint(
            "(kind = 'feature' AND enabled IS NOT NULL AND limit_value IS NULL)"
            " OR (kind = 'limit' AND enabled IS NULL AND (limit_value IS NULL OR limit_value >= 0))",
            name="value_fits_kind",
        ),
        # One override in force per tenant and key.
        Index(
            "uq_entitlement_overrides_live",
            "tenant_id",
            "key",
            unique=True,
            postgresql_where=text("ended_at IS NULL"),
        ),
    )

    id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True)
    tenant_id: Mapped[uuid.UUID] = mapped_column(
        UUID(as_uuid=True), ForeignKey("platform.tenants.id", ondelete="CASCADE")
    )
    kind: Mapped[str] = mapped_column(String(10))
    # A Feature or Limit value.
    key: Mapped[str] = mapped_column(String(40))
    enabled: Mapped[bool | None] = mapped_column(Boolean)
    limit_value: Mapped[int | None] = mapped_column(Integer)
    reason: Mapped[str] = mapped_column(String(500))
    # NULL: until removed.
    expires_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
    created_by: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True))
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    ended_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
    ended_by: Mapped[uuid.UUID | None] = mapped_column(UUID(as_uuid=True))


class TrialNotice(PlatformBase):
    """A trial email sent (reminder or end), at most once per tenant, trial end and kind."""

    __tablename__ = "trial_notices"
    __table_args__ = (
        UniqueConstraint("tenant_id", "trial_ends_at", "kind"),
        CheckConstraint("kind IN ('ends_in_3_days', 'ends_in_1_day', 'ended')", name="kind_known"),
    )

    id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True)
    tenant_id: Mapped[uuid.UUID] = mapped_column(
        UUID(as_uuid=True), ForeignKey("platform.tenants.id", ondelete="CASCADE")
    )
    # The trial end the notice was about: a trial extended later gets its reminders again.
    trial_ends_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))
    kind: Mapped[str] = mapped_column(String(20))
    sent_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class WebhookStore(PlatformBase):
    """A store the webhook sender looks into: one that has, or lately had, an active endpoint.

    Marked (again) whenever an endpoint is made or left active, before the store's own
    transaction commits; the sender removes the mark once the store has no active endpoint
    and the mark is older than any transaction (`webhook_stores.py`).
    """

    __tablename__ = "webhook_stores"

    tenant_id: Mapped[uuid.UUID] = mapped_column(
        UUID(as_uuid=True), ForeignKey("platform.tenants.id", ondelete="CASCADE"), primary_key=True
    )
    marked_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
