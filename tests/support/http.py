"""HTTP helpers for tests: an app client and sign-up / sign-in shortcuts."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx
from litestar import Litestar
from litestar.testing import AsyncTestClient
from litestar.types import Receive, Scope, Send

from tests.support.services import new_slug

PASSWORD = "Correct-Horse-Battery-7"


def seen_from(app: Litestar, address: Callable[[], str]) -> Litestar:
    """`app`, seeing every request come from `address()`: counters and lockouts of the test's own."""
    inner = app.asgi_handler

    async def from_address(scope: Scope, receive: Receive, send: Send) -> None:
        scope["client"] = (address(), 50000)
        await inner(scope, receive, send)

    app.asgi_handler = from_address
    return app


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def sign_up(client: httpx.AsyncClient, *, email: str | None = None, **extra: Any) -> dict[str, Any]:
    """Sign up a new trial store (through the app in hand or a served one); returns the response body."""
    slug = extra.pop("slug", new_slug())
    body = {
        "company_name": extra.pop("company_name", "Acme Outdoor"),
        "email": email or f"owner-{slug}@example.com",
        "password": extra.pop("password", PASSWORD),
        "slug": slug,
    }
    response = await client.post("/api/v1/signup", json=body)
    assert response.status_code == 201, response.text
    result: dict[str, Any] = response.json()
    result["email"] = body["email"]
    return result


async def sign_in(
    client: AsyncTestClient[Litestar], email: str, tenant: str, password: str = PASSWORD
) -> str:
    """An access token for a user of a store."""
    response = await client.post(
        "/api/v1/auth/token", json={"email": email, "password": password, "tenant": tenant}
    )
    assert response.status_code == 200, response.text
    token: str = response.json()["access_token"]
    return token
