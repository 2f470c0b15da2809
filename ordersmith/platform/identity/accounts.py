"""Sign-up, sign-in, token refresh and sign-out of tenant users."""

from __future__ import annotations

import datetime as dt
import re
import secrets
import unicodedata
import uuid
from dataclasses import dataclass

from sqlalchemy import insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from ordersmith.platform.database import Database, TenantContext
from ordersmith.platform.errors import (
    FieldError,
    InvalidCredentialsError,
    OrdersmithError,
    RefreshTokenReusedError,
    SlugTakenError,
    ValidationFailedError,
)
from ordersmith.platform.identity import lockout
from ordersmith.platform.identity.audit import Actor, record_audit
from ordersmith.platform.identity.existing_accounts import (
    email_taken,
    lock_proven_account,
    prove_account_password,
    refuse_repeated_sign_up,
)
from ordersmith.platform.identity.models import ActionToken, Membership, RefreshToken, User
from ordersmith.platform.identity.passwords import check_password, hash_password, verify_password
from ordersmith.platform.identity.permissions import Role
from ordersmith.platform.identity.tokens import TokenSigner, new_secret, secret_hash
from ordersmith.platform.mail import queue_email
from ordersmith.platform.models import Tenant, TenantStatus
from ordersmith.platform.schema_migrations import TenantSchemaSpec
from ordersmith.platform.tenancy import (
    RESERVED_SLUGS,
    TenantRecord,
    archived_error,
    get_tenant_by_id,
    get_tenant_record,
    is_slug_available,
    normalize_slug,
    provision_tenant,
    validate_slug,
)

TRIAL_LENGTH = dt.timedelta(days=14)
REFRESH_TOKEN_LIFETIME = dt.timedelta(days=30)
VERIFY_EMAIL_LIFETIME = dt.timedelta(days=3)
TENANT_REALM = lockout.TENANT_REALM
SIGNUP_REALM = "signup"
SIGNUP_WINDOW = dt.timedelta(hours=1)
# The width of `tenants.name` and of the store's display name.
COMPANY_NAME_MAX_LENGTH = 200
# The longest address an account can have: RFC 5321's limit, and the width of `users.email`.
EMAIL_MAX_LENGTH = 320
_EMAIL = re.compile(r"[^@\s]+@[^@\s]+\.[^@\s]+")


@dataclass(frozen=True)
class IssuedSession:
    """What a successful sign-in returns."""

    user_id: uuid.UUID
    tenant: TenantRecord
    role: str
    access_token: str
    access_token_id: str
    expires_in: int
    refresh_token: str


def normalize_email(email: str, field: str = "email") -> str:
    """Lower-cased, trimmed email; 422 if it cannot be an address."""
    cleaned = email.strip().lower()
    if len(cleaned) > EMAIL_MAX_LENGTH or not _EMAIL.fullmatch(cleaned):
        raise ValidationFailedError(
            f"{email!r} is not an email address",
            errors=[FieldError(field, "must be an email address like name@example.com")],
        )
    return cleaned


def sign_in_email(email: str) -> str:
    """The email a sign-in looks up: trimmed, lower-cased, cut just past the longest an account has.

    Sign-in answers every email without an account alike (401), malformed or not, so it is
    not validated. One longer than any account's is cut to `EMAIL_MAX_LENGTH + 1`
    characters: still longer than any account's, so it matches none, but it fits its
    lockout counter (`attempt_counters.key`) and its audit entry.
    """
    return email.strip().lower()[: EMAIL_MAX_LENGTH + 1]


def slug_from_name(name: str) -> str:
    """A slug suggested by a company name: ascii, lowercase, hyphens, with a short suffix."""
    ascii_name = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode()
    base = re.sub(r"[^a-z0-9]+", "-", ascii_name.lower()).strip("-")[:30].strip("-")
    if len(base) < 3 or base in RESERVED_SLUGS:
        base = f"store-{base}".strip("-")
    # A random tail keeps two "Acme" sign-ups from colliding; the merchant can pick their own.
    return f"{base}-{secrets.token_hex(3)}"


