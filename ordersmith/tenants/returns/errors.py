"""Errors of the returns context."""

from __future__ import annotations

from collections.abc import Iterable

from ordersmith.platform.errors import ConflictError, NotFoundError, ValidationFailedError


class ReturnNotFoundError(NotFoundError):
    code = "return_not_found"
    title = "Return not found"


class InvalidReturnTransitionError(ConflictError):
    code = "invalid_transition"
    title = "Invalid transition"

    def __init__(self, current: str, wanted: str, allowed: Iterable[str]) -> None:
        allowed = sorted(allowed)
        following = ", ".join(allowed) if allowed else "nothing: it is final"
        super().__init__(
            f"a return that is {current} cannot become {wanted}; from {current} it can become {following}",
            extensions={"current_status": current, "allowed_next": allowed},
        )


class QuantityNotReturnableError(ConflictError):
    """More units asked back than shipped and not already on another return."""

    code = "quantity_not_returnable"
    title = "Quantity cannot be returned"


class ReturnNotResolvableError(ConflictError):
    """Refunds, credit and exchanges apply to approved returns that are not closed."""

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
