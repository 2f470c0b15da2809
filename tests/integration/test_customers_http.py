"""Customers over HTTP: contact details, addresses, tags, notes, merging duplicates."""

from __future__ import annotations

import uuid

from litestar import Litestar
from litestar.testing import AsyncTestClient
from sqlalchemy import select

from ordersmith.platform.database import Database
from ordersmith.platform.models import OutboxEvent
from tests.support.customers import ADDRESS, create_customer, customer_events, owner
from tests.support.members import add_member


async def test_a_customer_is_created_with_contact_details_address_tags_and_note(
    client: AsyncTestClient[Litestar], database: Database
) -> None:
    headers, user_id = await owner(client)
    customer = await create_customer(
        client,
        headers,
        full_name=" Ana Lima ",
        email=" Ana@Example.COM ",
        phone="+33 6 12 34 56 78",
        tags=["vip", "VIP", "wholesale"],
        addresses=[ADDRESS],
        note="Prefers morning deliveries.",
    )

    assert (customer["full_name"], customer["email"], customer["phone"]) == (
        "Ana Lima",
        "ana@example.com",
        "+33 6 12 34 56 78",
    )
    assert customer["tags"] == ["vip", "wholesale"]
    assert customer["merged_ids"] == []
    (address,) = customer["addresses"]
    assert {key: address[key] for key in ADDRESS} == ADDRESS
    assert (address["line2"], address["region"]) == (None, None)
    (note,) = customer["notes"]
    assert (note["body"], note["author_type"], note["author_id"], note["original_customer_id"]) == (
        "Prefers morning deliveries.",
        "user",
        user_id,
        customer["id"],
    )
    read = await client.get(f"/api/v1/customers/{customer['id']}", headers=headers)
    assert read.json() == customer

    found = await client.get("/api/v1/customers", params={"email": "ANA@example.com"}, headers=headers)
    assert [item["id"] for item in found.json()["data"]] == [customer["id"]]

    async with database.platform_session() as session:
        payload = await session.scalar(
            select(OutboxEvent.payload).where(
                OutboxEvent.topic == "customer.created",
                OutboxEvent.payload["customer_id"].astext == customer["id"],
            )
        )
    assert payload == {"customer_id": customer["id"], "email": "ana@example.com"}


async def test_an_email_belongs_to_one_customer(client: AsyncTestClient[Litestar]) -> None:
    headers, _ = await owner(client)
    await create_customer(client, headers, full_name="Ana", email="ana@example.com")
    other = await create_customer(client, headers, full_name="Bo", email="bo@example.com")

    again = await client.post(
        "/api/v1/customers", json={"full_name": "Ana 2", "email": "ANA@example.com"}, headers=headers
    )
    assert again.status_code == 409
    assert again.json()["code"] == "customer_email_taken"
    assert "merge the two with POST /api/v1/customers/{id}/merge" in again.json()["detail"]
    changed = await client.patch(
        f"/api/v1/customers/{other['id']}", json={"email": "ana@example.com"}, headers=headers
    )
    assert (changed.status_code, changed.json()["code"]) == (409, "customer_email_taken")

    # Another store may have its own Ana.
    elsewhere, _ = await owner(client)
    await create_customer(client, elsewhere, full_name="Ana", email="ana@example.com")


async def test_contact_details_tags_addresses_and_notes_change(client: AsyncTestClient[Litestar]) -> None:
    headers, _ = await owner(client)
    customer = await create_customer(client, headers, full_name="Ana", email="ana@example.com", tags=["vip"])

    changed = await client.patch(
        f"/api/v1/customers/{customer['id']}",
        json={"full_name": "Ana Lima", "email": None, "phone": "0612345678", "tags": ["retail"]},
        headers=headers,
    )
    assert changed.status_code == 200, changed.text
    body = changed.json()
    assert (body["full_name"], body["email"], body["phone"], body["tags"]) == (
        "Ana Lima",
        None,
        "0612345678",
        ["retail"],
    )

    with_address = await client.post(
        f"/api/v1/customers/{customer['id']}/addresses", json=ADDRESS, headers=headers
    )
    assert with_address.status_code == 201, with_address.text
    assert [item["city"] for item in with_address.json()["addresses"]] == ["Lyon"]
    with_note = await client.post(
        f"/api/v1/customers/{customer['id']}/notes", json={"body": "Called about a refund."}, headers=headers
    )
    assert with_note.status_code == 201
    assert [note["body"] for note in with_note.json()["notes"]] == ["Called about a refund."]


