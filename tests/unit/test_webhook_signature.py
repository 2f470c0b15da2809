"""Webhook signatures (Stripe's `t=…,v1=…` scheme) and the sealing of endpoint secrets."""

from __future__ import annotations

import hashlib
import hmac
import uuid

import pytest

from ordersmith.tenants.webhooks import endpoint_secrets, signing
from ordersmith.tenants.webhooks.errors import WebhookSecretUnreadableError
from ordersmith.tenants.webhooks.sending import encode_body

SECRET = "whsec_test-secret"
BODY = b'{"id":"evt","type":"order.placed","created":1700000000,"data":{}}'
NOW = 1_700_000_000


def test_the_header_is_t_and_the_hex_hmac_sha256_of_t_dot_body() -> None:
    expected = hmac.new(SECRET.encode(), b"1700000000." + BODY, hashlib.sha256).hexdigest()
    assert signing.signature_header(SECRET, BODY, NOW) == f"t=1700000000,v1={expected}"


def test_a_receiver_verifies_within_the_tolerance_only() -> None:
    header = signing.signature_header(SECRET, BODY, NOW)
    assert signing.verify(SECRET, BODY, header, now=NOW + 300)
    assert not signing.verify(SECRET, BODY, header, now=NOW + 301)
    assert not signing.verify(SECRET, BODY, header, now=NOW - 301)


@pytest.mark.parametrize(
    ("secret", "body", "header"),
    [
        ("whsec_other", BODY, None),
        (SECRET, BODY + b" ", None),
        (SECRET, BODY, "v1=abc"),
        (SECRET, BODY, "t=1700000000"),
        (SECRET, BODY, "t=soon,v1=abc"),
        (SECRET, BODY, ""),
        # "²".isdigit() is true, yet int() refuses it.
        (SECRET, BODY, "t=\u00b2,v1=00"),
        # Longer than int() converts (4,300 digits).
        (SECRET, BODY, "t=" + "9" * 5000 + ",v1=00"),
    ],
)
def test_a_wrong_secret_a_changed_body_or_a_malformed_header_does_not_verify(
    secret: str, body: bytes, header: str | None
) -> None:
    header = header if header is not None else signing.signature_header(SECRET, BODY, NOW)
    assert not signing.verify(secret, body, header, now=NOW)


def test_any_of_several_v1_signatures_may_match() -> None:
    good = signing.compute(SECRET, NOW, BODY)
    assert signing.verify(SECRET, BODY, f"t={NOW},v1={'0' * 64},v1={good}", now=NOW)


def test_a_header_signed_by_two_secrets_carries_the_current_first_and_verifies_with_either() -> None:
    current = signing.compute(SECRET, NOW, BODY)
    previous = signing.compute("whsec_previous", NOW, BODY)
    header = signing.signature_header(SECRET, BODY, NOW, "whsec_previous")
    assert header == f"t={NOW},v1={current},v1={previous}"
    assert signing.verify(SECRET, BODY, header, now=NOW)
    assert signing.verify("whsec_previous", BODY, header, now=NOW)
    assert not signing.verify("whsec_other", BODY, header, now=NOW)


def test_the_body_keeps_the_documented_key_order_and_is_compact() -> None:
    body = {"data": {"order_id": "o-1"}, "created": NOW, "type": "order.placed", "id": "evt-1"}
    assert (
        encode_body(body)
        == b'{"id":"evt-1","type":"order.placed","created":1700000000,"data":{"order_id":"o-1"}}'
    )


def test_secrets_are_new_each_time_and_open_only_for_their_store_and_endpoint() -> None:
    first, second = endpoint_secrets.new_secret(), endpoint_secrets.new_secret()
    assert first != second
    assert first.startswith("whsec_")
    tenant, endpoint = uuid.uuid4(), uuid.uuid4()
    sealed = endpoint_secrets.seal("k" * 32, tenant, endpoint, first)
    assert first.encode() not in sealed
    assert endpoint_secrets.open_sealed("k" * 32, tenant, endpoint, sealed) == first
    for key, where in (
        ("k" * 32, (uuid.uuid4(), endpoint)),
        ("k" * 32, (tenant, uuid.uuid4())),
        ("j" * 32, (tenant, endpoint)),
    ):
        with pytest.raises(WebhookSecretUnreadableError):
            endpoint_secrets.open_sealed(key, *where, sealed)
