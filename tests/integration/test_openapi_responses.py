"""The OpenAPI description says what each route answers: its success status and the body's schema."""

from __future__ import annotations

import json
from typing import Any

from litestar import Litestar
from litestar.testing import AsyncTestClient

from ordersmith.platform.database import Database
from ordersmith.platform.plans import Feature
from tests.support.entitlements import grant_feature
from tests.support.http import bearer, sign_in, sign_up

SCHEMA = "/api/schema/openapi.json"

# The writes that go through `idempotency.once`: the status they answer, the struct they answer with.
IDEMPOTENT_WRITES = {
    "createOrder": ("201", "Order"),
    "holdOrder": ("201", "HoldResult"),
    "cancelOrder": ("200", "Order"),
    "editOrder": ("200", "OrderEdit"),
    "createOrderPayment": ("201", "PaymentResult"),
    "capturePayment": ("201", "PaymentResult"),
    "voidPayment": ("201", "PaymentResult"),
    "refundPayment": ("201", "PaymentResult"),
    "retryPayment": ("201", "PaymentResult"),
    "releaseOrderToFulfillment": ("200", "FulfillmentOrders"),
    "createShipment": ("201", "Shipment"),
    "rejectFulfillmentLine": ("200", "RejectionResult"),
    "createReturn": ("201", "Return"),
    "refundReturn": ("201", "Return"),
    "creditReturn": ("201", "Return"),
    "exchangeReturn": ("201", "Return"),
    "spendStoreCredit": ("201", "StoreCredit"),
    "logOrderFollowUp": ("201", "OrderFollowUp"),
    "createBillingPortalSession": ("201", "PortalSession"),
    "createWebhookEndpoint": ("201", "WebhookEndpointWithSecret"),
    "createLocation": ("201", "Location"),
    "createInventoryAdjustment": ("201", "Adjustment"),
    "createProduct": ("201", "Product"),
    "createVariant": ("201", "Variant"),
    "createCustomer": ("201", "Customer"),
    "createCustomerAddress": ("201", "Customer"),
    "createCustomerNote": ("201", "Customer"),
    "mergeCustomer": ("200", "Customer"),
    "releaseOrderHold": ("200", "HoldResult"),
    "releaseOrder": ("200", "Order"),
    "placeDraftOrder": ("200", "Order"),
}

# Success responses without a body, and why.
WITHOUT_BODY = {
    "revokeApiKey": "204: a revoked key has nothing left to show",
    "revokeInvitation": "204: a revoked invitation has nothing left to show",
    "deleteSsoSettings": "204: the settings are gone",
    "deleteWebhookEndpoint": "204: the endpoint is gone",
    "deleteCustomerAddress": "204: the address is gone",
}


async def _openapi(client: AsyncTestClient[Litestar]) -> dict[str, Any]:
    response = await client.get(SCHEMA)
    assert response.status_code == 200
    document: dict[str, Any] = response.json()
    return document