async def insert_refresh_token(
    session: AsyncSession | AsyncConnection,
    *,
    user_id: uuid.UUID,
    tenant_id: uuid.UUID,
    now: dt.datetime,
    family_id: uuid.UUID | None = None,
) -> str:
    """Store a new refresh token (of a new family unless one is given); return the secret."""
    token = new_secret("ort")
    await session.execute(
        insert(RefreshToken).values(
            id=uuid.uuid4(),
            family_id=family_id or uuid.uuid4(),
            user_id=user_id,
            tenant_id=tenant_id,
            token_hash=secret_hash(token),
            issued_at=now,
            expires_at=now + REFRESH_TOKEN_LIFETIME,
        )
    )
    return token


async def start_session(
    session: AsyncSession, signer: TokenSigner, *, user_id: uuid.UUID, tenant: TenantRecord, role: str
) -> IssuedSession:
    """Sign a member in: a new refresh-token family (in the caller's transaction) and an access token."""
    refresh_token = await insert_refresh_token(
        session, user_id=user_id, tenant_id=tenant.id, now=dt.datetime.now(dt.UTC)
    )
    return issue_session(signer, user_id=user_id, tenant=tenant, role=role, refresh_token=refresh_token)


async def create_action_token(
    session: AsyncSession | AsyncConnection, *, user_id: uuid.UUID, purpose: str, lifetime: dt.timedelta
) -> str:
    """A single-use emailed token for `purpose`; only its hash is stored."""
    token = new_secret("oat")
    await session.execute(
        insert(ActionToken).values(
            id=uuid.uuid4(),
            purpose=purpose,
            user_id=user_id,
            token_hash=secret_hash(token),
            expires_at=dt.datetime.now(dt.UTC) + lifetime,
        )
    )
    return token


def issue_session(
    signer: TokenSigner, *, user_id: uuid.UUID, tenant: TenantRecord, role: str, refresh_token: str
) -> IssuedSession:
    """An access token for a membership, packaged with its refresh token."""
    access_token, claims = signer.issue(subject=user_id, tenant_id=tenant.id, role=role)
    return IssuedSession(
        user_id=user_id,
        tenant=tenant,
        role=role,
        access_token=access_token,
        access_token_id=claims.token_id,
        expires_in=int((claims.expires_at - dt.datetime.now(dt.UTC)).total_seconds()),
        refresh_token=refresh_token,
    )


def signup_policy(signups_per_hour: int) -> lockout.Policy:
    """At most `signups_per_hour` sign-ups from one client address; then it waits out the hour."""
    return lockout.Policy(
        free_attempts=signups_per_hour,
        lock_at=signups_per_hour,
        window=SIGNUP_WINDOW,
        lock_duration=SIGNUP_WINDOW,
    )


