"""The way to Stripe: which settings the billing room runs with, and a client made from them.

Without `STRIPE_API_KEY` the billing room runs the offline ledger and makes no call out.
Every call is async (the event loop never blocks on Stripe), retried by us and not by the
SDK (`max_network_retries=0`: a retry happens in the next job run, with the same
idempotency key), and every POST carries an idempotency key derived from what it does.
"""

from __future__ import annotations

from collections.abc import Awaitable
from typing import TypeVar

import stripe

from ordersmith.platform.errors import OrdersmithError, ServiceUnavailableError
from ordersmith.platform.settings import BillingSettings, load_settings

T = TypeVar("T")

_settings: BillingSettings | None = None


def configure(settings: BillingSettings | None) -> None:
    """Bill with these settings from now on; None goes back to reading the environment."""
    global _settings
    _settings = settings


def current_settings() -> BillingSettings:
    """The configured billing settings, or, in a process that configured none, the environment's."""
    global _settings
    if _settings is None:
        _settings = load_settings().billing
    return _settings


class BillingOfflineError(OrdersmithError):
    status = 409
    code = "billing_offline"
    title = "Billing runs offline"


class BillingProviderUnavailableError(ServiceUnavailableError):
    code = "billing_provider_unavailable"
    title = "Billing provider unavailable"


class BillingProviderError(OrdersmithError):
    status = 502
    code = "billing_provider_error"
    title = "Billing provider refused the request"


def client_for(settings: BillingSettings) -> stripe.StripeClient:
    """A Stripe client for these settings; `BillingOfflineError` without a key."""
    if settings.stripe_api_key is None:
        raise BillingOfflineError(
            "Billing runs offline (no STRIPE_API_KEY): plans and invoices are kept locally."
        )
    base = {"api": settings.stripe_api_base} if settings.stripe_api_base else {}
    return stripe.StripeClient(
        settings.stripe_api_key,
        base_addresses=base,  # type: ignore[arg-type]
        http_client=stripe.HTTPXClient(),
        max_network_retries=0,
    )


def is_unavailable(error: stripe.StripeError) -> bool:
    """True when Stripe could not be reached or failed on its side: worth trying again later."""
    if isinstance(error, stripe.APIConnectionError | stripe.RateLimitError):
        return True
    return error.http_status is None or error.http_status >= 500


async def call(request: Awaitable[T]) -> T:
    """Await one Stripe call, turning the SDK's errors into ours (503 if worth retrying, else 502)."""
    try:
        return await request
    except stripe.StripeError as error:
        if is_unavailable(error):
            raise BillingProviderUnavailableError(
                "Stripe cannot be reached just now; nothing was changed, try again in a few minutes."
            ) from error
        raise BillingProviderError(
            f"Stripe refused the request ({error.user_message or error.code or 'no reason given'}); "
            "contact support if it persists."
        ) from error
