"""The `manual` provider: payments staff record (cash, bank transfer, invoice terms).

Nothing leaves the building: an authorization is money promised (invoice terms), a
capture is money received, a refund is money handed back. Each call simply succeeds,
so the ledger is the only record.
"""

from __future__ import annotations

from ordersmith.tenants.payments.errors import WebhookRejectedError
from ordersmith.tenants.payments.providers.base import (
    SUCCESS,
    AuthorizeRequest,
    ProviderEvent,
    ProviderResult,
)

METHODS = ("cash", "bank_transfer", "invoice", "cheque", "other")


class ManualProvider:
    """Staff-recorded payments."""

    name = "manual"
    captures_at_shipment = False

    async def authorize(self, request: AuthorizeRequest) -> ProviderResult:
        """Money promised (invoice terms): held on the books until received."""
        return ProviderResult(SUCCESS, request.amount)

    async def capture(
        self, reference: str | None, amount: int, *, is_final: bool, idempotency_key: str
    ) -> ProviderResult:
        """Money received against the promise."""
        return ProviderResult(SUCCESS, amount)

    async def void(self, reference: str | None, amount: int, *, idempotency_key: str) -> ProviderResult:
        """The promise withdrawn."""
        return ProviderResult(SUCCESS, amount)

    async def refund(
        self, reference: str | None, amount: int, *, reason: str | None, idempotency_key: str
    ) -> ProviderResult:
        """Money handed back by staff."""
        return ProviderResult(SUCCESS, amount)

    def parse_webhook(self, payload: bytes, signature: str, *, signing_secret: str) -> ProviderEvent:
        """Manual payments have no webhooks."""
        raise WebhookRejectedError("manual payments have no webhooks")
