"""The `stripe` provider: the merchant's own Stripe account, PaymentIntents with manual capture.

The merchant's secret key talks to Stripe through the real SDK, asynchronously, with no
retries of its own (a retry is a new ledger row reusing the failed one's idempotency
key, so the ledger sees every attempt). An authorization is a PaymentIntent created and
confirmed with `capture_method=manual`, asking for multicapture where the card allows
it: each shipment can capture its part, and the last capture releases the rest.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from typing import Any

import stripe

from ordersmith.tenants.payments.errors import WebhookRejectedError
from ordersmith.tenants.payments.providers.base import (
    REQUIRES_ACTION,
    SUCCESS,
    UNREACHABLE,
    AuthorizeRequest,
    ProviderEvent,
    ProviderResult,
)

WEBHOOK_TOLERANCE_SECONDS = 300


def _failure_of(error: stripe.StripeError) -> ProviderResult:
    """A Stripe error as a ledger failure: declines are final, outages may be retried."""
    body: dict[str, Any] = error.json_body if isinstance(error.json_body, dict) else {}
    detail: dict[str, Any] = body.get("error") or {}
    intent = detail.get("payment_intent") or {}
    reference = intent.get("id") if isinstance(intent, dict) else None
    message = detail.get("message") or str(error)
    if isinstance(error, stripe.CardError):
        code = detail.get("decline_code") or error.code or "card_declined"
        return ProviderResult.failed(code, message, reference=reference)
    if isinstance(error, stripe.APIConnectionError | stripe.RateLimitError) or (
        isinstance(error, stripe.APIError) and not isinstance(error, stripe.InvalidRequestError)
    ):
        # Nothing is known to have happened at Stripe; the same key may be sent again.
        return ProviderResult.failed(UNREACHABLE, f"Stripe did not answer: {message}", retryable=True)
    if isinstance(error, stripe.AuthenticationError):
        # Stripe executed nothing; once the store's key is fixed, the same request may go again.
        return ProviderResult.failed("provider_credentials_invalid", message, retryable=True)
    return ProviderResult.failed(error.code or "provider_error", message, reference=reference)


class StripeProvider:
    """PaymentIntents on the merchant's own Stripe account."""

    name = "stripe"
    captures_at_shipment = True

    def __init__(self, secret_key: str, api_base: str, *, timeout_seconds: float = 20.0) -> None:
        self._secret_key = secret_key
        self._api_base = api_base
        self._timeout = timeout_seconds

    @asynccontextmanager
    async def _client(self) -> AsyncIterator[stripe.StripeClient]:
        http_client = stripe.HTTPXClient(timeout=self._timeout)
        try:
            yield stripe.StripeClient(
                self._secret_key,
                base_addresses={"api": self._api_base},
                http_client=http_client,
                max_network_retries=0,
            )
        finally:
            await http_client.close_async()  # type: ignore[no-untyped-call]

    async def authorize(self, request: AuthorizeRequest) -> ProviderResult:
        """Create and confirm a PaymentIntent that holds `amount` until captured."""
        params: dict[str, Any] = {
            "amount": request.amount,
            "currency": request.currency.lower(),
            "capture_method": "manual",
            "confirm": True,
            "payment_method_types": ["card"],
            "payment_method_options": {"card": {"request_multicapture": "if_available"}},
            "metadata": dict(request.metadata),
        }
        if request.method:
            params["payment_method"] = request.method
        try:
            async with self._client() as client:
                intent = await client.v1.payment_intents.create_async(
                    params,  # type: ignore[arg-type]
                    {"idempotency_key": request.idempotency_key},
                )
        except stripe.StripeError as error:
            return _failure_of(error)
        return _intent_result(intent.to_dict())

    async def capture(
        self, reference: str | None, amount: int, *, is_final: bool, idempotency_key: str
    ) -> ProviderResult:
        """Capture part or all of the PaymentIntent's authorization."""
        assert reference is not None
        params: dict[str, Any] = {"amount_to_capture": amount}
        if not is_final:
            params["final_capture"] = False
        try:
            async with self._client() as client:
                intent = await client.v1.payment_intents.capture_async(
                    reference,
                    params,  # type: ignore[arg-type]
                    {"idempotency_key": idempotency_key},
                )
        except stripe.StripeError as error:
            return _failure_of(error)
        return ProviderResult(
            SUCCESS, amount, reference, remaining_capturable=int(intent["amount_capturable"] or 0)
        )

    async def void(self, reference: str | None, amount: int, *, idempotency_key: str) -> ProviderResult:
        """Cancel the PaymentIntent: what it still holds goes back to the card."""
        assert reference is not None
        try:
            async with self._client() as client:
                await client.v1.payment_intents.cancel_async(
                    reference, None, {"idempotency_key": idempotency_key}
                )
        except stripe.StripeError as error:
            return _failure_of(error)
        return ProviderResult(SUCCESS, amount, reference, remaining_capturable=0)

    async def refund(
        self, reference: str | None, amount: int, *, reason: str | None, idempotency_key: str
    ) -> ProviderResult:
        """Refund part of what the PaymentIntent captured."""
        assert reference is not None
        params: dict[str, Any] = {"payment_intent": reference, "amount": amount}
        if reason:
            params["metadata"] = {"reason": reason[:500]}
        try:
            async with self._client() as client:
                refund = await client.v1.refunds.create_async(
                    params,  # type: ignore[arg-type]
                    {"idempotency_key": idempotency_key},
                )
        except stripe.StripeError as error:
            return _failure_of(error)
        if refund["status"] in ("failed", "canceled"):
            return ProviderResult.failed(
                refund.to_dict().get("failure_reason") or "refund_failed",
                "Stripe could not give this refund back to the card",
                reference=refund["id"],
            )
        return ProviderResult(SUCCESS, int(refund["amount"]), refund["id"])

    def parse_webhook(self, payload: bytes, signature: str, *, signing_secret: str) -> ProviderEvent:
        """Verify Stripe's signature (HMAC-SHA256, at most 300 s old) and read the event."""
        try:
            stripe.WebhookSignature.verify_header(
                payload, signature, signing_secret, tolerance=WEBHOOK_TOLERANCE_SECONDS
            )
        except stripe.SignatureVerificationError as error:
            raise WebhookRejectedError(
                f"the Stripe-Signature does not verify ({error.user_message or error}); "
                "check the store's webhook signing secret; nothing was applied"
            ) from None
        try:
            body = json.loads(payload)
            return ProviderEvent(str(body["id"]), str(body["type"]), dict(body["data"]["object"]))
        except (ValueError, KeyError, TypeError):
            raise WebhookRejectedError(
                "the webhook body is not a Stripe event; nothing was applied"
            ) from None


def _intent_result(intent: Mapping[str, Any]) -> ProviderResult:
    """A confirmed PaymentIntent as an authorization outcome."""
    status = intent["status"]
    reference = str(intent["id"])
    if status == "requires_capture":
        capturable = int(intent["amount_capturable"])
        return ProviderResult(SUCCESS, capturable, reference, remaining_capturable=capturable)
    if status in ("requires_action", "processing"):
        return ProviderResult(REQUIRES_ACTION, 0, reference)
    error = intent.get("last_payment_error") or {}
    return ProviderResult.failed(
        error.get("decline_code") or error.get("code") or f"payment_intent_{status}",
        error.get("message") or f"the PaymentIntent is {status}, not authorized",
        reference=reference,
    )
