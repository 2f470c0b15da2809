"""A customer's addresses over HTTP: corrected and removed, reached only through their customer."""

from __future__ import annotations

import uuid

from litestar import Litestar
from litestar.testing import AsyncTestClient

from ordersmith.platform.database import Database
from tests.support.customers import ADDRESS, create_customer, customer_events, owner
from tests.support.orders import open_store

OFFICE = {
    "label": "Office",
    "recipient_name": "Ana Lima",
    "line1": "3 Quai Perrache",
    "city": "Lyon",
    "country_code": "FR",
}


async def test_an_address_is_corrected_then_removed(
    client: AsyncTestClient[Litestar], database: Database
) -> None:
    headers, _ = await owner(client)
    customer = await create_customer(client, headers, full_name="Ana", addresses=[ADDRESS, OFFICE])
    home, office = customer["addresses"]
    path = f"/api/v1/customers/{customer['id']}/addresses/{home['id']}"

    changed = await client.patch(
        path,
        json={"line1": " 14 Rue des Lilas ", "line2": "Bât. B", "postal_code": "69002", "label": None},
        headers=headers,
    )
    assert changed.status_code == 200, changed.text
    assert changed.json()["addresses"] == [
        {
            **home,
            "label": None,
            "line1": "14 Rue des Lilas",
            "line2": "Bât. B",
            "postal_code": "69002",
        },
        office,
    ]
    # Sending nothing changes nothing, as a customer's own PATCH does.
    same = await client.patch(path, json={}, headers=headers)
    assert (same.status_code, same.json()) == (200, changed.json())

    removed = await client.delete(path, headers=headers)
    assert (removed.status_code, removed.content) == (204, b"")
    read = await client.get(f"/api/v1/customers/{customer['id']}", headers=headers)
    assert read.json()["addresses"] == [office]
    again = await client.delete(path, headers=headers)
    assert (again.status_code, again.json()["code"]) == (404, "customer_address_not_found")
    gone = await client.patch(path, json={"city": "Paris"}, headers=headers)
    assert (gone.status_code, gone.json()["code"]) == (404, "customer_address_not_found")

    # Announced as adding an address is.
    assert await customer_events(database, customer["id"]) == [
        ("customer.created", {"customer_id": customer["id"], "email": None}),
        ("customer.updated", {"customer_id": customer["id"], "changed": ["addresses"]}),
        ("customer.updated", {"customer_id": customer["id"], "changed": ["addresses"]}),
    ]


async def test_an_address_change_is_checked_like_a_new_address(client: AsyncTestClient[Litestar]) -> None:
    headers, _ = await owner(client)
    customer = await create_customer(client, headers, full_name="Ana", addresses=[ADDRESS])
    (home,) = customer["addresses"]
    path = f"/api/v1/customers/{customer['id']}/addresses/{home['id']}"

    invalid = await client.patch(
        path,
        json={"recipient_name": "  ", "postal_code": "6" * 21, "country_code": "France", "label": ""},
        headers=headers,
    )
    assert invalid.status_code == 422
    assert invalid.json()["errors"] == [
        {"field": "label", "message": "must be 1 to 100 characters"},
        {"field": "recipient_name", "message": "must be 1 to 200 characters"},
        {"field": "postal_code", "message": "must be 1 to 20 characters"},
        {"field": "country_code", "message": "must be an ISO 3166 country code such as FR or US"},
    ]
    # A part every address has cannot be cleared.
    cleared = await client.patch(path, json={"city": None}, headers=headers)
    assert cleared.status_code == 422
    assert cleared.json()["errors"] == [{"field": "city", "message": "must be text, not null"}]
    unknown_part = await client.patch(path, json={"town": "Lyon"}, headers=headers)
    assert unknown_part.status_code == 422
    assert unknown_part.json()["errors"] == [
        {"field": "town", "message": "is not a field of this request; remove it"}
    ]
    assert (await client.get(f"/api/v1/customers/{customer['id']}", headers=headers)).json() == customer


