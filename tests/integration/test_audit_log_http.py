"""A store's audit trail over HTTP: its own entries only, newest first, paginated and filtered."""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import json
import uuid
from typing import Any

import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient
from sqlalchemy import update

from ordersmith.platform.database import Database
from ordersmith.platform.identity.audit_trail import export_audit_entries
from ordersmith.platform.identity.models import Membership
from ordersmith.platform.pagination import encode_cursor
from tests.support.entitlements import set_tenant_billing
from tests.support.http import bearer, sign_in, sign_up
from tests.support.members import add_member


async def test_the_trail_lists_the_stores_entries_newest_first(client: AsyncTestClient[Litestar]) -> None:
    before = dt.datetime.now(dt.UTC)
    owner = await sign_up(client)
    slug, user_id = owner["tenant"]["slug"], owner["user_id"]
    token = await sign_in(client, owner["email"], slug)
    await client.post(
        "/api/v1/auth/token",
        json={"email": owner["email"], "password": "Wrong-Horse-Battery-7", "tenant": slug},
    )

    response = await client.get("/api/v1/audit-log", headers=bearer(token))
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["next_cursor"] is None
    entries = body["data"]
    assert [
        {key: value for key, value in entry.items() if key not in ("id", "created_at")} for entry in entries
    ] == [
        {
            "action": "auth.sign_in_failed",
            "actor_type": "user",
            "actor_id": user_id,
            "target_type": None,
            "target_id": None,
            "data": {"email": owner["email"], "reason": "bad_password"},
            "client_address": "testclient",
        },
        {
            "action": "auth.signed_in",
            "actor_type": "user",
            "actor_id": user_id,
            "target_type": None,
            "target_id": None,
            "data": {},
            "client_address": "testclient",
        },
        {
            "action": "tenant.signed_up",
            "actor_type": "user",
            "actor_id": user_id,
            "target_type": None,
            "target_id": None,
            "data": {},
            "client_address": "testclient",
        },
    ]
    ids = [int(entry["id"]) for entry in entries]
    assert ids == sorted(ids, reverse=True)
    assert all(isinstance(entry["id"], str) for entry in entries)
    created = [dt.datetime.fromisoformat(entry["created_at"]) for entry in entries]
    assert before <= created[-1] <= created[0] <= dt.datetime.now(dt.UTC)
    assert all(
        entry["created_at"].endswith("Z") or entry["created_at"].endswith("+00:00") for entry in entries
    )


async def test_the_trail_pages_with_a_cursor_and_filters_by_action(client: AsyncTestClient[Litestar]) -> None:
    owner = await sign_up(client)
    slug = owner["tenant"]["slug"]
    for _ in range(2):
        await sign_in(client, owner["email"], slug)
    token = owner["token"]["access_token"]

    first = await client.get("/api/v1/audit-log", params={"limit": "2"}, headers=bearer(token))
    assert first.status_code == 200, first.text
    assert [entry["action"] for entry in first.json()["data"]] == ["auth.signed_in", "auth.signed_in"]
    cursor = first.json()["next_cursor"]
    assert isinstance(cursor, str)
    second = await client.get(
        "/api/v1/audit-log", params={"limit": "2", "cursor": cursor}, headers=bearer(token)
    )
    assert ([entry["action"] for entry in second.json()["data"]], second.json()["next_cursor"]) == (
        ["tenant.signed_up"],
        None,
    )

    filtered = await client.get(
        "/api/v1/audit-log", params={"action": "tenant.signed_up"}, headers=bearer(token)
    )
    assert [entry["action"] for entry in filtered.json()["data"]] == ["tenant.signed_up"]
    nothing = await client.get(
        "/api/v1/audit-log", params={"action": "no.such.action"}, headers=bearer(token)
    )
    assert nothing.json() == {"data": [], "next_cursor": None}


