"""Turning a template and its context into an email: subject, plain text, HTML, MIME message."""

from __future__ import annotations

import datetime as dt
import html
import string
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import format_datetime, parseaddr
from typing import Any

from ordersmith.platform.mail.templates import TEMPLATE_DIRECTORY, check_context, template_source

# The mailbox column holds 300 characters; a subject that long is already unreadable.
MAX_SUBJECT_LENGTH = 250


@dataclass(frozen=True)
class RenderedEmail:
    """An email's content, ready to be sent or kept in the development mailbox."""

    template: str
    subject: str
    text: str
    html: str


def render_email(name: str, context: Mapping[str, Any]) -> RenderedEmail:
    """Fill template `name` with `context`; HTML values are escaped, and nothing may be missing."""
    template = check_context(name, context)
    plain = {key: str(value) for key, value in context.items()}
    escaped = {key: html.escape(value, quote=True) for key, value in plain.items()}
    # Collapsing whitespace keeps a value with a line break from forging extra headers.
    subject = " ".join(string.Template(template.subject).substitute(plain).split())
    if len(subject) > MAX_SUBJECT_LENGTH:
        subject = subject[: MAX_SUBJECT_LENGTH - 1] + "…"
    content = template_source(template.html_path).substitute(escaped)
    page = template_source(TEMPLATE_DIRECTORY / "layout.html").substitute(
        subject=html.escape(subject, quote=True), content=content
    )
    return RenderedEmail(
        template=name,
        subject=subject,
        text=template_source(template.text_path).substitute(plain),
        html=page,
    )


def message_domain(sender: str) -> str:
    """The domain of the sender address, for Message-IDs; "localhost" if it has none."""
    _, address = parseaddr(sender)
    domain = address.rpartition("@")[2]
    return domain or "localhost"


def compose_message(
    email: RenderedEmail, *, sender: str, to: str, event_id: uuid.UUID, now: dt.datetime | None = None
) -> EmailMessage:
    """A multipart/alternative message whose Message-ID is derived from the event id.

    The same event always yields the same Message-ID, so a receiver can drop the
    duplicate that an at-least-once re-delivery may produce.
    """
    message = EmailMessage()
    message["From"] = sender
    message["To"] = Address(addr_spec=to)
    message["Subject"] = email.subject
    message["Date"] = format_datetime(now or dt.datetime.now(dt.UTC))
    message["Message-ID"] = f"<{event_id}@{message_domain(sender)}>"
    # RFC 3834: automatic mail, so that vacation responders stay quiet.
    message["Auto-Submitted"] = "auto-generated"
    message["X-Ordersmith-Template"] = email.template
    message.set_content(email.text)
    message.add_alternative(email.html, subtype="html")
    return message
