"""Vendor staff: their accounts and their sign-in, a realm separate from tenant users.

Staff have their own table, their own token audience and their own lockout realm: a
tenant credential never opens a staff route and a staff token never opens a tenant
route. Staff reach a tenant's data only through support grants (`support_grants.py`).
"""

from __future__ import annotations

import datetime as dt
import enum
import uuid
from dataclasses import dataclass

from sqlalchemy import insert, select
from sqlalchemy.exc import IntegrityError

from ordersmith.platform.database import Database
from ordersmith.platform.errors import (
    ConflictError,
    FieldError,
    InvalidCredentialsError,
    PermissionDeniedError,
    ValidationFailedError,
)
from ordersmith.platform.identity import lockout
from ordersmith.platform.identity.accounts import normalize_email, sign_in_email
from ordersmith.platform.identity.audit import SYSTEM, Actor, record_audit
from ordersmith.platform.identity.models import StaffAccount
from ordersmith.platform.identity.passwords import check_password, hash_password, verify_password
from ordersmith.platform.identity.principal import Principal
from ordersmith.platform.identity.tokens import STAFF_AUDIENCE, TokenSigner

STAFF_REALM = "staff"


class StaffRole(enum.StrEnum):
    # Helps merchants: may request support grants and work inside a tenant through them.
    SUPPORT = "support"
    # Reads vendor-level records; never holds a grant, so never sees a tenant's data.
    AUDITOR = "auditor"
    # Everything support does, and elevates other staff members' grants to read_write.
    SUPERADMIN = "superadmin"


class StaffEmailTakenError(ConflictError):
    code = "staff_email_taken"
    title = "Staff email already registered"


@dataclass(frozen=True)
class StaffMember:
    id: uuid.UUID
    email: str
    full_name: str
    role: str


async def create_staff_account(
    database: Database, *, email: str, role: str, password: str, full_name: str = ""
) -> StaffMember:
    """Add a vendor staff member; 422 lists what is wrong with the email, role or password."""
    errors: list[FieldError] = []
    try:
        email = normalize_email(email)
    except ValidationFailedError as error:
        errors.extend(error.errors)
    if role not in set(StaffRole):
        errors.append(FieldError("role", f"must be one of {', '.join(StaffRole)}"))
    if not errors:
        try:
            check_password(password, email)
        except ValidationFailedError as error:
            errors.extend(error.errors)
    if errors:
        raise ValidationFailedError("some fields are invalid; see errors", errors=errors)
    member = StaffMember(uuid.uuid4(), email, full_name.strip(), role)
    password_hash = await hash_password(password)
    try:
        async with database.platform_session() as session:
            await session.execute(
                insert(StaffAccount).values(
                    id=member.id,
                    email=email,
                    full_name=member.full_name,
                    password_hash=password_hash,
                    role=role,
                )
            )
            await record_audit(
                session,
                tenant_id=None,
                actor=SYSTEM,
                action="staff.created",
                target_type="staff_account",
                target_id=str(member.id),
                data={"email": email, "role": role},
            )
    except IntegrityError as error:
        if "uq_staff_accounts_email" in str(error.orig):
            raise StaffEmailTakenError(
                f"a staff account with the email {email!r} already exists; use another address"
            ) from None
        raise
    return member


@dataclass(frozen=True)
class StaffSession:
    """What a staff sign-in returns: a short-lived access token, and no refresh token."""

    staff_id: uuid.UUID
    role: str
    access_token: str
    expires_in: int


_BAD_STAFF_CREDENTIALS = "the email and password do not match an active staff account; check them"


async def sign_in_staff(
    database: Database, signer: TokenSigner, *, email: str, password: str, client_address: str | None
) -> StaffSession:
    """Exchange a staff password for a 15-minute staff token, slowing down and locking after failures."""
    email = sign_in_email(email)
    attempt = lockout.SignInAttempt.of(STAFF_REALM, email, client_address)
    async with database.platform_session() as session:
        await lockout.reserve_sign_in(session, attempt, dt.datetime.now(dt.UTC))
        account = (
            await session.execute(select(StaffAccount).where(StaffAccount.email == email))
        ).scalar_one_or_none()
    password_ok = await verify_password(password, account.password_hash if account else None)
    if account is None or not password_ok or not account.is_active:
        reason = "inactive" if password_ok else "bad_password"
        actor = (
            Actor("staff", str(account.id), client_address)
            if account
            else Actor("anonymous", None, client_address)
        )
        async with database.platform_session() as session:
            await record_audit(
                session,
                tenant_id=None,
                actor=actor,
                action="staff.sign_in_failed",
                data={"email": email, "reason": reason},
            )
        raise InvalidCredentialsError(_BAD_STAFF_CREDENTIALS)
    async with database.platform_session() as session:
        await lockout.sign_in_succeeded(session, attempt)
        await record_audit(
            session,
            tenant_id=None,
            actor=Actor("staff", str(account.id), client_address),
            action="staff.signed_in",
        )
    token, claims = signer.issue(
        subject=account.id, tenant_id=None, role=account.role, audience=STAFF_AUDIENCE
    )
    expires_in = int((claims.expires_at - dt.datetime.now(dt.UTC)).total_seconds())
    return StaffSession(account.id, account.role, token, expires_in)


def require_staff_role(staff: Principal, *roles: StaffRole) -> None:
    """403 unless the principal is a staff member with one of `roles`."""
    # The route guard already checks roles; services check again so that no caller can skip it.
    if staff.kind != "staff" or staff.role not in roles:
        raise PermissionDeniedError(f"this needs a staff role among {', '.join(roles)}")