async def test_bad_input_names_every_field(client: AsyncTestClient[Litestar]) -> None:
    headers, _ = await owner(client)
    response = await client.post(
        "/api/v1/customers",
        json={
            "full_name": "",
            "email": "not-an-email",
            "tags": ["ok", "!"],
            "addresses": [{"recipient_name": "A", "line1": "B", "city": "C", "country_code": "France"}],
        },
        headers=headers,
    )
    assert response.status_code == 422
    assert response.json()["errors"] == [
        {"field": "full_name", "message": "must be 1 to 200 characters"},
        {"field": "email", "message": "must be an email address such as ana@example.com"},
        {"field": "tags[1]", "message": "must be 1 to 50 letters, digits, spaces or . : / -"},
        {
            "field": "addresses[0].country_code",
            "message": "must be an ISO 3166 country code such as FR or US",
        },
    ]
    many = await client.post(
        "/api/v1/customers", json={"full_name": "Ana", "addresses": [ADDRESS] * 21}, headers=headers
    )
    assert many.status_code == 422
    assert many.json()["errors"] == [
        {
            "field": "addresses",
            "message": "at most 20 when creating a customer; "
            "add the others with POST /api/v1/customers/{id}/addresses",
        }
    ]
    customer = await create_customer(client, headers, full_name="Ana")
    wrong_type = await client.patch(
        f"/api/v1/customers/{customer['id']}", json={"tags": "vip"}, headers=headers
    )
    assert wrong_type.status_code == 422
    assert wrong_type.json()["errors"][0]["field"] == "tags"
    itself = await client.post(
        f"/api/v1/customers/{customer['id']}/merge", json={"duplicate_id": customer["id"]}, headers=headers
    )
    assert itself.status_code == 422
    assert itself.json()["errors"] == [{"field": "duplicate_id", "message": "must be another customer's id"}]
    garbage = await client.post(
        f"/api/v1/customers/{customer['id']}/merge", json={"duplicate_id": "nope"}, headers=headers
    )
    assert garbage.json()["errors"] == [
        {"field": "duplicate_id", "message": "must be the id of the customer to merge into this one"}
    ]


