"""The fake of Stripe's HTTP API answers the real SDK the way Stripe does."""

from __future__ import annotations

import pytest
import stripe

from tests.support.fake_stripe import SECRET_KEY, serve_fake_stripe
from tests.support.fake_stripe.server import decode_form


def test_form_bodies_decode_into_nested_objects() -> None:
    encoded = "items[0][price]=price_1&items[1][price]=price_2&metadata[tenant]=t1&email=a%40b.c&expand[0]=x"
    assert decode_form(encoded) == {
        "items": [{"price": "price_1"}, {"price": "price_2"}],
        "metadata": {"tenant": "t1"},
        "email": "a@b.c",
        "expand": ["x"],
    }


def test_the_sdk_creates_and_reads_back_a_customer_and_replays_an_idempotent_request() -> None:
    with serve_fake_stripe() as fake:
        client = stripe.StripeClient(SECRET_KEY, base_addresses={"api": fake.base_url}, max_network_retries=0)
        created = client.v1.customers.create(
            {"email": "ada@example.com", "metadata": {"tenant": "t1"}}, {"idempotency_key": "k1"}
        )
        again = client.v1.customers.create(
            {"email": "ada@example.com", "metadata": {"tenant": "t1"}}, {"idempotency_key": "k1"}
        )
        assert again.id == created.id
        assert len(fake.objects["customer"]) == 1
        fetched = client.v1.customers.retrieve(created.id)
        assert fetched.email == "ada@example.com"
        assert fetched.to_dict()["metadata"] == {"tenant": "t1"}

        with pytest.raises(stripe.IdempotencyError, match="same parameters"):
            client.v1.customers.create({"email": "other@example.com"}, {"idempotency_key": "k1"})


def test_a_wrong_key_and_an_outage_are_errors_the_sdk_raises() -> None:
    with serve_fake_stripe() as fake:
        wrong = stripe.StripeClient(
            "sk_test_wrong", base_addresses={"api": fake.base_url}, max_network_retries=0
        )
        with pytest.raises(stripe.AuthenticationError):
            wrong.v1.customers.create({"email": "a@example.com"})
        fake.unreachable = True
        client = stripe.StripeClient(SECRET_KEY, base_addresses={"api": fake.base_url}, max_network_retries=0)
        with pytest.raises(stripe.APIError) as raised:
            client.v1.customers.create({"email": "a@example.com"})
        assert raised.value.http_status == 503
        assert fake.objects == {}
