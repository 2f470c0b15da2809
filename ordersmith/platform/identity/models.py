"""Identity tables of the `platform` schema."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
    func,
)
from sqlalchemy.dialects.postgresql import ARRAY, JSONB, UUID
from sqlalchemy.orm import Mapped, mapped_column

from ordersmith.platform.models import PlatformBase


def _uuid_pk() -> Mapped[uuid.UUID]:
    return mapped_column(UUID(as_uuid=True), primary_key=True)


def _created_at() -> Mapped[dt.datetime]:
    return mapped_column(DateTime(timezone=True), server_default=func.now())


class User(PlatformBase):
    """A person; one person may belong to several tenants through memberships."""

    __tablename__ = "users"
    __table_args__ = (CheckConstraint("email = lower(email)", name="email_lowercase"),)

    id: Mapped[uuid.UUID] = _uuid_pk()
    email: Mapped[str] = mapped_column(String(320), unique=True)
    full_name: Mapped[str] = mapped_column(String(200), server_default="")
    # None for people who only ever sign in through their company's SSO.
    password_hash: Mapped[str | None] = mapped_column(Text)
    email_verified_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
    created_at: Mapped[dt.datetime] = _created_at()


class Membership(PlatformBase):
    """A user's place in a tenant: their role and whether they may still sign in there."""

    __tablename__ = "memberships"
    __table_args__ = (
        UniqueConstraint("tenant_id", "user_id"),
        CheckConstraint("role IN ('owner', 'admin', 'manager', 'agent', 'viewer')", name="role_known"),
        CheckConstraint("status IN ('active', 'deactivated')", name="status_known"),
    )

    id: Mapped[uuid.UUID] = _uuid_pk()
    tenant_id: Mapped[uuid.UUID] = mapped_column(
        UUID(as_uuid=True), ForeignKey("platform.tenants.id", ondelete="CASCADE")
    )
    user_id: Mapped[uuid.UUID] = mapped_column(
        UUID(as_uuid=True), ForeignKey("platform.users.id", ondelete="CASCADE"), index=True
    )
    role: Mapped[str] = mapped_column(String(20))
    status: Mapped[str] = mapped_column(String(20), server_default="active")
    created_at: Mapped[dt.datetime] = _created_at()


class RefreshToken(PlatformBase):
    """One opaque refresh token; rotating it issues the next one of the same family."""

    __tablename__ = "refresh_tokens"

    id: Mapped[uuid.UUID] = _uuid_pk()
    family_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), index=True)
    user_id: Mapped[uuid.UUID] = mapped_column(
        UUID(as_uuid=True), ForeignKey("platform.users.id", ondelete="CASCADE"), index=True
    )
    tenant_id: Mapped[uuid.UUID] = mapped_column(
        UUID(as_uuid=True), ForeignKey("platform.tenants.id", ondelete="CASCADE")
    )
    token_hash: Mapped[bytes] = mapped_column(LargeBinary, unique=True)
    issued_at: Mapped[dt.datetime] = _created_at()
    expires_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))
    used_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
    revoked_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))


class ActionToken(PlatformBase):
    """A single-use, expiring token sent by email: verify an address, reset a password."""

    __tablename__ = "action_tokens"
    __table_args__ = (CheckConstraint("purpose IN ('verify_email', 'reset_password')", name="purpose_known"),)

    id: Mapped[uuid.UUID] = _uuid_pk()
    purpose: Mapped[str] = mapped_column(String(20))
    user_id: Mapped[uuid.UUID] = mapped_column(
        UUID(as_uuid=True), ForeignKey("platform.users.id", ondelete="CASCADE"), index=True
    )
    token_hash: Mapped[bytes] = mapped_column(LargeBinary, unique=True)
    created_at: Mapped[dt.datetime] = _created_at()
    expires_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))
    used_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))