async def test_merging_moves_addresses_tags_and_notes_and_the_old_id_resolves(
    client: AsyncTestClient[Litestar], database: Database
) -> None:
    headers, user_id = await owner(client)
    survivor = await create_customer(
        client, headers, full_name="Ana Lima", email="ana@example.com", tags=["vip"], note="First note."
    )
    duplicate = await create_customer(
        client,
        headers,
        full_name="A. Lima",
        email="ana.lima@work.example",
        phone="0612345678",
        tags=["VIP", "wholesale"],
        addresses=[ADDRESS],
        note="Duplicate's note.",
    )
    older = await create_customer(client, headers, full_name="Ana L.")
    folded = await client.post(
        f"/api/v1/customers/{duplicate['id']}/merge", json={"duplicate_id": older["id"]}, headers=headers
    )
    assert folded.status_code == 200, folded.text

    merged = await client.post(
        f"/api/v1/customers/{survivor['id']}/merge", json={"duplicate_id": duplicate["id"]}, headers=headers
    )
    assert merged.status_code == 200, merged.text
    body = merged.json()
    assert body["id"] == survivor["id"]
    assert (body["email"], body["phone"], body["tags"]) == (
        "ana@example.com",
        "0612345678",
        ["vip", "wholesale"],
    )
    assert [address["line1"] for address in body["addresses"]] == ["12 Rue des Lilas"]
    assert [(note["body"], note["original_customer_id"]) for note in body["notes"]] == [
        ("First note.", survivor["id"]),
        ("Duplicate's note.", duplicate["id"]),
        (f"Merged customer Ana L. ({older['id']}) into this customer.", duplicate["id"]),
        (
            f"Merged customer A. Lima <ana.lima@work.example> ({duplicate['id']}) into this customer. "
            "Its phone was 0612345678.",
            survivor["id"],
        ),
    ]
    assert body["notes"][-1]["author_id"] == user_id
    assert sorted(body["merged_ids"]) == sorted([duplicate["id"], older["id"]])

    # Both merged ids resolve to the survivor, for reading and for writing.
    for merged_id in (duplicate["id"], older["id"]):
        read = await client.get(f"/api/v1/customers/{merged_id}", headers=headers)
        assert read.json()["id"] == survivor["id"]
    listed = await client.get("/api/v1/customers", headers=headers)
    assert [item["id"] for item in listed.json()["data"]] == [survivor["id"]]
    # The duplicate's email still names the person: a lookup by it finds the survivor, and a
    # new customer cannot take it (a "find by email, else create" integration would bring the
    # duplicate back with the next order).
    found = await client.get("/api/v1/customers", params={"email": "Ana.Lima@work.example"}, headers=headers)
    assert [item["id"] for item in found.json()["data"]] == [survivor["id"]]
    taken = await client.post(
        "/api/v1/customers", json={"full_name": "New", "email": "ana.lima@work.example"}, headers=headers
    )
    assert (taken.status_code, taken.json()["code"]) == (409, "customer_email_taken")
    # The survivor may take it as its own address, and it still finds the survivor.
    changed = await client.patch(
        f"/api/v1/customers/{survivor['id']}", json={"email": "ana.lima@work.example"}, headers=headers
    )
    assert (changed.status_code, changed.json()["email"]) == (200, "ana.lima@work.example")
    # Merging it twice is refused.
    twice = await client.post(
        f"/api/v1/customers/{survivor['id']}/merge", json={"duplicate_id": duplicate["id"]}, headers=headers
    )
    assert (twice.status_code, twice.json()["code"]) == (409, "customer_already_merged")

    async with database.platform_session() as session:
        payload = await session.scalar(
            select(OutboxEvent.payload).where(
                OutboxEvent.topic == "customer.merged",
                OutboxEvent.payload["duplicate_id"].astext == duplicate["id"],
            )
        )
    assert payload == {
        "survivor_id": survivor["id"],
        "duplicate_id": duplicate["id"],
        "moved_addresses": 1,
        "moved_notes": 2,
        "actor_type": "user",
        "actor_id": user_id,
    }


async def test_a_viewer_reads_customers_but_cannot_change_them(
    client: AsyncTestClient[Litestar], database: Database
) -> None:
    headers, _ = await owner(client)
    customer = await create_customer(
        client, headers, full_name="Ana", email="ana@example.com", addresses=[ADDRESS]
    )
    address_path = f"/api/v1/customers/{customer['id']}/addresses/{customer['addresses'][0]['id']}"
    other = await create_customer(client, headers, full_name="Bo")
    viewer = await add_member(client, database, headers, "viewer")

    assert (
        await client.get(f"/api/v1/customers/{customer['id']}", headers=viewer.headers)
    ).status_code == 200
    assert (await client.get("/api/v1/customers", headers=viewer.headers)).status_code == 200
    for method, path, body in (
        ("POST", "/api/v1/customers", {"full_name": "X"}),
        ("PATCH", f"/api/v1/customers/{customer['id']}", {"full_name": "X"}),
        ("POST", f"/api/v1/customers/{customer['id']}/addresses", ADDRESS),
        ("PATCH", address_path, {"city": "Paris"}),
        ("DELETE", address_path, None),
        ("POST", f"/api/v1/customers/{customer['id']}/notes", {"body": "x"}),
        ("POST", f"/api/v1/customers/{customer['id']}/merge", {"duplicate_id": other["id"]}),
    ):
        response = await client.request(method, path, json=body, headers=viewer.headers)
        assert (response.status_code, response.json()["code"]) == (403, "permission_denied"), path
    assert (await client.get(f"/api/v1/customers/{customer['id']}", headers=headers)).json() == customer


