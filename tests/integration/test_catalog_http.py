"""Products, variants and SKU search over HTTP."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient
from sqlalchemy import event, select

from ordersmith.platform.database import Database
from ordersmith.platform.models import OutboxEvent
from ordersmith.tenants.catalog import service
from ordersmith.tenants.catalog.rules import MAX_VARIANTS_PER_PRODUCT
from tests.support.http import bearer, sign_up
from tests.support.members import add_member


async def owner_headers(client: AsyncTestClient[Litestar]) -> dict[str, str]:
    return bearer((await sign_up(client))["token"]["access_token"])


async def create_product(
    client: AsyncTestClient[Litestar], headers: dict[str, str], **body: Any
) -> dict[str, Any]:
    response = await client.post("/api/v1/products", json=body, headers=headers)
    assert response.status_code == 201, response.text
    product: dict[str, Any] = response.json()
    return product


TSHIRT = {
    "name": "Trail T-shirt",
    "description": "Merino",
    "attributes": {"material": "merino"},
    "variants": [
        {
            "sku_code": "TS-RED-M",
            "name": "Red, M",
            "price_amount": 2999,
            "currency": "EUR",
            "weight_grams": 180,
            "barcode": "4006381333931",
            "attributes": {"color": "red", "size": "M"},
        },
        {"sku_code": "TS-BLUE-L", "name": "Blue, L", "price_amount": 3199},
    ],
}


async def test_a_product_is_created_with_its_variants_and_announced(
    client: AsyncTestClient[Litestar], database: Database
) -> None:
    headers = await owner_headers(client)
    product = await create_product(client, headers, **TSHIRT)

    assert product["name"] == "Trail T-shirt"
    assert product["description"] == "Merino"
    assert product["is_active"] is True
    assert product["attributes"] == {"material": "merino"}
    red, blue = product["variants"]
    assert {key: red[key] for key in ("sku_code", "name", "price_amount", "currency", "weight_grams")} == {
        "sku_code": "TS-RED-M",
        "name": "Red, M",
        "price_amount": 2999,
        "currency": "EUR",
        "weight_grams": 180,
    }
    assert red["barcode"] == "4006381333931"
    assert red["attributes"] == {"color": "red", "size": "M"}
    assert red["product_id"] == product["id"]
    # No currency given: the store's default (EUR for a new store).
    assert (blue["currency"], blue["barcode"], blue["weight_grams"], blue["is_active"]) == (
        "EUR",
        None,
        None,
        True,
    )

    read = await client.get(f"/api/v1/products/{product['id']}", headers=headers)
    assert read.status_code == 200
    assert read.json() == product

    async with database.platform_session() as session:
        payload = await session.scalar(
            select(OutboxEvent.payload).where(
                OutboxEvent.topic == "product.created",
                OutboxEvent.payload["product_id"].astext == product["id"],
            )
        )
    assert payload is not None
    assert payload["name"] == "Trail T-shirt"
    assert [variant["sku_code"] for variant in payload["variants"]] == ["TS-RED-M", "TS-BLUE-L"]


async def test_sku_codes_are_unique_per_store_ignoring_case(client: AsyncTestClient[Litestar]) -> None:
    headers = await owner_headers(client)
    product = await create_product(client, headers, **TSHIRT)

    taken = await client.post(
        f"/api/v1/products/{product['id']}/variants",
        json={"sku_code": "ts-red-m", "name": "Again", "price_amount": 1},
        headers=headers,
    )
    assert taken.status_code == 409
    assert taken.json()["code"] == "sku_code_taken"
    assert "'TS-RED-M' is already used" in taken.json()["detail"]

    blue_id = product["variants"][1]["id"]
    renamed = await client.patch(
        f"/api/v1/variants/{blue_id}", json={"sku_code": "Ts-Red-M"}, headers=headers
    )
    assert (renamed.status_code, renamed.json()["code"]) == (409, "sku_code_taken")

    # Another store may use the same code.
    other = await create_product(client, await owner_headers(client), **TSHIRT)
    assert other["variants"][0]["sku_code"] == "TS-RED-M"


async def test_a_product_with_several_taken_codes_names_every_one(client: AsyncTestClient[Litestar]) -> None:
    headers = await owner_headers(client)

    def cup(code: str) -> dict[str, Any]:
        return {"sku_code": code, "name": "Cup", "price_amount": 500, "currency": "EUR"}

    first = await create_product(client, headers, name="Cups", variants=[cup("CUP-2"), cup("CUP-3")])
    second = await client.post(
        "/api/v1/products",
        json={"name": "More cups", "variants": [cup("CUP-1"), cup("cup-3"), cup("cup-2")]},
        headers=headers,
    )
    assert second.status_code == 409, second.text
    # As the variants have them, in the order the request gave them; CUP-1 is free.
    assert (second.json()["code"], second.json()["detail"]) == (
        "sku_code_taken",
        "SKU codes 'CUP-3', 'CUP-2' are already used in this store (codes ignore case); choose other codes "
        "or change the existing variants, each found with GET /api/v1/skus?query=<code>",
    )
    listed = await client.get("/api/v1/products", headers=headers)
    assert [product["id"] for product in listed.json()["data"]] == [first["id"]]


async def test_a_code_repeated_within_one_request_names_the_variant_that_repeats_it(
    client: AsyncTestClient[Litestar],
) -> None:
    headers = await owner_headers(client)
    response = await client.post(
        "/api/v1/products",
        json={
            "name": "Socks",
            "variants": [
                {"sku_code": "SOCK-1", "name": "A", "price_amount": 1},
                {"sku_code": "SOCK-2", "name": "B", "price_amount": 1},
                {"sku_code": "sock-1", "name": "C", "price_amount": 1},
                {"sku_code": "Sock-2", "name": "D", "price_amount": 1},
                {"sku_code": "SOCK-1", "name": "E", "price_amount": 1},
            ],
        },
        headers=headers,
    )
    # Neither code is in the store: a 409 pointing at GET /api/v1/skus would send the user
    # looking for a variant that does not exist.
    assert response.status_code == 422, response.text
    assert (response.json()["code"], response.json()["errors"]) == (
        "validation_failed",
        [
            {
                "field": "variants[2].sku_code",
                "message": "repeats variants[0].sku_code (codes are unique ignoring case)",
            },
            {
                "field": "variants[3].sku_code",
                "message": "repeats variants[1].sku_code (codes are unique ignoring case)",
            },
            {
                "field": "variants[4].sku_code",
                "message": "repeats variants[0].sku_code (codes are unique ignoring case)",
            },
        ],
    )
    assert (await client.get("/api/v1/products", headers=headers)).json()["data"] == []


async def test_variants_are_added_and_changed(client: AsyncTestClient[Litestar], database: Database) -> None:
    headers = await owner_headers(client)
    product = await create_product(client, headers, name="Mug")

    added = await client.post(
        f"/api/v1/products/{product['id']}/variants",
        json={
            "sku_code": "MUG-W",
            "name": "White",
            "price_amount": 1200,
            "currency": "USD",
            "barcode": "123",
        },
        headers=headers,
    )
    assert added.status_code == 201, added.text
    variant = added.json()
    assert (variant["sku_code"], variant["price_amount"], variant["currency"]) == ("MUG-W", 1200, "USD")

    changed = await client.patch(
        f"/api/v1/variants/{variant['id']}",
        json={"price_amount": 1500, "barcode": None, "is_active": False, "name": "  Snow white  "},
        headers=headers,
    )
    assert changed.status_code == 200, changed.text
    body = changed.json()
    assert (body["price_amount"], body["barcode"], body["is_active"], body["name"]) == (
        1500,
        None,
        False,
        "Snow white",
    )
    assert body["currency"] == "USD"

    renamed = await client.patch(
        f"/api/v1/products/{product['id']}", json={"name": "Big mug", "is_active": False}, headers=headers
    )
    assert renamed.status_code == 200
    assert (renamed.json()["name"], renamed.json()["is_active"]) == ("Big mug", False)
    assert [item["price_amount"] for item in renamed.json()["variants"]] == [1500]

    async with database.platform_session() as session:
        updated = await session.scalar(
            select(OutboxEvent.payload).where(
                OutboxEvent.topic == "variant.updated",
                OutboxEvent.payload["variant_id"].astext == variant["id"],
            )
        )
    assert updated is not None
    assert updated["changed"] == ["barcode", "is_active", "name", "price_amount"]
    assert updated["price_amount"] == 1500


@pytest.mark.parametrize(
    ("price", "message"),
    [
        (19.99, "must be a whole number, not a number with a fraction part (such as 1.0)"),
        (-1, "must be from 0 to 9007199254740992 minor units"),
        (2**53 + 1, "must be from 0 to 9007199254740992 minor units"),
    ],
)
async def test_a_price_must_be_whole_minor_units_in_range(
    client: AsyncTestClient[Litestar], price: float, message: str
) -> None:
    headers = await owner_headers(client)
    product = await create_product(client, headers, name="Mug")
    response = await client.post(
        f"/api/v1/products/{product['id']}/variants",
        json={"sku_code": "MUG-1", "name": "Mug", "price_amount": price},
        headers=headers,
    )
    assert response.status_code == 422, response.text
    assert response.json()["code"] == "validation_failed"
    assert response.json()["errors"] == [{"field": "price_amount", "message": message}]


async def test_bad_input_names_every_field(client: AsyncTestClient[Litestar]) -> None:
    headers = await owner_headers(client)
    response = await client.post(
        "/api/v1/products",
        json={
            "name": " ",
            "variants": [
                {
                    "sku_code": "has space",
                    "name": "ok",
                    "price_amount": 1,
                    "currency": "eur",
                    "weight_grams": -5,
                }
            ],
        },
        headers=headers,
    )
    assert response.status_code == 422
    assert response.json()["errors"] == [
        {"field": "name", "message": "must not be empty"},
        {
            "field": "variants[0].sku_code",
            "message": (
                "must be 1 to 64 letters, digits, '.', '_', '/' or '-', starting with a letter or digit"
            ),
        },
        {
            "field": "variants[0].currency",
            "message": "must be the ISO 4217 code of a currency, such as EUR or USD",
        },
        {"field": "variants[0].weight_grams", "message": "must be a whole number of grams, 0 or more"},
    ]
    missing = await client.get("/api/v1/skus", headers=headers)
    assert missing.status_code == 422
    assert missing.json()["errors"] == [{"field": "query", "message": "this query parameter is required"}]


async def test_skus_are_found_by_code_prefix_barcode_prefix_or_name(
    client: AsyncTestClient[Litestar],
) -> None:
    headers = await owner_headers(client)
    await create_product(client, headers, **TSHIRT)
    await create_product(
        client,
        headers,
        name="Camp mug",
        variants=[
            {"sku_code": "MUG_100", "name": "Enamel", "price_amount": 900, "barcode": "5012345678900"},
            {"sku_code": "MUGX100", "name": "Steel", "price_amount": 900},
        ],
    )

    async def codes(query: str) -> list[str]:
        response = await client.get("/api/v1/skus", params={"query": query}, headers=headers)
        assert response.status_code == 200, response.text
        # Variants created together tie on created_at; compare them as a set, in order.
        return sorted(item["variant"]["sku_code"] for item in response.json()["data"])

    assert await codes("ts-") == ["TS-BLUE-L", "TS-RED-M"]
    assert await codes("red") == ["TS-RED-M"]  # name "Red, M", not a code prefix
    assert await codes("40063") == ["TS-RED-M"]
    assert await codes("333931") == []  # barcodes match from the start only
    assert await codes("shirt") == ["TS-BLUE-L", "TS-RED-M"]  # product name
    assert await codes("mug") == ["MUGX100", "MUG_100"]
    assert await codes("mug_") == ["MUG_100"]  # LIKE wildcards are taken literally
    assert await codes("%") == []
    assert await codes("enamel") == ["MUG_100"]

    first = await client.get("/api/v1/skus", params={"query": "ts", "limit": 1}, headers=headers)
    body = first.json()
    assert body["data"][0]["product_name"] == "Trail T-shirt"
    second = await client.get(
        "/api/v1/skus", params={"query": "ts", "limit": 1, "cursor": body["next_cursor"]}, headers=headers
    )
    paged = [body["data"][0]["variant"]["sku_code"], second.json()["data"][0]["variant"]["sku_code"]]
    assert sorted(paged) == ["TS-BLUE-L", "TS-RED-M"]
    assert second.json()["next_cursor"] is None


async def test_a_name_is_found_as_written_whatever_its_letters(client: AsyncTestClient[Litestar]) -> None:
    headers = await owner_headers(client)
    await create_product(
        client,
        headers,
        name="İstanbul Tee",
        variants=[{"sku_code": "IST-1", "name": "İstanbul Tee S", "price_amount": 1500}],
    )

    async def codes(query: str) -> list[str]:
        response = await client.get("/api/v1/skus", params={"query": query}, headers=headers)
        assert response.status_code == 200, response.text
        return [item["variant"]["sku_code"] for item in response.json()["data"]]

    # Python lower-cases "İ" to "i" and a combining dot, which PostgreSQL's ILIKE never
    # matched: the name as written found nothing.
    assert await codes("İstanbul") == ["IST-1"]
    assert await codes("İstanbul Tee") == ["IST-1"]
    assert await codes("İSTANBUL TEE S") == ["IST-1"]
    assert await codes("ist-") == ["IST-1"]


async def test_products_are_listed_newest_first_by_cursor(client: AsyncTestClient[Litestar]) -> None:
    headers = await owner_headers(client)
    names = [(await create_product(client, headers, name=f"Product {index}"))["name"] for index in range(3)]

    seen: list[str] = []
    cursor = None
    while True:
        params: dict[str, Any] = {"limit": 2} | ({"cursor": cursor} if cursor else {})
        page = (await client.get("/api/v1/products", params=params, headers=headers)).json()
        seen += [item["name"] for item in page["data"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == list(reversed(names))


async def test_a_viewer_reads_the_catalog_but_cannot_change_it(
    client: AsyncTestClient[Litestar], database: Database
) -> None:
    headers = await owner_headers(client)
    product = await create_product(client, headers, **TSHIRT)
    viewer = await add_member(client, database, headers, "viewer")
    variant_id = product["variants"][0]["id"]

    assert (await client.get(f"/api/v1/products/{product['id']}", headers=viewer.headers)).status_code == 200
    assert (await client.get("/api/v1/skus?query=ts", headers=viewer.headers)).status_code == 200
    for method, path, body in (
        ("POST", "/api/v1/products", {"name": "X"}),
        ("PATCH", f"/api/v1/products/{product['id']}", {"name": "X"}),
        (
            "POST",
            f"/api/v1/products/{product['id']}/variants",
            {"sku_code": "X", "name": "X", "price_amount": 1},
        ),
        ("PATCH", f"/api/v1/variants/{variant_id}", {"price_amount": 1}),
    ):
        response = await client.request(method, path, json=body, headers=viewer.headers)
        assert (response.status_code, response.json()["code"]) == (403, "permission_denied"), path
    unchanged = await client.get(f"/api/v1/products/{product['id']}", headers=headers)
    assert unchanged.json() == product


async def test_another_store_gets_404_for_this_stores_products_and_variants(
    client: AsyncTestClient[Litestar],
) -> None:
    product = await create_product(client, await owner_headers(client), **TSHIRT)
    variant_id = product["variants"][0]["id"]
    other = await owner_headers(client)

    for method, path, body in (
        ("GET", f"/api/v1/products/{product['id']}", None),
        ("PATCH", f"/api/v1/products/{product['id']}", {"name": "Stolen"}),
        (
            "POST",
            f"/api/v1/products/{product['id']}/variants",
            {"sku_code": "X", "name": "X", "price_amount": 1},
        ),
        ("GET", f"/api/v1/variants/{variant_id}", None),
        ("PATCH", f"/api/v1/variants/{variant_id}", {"price_amount": 1}),
    ):
        response = await client.request(method, path, json=body, headers=other)
        assert response.status_code == 404, (path, response.text)
        assert response.json()["code"] in {"product_not_found", "variant_not_found"}
    assert (await client.get("/api/v1/products", headers=other)).json() == {"data": [], "next_cursor": None}
    assert (await client.get("/api/v1/skus?query=ts", headers=other)).json() == {
        "data": [],
        "next_cursor": None,
    }
    malformed = await client.get("/api/v1/products/not-an-id", headers=other)
    assert (malformed.status_code, malformed.json()["code"]) == (404, "product_not_found")


@contextmanager
def statements(client: AsyncTestClient[Litestar]) -> Iterator[list[str]]:
    """The SQL the app runs inside the block, in order."""
    seen: list[str] = []

    def record(connection: Any, cursor: Any, statement: str, *context: Any) -> None:
        seen.append(statement)

    engine = client.app.state.database.runtime.sync_engine
    event.listen(engine, "before_cursor_execute", record)
    try:
        yield seen
    finally:
        event.remove(engine, "before_cursor_execute", record)


def numbered_variants(prefix: str, count: int) -> list[dict[str, Any]]:
    return [
        {"sku_code": f"{prefix}-{index}", "name": f"N{index}", "price_amount": 100} for index in range(count)
    ]


async def test_a_product_is_created_with_at_most_100_variants_and_the_store_read_once(
    client: AsyncTestClient[Litestar],
) -> None:
    headers = await owner_headers(client)
    too_many = await client.post(
        "/api/v1/products",
        json={"name": " ", "variants": numbered_variants("V", 101)},
        headers=headers,
    )
    assert too_many.status_code == 422, too_many.text
    assert too_many.json()["code"] == "validation_failed"
    assert too_many.json()["errors"] == [
        {"field": "name", "message": "must not be empty"},
        {
            "field": "variants",
            "message": "must hold at most 100 variants; create the product with the first 100, "
            "then add the others with POST /api/v1/products/{id}/variants",
        },
    ]
    assert (await client.get("/api/v1/skus", params={"query": "V-"}, headers=headers)).json()["data"] == []

    with statements(client) as seen:
        product = await create_product(client, headers, name="Bolts", variants=numbered_variants("V", 100))
    assert len(product["variants"]) == 100
    assert {variant["currency"] for variant in product["variants"]} == {"EUR"}
    # The store's default currency is read once for the request, not once per variant.
    assert len([statement for statement in seen if "store_settings" in statement]) == 1

    added = await client.post(
        f"/api/v1/products/{product['id']}/variants",
        json={"sku_code": "V-100", "name": "N100", "price_amount": 100},
        headers=headers,
    )
    assert (added.status_code, added.json()["sku_code"]) == (201, "V-100")


async def test_a_product_past_its_variant_limit_refuses_another(
    client: AsyncTestClient[Litestar], monkeypatch: pytest.MonkeyPatch
) -> None:
    assert MAX_VARIANTS_PER_PRODUCT == 1000
    # 1000 variants take 901 requests; a limit of 101 shows the same rule.
    monkeypatch.setattr(service, "MAX_VARIANTS_PER_PRODUCT", 101)
    headers = await owner_headers(client)
    product = await create_product(client, headers, name="Bolts", variants=numbered_variants("A", 100))

    async def add(code: str) -> Any:
        return await client.post(
            f"/api/v1/products/{product['id']}/variants",
            json={"sku_code": code, "name": "N", "price_amount": 1},
            headers=headers,
        )

    assert (await add("B-1")).status_code == 201
    refused = await add("B-2")
    assert refused.status_code == 409, refused.text
    assert (refused.json()["code"], refused.json()["detail"]) == (
        "variant_limit_reached",
        "this product already has the most variants a product can have (101); "
        "put further variants on another product, or change an existing variant",
    )
    read = await client.get(f"/api/v1/products/{product['id']}", headers=headers)
    assert len(read.json()["variants"]) == 101
    assert (await client.get("/api/v1/skus", params={"query": "B-2"}, headers=headers)).json()["data"] == []
