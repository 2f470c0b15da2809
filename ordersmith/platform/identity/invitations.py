"""Invitations to a store: sent by email, single use; accepted as a new account or with an existing one."""

from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass

from sqlalchemy import ColumnElement, func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from ordersmith.platform.database import Database
from ordersmith.platform.entitlement_usage import count_seats
from ordersmith.platform.entitlements import check_limit, enforce_limit, entitlements_in
from ordersmith.platform.errors import (
    AccountUnverifiedError,
    ConflictError,
    FieldError,
    PermissionDeniedError,
    TokenGoneError,
    ValidationFailedError,
)
from ordersmith.platform.identity import lockout
from ordersmith.platform.identity.accounts import TENANT_REALM, IssuedSession, normalize_email, start_session
from ordersmith.platform.identity.audit import Actor, record_audit
from ordersmith.platform.identity.members import ACTIVE, lock_members, not_found, parse_id, tenant_of
from ordersmith.platform.identity.models import Invitation, Membership, User
from ordersmith.platform.identity.passwords import check_password, hash_password, verify_password
from ordersmith.platform.identity.permissions import Permission, Role, lacking, permissions_of
from ordersmith.platform.identity.principal import Principal, access_lost
from ordersmith.platform.identity.tokens import TokenSigner, new_secret, secret_hash
from ordersmith.platform.mail import queue_email
from ordersmith.platform.pagination import Page, PageRequest
from ordersmith.platform.plans import Limit
from ordersmith.platform.tenancy import TenantRecord, get_tenant_by_id, require_active

INVITATION_LIFETIME = dt.timedelta(days=7)
_ROLES = ", ".join(Role)


class AlreadyMemberError(ConflictError):
    code = "already_member"
    title = "Already a member"


@dataclass(frozen=True)
class InvitationView:
    """An invitation as store admins see it (never its token)."""

    id: uuid.UUID
    email: str
    role: str
    invited_by: uuid.UUID | None
    created_at: dt.datetime
    expires_at: dt.datetime
    accepted_at: dt.datetime | None
    revoked_at: dt.datetime | None

    @property
    def status(self) -> str:
        """pending, accepted, revoked or expired."""
        if self.accepted_at is not None:
            return "accepted"
        if self.revoked_at is not None:
            return "revoked"
        return "expired" if self.expires_at <= dt.datetime.now(dt.UTC) else "pending"


@dataclass(frozen=True)
class CreatedInvitation:
    """A new invitation and its token, which only ever leaves by email."""

    invitation: InvitationView
    token: str


def _invitation_view(invitation: Invitation) -> InvitationView:
    return InvitationView(
        invitation.id,
        invitation.email,
        invitation.role,
        invitation.invited_by,
        invitation.created_at,
        invitation.expires_at,
        invitation.accepted_at,
        invitation.revoked_at,
    )


async def _inviter_email(session: AsyncSession, principal: Principal) -> str:
    # An integration invites on behalf of whoever created its key.
    email = None
    if principal.person_id is not None:
        email = await session.scalar(select(User.email).where(User.id == principal.person_id))
    return email or "An administrator of the store"


async def _check_sender_may_still_invite(
    session: AsyncSession, tenant_id: uuid.UUID, principal: Principal, role: str
) -> None:
    """Refuse, as a fresh request would be refused, a sender deactivated or demoted since they were let in.

    The guard read the sender's membership before this transaction waited for the members
    lock. A deactivation or demotion that held the lock meanwhile has already revoked the
    invitations they may no longer send, so one inserted after it would outlive that.
    """
    if principal.person_id is None:
        return
    sender = (
        await session.execute(
            select(Membership.role, Membership.status).where(
                Membership.tenant_id == tenant_id, Membership.user_id == principal.person_id
            )
        )
    ).one_or_none()
    # In the guard's own words for a fresh request.
    if sender is None or sender.status != ACTIVE:
        raise access_lost(principal.kind)
    if Permission.USERS_MANAGE not in permissions_of(sender.role):
        raise lacking(Permission.USERS_MANAGE)
    if role == Role.OWNER and sender.role != Role.OWNER:
        raise _owners_only()


