"""Bad request input is a 422 naming the field and saying what to do, never a 500 or a bare 400."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient
from litestar.types import Message, Receive, ReceiveMessage, Scope, Send

from ordersmith.api.nul_characters import NulCharacterMiddleware
from ordersmith.platform.errors import FieldError, ValidationFailedError
from tests.support.orders import ADDRESS, Store, open_store

PROBLEM = "application/problem+json"
NUL = "must not contain the NUL character (\\u0000); remove it"


def assert_invalid(response: httpx.Response, errors: list[dict[str, str]]) -> None:
    """The response is the 422 problem document listing exactly `errors`."""
    assert (response.status_code, response.headers["content-type"]) == (422, PROBLEM), response.text
    assert response.json() == {
        "type": "urn:ordersmith:problem:validation_failed",
        "title": "Validation failed",
        "status": 422,
        "detail": "some fields are invalid; see errors",
        "code": "validation_failed",
        "errors": errors,
        "request_id": response.headers["x-request-id"],
    }


@pytest.fixture
async def store(client: AsyncTestClient[Litestar]) -> Store:
    store = await open_store(client)
    await store.add_skus("TEE-S")
    await store.add_location("WH-1")
    await store.receive("TEE-S", "WH-1", 5)
    return store


async def post(store: Store, path: str, body: Any) -> httpx.Response:
    """POST `body`: JSON text as written (a `\\u0000` escape stays one), or a value httpx encodes."""
    if isinstance(body, str):
        return await store.client.post(path, content=body, headers=store.headers)
    return await store.client.post(path, json=body, headers=store.headers)


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ("/api/v1/orders?tag=%00", "tag"),
        ("/api/v1/orders?status=confirmed&tag=a%00b", "tag"),
        ("/api/v1/skus?query=a%00", "query"),
        ("/api/v1/customers?email=a%00%40x.com", "email"),
        ("/api/v1/inventory?sku=a%00", "sku"),
    ],
)
async def test_a_nul_in_a_query_parameter_is_a_422_naming_it(store: Store, query: str, field: str) -> None:
    response = await store.client.get(query, headers=store.headers)
    assert_invalid(response, [{"field": field, "message": NUL}])


async def test_every_query_parameter_holding_a_nul_is_named_once(store: Store) -> None:
    response = await store.client.get("/api/v1/orders?tag=%00&tag=b%00&channel=w%00", headers=store.headers)
    assert_invalid(response, [{"field": "tag", "message": NUL}, {"field": "channel", "message": NUL}])


async def test_a_nul_in_a_path_parameter_is_a_422_naming_it(store: Store) -> None:
    response = await store.client.get("/api/v1/customers/a%00b", headers=store.headers)
    assert_invalid(response, [{"field": "customer_id", "message": NUL}])


async def test_a_nul_in_body_strings_and_keys_is_a_422_naming_each_path(store: Store) -> None:
    body = (
        '{"name": "Mug\\u0000", "attributes": {"size": "L", "colo\\u0000r": "red", "note": "a\\u0000"},'
        ' "variants": [{"sku_code": "MUG-1", "name": "Mug", "price_amount": 100, "currency": "EUR",'
        ' "barcode": "\\u0000"}]}'
    )
    response = await post(store, "/api/v1/products", body)
    assert_invalid(
        response,
        [
            {"field": "name", "message": NUL},
            {"field": "attributes.colo\\u0000r", "message": NUL},
            {"field": "attributes.note", "message": NUL},
            {"field": "variants[0].barcode", "message": NUL},
        ],
    )


async def test_a_nul_in_an_order_is_a_422_naming_the_line_and_the_address_field(store: Store) -> None:
    body = store.order_body(("TEE-S", 1), ("TEE-S\x00", 1))
    body["shipping_address"] = {**ADDRESS, "line1": "12 Rue\x00"}
    response = await post(store, "/api/v1/orders", body)
    assert_invalid(
        response,
        [{"field": "lines[1].sku", "message": NUL}, {"field": "shipping_address.line1", "message": NUL}],
    )
    assert (await store.stock("TEE-S"))["reserved"] == 0


async def test_a_nul_in_reasons_is_a_422_and_changes_nothing(store: Store) -> None:
    order = await store.place(("TEE-S", 1))
    hold = await post(store, f"/api/v1/orders/{order['id']}/hold", {"type": "manual", "reason": "why\x00"})
    cancel = await post(store, f"/api/v1/orders/{order['id']}/cancel", {"reason": "\x00"})
    adjustment = await post(
        store,
        "/api/v1/inventory/adjustments",
        {
            "sku": "TEE-S",
            "location_id": store.locations["WH-1"],
            "kind": "receive",
            "quantity": 1,
            "reason": "\x00",
        },
    )
    for response in (hold, cancel, adjustment):
        assert_invalid(response, [{"field": "reason", "message": NUL}])
    assert (await store.call("GET", f"/api/v1/orders/{order['id']}", 200))["status"] == "confirmed"
    assert (await store.stock("TEE-S"))["on_hand"] == 5


async def test_a_nul_in_a_customer_field_is_a_422(store: Store) -> None:
    response = await post(store, "/api/v1/customers", {"full_name": "Ana", "email": "a\x00@example.com"})
    assert_invalid(response, [{"field": "email", "message": NUL}])


async def test_an_escaped_backslash_before_u0000_is_plain_text(store: Store) -> None:
    body = await store.call("POST", "/api/v1/customers", 201, content='{"full_name": "Ana \\\\u0000 Lima"}')
    assert body["full_name"] == "Ana \\u0000 Lima"


@pytest.mark.parametrize("chunk_size", [1, 3, 5, 6, 7, 1000])
async def test_a_nul_escape_split_across_body_chunks_is_found(chunk_size: int) -> None:
    body = b'{"full_name": "Ana", "note": "a\\u0000"}'
    chunks = [body[start : start + chunk_size] for start in range(0, len(body), chunk_size)]
    messages: list[ReceiveMessage] = [
        {"type": "http.request", "body": chunk, "more_body": index < len(chunks) - 1}
        for index, chunk in enumerate(chunks)
    ]

    async def receive() -> ReceiveMessage:
        return messages.pop(0)

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        while (await receive()).get("more_body"):
            pass

    scope = {
        "type": "http",
        "method": "POST",
        "path": "/api/v1/customers",
        "query_string": b"",
        "path_params": {},
    }
    with pytest.raises(ValidationFailedError) as raised:
        await NulCharacterMiddleware(app)(scope, receive, send_nothing)  # type: ignore[arg-type]
    assert raised.value.errors == [FieldError("note", NUL)]
    assert messages == []


async def send_nothing(message: Message) -> None:
    raise AssertionError("nothing is sent: the error handler answers")


async def test_a_missing_body_field_is_named_and_required(store: Store) -> None:
    response = await post(store, "/api/v1/customers", {"email": "ana@example.com"})
    assert_invalid(response, [{"field": "full_name", "message": "is required"}])


async def test_an_unknown_body_field_is_named_to_be_removed(store: Store) -> None:
    response = await post(store, "/api/v1/customers", {"full_name": "Ana", "fullname": "Ana"})
    assert_invalid(response, [{"field": "fullname", "message": "is not a field of this request; remove it"}])


async def test_nested_fields_are_named_by_their_path(store: Store) -> None:
    missing = store.order_body(("TEE-S", 1))
    del missing["lines"][0]["quantity"]
    unknown = store.order_body(("TEE-S", 1), ("TEE-S", 1))
    unknown["lines"][1]["qty"] = 1
    address = store.order_body(("TEE-S", 1))
    address["shipping_address"] = {key: value for key, value in ADDRESS.items() if key != "city"}

    assert_invalid(
        await post(store, "/api/v1/orders", missing),
        [{"field": "lines[0].quantity", "message": "is required"}],
    )
    assert_invalid(
        await post(store, "/api/v1/orders", unknown),
        [{"field": "lines[1].qty", "message": "is not a field of this request; remove it"}],
    )
    assert_invalid(
        await post(store, "/api/v1/orders", address),
        [{"field": "shipping_address.city", "message": "is required"}],
    )


@pytest.mark.parametrize("body", ["", "null", "[]", '"Ana"'])
async def test_a_body_that_is_not_an_object_is_refused_as_such(store: Store, body: str) -> None:
    response = await post(store, "/api/v1/customers", body)
    assert_invalid(response, [{"field": "body", "message": "send a JSON object body"}])


async def test_an_optional_body_may_be_left_out(store: Store) -> None:
    order = await store.place(("TEE-S", 1), hold={"type": "manual", "reason": "check"})
    released = await store.call("POST", f"/api/v1/orders/{order['id']}/release", 200)
    assert released["status"] == "confirmed"


async def test_json_that_does_not_parse_is_a_400_saying_so(store: Store) -> None:
    response = await post(store, "/api/v1/customers", '{"full_name": "Ana"')
    assert (response.status_code, response.json()["code"]) == (400, "bad_request")


@pytest.mark.parametrize(
    ("line", "field", "message"),
    [
        ({"sku": "TEE-S", "quantity": "1"}, "lines[0].quantity", "must be a whole number, not text"),
        (
            {"sku": "TEE-S", "quantity": 1.0},
            "lines[0].quantity",
            "must be a whole number, not a number with a fraction part (such as 1.0)",
        ),
        ({"sku": "TEE-S", "quantity": "1e0"}, "lines[0].quantity", "must be a whole number, not text"),
        (
            {"sku": "TEE-S", "quantity": True},
            "lines[0].quantity",
            "must be a whole number, not true or false",
        ),
        ({"sku": 7, "quantity": 1}, "lines[0].sku", "must be text, not a whole number"),
        (
            {"sku": "TEE-S", "quantity": 1, "unit_price_amount": "5"},
            "lines[0].unit_price_amount",
            "must be a whole number or null, not text",
        ),
    ],
)
async def test_a_body_value_of_the_wrong_json_type_is_refused_not_coerced(
    store: Store, line: dict[str, Any], field: str, message: str
) -> None:
    body = {**store.order_body(), "lines": [line]}
    assert_invalid(await post(store, "/api/v1/orders", body), [{"field": field, "message": message}])
    assert (await store.call("GET", "/api/v1/orders", 200))["data"] == []


async def test_a_draft_flag_sent_as_text_makes_no_draft(store: Store) -> None:
    response = await post(store, "/api/v1/orders", store.order_body(("TEE-S", 1), draft="true"))
    assert_invalid(response, [{"field": "draft", "message": "must be true or false, not text"}])
    assert (await store.call("GET", "/api/v1/orders", 200))["data"] == []


async def test_query_parameters_are_still_read_from_text(store: Store) -> None:
    order = await store.place(("TEE-S", 1), hold={"type": "manual", "reason": "check"})
    listed = await store.call(
        "GET",
        "/api/v1/orders",
        200,
        params={"limit": "5", "has_open_hold": "true", "created_after": "2020-01-01T00:00:00Z"},
    )
    assert [item["id"] for item in listed["data"]] == [order["id"]]
    bad = await store.client.get("/api/v1/orders", params={"limit": "five"}, headers=store.headers)
    assert_invalid(bad, [{"field": "limit", "message": "must be a whole number"}])


@pytest.mark.parametrize(
    ("params", "field", "message"),
    [
        (
            {"created_after": "2026-11-27"},
            "created_after",
            "must be a date and time with a time zone, such as 2026-11-27T00:00:00Z",
        ),
        (
            {"created_before": "yesterday"},
            "created_before",
            "must be a date and time with a time zone, such as 2026-11-27T00:00:00Z",
        ),
        (
            {"customer_id": "abc"},
            "customer_id",
            "must be an id (a UUID, such as 01a229e9-4795-76f1-a555-0290d1c66e72)",
        ),
        # Left out is how a parameter says null: only true and false are offered.
        ({"has_open_hold": "maybe"}, "has_open_hold", "must be true or false"),
    ],
)
async def test_a_query_parameter_in_the_wrong_format_says_what_it_reads(
    store: Store, params: dict[str, str], field: str, message: str
) -> None:
    response = await store.client.get("/api/v1/orders", params=params, headers=store.headers)
    assert_invalid(response, [{"field": field, "message": message}])


ORDER_FILTERS = (
    "channel, created_after, created_before, cursor, customer_id, external_reference, "
    "fulfillment_status, has_open_hold, limit, payment_status, sku, status, tag"
)


async def test_a_query_parameter_the_route_does_not_take_is_a_422_naming_it(store: Store) -> None:
    await store.place(("TEE-S", 1))
    # A typo would have listed every order as if no filter had been sent.
    typo = await store.client.get("/api/v1/orders?stauts=placed&status=confirmed", headers=store.headers)
    taken = f"is not a parameter of this request; it takes {ORDER_FILTERS}"
    assert_invalid(typo, [{"field": "stauts", "message": taken}])
    # Each unknown name once, in the order sent; known ones are not mentioned.
    several = await store.client.get(
        "/api/v1/orders?page=2&page=3&per_page=10&limit=5", headers=store.headers
    )
    assert_invalid(several, [{"field": "page", "message": taken}, {"field": "per_page", "message": taken}])
    none = await store.client.get("/api/v1/store?expand=settings", headers=store.headers)
    assert_invalid(
        none,
        [{"field": "expand", "message": "is not a parameter of this request, which takes none; remove it"}],
    )
    posted = await store.client.post(
        "/api/v1/orders?dry_run=true", json=store.order_body(("TEE-S", 1)), headers=store.headers
    )
    assert_invalid(
        posted,
        [{"field": "dry_run", "message": "is not a parameter of this request, which takes none; remove it"}],
    )
    # Nothing was placed by the refused request.
    listed = await store.call("GET", "/api/v1/orders", 200)
    assert len(listed["data"]) == 1


async def test_a_parameter_that_takes_one_value_given_twice_is_a_422(store: Store) -> None:
    order = await store.place(("TEE-S", 1))
    # Read as the last value alone, it would have filtered by TEE-M and hidden the TEE-S order.
    twice = await store.client.get("/api/v1/orders?sku=TEE-S&sku=TEE-M&limit=5", headers=store.headers)
    assert_invalid(
        twice, [{"field": "sku", "message": "is given 2 times; it takes one value, so give it once"}]
    )
    # A list parameter takes as many as are sent.
    statuses = await store.call("GET", "/api/v1/orders?status=placed&status=confirmed", 200)
    assert [item["id"] for item in statuses["data"]] == [order["id"]]


async def test_the_identity_providers_return_may_carry_parameters_of_its_own(store: Store) -> None:
    # The provider chooses what it adds (`iss`, `session_state`): the route reads what it needs.
    response = await store.client.get("/api/v1/auth/sso/callback?state=unknown&code=x&iss=https%3A%2F%2Fidp")
    # Past the parameters, to the route's own check of the sign-in attempt it names.
    assert (response.status_code, response.json()["code"]) == (400, "sso_state_invalid"), response.text


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ('{"name": "f", "attributes": {"x": 1e400}}', "attributes.x"),
        ('{"name": "f", "attributes": {"size": "L", "weight": -1e400}}', "attributes.weight"),
        (
            '{"name": "f", "variants": [{"sku_code": "F-1", "name": "F", "price_amount": 1e400}]}',
            "variants[0].price_amount",
        ),
    ],
)
async def test_a_number_out_of_range_is_a_422_naming_the_field(store: Store, body: str, field: str) -> None:
    response = await post(store, "/api/v1/products", body)
    assert_invalid(response, [{"field": field, "message": "is out of range; send a number closer to zero"}])


async def test_a_price_out_of_range_on_a_new_variant_is_named(store: Store) -> None:
    product = await store.call("POST", "/api/v1/products", 201, json={"name": "Mug"})
    response = await post(
        store,
        f"/api/v1/products/{product['id']}/variants",
        '{"sku_code": "MUG-1", "name": "Mug", "price_amount": 1e400}',
    )
    assert_invalid(
        response, [{"field": "price_amount", "message": "is out of range; send a number closer to zero"}]
    )


async def test_an_attribute_of_the_wrong_type_is_named_by_its_key(store: Store) -> None:
    response = await post(
        store, "/api/v1/products", {"name": "f", "attributes": {"size": "L", "sizes": ["S"]}}
    )
    assert_invalid(
        response,
        [
            {
                "field": "attributes.sizes",
                "message": "must be true or false, a whole number, a number or text, not a list",
            }
        ],
    )