def _operations(document: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {
        operation["operationId"]: operation
        for item in document["paths"].values()
        for operation in item.values()
    }


def _successes(operation: dict[str, Any]) -> dict[str, Any]:
    return {status: response for status, response in operation["responses"].items() if status.startswith("2")}


async def test_idempotent_writes_document_their_status_and_body(client: AsyncTestClient[Litestar]) -> None:
    document = await _openapi(client)
    operations = _operations(document)

    documented = {
        operation_id: {
            status: response.get("content")
            for status, response in _successes(operations[operation_id]).items()
        }
        for operation_id in IDEMPOTENT_WRITES
    }

    assert documented == {
        operation_id: {status: {"application/json": {"schema": {"$ref": f"#/components/schemas/{name}"}}}}
        for operation_id, (status, name) in IDEMPOTENT_WRITES.items()
    }
    assert {name for _, name in IDEMPOTENT_WRITES.values()} <= set(document["components"]["schemas"])


async def test_the_audit_export_documents_one_entry_a_line(
    client: AsyncTestClient[Litestar], database: Database
) -> None:
    document = await _openapi(client)
    export = _operations(document)["exportAuditLog"]

    assert _successes(export) == {
        "200": {
            "description": "NDJSON: one entry a line, each a JSON object of this schema, oldest first.",
            "content": {
                "application/x-ndjson": {"schema": {"$ref": "#/components/schemas/ExportedAuditEntry"}}
            },
        }
    }
    entry = document["components"]["schemas"]["ExportedAuditEntry"]
    fields = [
        "action", "actor_id", "actor_type", "chain", "client_address", "created_at", "data", "hash",
        "id", "prev_hash", "target_id", "target_type", "tenant_id",
    ]  # fmt: skip
    assert sorted(entry["properties"]) == fields
    assert sorted(entry["required"]) == fields

    # The schema is the lines a real export writes, field for field.
    owner = await sign_up(client)
    await grant_feature(database, owner["tenant"]["id"], Feature.AUDIT_LOG_EXPORT)
    token = await sign_in(client, owner["email"], owner["tenant"]["slug"])
    response = await client.get("/api/v1/audit-log/export", headers=bearer(token))
    assert response.status_code == 200, response.text
    lines = [json.loads(line) for line in response.text.splitlines()]
    assert [line["action"] for line in lines] == ["tenant.signed_up", "auth.signed_in"]
    assert [sorted(line) for line in lines] == [fields, fields]


async def test_readiness_documents_its_503(client: AsyncTestClient[Litestar]) -> None:
    readiness = _operations(await _openapi(client))["getReadiness"]

    body = {"application/json": {"schema": {"$ref": "#/components/schemas/Readiness"}}}
    assert readiness["responses"]["200"]["content"] == body
    assert readiness["responses"]["503"] == {
        "description": "The database or the broker is unreachable.",
        "content": body,
    }


async def test_every_success_response_documents_its_body(client: AsyncTestClient[Litestar]) -> None:
    operations = _operations(await _openapi(client))

    without_body: set[str] = set()
    empty_schemas: list[tuple[str, str, str]] = []
    for operation_id, operation in operations.items():
        for status, response in _successes(operation).items():
            if not response.get("content"):
                without_body.add(operation_id)
                continue
            for media_type, media in response["content"].items():
                if not media.get("schema"):
                    empty_schemas.append((operation_id, status, media_type))

    assert empty_schemas == []
    assert without_body == set(WITHOUT_BODY)
    assert {operation_id: set(_successes(operations[operation_id])) for operation_id in WITHOUT_BODY} == {
        operation_id: {"204"} for operation_id in WITHOUT_BODY
    }


PROBLEM = {"application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}}


def _errors(operation: dict[str, Any]) -> dict[str, Any]:
    return {status: response for status, response in operation["responses"].items() if status[0] in "45"}


async def test_errors_are_documented_as_problem_details(client: AsyncTestClient[Litestar]) -> None:
    document = await _openapi(client)
    operations = _operations(document)

    # What a route may answer follows from what it is: who may call it, what it names, whether it writes.
    assert {
        operation_id: sorted(_errors(operations[operation_id]))
        for operation_id in (
            "createOrder",
            "getOrder",
            "listOrders",
            "getHealth",
            "signUp",
            "exportAuditLog",
            "acceptInvitation",
            "createBillingPortalSession",
        )
    } == {
        "createOrder": ["400", "401", "402", "403", "404", "409", "413", "422", "429", "503"],
        "getOrder": ["400", "401", "403", "404", "422", "429"],
        # An unknown customer_id filter is a 404 too.
        "listOrders": ["400", "401", "403", "404", "422", "429"],
        "getHealth": ["400", "422"],
        "signUp": ["400", "409", "413", "422", "429", "503"],
        # A plan feature's route, a single-use link, a call to Stripe.
        "exportAuditLog": ["400", "401", "402", "403", "404", "422", "429"],
        "acceptInvitation": ["400", "409", "410", "413", "422", "429", "503"],
        "createBillingPortalSession": ["400", "401", "403", "404", "409", "413", "422", "429", "502", "503"],
    }
    assert _errors(operations["createOrder"])["422"] == {
        "description": "Some fields are invalid: `errors` names each, with what to send instead.",
        "content": PROBLEM,
    }
    # Every error of every route is a problem document, but readiness's 503, which is its own body.
    others = [
        (operation_id, status)
        for operation_id, operation in operations.items()
        for status, response in _errors(operation).items()
        if response.get("content") != PROBLEM
    ]
    assert others == [("getReadiness", "503")]
    problem = document["components"]["schemas"]["Problem"]
    assert sorted(problem["properties"]) == [
        "code", "detail", "errors", "request_id", "status", "title", "type",
    ]  # fmt: skip
    assert sorted(problem["required"]) == ["code", "detail", "status", "title", "type"]
