"""Flows that run through email: verify an address, reset a password; and the dev mailbox."""

from __future__ import annotations

import datetime as dt
from typing import Any

import msgspec
from litestar import Request, get, post
from litestar.datastructures import State
from litestar.di import NamedDependency
from litestar.exceptions import NotFoundException
from litestar.params import FromQuery, JSONBody
from litestar.status_codes import HTTP_200_OK, HTTP_202_ACCEPTED

from ordersmith.api.access import AUTHENTICATED, PUBLIC
from ordersmith.api.auth import client_address
from ordersmith.api.problems import PROBLEMS
from ordersmith.platform.errors import PermissionDeniedError
from ordersmith.platform.identity.principal import Principal
from ordersmith.platform.identity.recovery import (
    confirm_password_reset,
    request_password_reset,
    resend_verification,
    verify_email,
)
from ordersmith.platform.mail.mailbox import DEFAULT_LIMIT, KeptEmail, list_mailbox

# What POST /auth/password-reset answers, whether or not the address has an account.
RESET_REQUESTED = (
    "if an account uses this address, a link to choose a new password is on its way; it works for 60 minutes"
)


class TokenBody(msgspec.Struct):
    token: str


class EmailVerified(msgspec.Struct):
    user_id: str
    email: str
    email_verified: bool
    email_verified_at: dt.datetime


class VerificationSent(msgspec.Struct):
    sent_to: str


class PasswordResetRequest(msgspec.Struct):
    email: str


class PasswordResetRequested(msgspec.Struct):
    detail: str


class PasswordResetConfirm(msgspec.Struct):
    token: str
    new_password: str


class PasswordResetDone(msgspec.Struct):
    user_id: str
    email: str
    # Sessions (sign-ins) that were still alive and are now ended.
    sessions_ended: int


class MailboxEmail(msgspec.Struct):
    id: str
    event_id: str | None
    to: str
    subject: str
    text_body: str
    html_body: str
    created_at: dt.datetime

    @classmethod
    def of(cls, email: KeptEmail) -> MailboxEmail:
        return cls(
            str(email.id),
            str(email.event_id) if email.event_id else None,
            email.to,
            email.subject,
            email.text,
            email.html,
            email.created_at,
        )


class MailboxList(msgspec.Struct):
    data: list[MailboxEmail]
    next_cursor: str | None


@post(
    "/api/v1/auth/verify-email",
    operation_id="verifyEmail",
    summary="Confirm an email address with the token of a verification link.",
    opt={**PUBLIC, PROBLEMS: frozenset({410})},
    tags=["auth"],
    status_code=HTTP_200_OK,
)
async def confirm_email(
    request: Request[Any, Any, Any], state: State, data: JSONBody[TokenBody]
) -> EmailVerified:
    """Use a verification link once; an expired or used link answers 410."""
    verified = await verify_email(state.database, token=data.token, client_address=client_address(request))
    return EmailVerified(str(verified.user_id), verified.email, True, verified.verified_at)


@post(
    "/api/v1/auth/verify-email/resend",
    operation_id="resendVerificationEmail",
    summary="Send the signed-in user a fresh email verification link.",
    opt=AUTHENTICATED,
    tags=["auth"],
    status_code=HTTP_202_ACCEPTED,
)
async def resend_verification_email(state: State, principal: NamedDependency[Principal]) -> VerificationSent:
    """Queue a new verification email; 409 if the address is already verified."""
    if principal.kind != "user" or principal.tenant is None:
        raise PermissionDeniedError(
            "only a signed-in person has an email address to verify; API keys have none"
        )
    sent_to = await resend_verification(
        state.database, user_id=principal.id, tenant=principal.tenant, public_url=state.settings.public_url
    )
    return VerificationSent(sent_to)


@post(
    "/api/v1/auth/password-reset",
    operation_id="requestPasswordReset",
    summary="Ask for a password reset link by email.",
    opt=PUBLIC,
    tags=["auth"],
    status_code=HTTP_202_ACCEPTED,
)
async def password_reset(
    request: Request[Any, Any, Any], state: State, data: JSONBody[PasswordResetRequest]
) -> PasswordResetRequested:
    """Always 202, whether or not the address has an account; rate-limited per address."""
    await request_password_reset(
        state.database,
        email=data.email,
        public_url=state.settings.public_url,
        client_address=client_address(request),
    )
    return PasswordResetRequested(RESET_REQUESTED)


@post(
    "/api/v1/auth/password-reset/confirm",
    operation_id="confirmPasswordReset",
    summary="Choose a new password with the token of a reset link.",
    opt={**PUBLIC, PROBLEMS: frozenset({410})},
    tags=["auth"],
    status_code=HTTP_200_OK,
)
async def password_reset_confirm(
    request: Request[Any, Any, Any], state: State, data: JSONBody[PasswordResetConfirm]
) -> PasswordResetDone:
    """Set the new password and end every session; 422 lists broken rules, 410 a spent link."""
    done = await confirm_password_reset(
        state.database,
        token=data.token,
        new_password=data.new_password,
        client_address=client_address(request),
    )
    return PasswordResetDone(str(done.user_id), done.email, done.sessions_ended)


@get(
    "/api/v1/dev/mailbox",
    operation_id="listDevMailbox",
    summary="List the emails kept instead of sent (development and test only).",
    opt=PUBLIC,
    tags=["development"],
)
async def dev_mailbox(
    state: State,
    to: FromQuery[str | None] = None,
    limit: FromQuery[int] = DEFAULT_LIMIT,
    cursor: FromQuery[str | None] = None,
) -> MailboxList:
    """Newest first. Public only because it exists outside production alone: there it is 404."""
    if state.settings.is_production:
        # Exactly what an unknown path answers: production does not even hint at the route.
        raise NotFoundException()
    page = await list_mailbox(state.database, to=to, limit=limit, cursor=cursor)
    return MailboxList([MailboxEmail.of(email) for email in page.emails], page.next_cursor)


ROUTES = [confirm_email, resend_verification_email, password_reset, password_reset_confirm, dev_mailbox]
