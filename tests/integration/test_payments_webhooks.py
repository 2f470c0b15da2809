"""Stripe webhooks for a store: verified with its own signing secret, applied once, reconciled."""

from __future__ import annotations

import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient

from ordersmith.platform.database import Database
from tests.support.fake_stripe import FakeStripe, event
from tests.support.fake_stripe.payments import (
    AUTHENTICATION_REQUIRED,
    VISA,
    complete_authentication,
    intent_event,
    open_dispute,
    payment_intents,
    refund_in_dashboard,
)
from tests.support.fake_stripe.server import now
from tests.support.orders import Store
from tests.support.payments import (
    ledger,
    ledger_rows,
    pay,
    payment_store,
    payments_of,
    send_webhook,
)


@pytest.fixture
async def store(client: AsyncTestClient[Litestar], fake: FakeStripe) -> Store:
    return await payment_store(client, providers=("manual", "stripe"), capture_policy="at_placement")


async def _paid(store: Store) -> tuple[dict[str, object], dict[str, object]]:
    order = await store.place(("TEE-S", 2))  # 50.00 EUR
    taken = await pay(store, order["id"], provider="stripe", method="pm_card_visa")
    assert taken["payment_status"] == "paid"
    return order, taken["payment"]


async def test_a_bad_signature_or_an_old_timestamp_is_refused_and_changes_nothing(
    store: Store, fake: FakeStripe, database: Database
) -> None:
    order, payment = await _paid(store)
    charge = refund_in_dashboard(fake, str(payment["provider_reference"]), 1000)
    body = event("charge.refunded", charge)
    before = len(await ledger_rows(database, store, str(order["id"])))

    wrong = await send_webhook(store, body, secret="whsec_someone_else", expected=400)
    stale = await send_webhook(store, body, timestamp=now() - 301, expected=400)
    unsigned = await send_webhook(store, body, signature="", expected=400)
    assert {wrong["code"], stale["code"], unsigned["code"]} == {"webhook_signature_invalid"}
    assert "nothing was applied" in stale["detail"]
    assert len(await ledger_rows(database, store, str(order["id"]))) == before
    # Within the tolerance it is accepted, once. (299 s back flaked: `now()` drops the
    # fraction of a second, so late in a second the request arrived over 300 s after it.)
    applied = await send_webhook(store, body, timestamp=now() - 290)
    assert (applied["event_id"], applied["type"], applied["outcome"]) == (
        body["id"],
        "charge.refunded",
        "applied",
    )
    unknown = await store.client.post(
        "/api/v1/payments/stripe/webhook/no-such-store",
        content=b"{}",
        headers={"Stripe-Signature": "t=1,v1=0"},
    )
    assert (unknown.status_code, unknown.json()["code"]) == (404, "tenant_not_found")


async def test_a_refund_made_in_the_dashboard_is_recorded_once(
    store: Store, fake: FakeStripe, database: Database
) -> None:
    order, payment = await _paid(store)
    charge = refund_in_dashboard(fake, str(payment["provider_reference"]), 1000)
    body = event("charge.refunded", charge)
    assert (await send_webhook(store, body))["outcome"] == "applied"
    assert (await send_webhook(store, body))["outcome"] == "duplicate"
    summary = await payments_of(store, str(order["id"]))
    assert (summary["payment_status"], summary["refunded_amount"]) == ("partially_refunded", 1000)
    refund = summary["data"][0]["transactions"][-1]
    assert (refund["kind"], refund["state"], refund["amount"], refund["actor_type"], refund["actor_id"]) == (
        "refund",
        "success",
        1000,
        "system",
        "stripe-webhook",
    )
    # A new event saying the same thing (Stripe resends state, not deltas) adds nothing either.
    same_state = await send_webhook(store, event("charge.refunded", charge))
    assert same_state["outcome"] == "ignored: the ledger already says so"
    assert len(await ledger_rows(database, store, str(order["id"]))) == 5


async def test_a_refund_made_here_is_not_counted_again_when_stripe_reports_it(
    store: Store, fake: FakeStripe
) -> None:
    order, payment = await _paid(store)
    await store.call("POST", f"/api/v1/payments/{payment['id']}/refunds", 201, json={"amount": 2000})
    [intent] = payment_intents(fake)
    charge = fake.objects["charge"][intent["latest_charge"]]
    assert (await send_webhook(store, event("charge.refunded", dict(charge))))["outcome"].startswith(
        "ignored"
    )
    assert (await payments_of(store, str(order["id"])))["refunded_amount"] == 2000


