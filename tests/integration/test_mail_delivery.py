"""Email delivery: through a real SMTP server on loopback, or into the development mailbox."""

from __future__ import annotations

import dataclasses
import smtplib
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient
from sqlalchemy import select

from ordersmith.app import create_app
from ordersmith.platform.database import Database
from ordersmith.platform.identity.models import MailboxMessage
from ordersmith.platform.mail import queue_email
from ordersmith.platform.mail.delivery import CONSUMER_NAME, MailConfig, SmtpServer, configure, parse_smtp_url
from ordersmith.platform.models import ProcessedEvent
from ordersmith.platform.settings import Settings, SettingsError
from ordersmith.platform.workers import deliver_event
from tests.support.http import sign_up
from tests.support.mail import deliver_emails, mail_consumer, mail_settings, relay_emails, token_in
from tests.support.services import new_slug
from tests.support.smtp import LoopbackSmtp, running_smtp_server, self_signed_certificate


@pytest.fixture
async def smtp_server(settings: Settings, database: Database) -> AsyncIterator[LoopbackSmtp]:
    """A loopback SMTP server that the email consumer sends to during the test."""
    with mail_settings(settings):
        await deliver_emails(database)  # earlier tests' emails go to the mailbox, not here
    with running_smtp_server() as server, mail_settings(dataclasses.replace(settings, smtp_url=server.url)):
        yield server


@pytest.fixture
def mailbox(settings: Settings) -> Iterator[None]:
    """Emails land in the development mailbox during the test."""
    with mail_settings(settings):
        yield


async def _was_processed(database: Database, event_id: uuid.UUID) -> bool:
    async with database.platform_session() as session:
        return await session.get(ProcessedEvent, (CONSUMER_NAME, event_id)) is not None


def _address() -> str:
    return f"{new_slug('mail')}@example.com"


async def _queue(database: Database, to: str, what: str) -> uuid.UUID:
    async with database.platform_session() as session:
        return await queue_email(
            session,
            None,
            to=to,
            template="security_alert",
            context={"store_name": "Acme Outdoor", "what": what, "when": "2026-11-27 14:03 UTC"},
        )


async def test_a_signup_email_arrives_over_smtp_with_text_and_html_parts(
    client: AsyncTestClient[Litestar], smtp_server: LoopbackSmtp, settings: Settings, database: Database
) -> None:
    owner = await sign_up(client, company_name="Acme Outdoor", email=_address())

    delivered = await deliver_emails(database)

    received = smtp_server.inbox.to(owner["email"])
    assert len(received) == 1
    email = received[0]
    [event] = [event for event in delivered if event.payload["to"] == owner["email"]]
    assert email.recipients == [owner["email"]]
    assert email.mail_from == "no-reply@localhost"
    assert email.message["From"] == settings.mail_from
    assert email.message["To"] == owner["email"]
    assert email.message["Subject"] == "Confirm your email address for Acme Outdoor"
    assert email.message["Message-ID"] == f"<{event.id}@localhost>"
    link = f"http://127.0.0.1:8000/verify-email?token={token_in(email.text)}"
    assert link in email.text
    assert f'href="{link}"' in email.html
    assert email.was_encrypted is False


async def test_re_delivering_the_same_event_sends_nothing_more(
    smtp_server: LoopbackSmtp, database: Database
) -> None:
    to = _address()
    event_id = await _queue(database, to, "Your password was changed.")
    [event] = [event for event in await deliver_emails(database) if event.id == event_id]

    assert await deliver_event(database, mail_consumer(), event) is False
    assert await deliver_emails(database) == []
    assert len(smtp_server.inbox.to(to)) == 1


async def test_a_temporary_refusal_is_retried_and_a_permanent_one_is_dropped(
    smtp_server: LoopbackSmtp, database: Database
) -> None:
    later, never = _address(), _address()
    smtp_server.inbox.refusals[later] = "451 4.3.0 Try again later"
    smtp_server.inbox.refusals[never] = "550 5.1.1 No such user"
    await _queue(database, later, "Your password was changed.")
    await _queue(database, never, "Your password was changed.")
    events = {event.payload["to"]: event for event in await relay_emails(database)}

    with pytest.raises(smtplib.SMTPRecipientsRefused):
        await deliver_event(database, mail_consumer(), events[later])
    assert await _was_processed(database, events[later].id) is False
    del smtp_server.inbox.refusals[later]
    assert await deliver_event(database, mail_consumer(), events[later]) is True
    assert len(smtp_server.inbox.to(later)) == 1

    assert await deliver_event(database, mail_consumer(), events[never]) is True
    assert await _was_processed(database, events[never].id) is True
    assert smtp_server.inbox.to(never) == []


async def test_smtp_urls_are_parsed_with_defaults_and_encoded_passwords() -> None:
    assert parse_smtp_url("smtp://mailer:p%40ss%3Aword@mail.example.com") == SmtpServer(
        host="mail.example.com", port=587, implicit_tls=False, username="mailer", password="p@ss:word"
    )
    assert parse_smtp_url("smtps://mail.example.com:2465") == SmtpServer(
        host="mail.example.com", port=2465, implicit_tls=True, username=None, password=None
    )
    assert parse_smtp_url("smtps://mail.example.com").port == 465
    assert parse_smtp_url("smtp://127.0.0.1:25").is_loopback is True
    assert parse_smtp_url("smtp://localhost").is_loopback is True
    assert parse_smtp_url("smtp://mail.example.com").is_loopback is False
    with pytest.raises(SettingsError) as raised:
        parse_smtp_url("http://mail.example.com")
    assert str(raised.value) == (
        "SMTP_URL must look like smtp://user:password@host:587 or smtps://…, got 'http://mail.example.com'"
    )