class Invitation(PlatformBase):
    """An admin's invitation of an email address to a tenant with a role."""

    __tablename__ = "invitations"
    __table_args__ = (
        CheckConstraint("role IN ('owner', 'admin', 'manager', 'agent', 'viewer')", name="role_known"),
        Index("ix_invitations_tenant_id_created_at", "tenant_id", "created_at"),
    )

    id: Mapped[uuid.UUID] = _uuid_pk()
    tenant_id: Mapped[uuid.UUID] = mapped_column(
        UUID(as_uuid=True), ForeignKey("platform.tenants.id", ondelete="CASCADE")
    )
    email: Mapped[str] = mapped_column(String(320))
    role: Mapped[str] = mapped_column(String(20))
    token_hash: Mapped[bytes] = mapped_column(LargeBinary, unique=True)
    invited_by: Mapped[uuid.UUID | None] = mapped_column(UUID(as_uuid=True))
    created_at: Mapped[dt.datetime] = _created_at()
    expires_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))
    accepted_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
    revoked_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))


class ApiKey(PlatformBase):
    """An integration's key: shown once, stored hashed, found by its visible prefix."""

    __tablename__ = "api_keys"
    __table_args__ = (Index("ix_api_keys_tenant_id_created_at", "tenant_id", "created_at"),)

    id: Mapped[uuid.UUID] = _uuid_pk()
    tenant_id: Mapped[uuid.UUID] = mapped_column(
        UUID(as_uuid=True), ForeignKey("platform.tenants.id", ondelete="CASCADE")
    )
    name: Mapped[str] = mapped_column(String(100))
    prefix: Mapped[str] = mapped_column(String(16), unique=True)
    secret_hash: Mapped[bytes] = mapped_column(LargeBinary)
    scopes: Mapped[list[str]] = mapped_column(ARRAY(String(40)))
    created_by: Mapped[uuid.UUID | None] = mapped_column(UUID(as_uuid=True))
    created_at: Mapped[dt.datetime] = _created_at()
    last_used_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
    revoked_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))


class AttemptCounter(PlatformBase):
    """Recent attempts at a guarded action (sign-in, reset request, sign-up) under one key."""

    __tablename__ = "attempt_counters"

    # "account:<realm>:<email>" or "address:<realm>:<client address>"
    key: Mapped[str] = mapped_column(String(400), primary_key=True)
    # Attempts reserved in the current run (successes give theirs back where failures count).
    attempts: Mapped[int] = mapped_column(Integer)
    last_attempt_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))
    # No attempt is reserved before this moment: a slow-down or a lock.
    blocked_until: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))


class StaffAccount(PlatformBase):
    """A member of the vendor's staff; a separate realm from tenant users."""

    __tablename__ = "staff_accounts"
    __table_args__ = (
        CheckConstraint("role IN ('support', 'auditor', 'superadmin')", name="role_known"),
        CheckConstraint("email = lower(email)", name="email_lowercase"),
    )

    id: Mapped[uuid.UUID] = _uuid_pk()
    email: Mapped[str] = mapped_column(String(320), unique=True)
    full_name: Mapped[str] = mapped_column(String(200), server_default="")
    password_hash: Mapped[str] = mapped_column(Text)
    role: Mapped[str] = mapped_column(String(20))
    is_active: Mapped[bool] = mapped_column(Boolean, server_default="true")
    created_at: Mapped[dt.datetime] = _created_at()


class SupportGrant(PlatformBase):
    """Time-boxed access of one staff member to one tenant's data, for a stated reason."""

    __tablename__ = "support_grants"
    __table_args__ = (
        CheckConstraint("access IN ('read_only', 'read_write')", name="access_known"),
        Index("ix_support_grants_tenant_id_created_at", "tenant_id", "created_at"),
    )

    id: Mapped[uuid.UUID] = _uuid_pk()
    staff_id: Mapped[uuid.UUID] = mapped_column(
        UUID(as_uuid=True), ForeignKey("platform.staff_accounts.id", ondelete="CASCADE")
    )
    tenant_id: Mapped[uuid.UUID] = mapped_column(
        UUID(as_uuid=True), ForeignKey("platform.tenants.id", ondelete="CASCADE")
    )
    reason: Mapped[str] = mapped_column(Text)
    access: Mapped[str] = mapped_column(String(20), server_default="read_only")
    elevated_by: Mapped[uuid.UUID | None] = mapped_column(UUID(as_uuid=True))
    created_at: Mapped[dt.datetime] = _created_at()
    expires_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))
    revoked_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))