@pytest.mark.parametrize(
    ("params", "field", "message"),
    [
        ({"limit": "0"}, "limit", "must be a whole number from 1 to 200"),
        ({"limit": "201"}, "limit", "must be a whole number from 1 to 200"),
        (
            {"cursor": "not-a-cursor"},
            "cursor",
            "use the next_cursor of the previous page, or omit it to start over",
        ),
        # JSON nested deeper than the parser recurses.
        (
            {"cursor": base64.urlsafe_b64encode(b"[" * 5000).decode()},
            "cursor",
            "use the next_cursor of the previous page, or omit it to start over",
        ),
    ],
    ids=["limit 0", "limit 201", "not a cursor", "deeply nested cursor"],
)
async def test_bad_list_parameters_are_422(
    client: AsyncTestClient[Litestar], params: dict[str, str], field: str, message: str
) -> None:
    owner = await sign_up(client)
    for path in ["/api/v1/audit-log", "/api/v1/support-grants"]:
        response = await client.get(path, params=params, headers=bearer(owner["token"]["access_token"]))
        assert response.status_code == 422, path
        assert [(item["field"], item["message"]) for item in response.json()["errors"]] == [(field, message)]


@pytest.mark.parametrize("entry_id", [10**30, 2**63, True, 0, -1], ids=repr)
async def test_a_crafted_cursor_outside_the_entry_ids_is_422(
    client: AsyncTestClient[Litestar], entry_id: int
) -> None:
    owner = await sign_up(client)
    response = await client.get(
        "/api/v1/audit-log",
        params={"cursor": encode_cursor(entry_id)},
        headers=bearer(owner["token"]["access_token"]),
    )
    assert (response.status_code, response.json()["code"], response.json()["errors"]) == (
        422,
        "validation_failed",
        [
            {
                "field": "cursor",
                "message": "use the next_cursor of the previous page, or omit it to start over",
            }
        ],
    )


async def test_a_cursor_at_the_largest_entry_id_reads_from_the_newest(
    client: AsyncTestClient[Litestar],
) -> None:
    owner = await sign_up(client)
    headers = bearer(owner["token"]["access_token"])
    newest = await client.get("/api/v1/audit-log", headers=headers)
    largest = await client.get(
        "/api/v1/audit-log", params={"cursor": encode_cursor(2**63 - 1)}, headers=headers
    )
    assert largest.status_code == 200, largest.text
    assert largest.json() == newest.json()


async def test_another_stores_entries_never_show(client: AsyncTestClient[Litestar]) -> None:
    first, second = await sign_up(client), await sign_up(client)
    await sign_in(client, first["email"], first["tenant"]["slug"])
    first_page = await client.get("/api/v1/audit-log", headers=bearer(first["token"]["access_token"]))
    second_page = await client.get("/api/v1/audit-log", headers=bearer(second["token"]["access_token"]))
    first_ids = {entry["id"] for entry in first_page.json()["data"]}
    second_entries = second_page.json()["data"]
    assert [(entry["action"], entry["actor_id"]) for entry in second_entries] == [
        ("tenant.signed_up", second["user_id"])
    ]
    assert first_ids.isdisjoint(entry["id"] for entry in second_entries)
    # A cursor of store A's list, replayed by store B, still reads store B's trail only.
    cursor_page = await client.get(
        "/api/v1/audit-log",
        params={"limit": "1"},
        headers=bearer(first["token"]["access_token"]),
    )
    response = await client.get(
        "/api/v1/audit-log",
        params={"cursor": cursor_page.json()["next_cursor"]},
        headers=bearer(second["token"]["access_token"]),
    )
    assert [entry["id"] for entry in response.json()["data"]] == [second_entries[0]["id"]]


async def test_reading_the_trail_needs_audit_read(
    client: AsyncTestClient[Litestar], database: Database
) -> None:
    owner = await sign_up(client)
    async with database.platform_session() as session:
        await session.execute(
            update(Membership).where(Membership.user_id == uuid.UUID(owner["user_id"])).values(role="manager")
        )
    token = await sign_in(client, owner["email"], owner["tenant"]["slug"])
    for path in ["/api/v1/audit-log", "/api/v1/support-grants"]:
        response = await client.get(path, headers=bearer(token))
        assert response.status_code == 403, path
        assert response.json()["detail"] == (
            "this needs the 'audit.read' permission, which your role or key lacks; ask a store admin"
        )


EXPORT = "/api/v1/audit-log/export"