async def test_an_address_is_reached_only_through_its_customer(client: AsyncTestClient[Litestar]) -> None:
    headers, _ = await owner(client)
    ana = await create_customer(client, headers, full_name="Ana", addresses=[ADDRESS])
    bo = await create_customer(client, headers, full_name="Bo", addresses=[OFFICE])
    anas_address = ana["addresses"][0]["id"]

    for address_id in (bo["addresses"][0]["id"], str(uuid.uuid4()), "not-an-id"):
        path = f"/api/v1/customers/{ana['id']}/addresses/{address_id}"
        for method, body in (("PATCH", {"city": "Paris"}), ("DELETE", None)):
            response = await client.request(method, path, json=body, headers=headers)
            problem = {key: value for key, value in response.json().items() if key != "request_id"}
            assert (response.status_code, problem) == (
                404,
                {
                    "type": "urn:ordersmith:problem:customer_address_not_found",
                    "title": "Customer address not found",
                    "status": 404,
                    "detail": "this customer has no such address; read the customer "
                    f"(GET /api/v1/customers/{ana['id']}) to see its addresses",
                    "code": "customer_address_not_found",
                },
            ), (method, address_id)
    unknown_customer = await client.delete(
        f"/api/v1/customers/{uuid.uuid4()}/addresses/{anas_address}", headers=headers
    )
    assert (unknown_customer.status_code, unknown_customer.json()["code"]) == (404, "customer_not_found")
    assert (await client.get(f"/api/v1/customers/{bo['id']}", headers=headers)).json() == bo
    assert (await client.get(f"/api/v1/customers/{ana['id']}", headers=headers)).json() == ana


async def test_a_merged_customers_address_is_changed_through_the_survivor(
    client: AsyncTestClient[Litestar],
) -> None:
    # A merged id answers for the survivor, which now holds the duplicate's addresses.
    headers, _ = await owner(client)
    survivor = await create_customer(client, headers, full_name="Ana")
    duplicate = await create_customer(client, headers, full_name="A.", addresses=[ADDRESS, OFFICE])
    home, office = duplicate["addresses"]
    merged = await client.post(
        f"/api/v1/customers/{survivor['id']}/merge", json={"duplicate_id": duplicate["id"]}, headers=headers
    )
    assert merged.status_code == 200, merged.text

    changed = await client.patch(
        f"/api/v1/customers/{duplicate['id']}/addresses/{home['id']}", json={"city": "Paris"}, headers=headers
    )
    assert changed.status_code == 200, changed.text
    assert (changed.json()["id"], changed.json()["addresses"]) == (
        survivor["id"],
        [{**home, "city": "Paris"}, office],
    )
    removed = await client.delete(
        f"/api/v1/customers/{duplicate['id']}/addresses/{office['id']}", headers=headers
    )
    assert removed.status_code == 204
    read = await client.get(f"/api/v1/customers/{survivor['id']}", headers=headers)
    assert read.json()["addresses"] == [{**home, "city": "Paris"}]


async def test_orders_keep_the_address_they_were_placed_with(client: AsyncTestClient[Litestar]) -> None:
    store = await open_store(client)
    await store.add_skus("MUG")
    await store.add_location("WH-1")
    await store.receive("MUG", "WH-1", 5)
    customer = await store.call("POST", f"/api/v1/customers/{store.customer_id}/addresses", 201, json=ADDRESS)
    (home,) = customer["addresses"]
    placed = await store.place(("MUG", 1), shipping_address=ADDRESS)
    assert placed["shipping_address"] == {**ADDRESS, "line2": None, "region": None}

    path = f"/api/v1/customers/{store.customer_id}/addresses/{home['id']}"
    await store.call("PATCH", path, 200, json={"line1": "1 Place Bellecour", "postal_code": "69002"})
    after_change = await store.call("GET", f"/api/v1/orders/{placed['id']}", 200)
    assert after_change["shipping_address"] == placed["shipping_address"]
    removed = await client.delete(path, headers=store.headers)
    assert removed.status_code == 204
    after_removal = await store.call("GET", f"/api/v1/orders/{placed['id']}", 200)
    assert after_removal == after_change