async def test_another_store_gets_404_for_this_stores_customers(client: AsyncTestClient[Litestar]) -> None:
    a_headers, _ = await owner(client)
    customer = await create_customer(
        client, a_headers, full_name="Ana", email="ana@example.com", addresses=[ADDRESS]
    )
    address_id = customer["addresses"][0]["id"]
    b_headers, _ = await owner(client)
    mine = await create_customer(client, b_headers, full_name="Bo")

    for method, path, body in (
        ("GET", f"/api/v1/customers/{customer['id']}", None),
        ("PATCH", f"/api/v1/customers/{customer['id']}", {"full_name": "Stolen"}),
        ("POST", f"/api/v1/customers/{customer['id']}/addresses", ADDRESS),
        ("PATCH", f"/api/v1/customers/{customer['id']}/addresses/{address_id}", {"city": "Paris"}),
        ("DELETE", f"/api/v1/customers/{customer['id']}/addresses/{address_id}", None),
        ("POST", f"/api/v1/customers/{customer['id']}/notes", {"body": "x"}),
        ("POST", f"/api/v1/customers/{customer['id']}/merge", {"duplicate_id": mine["id"]}),
        # Merging A's customer away into one of B's is as unknown as reading it.
        ("POST", f"/api/v1/customers/{mine['id']}/merge", {"duplicate_id": customer["id"]}),
        ("GET", f"/api/v1/customers/{uuid.uuid4()}", None),
    ):
        response = await client.request(method, path, json=body, headers=b_headers)
        assert (response.status_code, response.json()["code"]) == (404, "customer_not_found"), path
    # A's address named under one of B's own customers is unknown too.
    for method, body in (("PATCH", {"city": "Paris"}), ("DELETE", None)):
        response = await client.request(
            method, f"/api/v1/customers/{mine['id']}/addresses/{address_id}", json=body, headers=b_headers
        )
        assert (response.status_code, response.json()["code"]) == (404, "customer_address_not_found"), method
    listed = await client.get("/api/v1/customers", params={"email": "ana@example.com"}, headers=b_headers)
    assert listed.json() == {"data": [], "next_cursor": None}
    assert (await client.get(f"/api/v1/customers/{customer['id']}", headers=a_headers)).json() == customer


async def test_a_merge_that_would_pass_the_tag_limit_is_refused_whole(
    client: AsyncTestClient[Litestar],
) -> None:
    headers, _ = await owner(client)
    survivor = await create_customer(client, headers, full_name="Ana", tags=[f"a{i}" for i in range(30)])
    duplicate = await create_customer(
        client, headers, full_name="A.", tags=[f"a{i}" for i in range(10)] + [f"b{i}" for i in range(21)]
    )
    refused = await client.post(
        f"/api/v1/customers/{survivor['id']}/merge", json={"duplicate_id": duplicate["id"]}, headers=headers
    )
    assert refused.status_code == 409, refused.text
    problem = refused.json()
    assert (problem["code"], problem["detail"], problem["tags"], problem["max_tags"]) == (
        "customer_tags_over_limit",
        "together the two customers have 51 different tags and a customer keeps at most 50; remove some "
        "from either (PATCH /api/v1/customers/{id} with its tags), then merge",
        51,
        50,
    )
    # Nothing moved: the duplicate is still its own customer, with its tags.
    still = await client.get(f"/api/v1/customers/{duplicate['id']}", headers=headers)
    assert (still.json()["id"], len(still.json()["tags"]), still.json()["merged_ids"]) == (
        duplicate["id"],
        31,
        [],
    )
    # One tag fewer, and the merge goes through with the 50.
    await client.patch(
        f"/api/v1/customers/{duplicate['id']}", json={"tags": [f"b{i}" for i in range(20)]}, headers=headers
    )
    merged = await client.post(
        f"/api/v1/customers/{survivor['id']}/merge", json={"duplicate_id": duplicate["id"]}, headers=headers
    )
    assert (merged.status_code, len(merged.json()["tags"])) == (200, 50)