async def sign_up(
    database: Database,
    spec: TenantSchemaSpec,
    signer: TokenSigner,
    *,
    company_name: str,
    email: str,
    password: str,
    slug: str | None,
    public_url: str,
    client_address: str | None,
    signups_per_hour: int,
) -> IssuedSession:
    """Start a free trial: a new tenant, its owner (a new account, or the address's own), and a session.

    An email that already has an account starts a store owned by that account, given its
    password; the password is checked under sign-in's lockout counters, so sign-up is no
    way around them. Without it (or for an account that has none) the answer is 409
    `email_taken`, which does tell the caller that the address is known. Hiding it would
    mean answering like a success, but a sign-up signs its owner straight into a working
    store, which cannot be faked. So sign-ups are limited per client address instead
    (counted before anything is looked up, refused ones included), which makes probing
    addresses slow, and the answer never names a store to whoever has not proven the password.

    The same sign-up sent again (a double click, a client's retry) makes no second store:
    once the password is proven, 409 `sign_up_repeated` names the store the first one made.
    """
    company_name = company_name.strip()
    errors: list[FieldError] = []
    if not company_name:
        errors.append(FieldError("company_name", "must not be empty"))
    elif len(company_name) > COMPANY_NAME_MAX_LENGTH:
        errors.append(FieldError("company_name", f"must be at most {COMPANY_NAME_MAX_LENGTH} characters"))
    try:
        email = normalize_email(email)
    except ValidationFailedError as error:
        errors.extend(error.errors)
    if not errors:
        try:
            check_password(password, email)
        except ValidationFailedError as error:
            errors.extend(error.errors)
    if slug is not None:
        try:
            validate_slug(slug)
        except ValidationFailedError as error:
            errors.extend(error.errors)
    if errors:
        raise ValidationFailedError("some fields are invalid; see errors", errors=errors)
    now = dt.datetime.now(dt.UTC)
    async with database.platform_session() as session:
        if client_address:
            counter = lockout.Counter(
                lockout.address_key(SIGNUP_REALM, client_address), signup_policy(signups_per_hour)
            )
            await lockout.reserve(
                session,
                [counter],
                now,
                refusal=lambda wait: f"too many sign-ups from your network; try again in {wait}",
            )
        account = (
            await session.execute(select(User.id, User.password_hash).where(User.email == email))
        ).one_or_none()
    slug = slug or slug_from_name(company_name)
    # Checked once the sign-up is committed: a probe of a known address counts like any other.
    if account is not None:
        # A taken slug is refused before the password is weighed, whatever it is: else a
        # right password would answer `slug_taken` and a wrong one `email_taken`, a guess
        # confirmed with no store made.
        if not await is_slug_available(database, slug):
            raise SlugTakenError(f"slug {slug!r} is already taken; choose another")
        await prove_account_password(
            database, account.id, email, password, account.password_hash, client_address
        )
        # Before building a store for nothing; asked again under the account's lock, for a
        # repeat sent while the first was still being built.
        async with database.platform_session() as session:
            await refuse_repeated_sign_up(session, account.id, company_name)
    password_hash = await hash_password(password) if account is None else None
    user_id = account.id if account is not None else uuid.uuid4()
    refresh_token = ""

    async def create_owner(connection: AsyncConnection, tenant: TenantContext) -> None:
        nonlocal refresh_token
        if account is None:
            await connection.execute(
                insert(User).values(id=user_id, email=email, full_name="", password_hash=password_hash)
            )
        else:
            await lock_proven_account(connection, user_id, account.password_hash)
            await refuse_repeated_sign_up(connection, user_id, company_name)
        await connection.execute(
            insert(Membership).values(
                id=uuid.uuid4(), tenant_id=tenant.tenant_id, user_id=user_id, role=Role.OWNER
            )
        )
        refresh_token = await insert_refresh_token(
            connection, user_id=user_id, tenant_id=tenant.tenant_id, now=now
        )
        if account is None:
            verification = await create_action_token(
                connection, user_id=user_id, purpose="verify_email", lifetime=VERIFY_EMAIL_LIFETIME
            )
            await queue_email(
                connection,
                tenant,
                to=email,
                template="verify_email",
                context={
                    "store_name": company_name,
                    "link": f"{public_url}/verify-email?token={verification}",
                },
            )
        else:
            # A store added to an account is news to its owner if someone else knew the password.
            await queue_email(
                connection,
                tenant,
                to=email,
                template="security_alert",
                context={
                    "store_name": company_name,
                    "what": f"a new store, {company_name}, was started with your account and its password; "
                    "if this was not you, reset your password",
                    "when": now.strftime("%Y-%m-%d %H:%M UTC"),
                },
            )
        actor = Actor("user", str(user_id), client_address)
        await record_audit(connection, tenant_id=tenant.tenant_id, actor=actor, action="tenant.signed_up")

    try:
        tenant = await provision_tenant(
            database,
            spec,
            slug=slug,
            name=company_name,
            plan="trial",
            trial_ends_at=now + TRIAL_LENGTH,
            on_created=create_owner,
        )
    except IntegrityError as error:
        if "uq_users_email" in str(error.orig):
            raise email_taken() from None
        raise
    return issue_session(signer, user_id=user_id, tenant=tenant, role=Role.OWNER, refresh_token=refresh_token)


_BAD_CREDENTIALS = "the email, password and store do not match; check them, or reset your password"