def _owners_only() -> PermissionDeniedError:
    return PermissionDeniedError(
        "only an owner can invite another owner; choose a lower role or ask an owner"
    )


async def create_invitation(
    database: Database, principal: Principal, *, email: str, role: str, public_url: str
) -> CreatedInvitation:
    """Invite an email address to the store with a role; the link goes out by email."""
    tenant = tenant_of(principal)
    errors = []
    try:
        email = normalize_email(email)
    except ValidationFailedError as error:
        errors.extend(error.errors)
    if role not in set(Role):
        errors.append(FieldError("role", f"must be one of {_ROLES}"))
    if errors:
        raise ValidationFailedError("the invitation is invalid; see errors", errors=errors)
    if role == Role.OWNER and principal.role != Role.OWNER:
        raise _owners_only()
    now = dt.datetime.now(dt.UTC)
    token = new_secret("oin")
    invitation = Invitation(
        id=uuid.uuid4(),
        tenant_id=tenant.id,
        email=email,
        role=role,
        token_hash=secret_hash(token),
        invited_by=principal.person_id,
        created_at=now,
        expires_at=now + INVITATION_LIFETIME,
    )
    async with database.platform_session() as session:
        member = await session.scalar(
            select(Membership.status)
            .join(User, User.id == Membership.user_id)
            .where(Membership.tenant_id == tenant.id, User.email == email)
        )
        if member is not None:
            raise AlreadyMemberError(
                f"{email} is already a member of this store ({member}); change their role or status instead"
            )
        # A pending invitation holds a seat: the plan's seats count members and invitations.
        await lock_members(session, tenant.id)
        await _check_sender_may_still_invite(session, tenant.id, principal, role)
        pending = await session.scalar(
            select(func.count()).where(
                Invitation.tenant_id == tenant.id, Invitation.email != email, _pending(now)
            )
        )
        await enforce_limit(
            session,
            tenant.context,
            await entitlements_in(session, tenant.id),
            Limit.SEATS,
            current=await count_seats(session, tenant.id) + int(pending or 0),
        )
        # One valid link per address: a new invitation replaces any pending one.
        replaced = await session.execute(
            update(Invitation)
            .where(
                Invitation.tenant_id == tenant.id,
                Invitation.email == email,
                Invitation.accepted_at.is_(None),
                Invitation.revoked_at.is_(None),
            )
            .values(revoked_at=now)
        )
        session.add(invitation)
        await queue_email(
            session,
            tenant.context,
            to=email,
            template="invitation",
            context={
                "store_name": tenant.name,
                "inviter_email": await _inviter_email(session, principal),
                "role": role,
                "link": f"{public_url}/accept-invitation?token={token}",
                "expires_in_days": INVITATION_LIFETIME.days,
            },
        )
        await record_audit(
            session,
            tenant_id=tenant.id,
            actor=principal.actor,
            action="invitation.created",
            target_type="invitation",
            target_id=str(invitation.id),
            data={"email": email, "role": role, "replaced": replaced.rowcount},  # type: ignore[attr-defined]
        )
    return CreatedInvitation(_invitation_view(invitation), token)


def _pending(now: dt.datetime) -> ColumnElement[bool]:
    return Invitation.accepted_at.is_(None) & Invitation.revoked_at.is_(None) & (Invitation.expires_at > now)


async def list_invitations(
    database: Database, tenant: TenantRecord, page: PageRequest
) -> Page[InvitationView]:
    """The store's pending invitations (not accepted, revoked or expired), newest first."""
    query = select(Invitation).where(Invitation.tenant_id == tenant.id, _pending(dt.datetime.now(dt.UTC)))
    query = page.apply(query, Invitation.created_at, Invitation.id, newest_first=True)
    async with database.platform_session() as session:
        rows = [_invitation_view(invitation) for invitation in (await session.scalars(query)).all()]
    return page.cut(rows, lambda invitation: (invitation.created_at, invitation.id))