PHONE_TOO_LONG = {
    "field": "phone",
    "message": "must be a phone number of at most 50 characters: digits, spaces and + ( ) . / -",
}


async def test_a_phone_has_at_most_50_characters_in_all(client: AsyncTestClient[Litestar]) -> None:
    # The column holds 50: a "+" and 50 digits passed the old check and failed there (a 500).
    headers, _ = await owner(client)
    phone = "+" + "3" * 50
    created = await client.post(
        "/api/v1/customers", json={"full_name": "Ana", "phone": phone}, headers=headers
    )
    assert created.status_code == 422, created.text
    assert created.json()["errors"] == [PHONE_TOO_LONG]

    ana = await create_customer(client, headers, full_name="Ana", phone=" +" + "3" * 49 + " ")
    assert ana["phone"] == "+" + "3" * 49
    changed = await client.patch(f"/api/v1/customers/{ana['id']}", json={"phone": phone}, headers=headers)
    assert changed.status_code == 422, changed.text
    assert changed.json()["errors"] == [PHONE_TOO_LONG]
    assert (await client.get(f"/api/v1/customers/{ana['id']}", headers=headers)).json() == ana


async def test_an_email_is_measured_as_it_is_stored(client: AsyncTestClient[Litestar]) -> None:
    # 212 characters as sent; lower() turns each "İ" into "i" and a combining dot: 412 as stored.
    headers, _ = await owner(client)
    email = "İ" * 200 + "@example.com"
    too_long = [
        {
            "field": "email",
            "message": "must be at most 320 characters once lower-cased; use a shorter address",
        }
    ]
    created = await client.post(
        "/api/v1/customers", json={"full_name": "Ana", "email": email}, headers=headers
    )
    assert created.status_code == 422, created.text
    assert created.json()["errors"] == too_long

    longest = "a" * 308 + "@example.com"
    ana = await create_customer(client, headers, full_name="Ana", email=longest.upper())
    assert ana["email"] == longest
    changed = await client.patch(f"/api/v1/customers/{ana['id']}", json={"email": email}, headers=headers)
    assert changed.status_code == 422, changed.text
    assert changed.json()["errors"] == too_long


async def test_the_email_taken_hint_finds_the_customer_as_written(client: AsyncTestClient[Litestar]) -> None:
    headers, _ = await owner(client)
    ana = await create_customer(client, headers, full_name="Ana", email="ana+shop@example.com")
    again = await client.post(
        "/api/v1/customers", json={"full_name": "Ana L", "email": "Ana+Shop@example.com"}, headers=headers
    )
    assert (again.status_code, again.json()["detail"]) == (
        409,
        "another customer already has the email 'ana+shop@example.com'; open that customer "
        "(GET /api/v1/customers?email=ana%2Bshop@example.com) or merge the two with "
        "POST /api/v1/customers/{id}/merge",
    )
    # Followed as written: an unencoded "+" would read as a space and find nobody.
    found = await client.get("/api/v1/customers?email=ana%2Bshop@example.com", headers=headers)
    assert [item["id"] for item in found.json()["data"]] == [ana["id"]]


