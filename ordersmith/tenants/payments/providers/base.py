"""The interface every payment provider implements, and what it answers.

A provider moves money and reports what happened; it never touches the database. Each
call carries an idempotency key derived from the ledger row that asked for it: the
same key sent twice (a retry after a timeout) is executed once by the provider.
Failures are answers, not exceptions: the ledger records them, and `is_retryable` says
whether the same request may be sent again (the provider was unreachable) or a new one
is needed (a decline).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

SUCCESS, FAILURE, REQUIRES_ACTION = "success", "failure", "requires_action"
UNREACHABLE = "provider_unreachable"


@dataclass(frozen=True)
class ProviderResult:
    """What the provider answered to one request."""

    outcome: str  # success, failure or requires_action
    amount: int
    # The provider's object: the PaymentIntent on authorize, the refund on a refund.
    reference: str | None = None
    error_code: str | None = None
    error_message: str | None = None
    is_retryable: bool = False
    # Authorized funds the provider still holds after the call, when it says (a final
    # partial capture releases the rest).
    remaining_capturable: int | None = None

    @classmethod
    def failed(
        cls, code: str, message: str, *, retryable: bool = False, reference: str | None = None
    ) -> ProviderResult:
        """A failure answer: nothing moved; `retryable` when the same request may be sent again."""
        return cls(FAILURE, 0, reference, code, message, retryable)


@dataclass(frozen=True)
class AuthorizeRequest:
    amount: int
    currency: str
    # The provider's payment method (a Stripe `pm_…`); for manual payments, how it was paid.
    method: str | None
    idempotency_key: str
    metadata: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class ProviderEvent:
    """A webhook event, verified and parsed."""

    id: str
    type: str
    data: dict[str, Any]


class PaymentProvider(Protocol):
    """Authorize, capture, void and refund with one provider, and read its webhooks."""

    name: str
    # Whether a store that captures at shipment captures this provider's authorizations
    # when units ship: a card hold, yes; money promised on invoice terms is only received
    # when a person records it.
    captures_at_shipment: bool

    async def authorize(self, request: AuthorizeRequest) -> ProviderResult:
        """Hold (or for manual payments, promise) `amount`; the reference names the provider's object."""
        ...

    async def capture(
        self, reference: str | None, amount: int, *, is_final: bool, idempotency_key: str
    ) -> ProviderResult:
        """Take `amount` of the authorization; `is_final` releases whatever is left."""
        ...

    async def void(self, reference: str | None, amount: int, *, idempotency_key: str) -> ProviderResult:
        """Release what is left of the authorization."""
        ...

    async def refund(
        self, reference: str | None, amount: int, *, reason: str | None, idempotency_key: str
    ) -> ProviderResult:
        """Give `amount` of the captured money back."""
        ...

    def parse_webhook(self, payload: bytes, signature: str, *, signing_secret: str) -> ProviderEvent:
        """The event in a webhook request; raises `WebhookRejectedError` unless signed and recent."""
        ...
