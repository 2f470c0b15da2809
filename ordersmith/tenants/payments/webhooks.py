"""Stripe's webhooks for a store: verified, applied once, reconciled with the ledger.

Each event is checked against the store's own signing secret (HMAC-SHA256 over
`timestamp.payload`, at most 300 s old) before anything is read from it; a bad one
changes nothing. Its id goes into `payment_webhook_events` in the same transaction as
its effect, so a redelivery finds it there and has no second effect.

Events are reconciled, not replayed: each handler compares what Stripe says (captured,
refunded, disputed) with what the ledger already holds and records only the difference.
A refund this app made itself is in the ledger before Stripe's `charge.refunded` can be
applied (both lock the order row), so it is never counted twice; one made in Stripe's
dashboard is recorded when its event arrives.

Refunds are counted by their Stripe id (`re_…`) where an event names them:
`refund.created` and `refund.updated` carry the refund, and `charge.refunded` carries the
charge's refunds only for endpoints on API versions before 2022-11-15. A refund the
ledger names already is not counted again. What `charge.refunded` reports beyond the named
refunds (its `amount_refunded`) is recorded unnamed, and a refund named later (an event,
or a retried request Stripe answers from memory) takes its amount from that first.

A refund an event reports `failed` or `canceled` (`refund.failed`, `refund.updated`,
`charge.refund.updated`, or listed by `charge.refunded`) gave nothing back: if the ledger
counted it by its id, it is taken back once (`reversals.py`); else it is ignored.

Disputes (`disputes.py`): `charge.dispute.created` counts a chargeback and holds the order;
`charge.dispute.closed` writes how it ended, once: won or an inquiry closed gives the
chargeback back, lost keeps it.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from sqlalchemy import update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncSession

from ordersmith.platform.database import TenantContext
from ordersmith.platform.identity.audit import Actor
from ordersmith.tenants.orders.views import order_row
from ordersmith.tenants.payments import disputes, ledger, reversals, status
from ordersmith.tenants.payments.errors import WebhookRejectedError
from ordersmith.tenants.payments.models import Payment, PaymentWebhookEvent
from ordersmith.tenants.payments.providers.base import ProviderEvent
from ordersmith.tenants.payments.providers.stripe_provider import StripeProvider
from ordersmith.tenants.payments.recording import Recorder
from ordersmith.tenants.payments.service import payment_by_reference
from ordersmith.tenants.payments.settings import stripe_webhook_secret

STRIPE_WEBHOOKS = Actor("system", "stripe-webhook")
HANDLED = frozenset(
    {
        "payment_intent.amount_capturable_updated",
        "payment_intent.succeeded",
        "payment_intent.payment_failed",
        "payment_intent.canceled",
        "charge.refunded",
        "refund.created",
        "refund.updated",
        "refund.failed",
        "charge.refund.updated",
        "charge.dispute.created",
        "charge.dispute.closed",
    }
)
# Events whose object is one refund. `charge.refund.updated` is what API versions before
# 2024-10-28 send, instead of `refund.updated` and `refund.failed`, for a card's refund.
REFUND_EVENTS = frozenset({"refund.created", "refund.updated", "refund.failed", "charge.refund.updated"})
# A refund in these states gave nothing back (or took it back): it is not counted, and
# taken back if it was. Both are final, so an event saying so is never out of date.
REFUND_NOT_MADE = frozenset({"failed", "canceled"})


@dataclass(frozen=True)
class WebhookReceipt:
    """What became of an event: `applied`, `duplicate`, or why it was ignored."""

    event_id: str
    type: str
    outcome: str


async def receive_stripe_webhook(
    tenant: TenantContext, session: AsyncSession, payload: bytes, signature: str
) -> WebhookReceipt:
    """Verify a Stripe webhook for this store and apply it once."""
    secret = await stripe_webhook_secret(tenant, session)
    if secret is None:
        raise WebhookRejectedError(
            "this store has no Stripe webhook signing secret; "
            "a store admin must add it in the payment settings"
        )
    # Parsing needs no credentials: the signing secret is what proves the sender.
    event = StripeProvider("", "").parse_webhook(payload, signature, signing_secret=secret)
    claimed = await session.scalar(
        pg_insert(PaymentWebhookEvent)
        .values(provider="stripe", event_id=event.id, type=event.type, outcome="received")
        .on_conflict_do_nothing(index_elements=["provider", "event_id"])
        .returning(PaymentWebhookEvent.event_id)
    )
    if claimed is None:
        return WebhookReceipt(event.id, event.type, "duplicate")
    outcome = await _apply(tenant, session, event)
    await session.execute(
        update(PaymentWebhookEvent)
        .where(PaymentWebhookEvent.provider == "stripe", PaymentWebhookEvent.event_id == event.id)
        .values(outcome=outcome)
    )
    return WebhookReceipt(event.id, event.type, outcome)


def _intent_id(event: ProviderEvent) -> str | None:
    data = event.data
    if event.type.startswith("payment_intent."):
        return str(data.get("id") or "") or None
    intent = data.get("payment_intent")
    if isinstance(intent, dict):
        intent = intent.get("id")
    return str(intent) if intent else None


async def _apply(tenant: TenantContext, session: AsyncSession, event: ProviderEvent) -> str:
    if event.type not in HANDLED:
        return "ignored: event type not handled"
    intent_id = _intent_id(event)
    found = await payment_by_reference(session, "stripe", intent_id) if intent_id else None
    if found is None:
        return "ignored: no payment of this store has this PaymentIntent"
    # The order first, then the payment: the lock order of every order writer.
    order = await order_row(session, found.order_id, lock=True)
    payment = await ledger.payment_row(session, found.id, lock=True)
    rows = await ledger.transactions_of(session, [payment.id])
    amounts = status.amounts_of(ledger.entries(rows))
    recorder = Recorder(tenant, session, order, STRIPE_WEBHOOKS)
    data = event.data
    reference = {"provider_reference": str(data.get("id"))}
    if event.type in ("payment_intent.amount_capturable_updated", "payment_intent.succeeded"):
        await _authorized_or_captured(recorder, payment, amounts, data)
    elif event.type == "payment_intent.payment_failed":
        if amounts.authorized == 0:
            error = data.get("last_payment_error") or {}
            await recorder.note(
                payment,
                "authorize",
                status.FAILURE,
                payment.amount,
                error_code=error.get("decline_code") or error.get("code") or "payment_failed",
                error_message=error.get("message"),
                **reference,
            )
    elif event.type == "payment_intent.canceled":
        if amounts.capturable > 0:
            await recorder.note(payment, "void", status.SUCCESS, amounts.capturable, **reference)
        elif amounts.awaiting_action:
            await recorder.note(
                payment, "authorize", status.FAILURE, payment.amount, error_code="canceled", **reference
            )
    elif event.type == "charge.refunded":
        await _charge_refunded(recorder, payment, amounts, data)
    elif event.type in REFUND_EVENTS:
        if event.type == "refund.failed" or data.get("status") in REFUND_NOT_MADE:
            taken_back = await reversals.take_back_failed_refund(recorder, payment, amounts, data)
            if taken_back is None:
                state = data.get("status") or "failed"
                return f"ignored: the refund is {state} at Stripe and the ledger never counted it"
        else:
            await _named_refunds(recorder, payment, amounts, [data])
    elif event.type == "charge.dispute.created":
        await disputes.record_dispute_opened(recorder, payment, rows, data)
    else:
        ignored = await disputes.record_dispute_closed(recorder, payment, rows, data)
        if ignored is not None:
            return ignored
    if not recorder.outcomes:
        return "ignored: the ledger already says so"
    await recorder.finish()
    return "applied"


async def _named_refunds(
    recorder: Recorder, payment: Payment, amounts: status.PaymentAmounts, refunds: list[dict[str, Any]]
) -> status.PaymentAmounts:
    """Record the refunds Stripe names that the ledger does not; returns the amounts after them."""
    refunded, refundable = amounts.refunded, amounts.refundable
    for refund in sorted(refunds, key=lambda item: int(item.get("created") or 0)):
        row = await recorder.note_refund(
            payment,
            str(refund["id"]),
            int(refund.get("amount") or 0),
            refundable=refundable,
            reason="refunded at Stripe",
        )
        if row is not None:
            refunded += row.amount
            refundable -= row.amount
    return dataclasses.replace(amounts, refunded=refunded)


async def _charge_refunded(
    recorder: Recorder, payment: Payment, amounts: status.PaymentAmounts, data: dict[str, Any]
) -> None:
    listed = data.get("refunds")
    refunds = listed.get("data") if isinstance(listed, dict) else None
    if isinstance(refunds, list):
        items = [item for item in refunds if isinstance(item, dict)]
        for item in items:
            failed = item.get("status") in REFUND_NOT_MADE
            if failed and await reversals.take_back_failed_refund(recorder, payment, amounts, item):
                # As the ledger adds up now: a dispute the refund overlapped counts from here.
                rows = await ledger.transactions_of(recorder.session, [payment.id])
                amounts = status.amounts_of(ledger.entries(rows))
        made = [item for item in items if item.get("status") not in REFUND_NOT_MADE]
        amounts = await _named_refunds(recorder, payment, amounts, made)
    # Refunds the event does not name (API versions since 2022-11-15 leave them out): the difference.
    # Refunds taken back count as counted: Stripe's total from before one failed still holds
    # it (events come in no set order), and it must never be counted again, unnamed.
    refunded = int(data.get("amount_refunded") or 0)
    counted = amounts.refunded + amounts.refunds_reversed
    if refunded > counted and amounts.refundable > 0:
        await recorder.note(
            payment,
            "refund",
            status.SUCCESS,
            min(refunded - counted, amounts.refundable),
            reason="refunded at Stripe",
            provider_reference=str(data.get("id")),
        )


async def _authorized_or_captured(
    recorder: Recorder, payment: Payment, amounts: status.PaymentAmounts, data: dict[str, Any]
) -> None:
    capturable = int(data.get("amount_capturable") or 0)
    received = int(data.get("amount_received") or 0)
    reference = {"provider_reference": str(data.get("id"))}
    authorized = amounts.authorized
    if authorized == 0 and amounts.cancelled_waiting:
        # Cancelled here while it waited on its customer: an authorization reported late
        # was released by that cancellation, and a cancelled PaymentIntent takes no capture.
        return
    if authorized == 0 and capturable + received > 0:
        # The customer finished authenticating: the authorization the ledger was waiting for.
        authorized = capturable + received
        await recorder.note(payment, "authorize", status.SUCCESS, authorized, **reference)
    if received > amounts.captured:
        # Captured outside this app (the Stripe dashboard).
        await recorder.note(payment, "capture", status.SUCCESS, received - amounts.captured, **reference)
    if data.get("status") == "succeeded":
        left = authorized - max(received, amounts.captured) - amounts.voided
        if left > 0:
            await recorder.note(
                payment, "void", status.SUCCESS, left, reason="released by Stripe", **reference
            )