async def test_tags_are_counted_once_normalized(client: AsyncTestClient[Litestar]) -> None:
    # Tags that differ only in case are one tag, when creating, changing and merging alike.
    headers, _ = await owner(client)
    fifty = [f"t{i}" for i in range(50)]
    ana = await create_customer(client, headers, full_name="Ana", tags=[*fifty, "T0"])
    assert ana["tags"] == fifty
    changed = await client.patch(
        f"/api/v1/customers/{ana['id']}", json={"tags": [" T1 ", *fifty]}, headers=headers
    )
    assert (changed.status_code, changed.json()["tags"]) == (200, ["T1", "t0", *fifty[2:]])

    too_many = {
        "field": "tags",
        "message": "must hold at most 50 different tags (ignoring case); remove some",
    }
    refused = await client.post(
        "/api/v1/customers", json={"full_name": "Bo", "tags": [*fifty, "t50", "T0"]}, headers=headers
    )
    assert (refused.status_code, refused.json()["errors"]) == (422, [too_many])
    refused_change = await client.patch(
        f"/api/v1/customers/{ana['id']}", json={"tags": [*fifty, "t50"]}, headers=headers
    )
    assert (refused_change.status_code, refused_change.json()["errors"]) == (422, [too_many])


async def test_a_merge_keeps_the_duplicates_phone_in_its_note(client: AsyncTestClient[Litestar]) -> None:
    headers, _ = await owner(client)
    survivor = await create_customer(
        client, headers, full_name="Ana Lima", email="ana@example.com", phone="+33 6 11 11 11 11"
    )
    duplicate = await create_customer(
        client, headers, full_name="A. Lima", email="a.lima@example.com", phone="+33 7 22 22 22 22"
    )
    merged = await client.post(
        f"/api/v1/customers/{survivor['id']}/merge", json={"duplicate_id": duplicate["id"]}, headers=headers
    )
    assert merged.status_code == 200, merged.text
    assert merged.json()["phone"] == "+33 6 11 11 11 11"
    read = await client.get(f"/api/v1/customers/{duplicate['id']}", headers=headers)
    assert [note["body"] for note in read.json()["notes"]] == [
        f"Merged customer A. Lima <a.lima@example.com> ({duplicate['id']}) into this customer. "
        "Its phone was +33 7 22 22 22 22."
    ]


async def test_a_merge_that_changes_the_survivor_also_announces_it_updated(
    client: AsyncTestClient[Litestar], database: Database
) -> None:
    headers, user_id = await owner(client)
    survivor = await create_customer(client, headers, full_name="Ana", tags=["vip"])
    duplicate = await create_customer(
        client,
        headers,
        full_name="A.",
        email="a@example.com",
        phone="0612345678",
        tags=["VIP", "retail"],
        addresses=[ADDRESS],
    )
    merged = await client.post(
        f"/api/v1/customers/{survivor['id']}/merge", json={"duplicate_id": duplicate["id"]}, headers=headers
    )
    assert merged.status_code == 200, merged.text
    assert (merged.json()["email"], merged.json()["phone"], merged.json()["tags"]) == (
        "a@example.com",
        "0612345678",
        ["vip", "retail"],
    )
    assert (await customer_events(database, survivor["id"]))[1:] == [
        (
            "customer.merged",
            {
                "survivor_id": survivor["id"],
                "duplicate_id": duplicate["id"],
                "moved_addresses": 1,
                "moved_notes": 0,
                "actor_type": "user",
                "actor_id": user_id,
            },
        ),
        # As any other change of those fields is announced.
        (
            "customer.updated",
            {"customer_id": survivor["id"], "changed": ["addresses", "email", "phone", "tags"]},
        ),
    ]

    # A duplicate that brings nothing new changes nothing of the survivor: only the merge is announced.
    bare = await create_customer(client, headers, full_name="Ana L.", tags=["Retail"])
    await client.post(
        f"/api/v1/customers/{survivor['id']}/merge", json={"duplicate_id": bare["id"]}, headers=headers
    )
    assert [topic for topic, _ in await customer_events(database, survivor["id"])] == [
        "customer.created",
        "customer.merged",
        "customer.updated",
        "customer.merged",
    ]
