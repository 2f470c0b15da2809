"""Errors of the payments context."""

from __future__ import annotations

from ordersmith.platform.errors import (
    ConflictError,
    FieldError,
    NotFoundError,
    OrdersmithError,
    ServiceUnavailableError,
    ValidationFailedError,
)


class PaymentNotFoundError(NotFoundError):
    code = "payment_not_found"
    title = "Payment not found"


class ProviderNotEnabledError(ConflictError):
    """The store has not enabled (or not configured) the provider a payment names."""

    code = "payment_provider_not_enabled"
    title = "Payment provider not enabled"


class RefundExceedsCapturedError(ValidationFailedError):
    """More was asked back than was captured and not yet refunded."""

    code = "refund_exceeds_captured"
    title = "Refund exceeds what was captured"

    def __init__(self, requested: int, refundable: int, currency: str) -> None:
        super().__init__(
            f"{requested} {currency} cannot be refunded: only {refundable} {currency} was captured and "
            f"not refunded yet; refund at most {refundable}",
            errors=[FieldError("amount", f"must be at most the refundable amount, {refundable} {currency}")],
            extensions={"refundable_amount": refundable, "currency": currency},
        )


class CaptureExceedsAuthorizedError(ValidationFailedError):
    """More was asked to be captured than the authorization still holds."""

    code = "capture_exceeds_authorized"
    title = "Capture exceeds the authorization"

    def __init__(self, requested: int, capturable: int, currency: str) -> None:
        super().__init__(
            f"{requested} {currency} cannot be captured: the authorization holds {capturable} {currency}; "
            f"capture at most {capturable}, or take a new payment for the rest",
            errors=[FieldError("amount", f"must be at most the capturable amount, {capturable} {currency}")],
            extensions={"capturable_amount": capturable, "currency": currency},
        )


class NothingToVoidError(ConflictError):
    code = "nothing_to_void"
    title = "Nothing to void"


class NothingToRetryError(ConflictError):
    code = "nothing_to_retry"
    title = "Nothing to retry"


class OrderNotPayableError(ConflictError):
    """Payments are taken on placed or confirmed orders only."""

    code = "order_not_payable"
    title = "Order cannot take a payment"


class WebhookRejectedError(OrdersmithError):
    """A provider webhook whose signature or timestamp does not check out: nothing is applied."""

    status = 400
    code = "webhook_signature_invalid"
    title = "Webhook signature invalid"


class ProviderSecretUnreadableError(ServiceUnavailableError):
    code = "payment_secret_unreadable"
    title = "Payment provider secret unreadable"
