"""Errors of the returns context."""

from __future__ import annotations

from ordersmith.platform.errors import ConflictError, NotFoundError, ValidationFailedError
from ordersmith.platform.errors import InvalidTransitionError as BaseInvalidTransitionError


class ReturnNotFoundError(NotFoundError):
    code = "return_not_found"
    title = "Return not found"


class InvalidReturnTransitionError(BaseInvalidTransitionError):
    subject = "a return"


class QuantityNotReturnableError(ConflictError):
    """More units asked back than shipped and not already on another return."""

    code = "quantity_not_returnable"
    title = "Quantity cannot be returned"


class QuantityNotUnderInspectionError(ConflictError):
    """More units decided than were received for inspection and are still undecided."""

    code = "quantity_not_under_inspection"
    title = "Units are not under inspection"


class ReturnNotResolvableError(ConflictError):
    """Outcomes apply to approved returns not closed; refunds and credit also to closed ones with units."""

    code = "return_not_resolvable"
    title = "Return cannot be resolved now"


class ResolutionExceedsReturnValueError(ValidationFailedError):
    """Refund and store credit together never exceed what the returned units were sold for."""

    code = "resolution_exceeds_return_value"
    title = "More than the returned units are worth"


class ExchangeExistsError(ConflictError):
    code = "exchange_exists"
    title = "Exchange already created"


class StoreCreditInsufficientError(ConflictError):
    code = "store_credit_insufficient"
    title = "Not enough store credit"