async def test_a_dispute_is_a_chargeback_and_holds_the_order(store: Store, fake: FakeStripe) -> None:
    order, payment = await _paid(store)
    dispute = open_dispute(fake, str(payment["provider_reference"]), 5000)
    body = event("charge.dispute.created", dispute)
    assert (await send_webhook(store, body))["outcome"] == "applied"
    assert (await send_webhook(store, body))["outcome"] == "duplicate"
    assert (await send_webhook(store, event("charge.dispute.created", dispute)))["outcome"].startswith(
        "ignored"
    )
    read = await store.call("GET", f"/api/v1/orders/{order['id']}", 200)
    assert read["payment_status"] == "refunded"
    [hold] = read["holds"]
    assert (hold["type"], hold["reason"]) == (
        "payment",
        "chargeback: the customer disputed 5000 EUR with their bank",
    )
    chargeback = (await payments_of(store, str(order["id"])))["data"][0]["transactions"][-1]
    assert (
        chargeback["kind"],
        chargeback["amount"],
        chargeback["provider_reference"],
        chargeback["reason"],
    ) == (
        "chargeback",
        5000,
        dispute["id"],
        "dispute opened: fraudulent",
    )
    # The customer pays again: the dispute still wants a person, so its hold stays.
    again = await pay(store, str(order["id"]), provider="stripe", method=VISA)
    assert again["last_transaction"]["state"] == "success"
    read = await store.call("GET", f"/api/v1/orders/{order['id']}", 200)
    assert (read["open_hold_count"], read["holds"][0]["released_at"]) == (1, None)


async def test_authentication_finished_or_failed_arrives_by_webhook(store: Store, fake: FakeStripe) -> None:
    order = await store.place(("TEE-S", 1))
    pending = await pay(store, order["id"], provider="stripe", method=AUTHENTICATION_REQUIRED)
    intent_id = pending["payment"]["provider_reference"]
    complete_authentication(fake, intent_id)
    applied = await send_webhook(
        store, intent_event(fake, "payment_intent.amount_capturable_updated", intent_id)
    )
    assert applied["outcome"] == "applied"
    summary = await payments_of(store, order["id"])
    assert (summary["payment_status"], summary["capturable_amount"]) == ("authorized", 2500)
    assert ledger(summary["data"][0])[-1] == ("authorize", "success", 2500)

    other = await store.place(("TEE-S", 1))
    waiting = await pay(store, other["id"], provider="stripe", method=AUTHENTICATION_REQUIRED)
    failed = intent_event(
        fake,
        "payment_intent.payment_failed",
        waiting["payment"]["provider_reference"],
        status="requires_payment_method",
        last_payment_error={"code": "payment_intent_authentication_failure", "message": "3DS failed"},
    )
    assert (await send_webhook(store, failed))["outcome"] == "applied"
    read = await store.call("GET", f"/api/v1/orders/{other['id']}", 200)
    assert (read["payment_status"], read["open_hold_count"]) == ("unpaid", 1)
    assert (
        read["holds"][0]["reason"] == "authorize failed: payment_intent_authentication_failure (3DS failed)"
    )
    # Paid with another card through the API: the hold the webhook's failure placed is lifted.
    await pay(store, other["id"], provider="stripe", method=VISA)
    read = await store.call("GET", f"/api/v1/orders/{other['id']}", 200)
    assert (read["open_hold_count"], read["holds"][0]["released_by_type"]) == (0, "system")


async def test_a_cancelled_intent_voids_what_it_held(
    client: AsyncTestClient[Litestar], fake: FakeStripe
) -> None:
    store = await payment_store(client, providers=("stripe",), capture_policy="at_shipment")
    order = await store.place(("TEE-S", 1))
    taken = await pay(store, order["id"], provider="stripe", method="pm_card_visa")
    intent_id = taken["payment"]["provider_reference"]
    fake.objects["payment_intent"][intent_id].update(status="canceled", amount_capturable=0)
    assert (await send_webhook(store, intent_event(fake, "payment_intent.canceled", intent_id)))[
        "outcome"
    ] == "applied"
    assert (await payments_of(store, order["id"]))["payment_status"] == "voided"
    ignored = await send_webhook(store, event("customer.created", {"id": "cus_1"}))
    assert ignored["outcome"] == "ignored: event type not handled"
    foreign = await send_webhook(store, event("payment_intent.succeeded", {"id": "pi_elsewhere"}))
    assert foreign["outcome"] == "ignored: no payment of this store has this PaymentIntent"
