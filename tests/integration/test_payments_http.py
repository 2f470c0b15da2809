"""Payment routes: settings with sealed secrets, and another store's objects answering 404 everywhere."""

from __future__ import annotations

import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient
from sqlalchemy import select

from ordersmith.platform.database import Database
from ordersmith.platform.settings import Settings
from ordersmith.tenants.payments import credentials
from ordersmith.tenants.payments.errors import ProviderSecretUnreadableError
from ordersmith.tenants.payments.models import PaymentSettings
from tests.support.fake_stripe import SECRET_KEY, FakeStripe
from tests.support.order_actions import api_key_headers, tenant_context
from tests.support.orders import open_store
from tests.support.payments import WEBHOOK_SECRET, pay, payment_store


async def test_payment_settings_keep_secrets_sealed_and_never_show_them(
    client: AsyncTestClient[Litestar], database: Database, settings: Settings
) -> None:
    store = await open_store(client)
    defaults = await store.call("GET", "/api/v1/payment-settings", 200)
    assert defaults == {
        "enabled_providers": ["manual"],
        "capture_policy": "at_placement",
        "has_stripe_secret_key": False,
        "stripe_secret_key_hint": None,
        "has_stripe_webhook_secret": False,
        "stripe_webhook_path": f"/api/v1/payments/stripe/webhook/{store.slug}",
        "updated_at": None,
    }
    refused = await store.call(
        "PUT",
        "/api/v1/payment-settings",
        422,
        json={
            "enabled_providers": ["stripe", "paypal"],
            "capture_policy": "never",
            "stripe_webhook_secret": "x",
        },
    )
    assert sorted(item["field"] for item in refused["errors"]) == [
        "capture_policy",
        "enabled_providers",
        "stripe_secret_key",
        "stripe_webhook_secret",
    ]
    saved = await store.call(
        "PUT",
        "/api/v1/payment-settings",
        200,
        json={
            "enabled_providers": ["stripe", "manual"],
            "capture_policy": "at_shipment",
            "stripe_secret_key": SECRET_KEY,
            "stripe_webhook_secret": WEBHOOK_SECRET,
        },
    )
    assert {key: saved[key] for key in saved if key != "updated_at"} == {
        "enabled_providers": ["manual", "stripe"],
        "capture_policy": "at_shipment",
        "has_stripe_secret_key": True,
        "stripe_secret_key_hint": "sk_test_…cdef",
        "has_stripe_webhook_secret": True,
        "stripe_webhook_path": f"/api/v1/payments/stripe/webhook/{store.slug}",
    }
    # Changing one field keeps the stored secrets.
    kept = await store.call("PUT", "/api/v1/payment-settings", 200, json={"capture_policy": "at_placement"})
    assert (kept["capture_policy"], kept["has_stripe_secret_key"]) == ("at_placement", True)

    tenant = await tenant_context(database, store)
    async with database.tenant_session(tenant) as session:
        row = (await session.scalars(select(PaymentSettings))).one()
    assert row.stripe_secret_key_sealed is not None
    assert SECRET_KEY.encode() not in row.stripe_secret_key_sealed
    assert (
        credentials.open_sealed(
            settings.secret_key, tenant.tenant_id, "stripe_secret_key", row.stripe_secret_key_sealed
        )
        == SECRET_KEY
    )
    # Bound to its field: the key's ciphertext does not open as the webhook secret.
    with pytest.raises(ProviderSecretUnreadableError):
        credentials.open_sealed(
            settings.secret_key, tenant.tenant_id, "stripe_webhook_secret", row.stripe_secret_key_sealed
        )

    reader = await api_key_headers(store, ["settings.read"])
    refused = await store.call(
        "PUT", "/api/v1/payment-settings", 403, json={"capture_policy": "at_shipment"}, headers=reader
    )
    assert refused["code"] == "permission_denied"


async def test_another_stores_payments_are_404_on_every_route(
    client: AsyncTestClient[Litestar], fake: FakeStripe
) -> None:
    mine = await payment_store(client, providers=("manual", "stripe"), capture_policy="at_shipment")
    order = await mine.place(("TEE-S", 2))
    taken = await pay(mine, order["id"], provider="stripe", method="pm_card_visa")
    payment_id = taken["payment"]["id"]
    other = await payment_store(client, providers=("manual", "stripe"))

    order_routes: list[tuple[str, str, dict[str, object] | None]] = [
        ("GET", f"/api/v1/orders/{order['id']}/payments", None)
    ]
    order_routes.append(
        ("POST", f"/api/v1/orders/{order['id']}/payments", {"provider": "manual", "amount": 100})
    )
    for method, path, body in order_routes:
        assert (await other.call(method, path, 404, json=body))["code"] == "order_not_found"
    payment_routes = [
        ("GET", f"/api/v1/payments/{payment_id}", None),
        ("POST", f"/api/v1/payments/{payment_id}/capture", {"amount": 100}),
        ("POST", f"/api/v1/payments/{payment_id}/void", None),
        ("POST", f"/api/v1/payments/{payment_id}/refunds", {"amount": 100}),
        ("POST", f"/api/v1/payments/{payment_id}/retry", None),
        ("GET", "/api/v1/payments/not-a-uuid", None),
    ]
    for method, path, payment_body in payment_routes:
        assert (await other.call(method, path, 404, json=payment_body))["code"] == "payment_not_found", path
    unchanged = await mine.call("GET", f"/api/v1/payments/{payment_id}", 200)
    assert unchanged == taken["payment"]
