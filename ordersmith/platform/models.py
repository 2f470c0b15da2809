"""Tables of the shared `platform` schema: the tenant registry, placement, outbox, jobs."""

from __future__ import annotations

import datetime as dt
import enum
import uuid
from typing import Any

from sqlalchemy import (
    CheckConstraint,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
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


class Tenant(PlatformBase):
    """One merchant: its slug, its schema and database role, its plan and state."""

    __tablename__ = "tenants"
    __table_args__ = (
        CheckConstraint("slug ~ '^[a-z0-9-]{3,40}$'", name="slug_format"),
        CheckConstraint("status IN ('active', 'archived')", name="status_known"),
    )

    id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True)
    slug: Mapped[str] = mapped_column(String(40), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    schema_name: Mapped[str] = mapped_column(String(63), unique=True)
    db_role: Mapped[str] = mapped_column(String(63), unique=True)
    status: Mapped[str] = mapped_column(String(20), server_default=TenantStatus.ACTIVE.value)
    plan: Mapped[str] = mapped_column(String(40), server_default="trial")
    trial_ends_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
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
