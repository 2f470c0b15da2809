"""Email templates: every part filled, values escaped in HTML, and loud failures for bad requests."""

from __future__ import annotations

import html
import uuid

import pytest
from sqlalchemy import select

from ordersmith.platform.database import Database
from ordersmith.platform.mail import queue_email
from ordersmith.platform.mail.rendering import compose_message, render_email
from ordersmith.platform.mail.templates import (
    TEMPLATES,
    EmailTemplateError,
    placeholders,
    template_source,
)
from ordersmith.platform.models import OutboxEvent

CONTEXTS: dict[str, dict[str, str | int]] = {
    "verify_email": {
        "store_name": "Acme Outdoor",
        "link": "https://app.example.com/verify-email?token=oat_1",
    },
    "reset_password": {
        "link": "https://app.example.com/reset-password?token=oat_2",
        "expires_in_minutes": 60,
    },
    "invitation": {
        "store_name": "Acme Outdoor",
        "inviter_email": "ana@example.com",
        "role": "manager",
        "link": "https://app.example.com/invitations/accept?token=oin_3",
        "expires_in_days": 7,
    },
    "security_alert": {
        "store_name": "Acme Outdoor",
        "what": "Your password was changed.",
        "when": "2026-11-27 14:03 UTC",
    },
    "trial_reminder": {"store_name": "Acme Outdoor", "days_left": 3, "ends_on": "2026-12-11"},
    "trial_ended": {"store_name": "Acme Outdoor", "ended_on": "2026-12-11"},
    "limit_exceeded": {
        "store_name": "Acme Outdoor",
        "limit": "seats",
        "used": 16,
        "allowed": 15,
        "plan_name": "Growth",
    },
}


def test_every_template_declares_exactly_the_keys_its_files_use() -> None:
    assert sorted(TEMPLATES) == [
        "invitation",
        "limit_exceeded",
        "reset_password",
        "security_alert",
        "trial_ended",
        "trial_reminder",
        "verify_email",
    ]
    for template in TEMPLATES.values():
        used = placeholders(template_source(template.text_path)) | placeholders(
            template_source(template.html_path)
        )
        assert used == set(template.keys), template.name
        assert template.keys == set(CONTEXTS[template.name]), template.name


@pytest.mark.parametrize("name", sorted(CONTEXTS))
def test_every_template_renders_every_value_in_both_parts(name: str) -> None:
    rendered = render_email(name, CONTEXTS[name])

    for value in CONTEXTS[name].values():
        assert str(value) in rendered.text
        assert str(value) in rendered.html
    assert "$" not in rendered.text
    assert "$" not in rendered.html
    assert rendered.html.startswith("<!DOCTYPE html>")
    assert f"<title>{html.escape(rendered.subject)}</title>" in rendered.html


def test_subjects_are_filled_in() -> None:
    subjects = {name: render_email(name, context).subject for name, context in CONTEXTS.items()}
    assert subjects == {
        "verify_email": "Confirm your email address for Acme Outdoor",
        "reset_password": "Reset your Ordersmith password",
        "invitation": "ana@example.com invited you to Acme Outdoor on Ordersmith",
        "security_alert": "Security alert for your Acme Outdoor account",
        "trial_reminder": "Your Acme Outdoor trial ends in 3 day(s)",
        "trial_ended": "Your Acme Outdoor trial has ended",
        "limit_exceeded": "Acme Outdoor is over its Growth plan's seats limit",
    }


def test_values_are_escaped_in_html_but_not_in_text() -> None:
    rendered = render_email(
        "verify_email",
        {"store_name": 'Bob\'s <script>alert("x")</script> & Co', "link": 'https://x.example/?a=1&b="2"'},
    )

    assert "<script>" not in rendered.html
    assert "Bob&#x27;s &lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt; &amp; Co" in rendered.html
    assert 'href="https://x.example/?a=1&amp;b=&quot;2&quot;"' in rendered.html
    assert 'Bob\'s <script>alert("x")</script> & Co' in rendered.text
    assert rendered.subject == 'Confirm your email address for Bob\'s <script>alert("x")</script> & Co'


def test_a_line_break_in_a_value_cannot_forge_a_header() -> None:
    rendered = render_email("verify_email", {"store_name": "Acme\r\nBcc: victim@example.com", "link": "x"})

    assert rendered.subject == "Confirm your email address for Acme Bcc: victim@example.com"
    message = compose_message(
        rendered, sender="Ordersmith <no-reply@example.com>", to="ana@example.com", event_id=uuid.uuid4()
    )
    assert message["Bcc"] is None


def test_an_unknown_template_fails_loudly() -> None:
    with pytest.raises(EmailTemplateError) as raised:
        render_email("welcome", {})
    assert str(raised.value) == (
        "no email template 'welcome'; "
        "the templates are: invitation, limit_exceeded, reset_password, security_alert, "
        "trial_ended, trial_reminder, verify_email"
    )


def test_a_missing_or_unexpected_key_fails_loudly() -> None:
    with pytest.raises(EmailTemplateError) as raised:
        render_email("invitation", {"store_name": "Acme", "link": "x", "role": "agent", "invited_by": "ana"})
    assert str(raised.value) == (
        "email template 'invitation' got a context with missing expires_in_days, inviter_email; "
        "unexpected invited_by"
    )


def test_a_value_must_be_a_string_or_a_number() -> None:
    with pytest.raises(EmailTemplateError) as raised:
        render_email("reset_password", {"link": "x", "expires_in_minutes": None})
    assert str(raised.value) == (
        "email template 'reset_password': "
        "'expires_in_minutes' must be a string or a whole number, got NoneType"
    )


def test_the_message_has_text_and_html_parts_and_an_id_derived_from_the_event() -> None:
    event_id = uuid.UUID("0190a3f0-0000-7000-8000-000000000001")
    message = compose_message(
        render_email("reset_password", CONTEXTS["reset_password"]),
        sender="Ordersmith <no-reply@mail.example.com>",
        to="ana@example.com",
        event_id=event_id,
    )

    assert message["From"] == "Ordersmith <no-reply@mail.example.com>"
    assert message["To"] == "ana@example.com"
    assert message["Subject"] == "Reset your Ordersmith password"
    assert message["Message-ID"] == "<0190a3f0-0000-7000-8000-000000000001@mail.example.com>"
    assert message["Auto-Submitted"] == "auto-generated"
    assert message.get_content_type() == "multipart/alternative"
    assert [part.get_content_type() for part in message.iter_parts()] == ["text/plain", "text/html"]


async def test_queueing_a_bad_email_fails_in_the_callers_transaction(database: Database) -> None:
    marker = f"nobody-{uuid.uuid4().hex}@example.com"

    async def queue_without_link() -> None:
        async with database.platform_session() as session:
            await queue_email(
                session, None, to=marker, template="verify_email", context={"store_name": "Acme"}
            )

    with pytest.raises(EmailTemplateError, match="missing link"):
        await queue_without_link()

    async with database.platform_session() as session:
        queued = (
            await session.execute(select(OutboxEvent.id).where(OutboxEvent.payload["to"].astext == marker))
        ).all()
    assert queued == []
