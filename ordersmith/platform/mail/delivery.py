"""Email delivery: the consumer of `email.requested`, sending through SMTP or into the dev mailbox.

With `SMTP_URL` set (`smtp://user:password@host:587`, STARTTLS when the server offers
it; `smtps://…:465` for implicit TLS) each email is sent; without it, it is kept in
`platform.mailbox` for the development mailbox, which production never uses. The
consumer runs once per event id (`deliver_event`); an email is at-least-once on the
wire, and its Message-ID is derived from the event id so that a receiver can drop a
duplicate. Its secret values are opened (`sealing.py`) only here, just before rendering.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import smtplib
import ssl
import urllib.parse
from dataclasses import dataclass
from email.message import EmailMessage

from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncSession

from ordersmith.platform.events import Event, consumers
from ordersmith.platform.identity.models import MailboxMessage
from ordersmith.platform.ids import uuid7
from ordersmith.platform.mail import EMAIL_REQUESTED
from ordersmith.platform.mail.rendering import RenderedEmail, compose_message, render_email
from ordersmith.platform.mail.sealing import (
    SealedContextError,
    current_sealer,
    open_context,
    use_secret_key,
)
from ordersmith.platform.settings import Settings, SettingsError, load_settings

logger = logging.getLogger(__name__)

CONSUMER_NAME = "mail.sender"
SMTP_TIMEOUT_SECONDS = 30
_DEFAULT_PORTS = {"smtp": 587, "smtps": 465}


@dataclass(frozen=True)
class SmtpServer:
    """Where and how to hand mail over, parsed from `SMTP_URL`."""

    host: str
    port: int
    implicit_tls: bool
    username: str | None
    password: str | None

    @property
    def is_loopback(self) -> bool:
        if self.host == "localhost":
            return True
        try:
            return ipaddress.ip_address(self.host).is_loopback
        except ValueError:
            return False


def parse_smtp_url(url: str) -> SmtpServer:
    """`smtp://user:password@host:port` or `smtps://…`; `SettingsError` saying what is wrong."""
    parsed = urllib.parse.urlsplit(url)
    if parsed.scheme not in _DEFAULT_PORTS or not parsed.hostname:
        raise SettingsError(
            f"SMTP_URL must look like smtp://user:password@host:587 or smtps://…, got {url!r}"
        )
    try:
        port = parsed.port or _DEFAULT_PORTS[parsed.scheme]
    except ValueError:
        raise SettingsError(f"SMTP_URL has an invalid port: {url!r}") from None
    return SmtpServer(
        host=parsed.hostname,
        port=port,
        implicit_tls=parsed.scheme == "smtps",
        # Passwords with @ or : must be percent-encoded in the URL.
        username=urllib.parse.unquote(parsed.username) if parsed.username else None,
        password=urllib.parse.unquote(parsed.password) if parsed.password else None,
    )


@dataclass(frozen=True)
class MailConfig:
    """What delivery needs from the settings."""

    smtp: SmtpServer | None
    sender: str

    @classmethod
    def of(cls, settings: Settings) -> MailConfig:
        if settings.is_production and not settings.smtp_url:
            # The development mailbox keeps every email, links included, readable in the database.
            raise SettingsError("SMTP_URL must be set in production (smtp://user:password@host:587)")
        smtp = parse_smtp_url(settings.smtp_url) if settings.smtp_url else None
        return cls(smtp=smtp, sender=settings.mail_from)


_config: MailConfig | None = None


def configure(settings: Settings | None) -> None:
    """Queue and deliver with these settings from now on; None goes back to reading the environment."""
    global _config
    _config = MailConfig.of(settings) if settings is not None else None
    use_secret_key(settings.secret_key if settings is not None else None)


def current_config() -> MailConfig:
    """The configured settings, or, in a process that configured none, the environment's."""
    global _config
    if _config is None:
        _config = MailConfig.of(load_settings())
    return _config


class SmtpRefusedError(RuntimeError):
    """The SMTP server cannot be used safely or refused the message for now (retried)."""


def send_blocking(server: SmtpServer, message: EmailMessage) -> None:
    """Hand one message to the SMTP server; blocking, so call it in a thread."""
    context = ssl.create_default_context()
    client: smtplib.SMTP
    if server.implicit_tls:
        client = smtplib.SMTP_SSL(server.host, server.port, timeout=SMTP_TIMEOUT_SECONDS, context=context)
    else:
        client = smtplib.SMTP(server.host, server.port, timeout=SMTP_TIMEOUT_SECONDS)
    with client:
        client.ehlo()
        is_encrypted = server.implicit_tls
        if not is_encrypted and client.has_extn("starttls"):
            client.starttls(context=context)
            client.ehlo()
            is_encrypted = True
        if server.username is not None:
            if not is_encrypted and not server.is_loopback:
                raise SmtpRefusedError(
                    f"the SMTP server {server.host}:{server.port} offers no STARTTLS, so the password "
                    "would travel in clear; use smtps:// or a server with STARTTLS"
                )
            client.login(server.username, server.password or "")
        client.send_message(message)


async def send_email(server: SmtpServer, message: EmailMessage) -> None:
    """Send one message through SMTP without blocking the event loop."""
    await asyncio.to_thread(send_blocking, server, message)


async def keep_in_mailbox(session: AsyncSession, event: Event, to: str, email: RenderedEmail) -> None:
    """Store the email in the development mailbox; a second copy of the same event is ignored."""
    await session.execute(
        pg_insert(MailboxMessage)
        .values(
            id=uuid7(),
            event_id=event.id,
            to_address=to,
            subject=email.subject,
            text_body=email.text,
            html_body=email.html,
        )
        .on_conflict_do_nothing(index_elements=[MailboxMessage.event_id])
    )


@consumers.platform_consumer(CONSUMER_NAME, EMAIL_REQUESTED)
async def deliver_email(session: AsyncSession, event: Event) -> None:
    """Render the requested email and send it (SMTP) or keep it (development mailbox)."""
    to = str(event.payload["to"])
    try:
        context = open_context(current_sealer(), event.tenant_id, event.payload)
    except SealedContextError as error:
        # Raising keeps the event unprocessed: retried, then dead-lettered, and never sent.
        logger.error("email event %s to %s refused: %s", event.id, to, error)
        raise
    email = render_email(str(event.payload["template"]), context)
    config = current_config()
    if config.smtp is None:
        await keep_in_mailbox(session, event, to, email)
        logger.info("email %s to %s kept in the development mailbox (event %s)", email.template, to, event.id)
        return
    message = compose_message(email, sender=config.sender, to=to, event_id=event.id)
    try:
        await send_email(config.smtp, message)
    except smtplib.SMTPRecipientsRefused as error:
        codes = [code for code, _ in error.recipients.values()]
        if all(code >= 500 for code in codes):
            # A permanent refusal: retrying cannot help, and the event must not block the queue.
            logger.warning("email %s to %s refused for good (%s); dropped", email.template, to, codes)
            return
        raise
    logger.info("email %s sent to %s (event %s)", email.template, to, event.id)
