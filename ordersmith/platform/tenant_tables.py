"""The declarative base of tenant-schema tables, and the platform's own tenant table.

Tenant tables live in the placeholder schema `tenant` and are routed to `t_<id>` per
transaction. Every room that stores tenant data declares its models on `TenantBase`.
"""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

from sqlalchemy import DateTime, Index, Integer, String, func
from sqlalchemy.dialects.postgresql import JSONB, UUID
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from ordersmith.platform.database import make_metadata


class TenantBase(DeclarativeBase):
    metadata = make_metadata(None)


class TenantProcessedEvent(TenantBase):
    """Inbox of a tenant's consumers: an event id is handled once per consumer."""

    __tablename__ = "processed_events"

    consumer: Mapped[str] = mapped_column(String(100), primary_key=True)
    event_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True)
    processed_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class TenantIdempotencyKey(TenantBase):
    """A creating request's `Idempotency-Key`, its body's fingerprint and the first response."""

    __tablename__ = "idempotency_keys"
    __table_args__ = (Index("ix_idempotency_keys_created_at", "created_at"),)

    # Who sent the key (a user or an API key): two callers' keys never collide.
    scope: Mapped[str] = mapped_column(String(100), primary_key=True)
    key: Mapped[str] = mapped_column(String(255), primary_key=True)
    fingerprint: Mapped[str] = mapped_column(String(64))
    status_code: Mapped[int | None] = mapped_column(Integer)
    response: Mapped[dict[str, Any] | None] = mapped_column(JSONB)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
