"""Links with a single-use token never rest in clear in the outbox, yet arrive working."""

from __future__ import annotations

import base64
import dataclasses
import logging
from collections.abc import AsyncIterator
from typing import Any

import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient
from sqlalchemy import select, update

from ordersmith.app import create_app
from ordersmith.platform.database import Database
from ordersmith.platform.identity.models import MailboxMessage
from ordersmith.platform.mail.delivery import CONSUMER_NAME
from ordersmith.platform.mail.sealing import SealedContextError
from ordersmith.platform.models import OutboxEvent, ProcessedEvent
from ordersmith.platform.settings import Settings
from ordersmith.platform.workers import deliver_event
from tests.support.http import PASSWORD, bearer, sign_up
from tests.support.mail import (
    QueuedEmail,
    deliver_emails,
    mail_consumer,
    mail_settings,
    queued_email,
    relay_emails,
    token_in,
)
from tests.support.services import new_slug
from tests.support.smtp import running_smtp_server

ALTERED = (
    "the sealed values do not match their email: the outbox row was altered or its recipient, "
    "template or tenant changed after it was queued; the email is not sent"
)


@pytest.fixture
async def client(settings: Settings) -> AsyncIterator[AsyncTestClient[Litestar]]:
    with mail_settings(settings):
        async with AsyncTestClient(create_app(settings)) as client:
            yield client


async def _kept(database: Database, queued: QueuedEmail) -> MailboxMessage:
    """The development mailbox's copy of a queued email, once delivered."""
    async with database.platform_session() as session:
        kept = await session.scalar(select(MailboxMessage).where(MailboxMessage.event_id == queued.event_id))
    assert kept is not None, f"email event {queued.event_id} was not delivered to the mailbox"
    return kept


def _assert_sealed(queued: QueuedEmail, link: str) -> None:
    """Neither the link nor its token can be read from the outbox row."""
    token = link.partition("?token=")[2]
    assert len(token) > 40
    assert token not in queued.stored_text
    assert link.partition("?")[0] not in queued.stored_text
    assert sorted(queued.payload["sealed"]) == ["ciphertext", "key_id", "nonce"]


async def test_the_signup_verification_link_is_sealed_and_arrives_working(
    client: AsyncTestClient[Litestar], database: Database
) -> None:
    owner = await sign_up(client, company_name="Acme Outdoor")

    delivered = await deliver_emails(database)

    queued = await queued_email(database, owner["email"], "verify_email")
    # The broker carried the sealed payload too: only the consumer opened it.
    [event] = [event for event in delivered if event.id == queued.event_id]
    assert event.payload == queued.payload
    assert queued.payload["context"] == {"store_name": "Acme Outdoor"}
    kept = await _kept(database, queued)
    link = f"http://127.0.0.1:8000/verify-email?token={token_in(kept.text_body)}"
    assert link in kept.text_body
    assert f'href="{link}"' in kept.html_body
    _assert_sealed(queued, link)
    verified = await client.post("/api/v1/auth/verify-email", json={"token": token_in(kept.text_body)})
    assert verified.status_code == 200, verified.text
    assert verified.json()["email_verified"] is True


async def test_the_password_reset_link_is_sealed_and_arrives_working(
    client: AsyncTestClient[Litestar], database: Database
) -> None:
    owner = await sign_up(client)
    assert (
        await client.post("/api/v1/auth/password-reset", json={"email": owner["email"]})
    ).status_code == 202

    await deliver_emails(database)

    queued = await queued_email(database, owner["email"], "reset_password")
    assert queued.tenant_id is None
    assert queued.payload["context"] == {"expires_in_minutes": 60}
    kept = await _kept(database, queued)
    token = token_in(kept.text_body)
    link = f"http://127.0.0.1:8000/reset-password?token={token}"
    assert link in kept.text_body
    _assert_sealed(queued, link)
    reset = await client.post(
        "/api/v1/auth/password-reset/confirm",
        json={"token": token, "new_password": "Quiet-Lantern-Harbor-42"},
    )
    assert reset.status_code == 200, reset.text