async def sign_in(
    database: Database,
    signer: TokenSigner,
    *,
    email: str,
    password: str,
    tenant_slug: str,
    client_address: str | None,
) -> IssuedSession:
    """Exchange a password for a session, slowing down and locking after failures."""
    email = sign_in_email(email)
    tenant = await get_tenant_record(database, normalize_slug(tenant_slug))
    attempt = lockout.SignInAttempt.of(TENANT_REALM, email, client_address)
    async with database.platform_session() as session:
        await lockout.reserve_sign_in(
            session, attempt, dt.datetime.now(dt.UTC), advice=", or reset your password"
        )
        row = (
            await session.execute(
                select(User, Membership)
                .outerjoin(Membership, (Membership.user_id == User.id) & (Membership.tenant_id == tenant.id))
                .where(User.email == email)
            )
        ).one_or_none()
    user, membership = (row[0], row[1]) if row is not None else (None, None)
    if user is None or membership is None:
        # Not a member of this store: whether the address has an account elsewhere, and
        # whether this is its password, is none of this store's business, and its audit
        # trail must not tell. The password is checked against no hash, as for an unknown
        # address, so that the time taken does not tell either.
        await verify_password(password, None)
        await _record_failed_sign_in(
            database, tenant, Actor("anonymous", None, client_address), email, "not_a_member"
        )
        raise InvalidCredentialsError(_BAD_CREDENTIALS)
    actor = Actor("user", str(user.id), client_address)
    password_ok = await verify_password(password, user.password_hash)
    if not password_ok or membership.status != "active":
        reason = "bad_password" if not password_ok else "no_active_membership"
        await _record_failed_sign_in(database, tenant, actor, email, reason)
        raise InvalidCredentialsError(_BAD_CREDENTIALS)
    if tenant.status == TenantStatus.ARCHIVED:
        # Only now that the password is proven: anyone else was told the plain 401 above.
        await _record_archived_store_attempt(database, tenant, attempt, actor, email)
        raise archived_error(tenant.slug)
    async with database.platform_session() as session:
        await lockout.sign_in_succeeded(session, attempt)
        issued = await start_session(session, signer, user_id=user.id, tenant=tenant, role=membership.role)
        await record_audit(session, tenant_id=tenant.id, actor=actor, action="auth.signed_in")
    return issued


async def _record_archived_store_attempt(
    database: Database, tenant: TenantRecord, attempt: lockout.SignInAttempt, actor: Actor, email: str
) -> None:
    """Record a right password refused because the store is archived, without counting it as a failure.

    The person did nothing wrong: held against them, their attempts would still lock them
    out once the store is restored (a refresh for an archived store counts nothing either).
    """
    async with database.platform_session() as session:
        await lockout.sign_in_succeeded(session, attempt)
        await record_audit(
            session,
            tenant_id=tenant.id,
            actor=actor,
            action="auth.sign_in_failed",
            data={"email": email, "reason": "tenant_archived"},
        )


async def _record_failed_sign_in(
    database: Database, tenant: TenantRecord, actor: Actor, email: str, reason: str
) -> None:
    async with database.platform_session() as session:
        await record_audit(
            session,
            tenant_id=tenant.id,
            actor=actor,
            action="auth.sign_in_failed",
            data={"email": email, "reason": reason},
        )


@dataclass(frozen=True)
class _Rotated:
    """What a rotation leaves to do once committed: sign the access token."""

    user_id: uuid.UUID
    tenant_id: uuid.UUID
    role: str
    refresh_token: str


async def refresh_session(
    database: Database, signer: TokenSigner, *, refresh_token: str, client_address: str | None
) -> IssuedSession:
    """Rotate a refresh token; presenting a used one ends every session of its family."""
    now = dt.datetime.now(dt.UTC)
    async with database.platform_session() as session:
        outcome = await _rotate(session, refresh_token, client_address, now)
    # A refusal is raised only now: raised inside the block, it would roll back the
    # revocation and audit entry written with it.
    if isinstance(outcome, OrdersmithError):
        raise outcome
    tenant = await get_tenant_by_id(database, outcome.tenant_id)
    return issue_session(
        signer, user_id=outcome.user_id, tenant=tenant, role=outcome.role, refresh_token=outcome.refresh_token
    )


async def _locked_refresh_token(session: AsyncSession, refresh_token: str) -> RefreshToken | None:
    """The stored refresh token, locked until the transaction ends; None if unknown."""
    return (
        await session.execute(
            select(RefreshToken)
            .where(RefreshToken.token_hash == secret_hash(refresh_token))
            .with_for_update()
        )
    ).scalar_one_or_none()


