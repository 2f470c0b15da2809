"""Tables of the webhooks context.

An endpoint is where a store wants its events; a delivery is one event owed to one
endpoint (unique per pair, so a redelivered event adds nothing); an attempt is one POST
of it, kept as the delivery log.
"""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

from sqlalchemy import (
    Boolean,
    CheckConstraint,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import ARRAY, JSONB, UUID
from sqlalchemy.orm import Mapped, mapped_column

from ordersmith.platform.tenant_tables import TenantBase

# pending: owed, attempted at next_attempt_at; succeeded: a 2xx came back; failed: the
# last automatic attempt failed (dead-lettered), only a replay sends it again.
DELIVERY_STATUSES = ("pending", "succeeded", "failed")
# automatic: the sender's first try or a retry; replay: a person asked for it.
ATTEMPT_TRIGGERS = ("automatic", "replay")


class WebhookEndpoint(TenantBase):
    """A URL of the merchant's that receives the store's events of the topics it chose."""

    __tablename__ = "webhook_endpoints"
    __table_args__ = (
        Index("ix_webhook_endpoints_created_at_id", "created_at", "id"),
        CheckConstraint(
            "(previous_secret_sealed IS NULL) = (previous_secret_expires_at IS NULL)",
            name="previous_secret_has_expiry",
        ),
    )

    id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True)
    url: Mapped[str] = mapped_column(String(2000))
    topics: Mapped[list[str]] = mapped_column(ARRAY(String(100)))
    description: Mapped[str] = mapped_column(Text, server_default="")
    is_active: Mapped[bool] = mapped_column(Boolean, server_default=text("true"))
    # The signing secret, sealed (secrets.py); shown in clear only when made.
    secret_sealed: Mapped[bytes] = mapped_column(LargeBinary)
    # Its last four characters, so an admin can tell which secret a receiver holds.
    secret_hint: Mapped[str] = mapped_column(String(20))
    secret_rotated_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
    # The secret a rotation replaced, still signing beside the new one until it expires,
    # so a receiver can switch secrets without refusing a delivery (sealed the same way).
    previous_secret_sealed: Mapped[bytes | None] = mapped_column(LargeBinary)
    previous_secret_expires_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    updated_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class WebhookDelivery(TenantBase):
    """One event owed to one endpoint, with where its attempts stand."""

    __tablename__ = "webhook_deliveries"
    __table_args__ = (
        CheckConstraint(f"status IN {DELIVERY_STATUSES}", name="status_known"),
        CheckConstraint("attempt_count >= 0", name="attempt_count_not_negative"),
        CheckConstraint("automatic_attempt_count >= 0", name="automatic_attempt_count_not_negative"),
        Index("uq_webhook_deliveries_event_endpoint", "event_id", "endpoint_id", unique=True),
        Index("ix_webhook_deliveries_endpoint_created_at_id", "endpoint_id", "created_at", "id"),
        # The sender's queue: only what is still owed.
        Index(
            "ix_webhook_deliveries_due",
            "next_attempt_at",
            postgresql_where=text("status = 'pending'"),
        ),
    )

    id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True)
    endpoint_id: Mapped[uuid.UUID] = mapped_column(
        UUID(as_uuid=True), ForeignKey("webhook_endpoints.id", ondelete="CASCADE")
    )
    event_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True))
    topic: Mapped[str] = mapped_column(String(100))
    # The JSON document POSTed: {"id", "type", "created", "data"}.
    body: Mapped[dict[str, Any]] = mapped_column(JSONB)
    status: Mapped[str] = mapped_column(String(20))
    # Every attempt, replays included: it numbers them in the log.
    attempt_count: Mapped[int] = mapped_column(Integer, server_default=text("0"))
    # The sender's own attempts only: they alone decide the next wait and the dead-lettering,
    # so a failed replay does not use up a pending delivery's retries.
    automatic_attempt_count: Mapped[int] = mapped_column(Integer, server_default=text("0"))
    next_attempt_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
    last_status_code: Mapped[int | None] = mapped_column(Integer)
    last_error: Mapped[str | None] = mapped_column(Text)
    delivered_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    updated_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class WebhookDeliveryAttempt(TenantBase):
    """One POST of a delivery: what the receiver answered, how long it took, or what went wrong."""

    __tablename__ = "webhook_delivery_attempts"
    __table_args__ = (
        CheckConstraint(f"trigger IN {ATTEMPT_TRIGGERS}", name="trigger_known"),
        Index("ix_webhook_delivery_attempts_delivery_id_number", "delivery_id", "attempt_number"),
    )

    id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True)
    delivery_id: Mapped[uuid.UUID] = mapped_column(
        UUID(as_uuid=True), ForeignKey("webhook_deliveries.id", ondelete="CASCADE")
    )
    attempt_number: Mapped[int] = mapped_column(Integer)
    trigger: Mapped[str] = mapped_column(String(20))
    status_code: Mapped[int | None] = mapped_column(Integer)
    duration_ms: Mapped[int] = mapped_column(Integer)
    error: Mapped[str | None] = mapped_column(Text)
    attempted_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))
