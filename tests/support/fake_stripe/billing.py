"""The fake's billing resources (Ordersmith's own account).

Customers, products, prices, Billing Meters and their events, subscriptions (created,
changed with a proration behaviour, cancelled) and billing portal sessions. Meter events
behave as Stripe's do: an `identifier` seen before is dropped (the first event stands),
and on a meter pre-aggregated per hour (`event_time_window=hour`) the latest event of a
customer's hour replaces the earlier ones. `metered_usage` reads what Stripe would bill.
"""

from __future__ import annotations

from typing import Any

from tests.support.fake_stripe.server import FakeStripe, StripeError, StripeRequest, now, route

Reply = tuple[int, dict[str, Any]]


@route("POST", "/v1/customers")
def create_customer(fake: FakeStripe, request: StripeRequest) -> Reply:
    customer = {
        "id": fake.new_id("cus"),
        "object": "customer",
        "created": now(),
        "email": request.params.get("email"),
        "name": request.params.get("name"),
        "metadata": request.params.get("metadata", {}),
        "livemode": False,
    }
    return 200, fake.store("customer", customer)


@route("GET", "/v1/customers/{customer_id}")
def retrieve_customer(fake: FakeStripe, request: StripeRequest) -> Reply:
    return 200, fake.get("customer", request.path_params["customer_id"])


@route("POST", "/v1/products")
def create_product(fake: FakeStripe, request: StripeRequest) -> Reply:
    product_id = request.params.get("id") or fake.new_id("prod")
    if product_id in fake.objects.get("product", {}):
        raise StripeError(400, f"Product already exists: {product_id}", code="resource_already_exists")
    product = {
        "id": product_id,
        "object": "product",
        "created": now(),
        "name": request.params["name"],
        "active": True,
        "metadata": request.params.get("metadata", {}),
        "livemode": False,
    }
    return 200, fake.store("product", product)


@route("POST", "/v1/prices")
def create_price(fake: FakeStripe, request: StripeRequest) -> Reply:
    params = request.params
    fake.get("product", params["product"])
    recurring = params.get("recurring")
    if recurring and recurring.get("usage_type") == "metered":
        fake.get("billing.meter", recurring["meter"])
    price = {
        "id": fake.new_id("price"),
        "object": "price",
        "created": now(),
        "active": True,
        "product": params["product"],
        "currency": params["currency"],
        "unit_amount": int(params["unit_amount"]) if "unit_amount" in params else None,
        "billing_scheme": params.get("billing_scheme", "per_unit"),
        "tiers_mode": params.get("tiers_mode"),
        "tiers": params.get("tiers"),
        "recurring": recurring,
        "lookup_key": params.get("lookup_key"),
        "metadata": params.get("metadata", {}),
        "type": "recurring" if recurring else "one_time",
        "livemode": False,
    }
    return 200, fake.store("price", price)


@route("POST", "/v1/billing/meters")
def create_meter(fake: FakeStripe, request: StripeRequest) -> Reply:
    params = request.params
    meter = {
        "id": fake.new_id("mtr"),
        "object": "billing.meter",
        "created": now(),
        "display_name": params["display_name"],
        "event_name": params["event_name"],
        "event_time_window": params.get("event_time_window"),
        "default_aggregation": params["default_aggregation"],
        "customer_mapping": params.get("customer_mapping"),
        "value_settings": params.get("value_settings"),
        "status": "active",
        "livemode": False,
    }
    if any(m["event_name"] == meter["event_name"] for m in fake.objects.get("billing.meter", {}).values()):
        raise StripeError(400, f"A meter with event_name {meter['event_name']} already exists.")
    return 200, fake.store("billing.meter", meter)


@route("POST", "/v1/billing/meter_events")
def create_meter_event(fake: FakeStripe, request: StripeRequest) -> Reply:
    params = request.params
    payload = params.get("payload", {})
    if "stripe_customer_id" not in payload or "value" not in payload:
        raise StripeError(400, "The payload needs stripe_customer_id and value.")
    identifier = params.get("identifier") or fake.new_id("mev")
    known = fake.objects.get("billing.meter_event", {}).get(identifier)
    if known is not None:
        # Stripe drops an event whose identifier it has seen: the first one stands.
        fake.objects.setdefault("dropped_meter_event", {})[fake.new_id("drop")] = {
            "id": identifier,
            "payload": payload,
        }
        return 200, known
    event = {
        "id": identifier,
        "object": "billing.meter_event",
        "created": now(),
        "event_name": params["event_name"],
        "identifier": identifier,
        "payload": payload,
        "timestamp": int(params.get("timestamp", now())),
        "livemode": False,
    }
    fake.store("billing.meter_event", event)
    return 200, event