async def get_invitation(database: Database, tenant: TenantRecord, invitation_id: str) -> InvitationView:
    """One invitation of the store, whatever became of it."""
    target = parse_id(invitation_id, "invitation")
    async with database.platform_session() as session:
        invitation = await session.scalar(
            select(Invitation).where(Invitation.id == target, Invitation.tenant_id == tenant.id)
        )
    if invitation is None:
        raise not_found("invitation", invitation_id)
    return _invitation_view(invitation)


async def revoke_invitation(database: Database, principal: Principal, invitation_id: str) -> None:
    """Withdraw an invitation so its link no longer works; revoking twice is harmless."""
    tenant = tenant_of(principal)
    target = parse_id(invitation_id, "invitation")
    async with database.platform_session() as session:
        invitation = await session.scalar(
            select(Invitation)
            .where(Invitation.id == target, Invitation.tenant_id == tenant.id)
            .with_for_update()
        )
        if invitation is None:
            raise not_found("invitation", invitation_id)
        if invitation.accepted_at is not None:
            raise ConflictError("this invitation was already accepted; deactivate the member instead")
        if invitation.revoked_at is not None:
            return
        invitation.revoked_at = dt.datetime.now(dt.UTC)
        await record_audit(
            session,
            tenant_id=tenant.id,
            actor=principal.actor,
            action="invitation.revoked",
            target_type="invitation",
            target_id=str(invitation.id),
            data={"email": invitation.email, "role": invitation.role},
        )


async def _usable_invitation(session: AsyncSession, token: str, now: dt.datetime) -> Invitation:
    invitation = await session.scalar(
        select(Invitation).where(Invitation.token_hash == secret_hash(token)).with_for_update()
    )
    ask = "ask the store's admin to invite you again"
    if invitation is None:
        raise TokenGoneError(f"this invitation link is not valid; check that you copied all of it, or {ask}")
    if invitation.accepted_at is not None:
        raise TokenGoneError(f"this invitation was already accepted; sign in to the store, or {ask}")
    if invitation.revoked_at is not None:
        raise TokenGoneError(f"this invitation was withdrawn; {ask}")
    if invitation.expires_at <= now:
        raise TokenGoneError(f"this invitation expired; {ask}")
    return invitation


def _unverified_account(email: str) -> AccountUnverifiedError:
    return AccountUnverifiedError(
        f"an account for {email} exists but its email address was never confirmed, so this invitation "
        "cannot join it; confirm the address with the link emailed at sign-up, or reset that account's "
        "password (the emailed reset link confirms the address too), then open this invitation link again"
    )


# Where the owner of an address whose account's password they do not know goes next.
_RESET_THEN_AGAIN = (
    "if you do not know it, reset it from the 'Forgot your password?' page with this address, "
    "then open this invitation link again"
)


async def _check_account_password(
    database: Database, email: str, password: str | None, password_hash: str, client_address: str | None
) -> lockout.SignInAttempt:
    """Refuse (422 naming `password`) unless it is the existing account's; counted like a sign-in."""
    if password:
        attempt = lockout.SignInAttempt.of(TENANT_REALM, email, client_address)
        async with database.platform_session() as session:
            await lockout.reserve_sign_in(
                session, attempt, dt.datetime.now(dt.UTC), advice=", or reset your password"
            )
        if await verify_password(password, password_hash):
            return attempt
        problem = (
            f"is not the password of the Ordersmith account that uses {email}; enter that account's password"
        )
    else:
        problem = f"required: an Ordersmith account already uses {email}; enter its password"
    raise ValidationFailedError(
        "enter the password of your Ordersmith account to join this store with it; see errors",
        errors=[FieldError("password", f"{problem} ({_RESET_THEN_AGAIN})")],
    )


def _check_new_account(email: str, password: str | None, full_name: str) -> None:
    errors = []
    if not password:
        errors.append(FieldError("password", "required: choose a password for your new account"))
    else:
        try:
            check_password(password, email)
        except ValidationFailedError as error:
            errors.extend(error.errors)
    if len(full_name) > 200:
        errors.append(FieldError("full_name", "must be at most 200 characters"))
    if errors:
        raise ValidationFailedError("your new account's details are invalid; see errors", errors=errors)


