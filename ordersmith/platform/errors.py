"""Typed domain errors: each maps to one HTTP status and a stable machine-readable code.

The API turns them into RFC 9457 problem details; the CLI prints their detail. The
detail always tells the caller what to do next.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class FieldError:
    """One rejected input field and why."""

    field: str
    message: str


class UnreachableError(RuntimeError):
    """A configured server (database, broker) does not answer; the message says which and why."""


class OrdersmithError(Exception):
    """Base of every error a caller is meant to read."""

    status: int = 400
    code: str = "bad_request"
    title: str = "Bad request"

    def __init__(
        self,
        detail: str,
        *,
        errors: list[FieldError] | None = None,
        extensions: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(detail)
        self.detail = detail
        self.errors = errors or []
        # Members added to the problem document, such as the SKUs that were short.
        self.extensions = extensions or {}


class NotFoundError(OrdersmithError):
    status = 404
    code = "not_found"
    title = "Not found"


class ConflictError(OrdersmithError):
    status = 409
    code = "conflict"
    title = "Conflict"


class InvalidTransitionError(ConflictError):
    """A status change the lifecycle's one table does not allow; subclasses name what changes."""

    code = "invalid_transition"
    title = "Invalid transition"
    # How the message names the thing whose status it is ("an order", "a return").
    subject = "a record"

    def __init__(self, current: str, wanted: str, allowed: Iterable[str]) -> None:
        allowed = sorted(allowed)
        following = ", ".join(allowed) if allowed else "nothing: it is final"
        super().__init__(
            f"{self.subject} that is {current} cannot become {wanted}; "
            f"from {current} it can become {following}",
            extensions={"current_status": current, "allowed_next": allowed},
        )


class ValidationFailedError(OrdersmithError):
    status = 422
    code = "validation_failed"
    title = "Validation failed"


class TenantNotFoundError(NotFoundError):
    code = "tenant_not_found"
    title = "Tenant not found"


class InvalidSlugError(ValidationFailedError):
    code = "invalid_slug"
    title = "Invalid tenant slug"


class SlugTakenError(ConflictError):
    code = "slug_taken"
    title = "Slug already taken"


class TenantArchivedError(OrdersmithError):
    status = 403
    code = "tenant_archived"
    title = "Tenant archived"


class UnauthenticatedError(OrdersmithError):
    status = 401
    code = "unauthenticated"
    title = "Authentication required"


class InvalidCredentialsError(OrdersmithError):
    status = 401
    code = "invalid_credentials"
    title = "Invalid credentials"


class RefreshTokenReusedError(OrdersmithError):
    status = 401
    code = "refresh_token_reused"
    title = "Refresh token reused"


class PermissionDeniedError(OrdersmithError):
    status = 403
    code = "permission_denied"
    title = "Permission denied"


class EmailTakenError(ConflictError):
    code = "email_taken"
    title = "Email already registered"


class TokenGoneError(OrdersmithError):
    """A single-use link that expired or was already used."""

    status = 410
    code = "token_gone"
    title = "Link expired or used"


class TooManyAttemptsError(OrdersmithError):
    status = 429
    code = "too_many_attempts"
    title = "Too many attempts"

    def __init__(self, detail: str, *, retry_after_seconds: int) -> None:
        super().__init__(detail)
        self.retry_after_seconds = retry_after_seconds


class ServiceUnavailableError(OrdersmithError):
    status = 503
    code = "service_unavailable"
    title = "Service unavailable"


class AccountUnverifiedError(ConflictError):
    """An account holds the address but never proved it: joining it could hand access to a squatter."""

    code = "account_unverified"
    title = "Account email not verified"


class AccountNotMemberError(ConflictError):
    """Single sign-on named an existing account that this store was never given: it must be invited."""

    code = "account_not_member"
    title = "Account not a member of this store"