def _lines(body: bytes) -> list[dict[str, Any]]:
    return [json.loads(line) for line in body.decode().splitlines()]


def _recomputed(line: dict[str, Any]) -> str:
    # What a store's auditor runs on an export, with nothing of ours: hash every field but id and hash.
    content = {key: value for key, value in line.items() if key not in ("id", "hash")}
    return hashlib.sha256(json.dumps(content, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


async def test_an_export_is_the_whole_trail_oldest_first_and_checks_out_offline(
    client: AsyncTestClient[Litestar], database: Database
) -> None:
    owner = await sign_up(client)
    other = await sign_up(client)  # another store's entries never appear
    slug, tenant_id = owner["tenant"]["slug"], owner["tenant"]["id"]
    await set_tenant_billing(database, tenant_id, plan="enterprise")
    token = await sign_in(client, owner["email"], slug)
    await client.post(
        "/api/v1/auth/token",
        json={"email": owner["email"], "password": "Wrong-Horse-Battery-7", "tenant": slug},
    )
    await sign_in(client, other["email"], other["tenant"]["slug"])

    response = await client.get(EXPORT, headers=bearer(token))

    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/x-ndjson"
    today = dt.datetime.now(dt.UTC).strftime("%Y%m%d")
    assert (
        response.headers["content-disposition"] == f'attachment; filename="audit-log-{slug}-{today}.ndjson"'
    )
    lines = _lines(response.content)
    listed = (await client.get("/api/v1/audit-log", headers=bearer(token))).json()["data"]
    assert [line["action"] for line in lines] == [
        "tenant.signed_up",
        "auth.signed_in",
        "auth.sign_in_failed",
    ]
    assert [str(line["id"]) for line in lines] == [entry["id"] for entry in reversed(listed)]
    assert {(line["chain"], line["tenant_id"]) for line in lines} == {(tenant_id, tenant_id)}
    assert [_recomputed(line) for line in lines] == [line["hash"] for line in lines]
    assert [line["prev_hash"] for line in lines[1:]] == [line["hash"] for line in lines[:-1]]
    # Read in batches, the same lines come out whatever the batch's size.
    for batch_size in (1, 2, 3):
        chunks = export_audit_entries(database, uuid.UUID(tenant_id), batch_size=batch_size)
        assert _lines(b"".join([chunk async for chunk in chunks])) == lines

    # A window: from the second entry's time, up to (not including) the third's.
    second, third = lines[1]["created_at"], lines[2]["created_at"]
    window = await client.get(EXPORT, params={"since": second, "until": third}, headers=bearer(token))
    assert [line["id"] for line in _lines(window.content)] == [lines[1]["id"]]
    # A time without a zone is UTC.
    naive = dt.datetime.fromisoformat(third).replace(tzinfo=None).isoformat()
    assert [
        line["id"]
        for line in _lines((await client.get(EXPORT, params={"since": naive}, headers=bearer(token))).content)
    ] == [lines[2]["id"]]
    empty = await client.get(EXPORT, params={"since": third, "until": second}, headers=bearer(token))
    assert (empty.status_code, empty.json()["errors"]) == (
        422,
        [{"field": "until", "message": "must be later than since"}],
    )


async def test_an_export_needs_the_plans_feature_and_the_audit_permission(
    client: AsyncTestClient[Litestar], database: Database
) -> None:
    owner = await sign_up(client)
    headers = bearer(owner["token"]["access_token"])
    trial = await client.get(EXPORT, headers=headers)
    assert trial.status_code == 402
    assert {key: trial.json()[key] for key in ("code", "feature", "plan", "cheapest_plan")} == {
        "code": "feature_not_in_plan",
        "feature": "audit_log_export",
        "plan": "trial",
        "cheapest_plan": "enterprise",
    }
    await set_tenant_billing(database, owner["tenant"]["id"], plan="enterprise")
    viewer = await add_member(client, database, headers, "viewer")
    refused = await client.get(EXPORT, headers=viewer.headers)
    assert (refused.status_code, refused.json()["code"]) == (403, "permission_denied")
    assert (await client.get(EXPORT, headers=headers)).status_code == 200
