"""An `Idempotency-Key` on the catalog, customer, stock and hold-release POSTs: a retry does it once.

A client that times out and retries with the same key and body gets the first answer back
(marked `Idempotent-Replayed: true`) and nothing is done twice; the same key with another
body is 409 `idempotency_key_reused` and does nothing.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient

from tests.support.order_actions import timeline_of
from tests.support.orders import ADDRESS, Store, two_sku_store


@pytest.fixture
async def store(client: AsyncTestClient[Litestar]) -> Store:
    """SKUs TEE-S and TEE-M in one product "Things", empty warehouses WH-1 and WH-2, customer Ana Lima."""
    return await two_sku_store(client, price=500)


async def sent_twice(store: Store, path: str, body: dict[str, Any], key: str, status: int) -> dict[str, Any]:
    """POST the same body twice under one key; the retry must replay the first answer exactly."""
    headers = {**store.headers, "Idempotency-Key": key}
    first = await store.client.post(path, json=body, headers=headers)
    assert first.status_code == status, first.text
    assert "Idempotent-Replayed" not in first.headers
    again = await store.client.post(path, json=body, headers=headers)
    assert (again.status_code, again.json(), again.headers.get("Idempotent-Replayed")) == (
        status,
        first.json(),
        "true",
    )
    answer: dict[str, Any] = first.json()
    return answer


async def refused_with_another_body(store: Store, path: str, body: dict[str, Any], key: str) -> None:
    problem = await store.call("POST", path, 409, json=body, headers={"Idempotency-Key": key})
    assert problem["code"] == "idempotency_key_reused"


async def _product_id(store: Store) -> str:
    [product] = (await store.call("GET", "/api/v1/products", 200))["data"]
    return str(product["id"])


async def test_a_receipt_retried_with_its_key_is_counted_once(store: Store) -> None:
    path = "/api/v1/inventory/adjustments"
    receipt = {
        "sku": "TEE-S",
        "location_id": store.locations["WH-1"],
        "kind": "receive",
        "quantity": 10,
        "reason": "PO 42",
    }
    adjustment = await sent_twice(store, path, receipt, "receipt-po-42", 201)
    assert (adjustment["kind"], adjustment["quantity"], adjustment["on_hand_after"]) == ("receive", 10, 10)

    await refused_with_another_body(store, path, {**receipt, "quantity": 11}, "receipt-po-42")

    stock = await store.stock("TEE-S")
    assert (stock["on_hand"], stock["available"]) == (10, 10)
    assert [(item["location_code"], item["on_hand"]) for item in stock["locations"]] == [("WH-1", 10)]
    ledger = await store.call("GET", path, 200, params={"sku": "TEE-S"})
    assert [(entry["id"], entry["kind"], entry["quantity"]) for entry in ledger["data"]] == [
        (adjustment["id"], "receive", 10)
    ]


async def test_without_a_key_a_retried_receipt_is_counted_twice(store: Store) -> None:
    """The key is what makes the retry safe: two plain POSTs are two receipts."""
    await store.receive("TEE-S", "WH-1", 10)
    await store.receive("TEE-S", "WH-1", 10)
    assert (await store.stock("TEE-S"))["on_hand"] == 20


@dataclass(frozen=True)
class Creation:
    """A creating POST, two different bodies for it, and what the store then holds of its kind."""

    path: str
    body: dict[str, Any]
    other_body: dict[str, Any]
    # Reads what the route creates, as names, so one created twice shows up twice.
    listed: Callable[[Store], Awaitable[list[str]]]
    # What `listed` must read after the retry and after the refused body.
    expected: list[str]


async def _location_codes(store: Store) -> list[str]:
    return [item["code"] for item in (await store.call("GET", "/api/v1/locations", 200))["data"]]


async def _product_names(store: Store) -> list[str]:
    return sorted(item["name"] for item in (await store.call("GET", "/api/v1/products", 200))["data"])


async def _sku_codes(store: Store) -> list[str]:
    product = await store.call("GET", f"/api/v1/products/{await _product_id(store)}", 200)
    return sorted(variant["sku_code"] for variant in product["variants"])


async def _customer_names(store: Store) -> list[str]:
    return sorted(item["full_name"] for item in (await store.call("GET", "/api/v1/customers", 200))["data"])


async def _address_lines(store: Store) -> list[str]:
    customer = await store.call("GET", f"/api/v1/customers/{store.customer_id}", 200)
    return [address["line1"] for address in customer["addresses"]]


async def _note_bodies(store: Store) -> list[str]:
    customer = await store.call("GET", f"/api/v1/customers/{store.customer_id}", 200)
    return [note["body"] for note in customer["notes"]]


CREATIONS = [
    pytest.param(
        Creation(
            "/api/v1/locations",
            {"code": "WH-3", "name": "Overflow", "kind": "warehouse"},
            {"code": "WH-3", "name": "Overflow", "kind": "store"},
            _location_codes,
            ["WH-1", "WH-2", "WH-3"],
        ),
        id="createLocation",
    ),
    pytest.param(
        Creation(
            "/api/v1/products",
            {"name": "Mugs", "variants": [{"sku_code": "MUG", "name": "Mug", "price_amount": 900}]},
            {"name": "Mugs", "variants": [{"sku_code": "MUG", "name": "Mug", "price_amount": 950}]},
            _product_names,
            ["Mugs", "Things"],
        ),
        id="createProduct",
    ),
    pytest.param(
        Creation(
            "/api/v1/products/{product_id}/variants",
            {"sku_code": "TEE-L", "name": "Tee L", "price_amount": 500},
            {"sku_code": "TEE-XL", "name": "Tee XL", "price_amount": 500},
            _sku_codes,
            ["TEE-L", "TEE-M", "TEE-S"],
        ),
        id="createVariant",
    ),
    pytest.param(
        Creation(
            "/api/v1/customers",
            {"full_name": "Bea Costa", "email": "bea@example.com", "note": "Met at the fair."},
            {"full_name": "Bea Costa", "email": "bea.costa@example.com"},
            _customer_names,
            ["Ana Lima", "Bea Costa"],
        ),
        id="createCustomer",
    ),
    pytest.param(
        Creation(
            "/api/v1/customers/{customer_id}/addresses",
            ADDRESS,
            {**ADDRESS, "line1": "14 Rue des Lilas"},
            _address_lines,
            ["12 Rue des Lilas"],
        ),
        id="createCustomerAddress",
    ),
    pytest.param(
        Creation(
            "/api/v1/customers/{customer_id}/notes",
            {"body": "Prefers delivery after 6pm."},
            {"body": "Prefers delivery before noon."},
            _note_bodies,
            ["Prefers delivery after 6pm."],
        ),
        id="createCustomerNote",
    ),
]


@pytest.mark.parametrize("creation", CREATIONS)
async def test_a_creation_retried_with_its_key_creates_one(store: Store, creation: Creation) -> None:
    path = creation.path.format(product_id=await _product_id(store), customer_id=store.customer_id)

    await sent_twice(store, path, creation.body, "create-1", 201)
    assert await creation.listed(store) == creation.expected

    await refused_with_another_body(store, path, creation.other_body, "create-1")
    assert await creation.listed(store) == creation.expected


async def test_a_merge_retried_with_its_key_answers_the_merged_customer(store: Store) -> None:
    duplicate = await store.call("POST", "/api/v1/customers", 201, json={"full_name": "A. Lima"})
    other = await store.call("POST", "/api/v1/customers", 201, json={"full_name": "Ana L."})
    path = f"/api/v1/customers/{store.customer_id}/merge"

    merged = await sent_twice(store, path, {"duplicate_id": duplicate["id"]}, "merge-1", 200)
    assert (merged["id"], merged["merged_ids"]) == (store.customer_id, [duplicate["id"]])
    assert [note["body"] for note in merged["notes"]] == [
        f"Merged customer A. Lima ({duplicate['id']}) into this customer."
    ]

    await refused_with_another_body(store, path, {"duplicate_id": other["id"]}, "merge-1")
    assert await store.call("GET", f"/api/v1/customers/{store.customer_id}", 200) == merged
    unmerged = await store.call("GET", f"/api/v1/customers/{other['id']}", 200)
    assert (unmerged["id"], unmerged["merged_ids"]) == (other["id"], [])


async def test_a_hold_release_retried_with_its_key_answers_the_release(store: Store) -> None:
    await store.receive("TEE-S", "WH-1", 5)
    order = await store.place(("TEE-S", 1), hold={"type": "manual", "reason": "check the address"})
    path = f"/api/v1/orders/{order['id']}/holds/{order['holds'][0]['id']}/release"

    released = await sent_twice(store, path, {"note": "address checked"}, "release-1", 200)
    assert released["hold"]["release_note"] == "address checked"
    assert (released["order"]["status"], released["order"]["open_hold_count"]) == ("confirmed", 0)

    await refused_with_another_body(store, path, {"note": "called the customer"}, "release-1")
    assert await store.call("GET", f"/api/v1/orders/{order['id']}", 200) == released["order"]
    kinds = [entry["kind"] for entry in await timeline_of(store, order["id"])]
    assert sorted(kinds) == ["confirmed", "hold_placed", "hold_released", "placed"]


async def test_a_hold_release_without_a_body_is_replayed_too(store: Store) -> None:
    await store.receive("TEE-S", "WH-1", 5)
    order = await store.place(("TEE-S", 1), hold={"type": "manual", "reason": "check the address"})
    path = f"/api/v1/orders/{order['id']}/holds/{order['holds'][0]['id']}/release"
    headers = {**store.headers, "Idempotency-Key": "release-2"}

    first = await store.client.post(path, headers=headers)
    assert first.status_code == 200, first.text
    # No body and an empty one are the same request.
    again = await store.client.post(path, json={}, headers=headers)
    assert (again.status_code, again.json(), again.headers.get("Idempotent-Replayed")) == (
        200,
        first.json(),
        "true",
    )
    assert first.json()["hold"]["release_note"] is None


async def test_placing_a_draft_retried_with_its_key_answers_the_placed_order(store: Store) -> None:
    await store.receive("TEE-S", "WH-1", 5)
    draft = await store.place(("TEE-S", 2), draft=True)
    path = f"/api/v1/orders/{draft['id']}/place"

    placed = await sent_twice(store, path, {}, "place-1", 200)
    assert (placed["status"], [item["quantity"] for item in placed["reservations"]]) == ("confirmed", [2])
    # Placed once: the stock holds its two units, not four.
    stock = await store.stock("TEE-S")
    assert (stock["on_hand"], stock["reserved"]) == (5, 2)
    # Without the key the retry is what it always was: the order is no draft any more.
    problem = await store.call("POST", path, 409)
    assert problem["code"] == "invalid_transition"


async def test_releasing_every_hold_retried_with_its_key_answers_the_release(store: Store) -> None:
    await store.receive("TEE-S", "WH-1", 5)
    order = await store.place(("TEE-S", 1), hold={"type": "manual", "reason": "check the address"})
    path = f"/api/v1/orders/{order['id']}/release"

    released = await sent_twice(store, path, {"note": "all clear"}, "release-all-1", 200)
    assert (released["status"], released["open_hold_count"]) == ("confirmed", 0)
    await refused_with_another_body(store, path, {"note": "other"}, "release-all-1")
    kinds = [entry["kind"] for entry in await timeline_of(store, order["id"])]
    assert kinds.count("hold_released") == 1
