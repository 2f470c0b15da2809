"""Refunds racing over real HTTP never give back more than was captured."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient

from ordersmith.app import create_app
from ordersmith.platform.database import Database
from ordersmith.platform.settings import Settings
from tests.support.concurrency import ConnectionPeak, post_all, serve
from tests.support.fake_stripe import FakeStripe, serve_fake_stripe
from tests.support.payments import pay, payment_store, payments_of, stripe_at


@pytest.fixture
def fake(settings: Settings) -> Iterator[FakeStripe]:
    with serve_fake_stripe() as fake, stripe_at(fake, settings.secret_key):
        answer = fake.handle

        def slow_refunds(method: str, path: str, *args: Any) -> tuple[int, dict[str, Any]]:
            # Stripe takes a while: the racing requests pile up behind the first one's lock.
            if path == "/v1/refunds":
                time.sleep(0.2)
            return answer(method, path, *args)

        fake.handle = slow_refunds  # type: ignore[method-assign,assignment]
        yield fake


@pytest.mark.parametrize(
    ("provider", "requests", "amount", "granted"), [("stripe", 2, 3000, 1), ("manual", 8, 1000, 5)]
)
async def test_racing_refunds_never_exceed_what_was_captured(
    client: AsyncTestClient[Litestar],
    fake: FakeStripe,
    settings: Settings,
    database_url: str,
    provider: str,
    requests: int,
    amount: int,
    granted: int,
) -> None:
    store = await payment_store(client, providers=("manual", "stripe"))
    order = await store.place(("TEE-S", 2))  # 50.00 EUR
    method = "pm_card_visa" if provider == "stripe" else "cash"
    taken = await pay(store, order["id"], provider=provider, method=method)
    assert taken["payment"]["captured_amount"] == 5000
    path = f"/api/v1/payments/{taken['payment']['id']}/refunds"

    database = Database(settings.database, database_url)
    peak = ConnectionPeak()
    peak.watch(database)
    try:
        app = create_app(settings, database=database)
        # Building an app points payments at the configured Stripe; point them back at the fake.
        with stripe_at(fake, settings.secret_key):
            async with serve(app) as base_url:
                responses = await post_all(base_url, path, store.headers, [{"amount": amount}] * requests)
    finally:
        await database.dispose()
    assert peak.peak >= 2, "the refunds never ran at the same time"

    codes = sorted(response.status_code for response in responses)
    assert codes == [201] * granted + [422] * (requests - granted)
    refused = [response.json() for response in responses if response.status_code == 422]
    assert {(problem["code"], problem["refundable_amount"]) for problem in refused} == {
        ("refund_exceeds_captured", 5000 - granted * amount)
    }
    summary = await payments_of(store, order["id"])
    assert (summary["refunded_amount"], summary["refundable_amount"]) == (
        granted * amount,
        5000 - granted * amount,
    )
    if provider == "stripe":
        assert sum(refund["amount"] for refund in fake.objects["refund"].values()) == granted * amount