async def test_the_invitation_link_is_sealed_and_arrives_working_over_smtp(
    client: AsyncTestClient[Litestar], database: Database, settings: Settings
) -> None:
    owner = await sign_up(client, company_name="Harbor Tea")
    email = f"{new_slug('mia')}@example.com"
    invited = await client.post(
        "/api/v1/invitations",
        json={"email": email, "role": "manager"},
        headers=bearer(owner["token"]["access_token"]),
    )
    assert invited.status_code == 201, invited.text

    with running_smtp_server() as server, mail_settings(dataclasses.replace(settings, smtp_url=server.url)):
        await deliver_emails(database)

    queued = await queued_email(database, email, "invitation")
    assert queued.tenant_id is not None
    assert str(queued.tenant_id) == owner["tenant"]["id"]
    assert queued.payload["context"] == {
        "store_name": "Harbor Tea",
        "inviter_email": owner["email"],
        "role": "manager",
        "expires_in_days": 7,
    }
    [received] = server.inbox.to(email)
    token = token_in(received.text)
    link = f"{settings.public_url}/accept-invitation?token={token}"
    assert link in received.text
    assert f'href="{link}"' in received.html
    _assert_sealed(queued, link)
    accepted = await client.post(
        "/api/v1/invitations/accept", json={"token": token, "password": PASSWORD, "full_name": "Mia Chen"}
    )
    assert accepted.status_code == 201, accepted.text
    assert accepted.json()["role"] == "manager"


def _redirected(payload: dict[str, Any]) -> dict[str, Any]:
    return {**payload, "to": f"{new_slug('mallory')}@example.com"}


def _flipped(payload: dict[str, Any]) -> dict[str, Any]:
    ciphertext = bytearray(base64.b64decode(payload["sealed"]["ciphertext"]))
    ciphertext[-1] ^= 1
    sealed = {**payload["sealed"], "ciphertext": base64.b64encode(bytes(ciphertext)).decode()}
    return {**payload, "sealed": sealed}


@pytest.mark.parametrize("tamper", [_redirected, _flipped], ids=["redirected", "flipped-bit"])
async def test_a_tampered_sealed_link_is_refused_and_the_event_kept(
    tamper: Any, client: AsyncTestClient[Litestar], database: Database, caplog: pytest.LogCaptureFixture
) -> None:
    owner = await sign_up(client)
    assert (
        await client.post("/api/v1/auth/password-reset", json={"email": owner["email"]})
    ).status_code == 202
    queued = await queued_email(database, owner["email"], "reset_password")
    tampered = tamper(queued.payload)
    async with database.platform_session() as session:
        await session.execute(
            update(OutboxEvent).where(OutboxEvent.id == queued.event_id).values(payload=tampered)
        )
    [event] = [event for event in await relay_emails(database) if event.id == queued.event_id]

    with (
        caplog.at_level(logging.ERROR, logger="ordersmith.platform.mail.delivery"),
        pytest.raises(SealedContextError) as raised,
    ):
        await deliver_event(database, mail_consumer(), event)

    assert str(raised.value) == ALTERED
    assert [record.getMessage() for record in caplog.records if record.name.endswith("mail.delivery")] == [
        f"email event {event.id} to {tampered['to']} refused: {ALTERED}"
    ]
    async with database.platform_session() as session:
        assert await session.get(ProcessedEvent, (CONSUMER_NAME, event.id)) is None
        assert (
            await session.scalar(select(MailboxMessage.id).where(MailboxMessage.event_id == event.id)) is None
        )
        kept = await session.get(OutboxEvent, event.id)
    # Not delivered, not dropped: the row stays for inspection, as tampered.
    assert kept is not None
    assert kept.payload == tampered
    # A retry is refused the same way: nothing readable ever leaves.
    with pytest.raises(SealedContextError):
        await deliver_event(database, mail_consumer(), event)
