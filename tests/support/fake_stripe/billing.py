"""The fake's billing resources (Ordersmith's own account): customers, subscriptions, meter events."""

from __future__ import annotations

from typing import Any

from tests.support.fake_stripe.server import FakeStripe, StripeRequest, now, route


@route("POST", "/v1/customers")
def create_customer(fake: FakeStripe, request: StripeRequest) -> tuple[int, dict[str, Any]]:
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
def retrieve_customer(fake: FakeStripe, request: StripeRequest) -> tuple[int, dict[str, Any]]:
    return 200, fake.get("customer", request.path_params["customer_id"])