def metered_usage(fake: FakeStripe, customer_id: str, event_name: str) -> int:
    """What Stripe would bill a customer for under a meter: per hour window the latest event, summed."""
    meter = next(m for m in fake.objects.get("billing.meter", {}).values() if m["event_name"] == event_name)
    events = [
        e
        for e in fake.objects.get("billing.meter_event", {}).values()
        if e["event_name"] == event_name and e["payload"]["stripe_customer_id"] == customer_id
    ]
    if meter["event_time_window"] != "hour":
        return sum(int(e["payload"]["value"]) for e in events)
    latest: dict[int, int] = {}
    # Received order: dicts keep insertion order, and a later event of an hour replaces the earlier.
    for e in events:
        latest[e["timestamp"] // 3600] = int(e["payload"]["value"])
    return sum(latest.values())


def _subscription_item(fake: FakeStripe, price_id: str) -> dict[str, Any]:
    return {
        "id": fake.new_id("si"),
        "object": "subscription_item",
        "price": fake.get("price", price_id),
        "created": now(),
    }


@route("POST", "/v1/subscriptions")
def create_subscription(fake: FakeStripe, request: StripeRequest) -> Reply:
    params = request.params
    fake.get("customer", params["customer"])
    started = now()
    subscription = {
        "id": fake.new_id("sub"),
        "object": "subscription",
        "created": started,
        "customer": params["customer"],
        "status": "active",
        "items": {
            "object": "list",
            "data": [_subscription_item(fake, item["price"]) for item in params.get("items", [])],
        },
        "metadata": params.get("metadata", {}),
        "current_period_start": started,
        "current_period_end": started + 30 * 86400,
        "cancel_at_period_end": False,
        "livemode": False,
    }
    for item in subscription["items"]["data"]:
        # Stripe keeps the period on each item (API 2025-03-31 on).
        item.update(current_period_start=started, current_period_end=started + 30 * 86400)
    return 200, fake.store("subscription", subscription)


@route("GET", "/v1/subscriptions/{subscription_id}")
def retrieve_subscription(fake: FakeStripe, request: StripeRequest) -> Reply:
    return 200, fake.get("subscription", request.path_params["subscription_id"])


@route("POST", "/v1/subscriptions/{subscription_id}")
def update_subscription(fake: FakeStripe, request: StripeRequest) -> Reply:
    subscription = fake.get("subscription", request.path_params["subscription_id"])
    if subscription["status"] == "canceled":
        raise StripeError(400, "A canceled subscription can only update its cancellation_details.")
    if subscription["status"] == "incomplete_expired":
        # Its first payment never succeeded: Stripe ended it for good, and changes it no more.
        raise StripeError(400, "You can not update a subscription in `incomplete_expired` status.")
    params = request.params
    items = {item["id"]: item for item in subscription["items"]["data"]}
    for change in params.get("items", []):
        if "id" not in change:
            added = _subscription_item(fake, change["price"])
            items[added["id"]] = added
        elif change.get("deleted") == "true":
            items.pop(change["id"], None)
        else:
            if change["id"] not in items:
                raise StripeError(
                    400, f"No such subscription item: '{change['id']}'", code="resource_missing"
                )
            items[change["id"]]["price"] = fake.get("price", change["price"])
    subscription["items"]["data"] = list(items.values())
    subscription["metadata"] = {**subscription["metadata"], **params.get("metadata", {})}
    # What the last change asked of prorations, for tests to read.
    subscription["last_proration_behavior"] = params.get("proration_behavior", "create_prorations")
    return 200, subscription


@route("DELETE", "/v1/subscriptions/{subscription_id}")
def cancel_subscription(fake: FakeStripe, request: StripeRequest) -> Reply:
    subscription = fake.get("subscription", request.path_params["subscription_id"])
    subscription["status"] = "canceled"
    subscription["canceled_at"] = now()
    return 200, subscription


@route("POST", "/v1/billing_portal/sessions")
def create_portal_session(fake: FakeStripe, request: StripeRequest) -> Reply:
    customer = fake.get("customer", request.params["customer"])
    session_id = fake.new_id("bps")
    portal = {
        "id": session_id,
        "object": "billing_portal.session",
        "created": now(),
        "customer": customer["id"],
        "return_url": request.params.get("return_url"),
        "url": f"{fake.base_url}/p/session/{session_id}",
        "livemode": False,
    }
    return 200, fake.store("billing_portal.session", portal)
