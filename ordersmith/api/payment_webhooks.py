"""Payment providers' webhooks: public routes, each request proven by the store's signing secret.

The store is named by its slug in the path (`/api/v1/payments/stripe/webhook/{store}`):
the merchant registers that URL in their own Stripe account, with the signing secret
they then save in the payment settings. There is no bearer token; the signature is the
credential, checked before anything in the body is believed.
"""

from __future__ import annotations

from typing import Any

import msgspec
from litestar import Request, post
from litestar.datastructures import State
from litestar.params import FromPath

from ordersmith.api.access import PUBLIC
from ordersmith.api.nul_characters import SIGNED_BODY
from ordersmith.platform.database import Database
from ordersmith.platform.tenancy import resolve_tenant
from ordersmith.tenants.payments.webhooks import receive_stripe_webhook

# Stripe's events are a few kilobytes; anything far bigger is not one.
MAX_WEBHOOK_BODY = 512 * 1024


class WebhookReceived(msgspec.Struct):
    event_id: str
    type: str
    # applied, duplicate (already applied: nothing done again), or why it was ignored.
    outcome: str


@post(
    "/api/v1/payments/stripe/webhook/{store:str}",
    operation_id="receiveStorePaymentWebhook",
    summary="Receive a Stripe event for a store's own account; verified with the store's signing secret.",
    # Signed by Stripe: verified as sent, never refused for its content first.
    opt={**PUBLIC, SIGNED_BODY: True},
    tags=["payments"],
    status_code=200,
    request_max_body_size=MAX_WEBHOOK_BODY,
)
async def stripe_webhook(
    request: Request[Any, Any, Any], state: State, store: FromPath[str]
) -> WebhookReceived:
    """400 `webhook_signature_invalid` for a bad signature or a timestamp over 300 s old (nothing applied)."""
    payload = await request.body()
    database: Database = state.database
    tenant = await resolve_tenant(database, store)
    async with database.tenant_session(tenant) as session:
        receipt = await receive_stripe_webhook(
            tenant, session, payload, request.headers.get("stripe-signature", "")
        )
    return WebhookReceived(receipt.event_id, receipt.type, receipt.outcome)


ROUTES = [stripe_webhook]
