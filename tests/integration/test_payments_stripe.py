"""The `stripe` provider through the real SDK against the local fake: authorize, capture, refund, failures."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient

from ordersmith.platform.database import Database
from ordersmith.platform.identity.audit import Actor
from ordersmith.tenants.payments.errors import RefundExceedsCapturedError
from ordersmith.tenants.payments.refunds import refund_order
from ordersmith.tenants.payments.service import capture_for_shipment, captured_amount
from tests.support.fake_stripe import FakeStripe
from tests.support.fake_stripe.payments import AUTHENTICATION_REQUIRED, DECLINED, VISA, payment_intents
from tests.support.order_actions import tenant_context, timeline_of
from tests.support.orders import Store
from tests.support.payments import ledger, ledger_rows, pay, payment_store


async def _store(client: AsyncTestClient[Litestar], capture_policy: str) -> Store:
    return await payment_store(client, providers=("manual", "stripe"), capture_policy=capture_policy)


def _keys(fake: FakeStripe, method: str, path: str) -> list[str | None]:
    return [request.idempotency_key for request in fake.requests_to(method, path) if request.path == path]


async def test_at_shipment_authorizes_then_captures_in_parts_and_refunds_through_stripe(
    client: AsyncTestClient[Litestar], fake: FakeStripe
) -> None:
    store = await _store(client, "at_shipment")
    order = await store.place(("TEE-S", 4))  # 100.00 EUR
    taken = await pay(store, order["id"], provider="stripe", method=VISA)
    payment = taken["payment"]
    [intent] = payment_intents(fake)
    assert (taken["payment_status"], payment["status"], payment["provider_reference"]) == (
        "authorized",
        "authorized",
        intent["id"],
    )
    assert (intent["amount"], intent["currency"], intent["capture_method"], intent["status"]) == (
        10000,
        "eur",
        "manual",
        "requires_capture",
    )
    assert intent["metadata"] == {
        "ordersmith_store": store.slug,
        "ordersmith_order_id": order["id"],
        "ordersmith_payment_id": payment["id"],
    }
    request_row = payment["transactions"][0]
    assert _keys(fake, "POST", "/v1/payment_intents") == [
        f"ordersmith:{payment['id']}:authorize:{request_row['id']}"
    ]

    capture = f"/api/v1/payments/{payment['id']}/capture"
    too_much = await store.call("POST", capture, 422, json={"amount": 10001})
    assert (too_much["code"], too_much["capturable_amount"]) == ("capture_exceeds_authorized", 10000)
    assert fake.requests_to("POST", f"/v1/payment_intents/{intent['id']}/capture") == []

    first = await store.call("POST", capture, 201, json={"amount": 4000})
    assert (first["payment_status"], first["payment"]["capturable_amount"]) == ("partially_paid", 6000)
    assert (intent["amount_received"], intent["amount_capturable"], intent["status"]) == (
        4000,
        6000,
        "requires_capture",
    )
    [capture_request] = fake.requests_to("POST", f"/v1/payment_intents/{intent['id']}/capture")
    assert capture_request.params == {"amount_to_capture": "4000", "final_capture": "false"}
    last = await store.call("POST", capture, 201)
    assert (last["payment_status"], intent["amount_received"], intent["status"]) == (
        "paid",
        10000,
        "succeeded",
    )

    refunded = await store.call(
        "POST",
        f"/api/v1/payments/{payment['id']}/refunds",
        201,
        json={"amount": 2500, "reason": "one returned"},
    )
    [refund] = fake.objects["refund"].values()
    assert (refund["amount"], refund["payment_intent"], refund["metadata"]) == (
        2500,
        intent["id"],
        {"reason": "one returned"},
    )
    assert refunded["last_transaction"]["provider_reference"] == refund["id"]
    assert refunded["payment_status"] == "partially_refunded"
    over = await store.call("POST", f"/api/v1/payments/{payment['id']}/refunds", 422, json={"amount": 7501})
    assert over["refundable_amount"] == 7500
    assert len(fake.requests_to("POST", "/v1/refunds")) == 1


async def test_at_placement_captures_right_after_authorizing(
    client: AsyncTestClient[Litestar], fake: FakeStripe
) -> None:
    store = await _store(client, "at_placement")
    order = await store.place(("TEE-S", 1))
    taken = await pay(store, order["id"], provider="stripe", method=VISA)
    assert taken["payment_status"] == "paid"
    assert ledger(taken["payment"]) == [
        ("authorize", "request", 2500),
        ("authorize", "success", 2500),
        ("capture", "request", 2500),
        ("capture", "success", 2500),
    ]
    [intent] = payment_intents(fake)
    assert (intent["status"], intent["amount_received"]) == ("succeeded", 2500)
    # The final capture sends no final_capture=false: Stripe releases nothing more.
    [capture_request] = fake.requests_to("POST", f"/v1/payment_intents/{intent['id']}/capture")
    assert capture_request.params == {"amount_to_capture": "2500"}


async def test_a_card_without_multicapture_releases_the_rest_with_a_partial_capture(
    client: AsyncTestClient[Litestar], fake: FakeStripe
) -> None:
    store = await _store(client, "at_shipment")
    order = await store.place(("TEE-S", 2))
    taken = await pay(store, order["id"], provider="stripe", method=VISA)
    [intent] = payment_intents(fake)
    intent["payment_method_options"] = {}  # this card cannot be captured more than once
    captured = await store.call(
        "POST", f"/api/v1/payments/{taken['payment']['id']}/capture", 201, json={"amount": 2000}
    )
    assert ledger(captured["payment"])[2:] == [
        ("capture", "request", 2000),
        ("capture", "success", 2000),
        ("void", "success", 3000),
    ]
    assert (captured["payment"]["capturable_amount"], captured["payment_status"]) == (0, "partially_paid")


async def test_a_decline_is_recorded_and_holds_the_order(
    client: AsyncTestClient[Litestar], fake: FakeStripe, database: Database
) -> None:
    store = await _store(client, "at_placement")
    order = await store.place(("TEE-S", 1))
    declined = await pay(store, order["id"], provider="stripe", method=DECLINED)
    failure = declined["last_transaction"]
    [intent] = payment_intents(fake)
    assert (failure["kind"], failure["state"], failure["error_code"], failure["error_message"]) == (
        "authorize",
        "failure",
        "generic_decline",
        "Your card was declined.",
    )
    assert (declined["payment"]["status"], declined["payment_status"]) == ("failed", "unpaid")
    assert declined["payment"]["provider_reference"] == intent["id"]
    read = await store.call("GET", f"/api/v1/orders/{order['id']}", 200)
    assert (read["status"], read["payment_status"], read["open_hold_count"]) == ("confirmed", "unpaid", 1)
    [hold] = read["holds"]
    assert (hold["type"], hold["placed_by_type"], hold["reason"]) == (
        "payment",
        "system",
        "authorize failed: generic_decline (Your card was declined.)",
    )
    kinds = [item["kind"] for item in await timeline_of(store, order["id"])]
    assert sorted(kinds[-2:]) == ["hold_placed", "payment_authorize_failed"]
    # A decline is final: only an unreachable provider is retried.
    refused = await store.call("POST", f"/api/v1/payments/{declined['payment']['id']}/retry", 409)
    assert refused["code"] == "nothing_to_retry"
    # A second decline does not pile up holds.
    await pay(store, order["id"], provider="stripe", method=DECLINED)
    assert (await store.call("GET", f"/api/v1/orders/{order['id']}", 200))["open_hold_count"] == 1
    assert [row.state for row in await ledger_rows(database, store, order["id"])] == [
        "request",
        "failure",
        "request",
        "failure",
    ]
    # Another card goes through: the system lifts the hold it placed, which is no touch
    # (taking the payment is the person's one more).
    touches = (await store.call("GET", f"/api/v1/orders/{order['id']}", 200))["touch_count"]
    paid = await pay(store, order["id"], provider="stripe", method=VISA)
    assert paid["payment_status"] == "paid"
    read = await store.call("GET", f"/api/v1/orders/{order['id']}", 200)
    assert (read["status"], read["open_hold_count"], read["touch_count"]) == ("confirmed", 0, touches + 1)
    [released] = read["holds"]
    assert (released["id"], released["released_by_type"], released["release_note"]) == (
        hold["id"],
        "system",
        "released automatically: a later payment was captured",
    )
    kinds = [item["kind"] for item in await timeline_of(store, order["id"])]
    assert kinds[-3:] == ["payment_authorized", "payment_captured", "hold_released"]


async def test_an_unreachable_stripe_is_recorded_and_a_retry_charges_once(
    client: AsyncTestClient[Litestar], fake: FakeStripe
) -> None:
    store = await _store(client, "at_shipment")
    order = await store.place(("TEE-S", 2))
    fake.unreachable = True
    failed = await pay(store, order["id"], provider="stripe", method=VISA)
    payment = failed["payment"]
    assert (failed["last_transaction"]["state"], failed["last_transaction"]["error_code"]) == (
        "failure",
        "provider_unreachable",
    )
    assert (payment["status"], payment["provider_reference"], payment_intents(fake)) == ("failed", None, [])
    read = await store.call("GET", f"/api/v1/orders/{order['id']}", 200)
    assert read["holds"][0]["reason"].startswith("authorize failed: provider_unreachable")

    fake.unreachable = False
    retried = await store.call("POST", f"/api/v1/payments/{payment['id']}/retry", 201)
    [intent] = payment_intents(fake)
    assert (retried["payment_status"], retried["payment"]["provider_reference"]) == (
        "authorized",
        intent["id"],
    )
    rows = retried["payment"]["transactions"]
    assert [(row["kind"], row["state"]) for row in rows] == [
        ("authorize", "request"),
        ("authorize", "failure"),
        ("authorize", "request"),
        ("authorize", "success"),
    ]
    assert rows[2]["retry_of_id"] == rows[0]["id"]
    read = await store.call("GET", f"/api/v1/orders/{order['id']}", 200)
    assert (read["open_hold_count"], read["holds"][0]["released_by_type"]) == (0, "system")
    # Both attempts carried the first request's key.
    key = f"ordersmith:{payment['id']}:authorize:{rows[0]['id']}"
    assert _keys(fake, "POST", "/v1/payment_intents") == [key]  # the 503 was answered before routing
    assert (await store.call("POST", f"/api/v1/payments/{payment['id']}/retry", 409))[
        "code"
    ] == "nothing_to_retry"


async def test_a_lost_answer_is_retried_with_the_same_key_and_stripe_charges_once(
    client: AsyncTestClient[Litestar], fake: FakeStripe
) -> None:
    store = await _store(client, "at_placement")
    order = await store.place(("TEE-S", 1))
    answer = fake.handle

    def lose_the_answer(*args: Any) -> tuple[int, dict[str, Any]]:
        # Stripe acts on the request, then the connection drops before its answer arrives.
        answer(*args)
        return 503, {"error": {"type": "api_error", "message": "connection lost"}}

    fake.handle = lose_the_answer  # type: ignore[method-assign,assignment]
    failed = await pay(store, order["id"], provider="stripe", method=VISA)
    assert failed["last_transaction"]["error_code"] == "provider_unreachable"
    [intent] = payment_intents(fake)
    assert intent["status"] == "requires_capture"  # Stripe holds the money; the ledger does not know yet

    fake.handle = answer  # type: ignore[method-assign]
    retried = await store.call("POST", f"/api/v1/payments/{failed['payment']['id']}/retry", 201)
    assert retried["payment_status"] == "paid"
    assert payment_intents(fake) == [intent]
    first_key, second_key = _keys(fake, "POST", "/v1/payment_intents")
    assert first_key == second_key
    assert intent["amount_received"] == 2500


async def test_a_payment_needing_authentication_is_requires_action(
    client: AsyncTestClient[Litestar], fake: FakeStripe
) -> None:
    store = await _store(client, "at_placement")
    order = await store.place(("TEE-S", 1))
    pending = await pay(store, order["id"], provider="stripe", method=AUTHENTICATION_REQUIRED)
    assert (
        pending["payment_status"],
        pending["payment"]["status"],
        pending["last_transaction"]["state"],
    ) == (
        "requires_action",
        "requires_action",
        "requires_action",
    )
    read = await store.call("GET", f"/api/v1/orders/{order['id']}", 200)
    assert (read["payment_status"], read["open_hold_count"]) == ("requires_action", 0)


async def test_void_cancels_the_payment_intent(client: AsyncTestClient[Litestar], fake: FakeStripe) -> None:
    store = await _store(client, "at_shipment")
    order = await store.place(("TEE-S", 1))
    taken = await pay(store, order["id"], provider="stripe", method=VISA)
    voided = await store.call("POST", f"/api/v1/payments/{taken['payment']['id']}/void", 201)
    [intent] = payment_intents(fake)
    assert (voided["payment_status"], intent["status"], intent["amount_capturable"]) == (
        "voided",
        "canceled",
        0,
    )


async def test_void_cancels_a_payment_waiting_on_its_customer(
    client: AsyncTestClient[Litestar], fake: FakeStripe
) -> None:
    store = await _store(client, "at_shipment")
    order = await store.place(("TEE-S", 1))
    pending = await pay(store, order["id"], provider="stripe", method=AUTHENTICATION_REQUIRED)
    voided = await store.call("POST", f"/api/v1/payments/{pending['payment']['id']}/void", 201)
    [intent] = payment_intents(fake)
    assert (voided["payment_status"], voided["payment"]["status"], intent["status"]) == (
        "voided",
        "voided",
        "canceled",
    )
    again = await store.call("POST", f"/api/v1/payments/{pending['payment']['id']}/void", 409)
    assert again["code"] == "nothing_to_void"


async def test_the_contract_for_shipments_and_returns(
    client: AsyncTestClient[Litestar], fake: FakeStripe, database: Database
) -> None:
    store = await _store(client, "at_shipment")
    order = await store.place(("TEE-S", 4))  # 100.00 EUR
    await pay(store, order["id"], provider="stripe", method=VISA, amount=6000)
    invoice = await pay(store, order["id"], provider="manual", method="invoice", capture=False, amount=4000)
    tenant = await tenant_context(database, store)
    actor = Actor("system", "test")
    order_id = uuid.UUID(order["id"])
    # Shipping takes the card's hold; the invoice's promise is money only once someone records it.
    async with database.tenant_session(tenant) as session:
        await capture_for_shipment(tenant, session, order_id, 7000, actor=actor)
        assert await captured_amount(session, order_id) == 6000
    [intent] = payment_intents(fake)
    assert (intent["amount_received"], intent["status"]) == (6000, "succeeded")
    await store.call(
        "POST", f"/api/v1/payments/{invoice['payment']['id']}/capture", 201, json={"amount": 1000}
    )

    async with database.tenant_session(tenant) as session:
        with pytest.raises(RefundExceedsCapturedError) as raised:
            await refund_order(
                tenant, session, order_id, 7001, reason="too much", actor=actor, idempotency_key="r0"
            )
        assert raised.value.extensions["refundable_amount"] == 7000

    async with database.tenant_session(tenant) as session:
        outcome = await refund_order(
            tenant, session, order_id, 6500, reason="return", actor=actor, idempotency_key="return-1"
        )
    assert (outcome.refunded, outcome.currency, len(outcome.transaction_ids), outcome.is_complete) == (
        6500,
        "EUR",
        2,
        True,
    )
    # The same key again refunds nothing more.
    async with database.tenant_session(tenant) as session:
        again = await refund_order(
            tenant, session, order_id, 6500, reason="return", actor=actor, idempotency_key="return-1"
        )
        assert await captured_amount(session, order_id) == 500
    assert (again.refunded, again.transaction_ids) == (6500, outcome.transaction_ids)
    [refund] = fake.objects["refund"].values()
    assert (refund["amount"], refund["payment_intent"]) == (6000, intent["id"])
    summary = await store.call("GET", f"/api/v1/orders/{order['id']}/payments", 200)
    # 7000 of 10000 was ever captured: a refund leaves the order owing, not settled.
    assert (summary["payment_status"], summary["net_paid_amount"], summary["capturable_amount"]) == (
        "partially_paid",
        500,
        3000,
    )


async def test_a_store_at_placement_captures_nothing_at_shipment(
    client: AsyncTestClient[Litestar], fake: FakeStripe, database: Database
) -> None:
    store = await _store(client, "at_placement")
    order = await store.place(("TEE-S", 1))
    await pay(store, order["id"], provider="manual", method="invoice", capture=False)
    tenant = await tenant_context(database, store)
    async with database.tenant_session(tenant) as session:
        await capture_for_shipment(tenant, session, uuid.UUID(order["id"]), 2500, actor=Actor("system"))
        assert await captured_amount(session, uuid.UUID(order["id"])) == 0