@pytest.mark.parametrize("security", ["starttls", "implicit"])
async def test_mail_goes_over_tls_with_a_login(
    security: str, settings: Settings, database: Database, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    certificate = self_signed_certificate(tmp_path)
    # The client verifies the server's certificate; trust the test's own.
    monkeypatch.setenv("SSL_CERT_FILE", str(certificate[0]))
    with mail_settings(settings):
        await deliver_emails(database)
    to = _address()
    with (
        running_smtp_server(
            security=security,  # type: ignore[arg-type]
            certificate=certificate,
            credentials=("mailer", "p@ss:word"),
        ) as server,
        mail_settings(dataclasses.replace(settings, smtp_url=server.url)),
    ):
        await _queue(database, to, "Your password was changed.")
        await deliver_emails(database)

    [email] = server.inbox.to(to)
    assert email.was_encrypted is True
    assert email.login == "mailer"
    assert email.message["Subject"] == "Security alert for your Acme Outdoor account"


async def test_a_wrong_smtp_password_fails_the_delivery_so_it_is_retried(
    settings: Settings, database: Database, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    certificate = self_signed_certificate(tmp_path)
    monkeypatch.setenv("SSL_CERT_FILE", str(certificate[0]))
    with mail_settings(settings):
        await deliver_emails(database)
    with running_smtp_server(
        security="starttls", certificate=certificate, credentials=("mailer", "right")
    ) as server:
        wrong = server.url.replace("mailer:right@", "mailer:wrong@")
        event_id = await _queue(database, _address(), "Your password was changed.")
        with (
            mail_settings(dataclasses.replace(settings, smtp_url=wrong)),
            pytest.raises(smtplib.SMTPAuthenticationError),
        ):
            await deliver_emails(database)

    assert await _was_processed(database, event_id) is False


async def test_without_smtp_emails_land_in_the_dev_mailbox(
    client: AsyncTestClient[Litestar], mailbox: None, database: Database
) -> None:
    owner = await sign_up(client, company_name="Acme Outdoor", email=_address())
    [event] = [event for event in await deliver_emails(database) if event.payload["to"] == owner["email"]]

    response = await client.get("/api/v1/dev/mailbox", params={"to": owner["email"].upper()})

    assert response.status_code == 200, response.text
    body = response.json()
    assert body["next_cursor"] is None
    [email] = body["data"]
    assert email["event_id"] == str(event.id)
    assert email["to"] == owner["email"]
    assert email["subject"] == "Confirm your email address for Acme Outdoor"
    link = f"http://127.0.0.1:8000/verify-email?token={token_in(email['text_body'])}"
    assert link in email["text_body"]
    assert f'href="{link}"' in email["html_body"]
    assert email["created_at"].endswith("Z")

    assert await deliver_event(database, mail_consumer(), event) is False
    async with database.platform_session() as session:
        kept = (
            await session.execute(select(MailboxMessage).where(MailboxMessage.event_id == event.id))
        ).all()
    assert len(kept) == 1


async def test_the_dev_mailbox_lists_newest_first_with_a_cursor(
    client: AsyncTestClient[Litestar], mailbox: None, database: Database
) -> None:
    to = _address()
    for what in ("first", "second", "third"):
        await _queue(database, to, what)
    await deliver_emails(database)

    first_page = (await client.get("/api/v1/dev/mailbox", params={"to": to, "limit": 2})).json()
    assert [email["text_body"].split("\n\n")[2] for email in first_page["data"]] == ["third", "second"]
    assert first_page["next_cursor"] is not None
    second_page = (
        await client.get(
            "/api/v1/dev/mailbox", params={"to": to, "limit": 2, "cursor": first_page["next_cursor"]}
        )
    ).json()
    assert [email["text_body"].split("\n\n")[2] for email in second_page["data"]] == ["first"]
    assert second_page["next_cursor"] is None


async def test_the_dev_mailbox_rejects_a_bad_cursor_or_limit(client: AsyncTestClient[Litestar]) -> None:
    bad_cursor = await client.get("/api/v1/dev/mailbox", params={"cursor": "not-a-cursor"})
    assert bad_cursor.status_code == 422
    assert bad_cursor.json()["errors"] == [
        {"field": "cursor", "message": "use the next_cursor of the previous page, or omit it to start over"}
    ]
    bad_limit = await client.get("/api/v1/dev/mailbox", params={"limit": 0})
    assert bad_limit.status_code == 422
    assert bad_limit.json()["errors"] == [
        {"field": "limit", "message": "must be a whole number from 1 to 100"}
    ]


async def test_in_production_the_dev_mailbox_does_not_exist(settings: Settings) -> None:
    production = dataclasses.replace(settings, environment="production")
    async with AsyncTestClient(create_app(production)) as client:
        mailbox = await client.get("/api/v1/dev/mailbox")
        unknown = await client.get("/api/v1/dev/no-such-thing")

    assert mailbox.status_code == 404
    without_request_id = [
        {key: value for key, value in response.json().items() if key != "request_id"}
        for response in (mailbox, unknown)
    ]
    assert without_request_id[0] == without_request_id[1]


async def test_production_refuses_to_keep_emails_in_the_dev_mailbox(settings: Settings) -> None:
    production = dataclasses.replace(settings, environment="production", secret_key="k" * 40)

    for use in (MailConfig.of, configure):
        with pytest.raises(SettingsError) as raised:
            use(production)
        assert str(raised.value) == "SMTP_URL must be set in production (smtp://user:password@host:587)"
    # With SMTP every email is sent, and the mailbox is written only without it.
    sending = MailConfig.of(dataclasses.replace(production, smtp_url="smtps://mail.example.com"))
    assert sending.smtp == parse_smtp_url("smtps://mail.example.com")