class AuditEntry(PlatformBase):
    """An append-only, hash-chained record of a security-relevant act."""

    __tablename__ = "audit_log"
    __table_args__ = (
        # Each entry names its predecessor; two entries can never claim the same one.
        UniqueConstraint("chain", "prev_hash"),
        Index("ix_audit_log_tenant_id_id", "tenant_id", "id"),
    )

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    # "platform" or a tenant id: each tenant's trail is a chain of its own.
    chain: Mapped[str] = mapped_column(String(40))
    tenant_id: Mapped[uuid.UUID | None] = mapped_column(UUID(as_uuid=True))
    actor_type: Mapped[str] = mapped_column(String(20))
    actor_id: Mapped[str | None] = mapped_column(String(100))
    action: Mapped[str] = mapped_column(String(60))
    target_type: Mapped[str | None] = mapped_column(String(40))
    target_id: Mapped[str | None] = mapped_column(String(100))
    data: Mapped[dict[str, Any]] = mapped_column(JSONB, server_default="{}")
    client_address: Mapped[str | None] = mapped_column(String(64))
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))
    prev_hash: Mapped[str] = mapped_column(String(64))
    hash: Mapped[str] = mapped_column(String(64))


class MailboxMessage(PlatformBase):
    """An email kept in the database instead of sent: the development mailbox."""

    __tablename__ = "mailbox"
    __table_args__ = (Index("ix_mailbox_to_address_created_at", "to_address", "created_at"),)

    id: Mapped[uuid.UUID] = _uuid_pk()
    event_id: Mapped[uuid.UUID | None] = mapped_column(UUID(as_uuid=True), unique=True)
    to_address: Mapped[str] = mapped_column(String(320))
    subject: Mapped[str] = mapped_column(String(300))
    text_body: Mapped[str] = mapped_column(Text)
    html_body: Mapped[str] = mapped_column(Text)
    created_at: Mapped[dt.datetime] = _created_at()


class TenantSsoConfig(PlatformBase):
    """A tenant's OpenID Connect provider, for single sign-on."""

    __tablename__ = "tenant_sso_configs"
    __table_args__ = (
        CheckConstraint("default_role IN ('admin', 'manager', 'agent', 'viewer')", name="default_role_known"),
    )

    tenant_id: Mapped[uuid.UUID] = mapped_column(
        UUID(as_uuid=True), ForeignKey("platform.tenants.id", ondelete="CASCADE"), primary_key=True
    )
    issuer: Mapped[str] = mapped_column(String(500))
    client_id: Mapped[str] = mapped_column(String(200))
    # Encrypted with a key derived from SECRET_KEY (AES-GCM); never returned by the API.
    client_secret_encrypted: Mapped[bytes] = mapped_column(LargeBinary)
    default_role: Mapped[str] = mapped_column(String(20), server_default="agent")
    is_enabled: Mapped[bool] = mapped_column(Boolean, server_default="true")
    updated_at: Mapped[dt.datetime] = _created_at()


class SsoLoginState(PlatformBase):
    """What a sign-in through SSO must remember between the redirect and the callback."""

    __tablename__ = "sso_login_states"

    state: Mapped[str] = mapped_column(String(100), primary_key=True)
    tenant_id: Mapped[uuid.UUID] = mapped_column(
        UUID(as_uuid=True), ForeignKey("platform.tenants.id", ondelete="CASCADE")
    )
    nonce: Mapped[str] = mapped_column(String(100))
    code_verifier: Mapped[str] = mapped_column(String(200))
    redirect_uri: Mapped[str] = mapped_column(String(500))
    created_at: Mapped[dt.datetime] = _created_at()
    expires_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))