async def accept_invitation(
    database: Database,
    signer: TokenSigner,
    *,
    token: str,
    password: str | None,
    full_name: str | None,
    client_address: str | None,
) -> IssuedSession:
    """Join a store from an emailed invitation and sign in; a new person also picks a password.

    An existing account joins only once its email is verified: anyone can sign up with an
    address they do not own, and joining that account would let them into the store. The
    invitation is refused (409 `account_unverified`) rather than taking the account over
    here; the address's owner confirms it or resets the password by email (which also
    ends every session of whoever signed up), then accepts again.

    An existing account with a password also needs that password (422 naming `password`
    without it or when it is wrong; tries are counted like sign-ins): a verified address
    does not prove that whoever holds the password owns it (someone may have signed up
    with it and had the owner click the verification link), and the invitation would let
    the password's holder into the store. An account without one (made by single sign-on)
    joins by the emailed link alone.
    """
    now = dt.datetime.now(dt.UTC)
    name = (full_name or "").strip()
    async with database.platform_session() as session:
        invitation = await _usable_invitation(session, token, now)
        account = (
            await session.execute(
                select(User.email_verified_at, User.password_hash).where(User.email == invitation.email)
            )
        ).one_or_none()
    tenant = require_active(await get_tenant_by_id(database, invitation.tenant_id))
    if account is not None and account.email_verified_at is None:
        raise _unverified_account(invitation.email)
    # The existing account's password hash that the caller proved to know, if it has one.
    proven_hash = None
    signed_in = None
    if account is not None and account.password_hash is not None:
        signed_in = await _check_account_password(
            database, invitation.email, password, account.password_hash, client_address
        )
        proven_hash = account.password_hash
    password_hash = None
    if account is None:
        _check_new_account(invitation.email, password, name)
        # Hashing is slow on purpose: do it before the transaction, not inside it.
        password_hash = await hash_password(password or "")
    try:
        async with database.platform_session() as session:
            invitation = await _usable_invitation(session, token, now)
            user = await session.scalar(select(User).where(User.email == invitation.email).with_for_update())
            if user is None and password_hash is None:
                raise ConflictError(
                    "the account for this email was just removed; open the invitation link again"
                )
            if user is None:
                # The link reached this address: that proves it, no separate verification needed.
                user = User(
                    id=uuid.uuid4(),
                    email=invitation.email,
                    full_name=name,
                    password_hash=password_hash,
                    email_verified_at=now,
                )
                session.add(user)
                await session.flush()
            else:
                if user.email_verified_at is None:
                    # Someone signed up with this address since the first look.
                    raise _unverified_account(invitation.email)
                if user.password_hash is not None and user.password_hash != proven_hash:
                    # The account got a password (or a new one) since the first look.
                    raise ConflictError(
                        "the password of the account for this email changed a moment ago; open the "
                        "invitation link again"
                    )
                member = await session.scalar(
                    select(Membership.id).where(
                        Membership.tenant_id == tenant.id, Membership.user_id == user.id
                    )
                )
                if member is not None:
                    raise AlreadyMemberError("you are already a member of this store; sign in instead")
            await lock_members(session, tenant.id)
            # The seat was counted when the invitation was sent; the plan may have shrunk since.
            # A soft limit's warning went to the admins then, so only a hard one matters here.
            check_limit(
                await entitlements_in(session, tenant.id),
                Limit.SEATS,
                current=await count_seats(session, tenant.id),
            )
            session.add(
                Membership(id=uuid.uuid4(), tenant_id=tenant.id, user_id=user.id, role=invitation.role)
            )
            invitation.accepted_at = now
            if signed_in is not None:
                await lockout.sign_in_succeeded(session, signed_in)
            issued = await start_session(
                session, signer, user_id=user.id, tenant=tenant, role=invitation.role
            )
            await record_audit(
                session,
                tenant_id=tenant.id,
                actor=Actor("user", str(user.id), client_address),
                action="invitation.accepted",
                target_type="invitation",
                target_id=str(invitation.id),
                data={
                    "email": invitation.email,
                    "role": invitation.role,
                    "new_account": password_hash is not None,
                },
            )
    except IntegrityError:
        raise ConflictError(
            "someone created this account or membership at the same moment; open the invitation link again"
        ) from None
    return issued
