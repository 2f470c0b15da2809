"""The HTTP app's platform routes: probes, problem details, request ids, OpenAPI."""

from __future__ import annotations

import gc
import re

import pytest
from litestar import Litestar, get
from litestar.testing import AsyncTestClient

from ordersmith.api.access import UndeclaredAccessError, check_access_declared
from ordersmith.api.problems import EXCEPTION_HANDLERS
from ordersmith.app import GC_THRESHOLDS, create_app
from ordersmith.platform.database import Database
from ordersmith.platform.settings import Settings, load_settings
from ordersmith.platform.tenancy import TenantRecord

PROBLEM = "application/problem+json"


async def test_healthz_answers_with_a_request_id(client: AsyncTestClient[Litestar]) -> None:
    response = await client.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}
    assert re.fullmatch(r"[0-9a-f]{32}", response.headers["x-request-id"])


async def test_a_started_app_has_frozen_start_up_and_collects_less_often(
    client: AsyncTestClient[Litestar],
) -> None:
    assert (await client.get("/healthz")).status_code == 200
    assert GC_THRESHOLDS == (50_000, 20, 100)
    assert gc.get_threshold() == GC_THRESHOLDS
    assert gc.get_freeze_count() > 0


async def test_a_callers_request_id_is_kept(client: AsyncTestClient[Litestar]) -> None:
    response = await client.get("/healthz", headers={"X-Request-ID": "trace-42.a"})
    assert response.headers["x-request-id"] == "trace-42.a"
    hostile = await client.get("/healthz", headers={"X-Request-ID": "bad id; drop" + "x" * 200})
    assert re.fullmatch(r"[0-9a-f]{32}", hostile.headers["x-request-id"])


async def test_readyz_reports_database_and_broker(client: AsyncTestClient[Litestar]) -> None:
    response = await client.get("/readyz")
    assert response.status_code == 200
    assert response.json() == {"status": "ready", "database": "ok", "broker": "ok"}


async def test_readyz_is_503_when_the_database_is_gone(settings: Settings, database_url: str) -> None:
    app = create_app(settings)
    async with AsyncTestClient(app) as client:
        # Point the app at a port where nothing listens, as if PostgreSQL had died.
        await app.state.database.dispose()
        app.state.database = Database(settings.database, "postgresql://postgres@127.0.0.1:1/nowhere")
        response = await client.get("/readyz")
    assert response.status_code == 503
    assert response.json() == {"status": "unavailable", "database": "unreachable", "broker": "ok"}


async def test_slug_availability(client: AsyncTestClient[Litestar], tenant: TenantRecord) -> None:
    taken = await client.get("/api/v1/signup/slug-availability", params={"slug": tenant.slug})
    free = await client.get("/api/v1/signup/slug-availability", params={"slug": "a-free-slug-123"})
    assert (taken.status_code, taken.json()) == (200, {"slug": tenant.slug, "available": False})
    assert (free.status_code, free.json()) == (200, {"slug": "a-free-slug-123", "available": True})


async def test_an_invalid_slug_is_a_422_problem_naming_the_rule(client: AsyncTestClient[Litestar]) -> None:
    response = await client.get("/api/v1/signup/slug-availability", params={"slug": "Acme_Shop"})
    assert response.status_code == 422
    assert response.headers["content-type"] == PROBLEM
    body = response.json()
    assert body == {
        "type": "urn:ordersmith:problem:invalid_slug",
        "title": "Invalid tenant slug",
        "status": 422,
        "detail": "slug 'Acme_Shop' must be 3 to 40 characters: lowercase letters, digits and hyphens, "
        "starting and ending with a letter or digit",
        "code": "invalid_slug",
        "errors": [
            {
                "field": "slug",
                "message": "must be 3 to 40 characters: lowercase letters, digits and hyphens, starting and "
                "ending with a letter or digit",
            }
        ],
        "request_id": response.headers["x-request-id"],
    }


async def test_a_reserved_slug_is_refused(client: AsyncTestClient[Litestar]) -> None:
    response = await client.get("/api/v1/signup/slug-availability", params={"slug": "admin"})
    assert response.status_code == 422
    assert response.json()["errors"] == [{"field": "slug", "message": "is reserved; choose another"}]


async def test_a_missing_parameter_is_a_422_naming_it(client: AsyncTestClient[Litestar]) -> None:
    response = await client.get("/api/v1/signup/slug-availability")
    assert response.status_code == 422
    body = response.json()
    assert (body["code"], body["errors"]) == (
        "validation_failed",
        [{"field": "slug", "message": "this query parameter is required"}],
    )


async def test_an_unknown_route_is_a_404_problem(client: AsyncTestClient[Litestar]) -> None:
    response = await client.get("/api/v1/nothing-here")
    assert response.status_code == 404
    assert response.headers["content-type"] == PROBLEM
    assert response.json()["code"] == "not_found"
    assert response.json()["request_id"] == response.headers["x-request-id"]


async def test_every_operation_has_an_operation_id_and_a_summary(client: AsyncTestClient[Litestar]) -> None:
    schema = (await client.get("/api/schema/openapi.json")).json()
    assert schema["openapi"].startswith("3.1")
    operations = [(path, method, op) for path, item in schema["paths"].items() for method, op in item.items()]
    assert {"/healthz", "/readyz", "/api/v1/signup/slug-availability", "/api/v1/me"} <= {
        path for path, _, _ in operations
    }
    for path, method, operation in operations:
        assert operation.get("operationId"), f"{method} {path} has no operationId"
        assert operation.get("summary"), f"{method} {path} has no summary"


def test_a_route_without_an_access_declaration_stops_the_app() -> None:
    @get("/api/v1/forgotten", operation_id="forgotten", summary="Forgotten.")
    async def forgotten() -> None:
        return None

    with pytest.raises(UndeclaredAccessError, match="GET /api/v1/forgotten"):
        check_access_declared(Litestar([forgotten]))


async def test_an_unexpected_error_is_a_500_problem_without_internals() -> None:
    @get("/boom", opt={"access": "public"})
    async def boom() -> None:
        raise KeyError("secret internals")

    async with AsyncTestClient(Litestar([boom], exception_handlers=EXCEPTION_HANDLERS)) as client:
        response = await client.get("/boom")
    assert response.status_code == 500
    body = response.json()
    assert body["code"] == "internal_error"
    assert "secret" not in response.text


async def test_readyz_is_503_when_the_broker_is_gone(database_url: str) -> None:
    settings = load_settings(
        {
            "ORDERSMITH_ENV": "test",
            "DATABASE_URL": database_url,
            "BROKER_URL": "amqp://guest:guest@127.0.0.1:1/%2F",
        }
    )
    async with AsyncTestClient(create_app(settings)) as client:
        response = await client.get("/readyz")
    assert response.status_code == 503
    assert response.json() == {"status": "unavailable", "database": "ok", "broker": "unreachable"}
