"""A real SMTP server on loopback (aiosmtpd) that keeps what it receives, for mail tests.

`running_smtp_server()` starts one on a free port of 127.0.0.1, optionally with STARTTLS
or implicit TLS (a self-signed certificate the client is told to trust through
`SSL_CERT_FILE`) and with a required login.
"""

from __future__ import annotations

import datetime as dt
import email
import email.policy
import ipaddress
import logging
import socket
import ssl
import threading
import urllib.parse
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from email.message import EmailMessage
from pathlib import Path
from typing import Any, Literal

from aiosmtpd import smtp as aiosmtp
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, Envelope, LoginPassword, Session
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

HOST = "127.0.0.1"
# aiosmtpd logs every command at INFO; a failing test's output stays readable without it.
logging.getLogger("mail.log").setLevel(logging.WARNING)
Security = Literal["none", "starttls", "implicit"]


@dataclass(frozen=True)
class ReceivedEmail:
    """One message as the server got it: the envelope and the parsed message."""

    mail_from: str
    recipients: list[str]
    message: EmailMessage
    was_encrypted: bool
    login: str | None

    @property
    def text(self) -> str:
        part = self.message.get_body(preferencelist=("plain",))
        assert part is not None, "the message has no text/plain part"
        return str(part.get_content())

    @property
    def html(self) -> str:
        part = self.message.get_body(preferencelist=("html",))
        assert part is not None, "the message has no text/html part"
        return str(part.get_content())


@dataclass
class Inbox:
    """aiosmtpd handler: keeps every message, refusing only the recipients it is told to."""

    received: list[ReceivedEmail] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    # Recipient → the reply refusing it ("550 5.1.1 …" for good, "451 4.3.0 …" for now).
    refusals: dict[str, str] = field(default_factory=dict)

    async def handle_RCPT(  # noqa: N802
        self, server: aiosmtp.SMTP, session: Session, envelope: Envelope, address: str, options: list[str]
    ) -> str:
        refusal = self.refusals.get(address)
        if refusal is not None:
            return refusal
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: aiosmtp.SMTP, session: Session, envelope: Envelope) -> str:  # noqa: N802
        assert isinstance(envelope.content, bytes)
        message = email.message_from_bytes(envelope.content, policy=email.policy.default)
        assert isinstance(message, EmailMessage)
        login = session.auth_data.login.decode() if isinstance(session.auth_data, LoginPassword) else None
        with self.lock:
            self.received.append(
                ReceivedEmail(
                    mail_from=str(envelope.mail_from),
                    recipients=list(envelope.rcpt_tos),
                    message=message,
                    was_encrypted=server.transport is not None
                    and server.transport.get_extra_info("ssl_object") is not None,
                    login=login,
                )
            )
        return "250 Message accepted for delivery"

    def to(self, address: str) -> list[ReceivedEmail]:
        """The messages whose envelope names `address`, in arrival order."""
        with self.lock:
            return [item for item in self.received if address in item.recipients]


@dataclass(frozen=True)
class LoopbackSmtp:
    """A running test server and the `SMTP_URL` that reaches it."""

    url: str
    inbox: Inbox


def free_port() -> int:
    """A TCP port of 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as probe:
        probe.bind((HOST, 0))
        port: int = probe.getsockname()[1]
        return port


def self_signed_certificate(directory: Path) -> tuple[Path, Path]:
    """A certificate for 127.0.0.1 and localhost, and its key, written as PEM files."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = dt.datetime.now(dt.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address(HOST))]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    certificate_path = directory / "smtp-cert.pem"
    key_path = directory / "smtp-key.pem"
    certificate_path.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    return certificate_path, key_path


def _authenticator(username: str, password: str) -> Any:
    def authenticate(
        server: aiosmtp.SMTP, session: Session, envelope: Envelope, mechanism: str, auth_data: Any
    ) -> AuthResult:
        accepted = (
            isinstance(auth_data, LoginPassword)
            and auth_data.login.decode() == username
            and auth_data.password.decode() == password
        )
        return AuthResult(success=accepted, handled=False, auth_data=auth_data)

    return authenticate


@contextmanager
def running_smtp_server(
    *,
    security: Security = "none",
    certificate: tuple[Path, Path] | None = None,
    credentials: tuple[str, str] | None = None,
) -> Iterator[LoopbackSmtp]:
    """Run an SMTP server on 127.0.0.1 until the block ends.

    With `security` other than "none", `certificate` (from `self_signed_certificate`) is
    served; the caller makes the client trust it (SSL_CERT_FILE).
    """
    inbox = Inbox()
    options: dict[str, Any] = {}
    if security != "none":
        assert certificate is not None, "TLS needs a certificate"
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(*certificate)
        options["ssl_context" if security == "implicit" else "tls_context"] = context
    if credentials is not None:
        options["authenticator"] = _authenticator(*credentials)
        options["auth_required"] = True
        # aiosmtpd counts only STARTTLS as TLS; an implicit-TLS connection is encrypted too.
        options["auth_require_tls"] = security != "implicit"
    port = free_port()
    controller = Controller(inbox, hostname=HOST, port=port, **options)
    controller.start()
    try:
        scheme = "smtps" if security == "implicit" else "smtp"
        login = ""
        if credentials is not None:
            user, password = (urllib.parse.quote(part, safe="") for part in credentials)
            login = f"{user}:{password}@"
        yield LoopbackSmtp(url=f"{scheme}://{login}{HOST}:{port}", inbox=inbox)
    finally:
        controller.stop()