async def _rotate(
    session: AsyncSession, refresh_token: str, client_address: str | None, now: dt.datetime
) -> _Rotated | OrdersmithError:
    """Lock, check, claim and replace a refresh token in one transaction; or the refusal to raise."""
    # The person's row first, shared: a password reset updates that row before it ends
    # every session, so it waits for this rotation to commit and then ends the token
    # issued here too; a reset that got there first commits before this reads the token,
    # which it finds revoked. (Locked the other way round, the two could deadlock.)
    await session.execute(
        select(User.id)
        .where(
            User.id
            == select(RefreshToken.user_id)
            .where(RefreshToken.token_hash == secret_hash(refresh_token))
            .scalar_subquery()
        )
        .with_for_update(read=True)
    )
    # The token's row lock makes a second request with the same token wait, then see it used.
    record = await _locked_refresh_token(session, refresh_token)
    if record is None or record.expires_at <= now:
        return InvalidCredentialsError("the refresh token is unknown or expired; sign in again")
    if record.revoked_at is not None:
        return InvalidCredentialsError(
            "this session has ended (signed out, password reset, or access removed); sign in again"
        )
    if record.used_at is not None:
        # Used but not revoked: a copy of a rotated token is being replayed, so it was leaked.
        await _revoke_family(session, record.family_id, now)
        await record_audit(
            session,
            tenant_id=record.tenant_id,
            actor=Actor("user", str(record.user_id), client_address),
            action="auth.refresh_token_reused",
            data={"family_id": str(record.family_id)},
        )
        await _alert_reuse(session, record, now)
        return RefreshTokenReusedError(
            "this refresh token was already used, so every session of this sign-in was ended; sign in again"
        )
    membership = (
        await session.execute(
            select(Membership).where(
                Membership.tenant_id == record.tenant_id, Membership.user_id == record.user_id
            )
        )
    ).scalar_one_or_none()
    if membership is None or membership.status != "active":
        await _revoke_family(session, record.family_id, now)
        return InvalidCredentialsError("this account no longer has access to this store")
    store = await session.get(Tenant, record.tenant_id)
    if store is not None and store.status == TenantStatus.ARCHIVED.value:
        # Refused, not revoked: a restore lets the session go on.
        return archived_error(store.slug)
    await session.execute(update(RefreshToken).where(RefreshToken.id == record.id).values(used_at=now))
    new_token = await insert_refresh_token(
        session, user_id=record.user_id, tenant_id=record.tenant_id, family_id=record.family_id, now=now
    )
    return _Rotated(record.user_id, record.tenant_id, membership.role, new_token)


async def _alert_reuse(session: AsyncSession, record: RefreshToken, now: dt.datetime) -> None:
    # A reused refresh token usually means it was stolen: tell the person, who may not know.
    user = await session.get(User, record.user_id)
    tenant = await session.get(Tenant, record.tenant_id)
    if user is None or tenant is None:
        return
    await queue_email(
        session,
        None,
        to=user.email,
        template="security_alert",
        context={
            "store_name": tenant.name,
            "what": "an old sign-in token was used again, so we signed that session out everywhere",
            "when": now.strftime("%Y-%m-%d %H:%M UTC"),
        },
    )


async def _revoke_family(session: AsyncSession, family_id: uuid.UUID, now: dt.datetime) -> int:
    """Revoke every live token of a family; how many were live."""
    revoked = await session.execute(
        update(RefreshToken)
        .where(RefreshToken.family_id == family_id, RefreshToken.revoked_at.is_(None))
        .values(revoked_at=now)
    )
    return int(revoked.rowcount)  # type: ignore[attr-defined]


async def sign_out(database: Database, *, refresh_token: str, client_address: str | None) -> None:
    """End the session a refresh token belongs to (all of its rotations), audited. Idempotent."""
    now = dt.datetime.now(dt.UTC)
    async with database.platform_session() as session:
        # Locked as a refresh locks it: a refresh of the same token either finishes first,
        # and the token it issued is revoked here too, or waits and finds the session ended.
        record = await _locked_refresh_token(session, refresh_token)
        if record is not None and await _revoke_family(session, record.family_id, now):
            await record_audit(
                session,
                tenant_id=record.tenant_id,
                actor=Actor("user", str(record.user_id), client_address),
                action="auth.signed_out",
                data={"family_id": str(record.family_id)},
            )


@dataclass(frozen=True)
class UserProfile:
    id: uuid.UUID
    email: str
    full_name: str
    email_verified_at: dt.datetime | None


async def get_user(database: Database, user_id: uuid.UUID) -> UserProfile:
    """A user's own profile."""
    async with database.platform_session() as session:
        user = await session.get(User, user_id)
    if user is None:
        raise InvalidCredentialsError("this account no longer exists; sign in again")
    return UserProfile(user.id, user.email, user.full_name, user.email_verified_at)
