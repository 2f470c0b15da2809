"""Sealing an email's secret values (its single-use link) while the email waits to be sent.

A queued email sits in `platform.outbox` for a week, in the broker and in every database
backup; a reset, invitation or verification link read there opens someone's account.
So `queue_email` encrypts the values its template marks secret with AES-256-GCM, under a
key derived from SECRET_KEY for this purpose alone, and the delivery opens them just
before rendering. The tenant, recipient and template are bound in as associated data: a
sealed link moved to another address or another email does not open. Each sealed value
names its key (`key_id`), so that a later key rotation can still open what the previous
key sealed.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import os
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from ordersmith.platform.identity.tokens import derived_key
from ordersmith.platform.mail.templates import EmailTemplate, get_template
from ordersmith.platform.settings import load_settings

_KEY_PURPOSE = "mail-sealed-context"
_NONCE_BYTES = 12


class SealedContextError(RuntimeError):
    """A queued email's secret values cannot be opened: altered, moved, or sealed under another key."""


def associated_data(tenant_id: uuid.UUID | None, to: str, template: str) -> bytes:
    """What a sealed value is bound to: the tenant, the recipient and the template of its email."""
    # A JSON array keeps the parts apart: no recipient can be forged by shifting a separator.
    return json.dumps([str(tenant_id) if tenant_id else None, to, template]).encode()


def _encode(raw: bytes) -> str:
    return base64.b64encode(raw).decode("ascii")


def _decode(sealed: Mapping[str, Any], name: str) -> bytes:
    value = sealed.get(name)
    if not isinstance(value, str):
        raise SealedContextError(f"the sealed values have no {name}; the outbox row was altered")
    try:
        return base64.b64decode(value, validate=True)
    except binascii.Error:
        raise SealedContextError(f"the sealed {name} is not base64; the outbox row was altered") from None


@dataclass(frozen=True)
class ContextSealer:
    """Seals and opens email values with one key derived from SECRET_KEY."""

    # A fingerprint of the key, stored beside what it sealed: it names the key, never reveals it.
    key_id: str
    key: bytes = field(repr=False)

    @classmethod
    def of(cls, secret_key: str) -> ContextSealer:
        key = derived_key(secret_key, _KEY_PURPOSE)
        return cls(hashlib.sha256(key).hexdigest()[:16], key)

    def seal(self, values: Mapping[str, Any], bound_to: bytes) -> dict[str, str]:
        """`values` encrypted and authenticated together with `bound_to`, as JSON-safe strings."""
        nonce = os.urandom(_NONCE_BYTES)
        plaintext = json.dumps(dict(values), separators=(",", ":")).encode()
        ciphertext = AESGCM(self.key).encrypt(nonce, plaintext, bound_to)
        return {"key_id": self.key_id, "nonce": _encode(nonce), "ciphertext": _encode(ciphertext)}

    def open(self, sealed: Any, bound_to: bytes) -> dict[str, Any]:
        """The values of `seal`; `SealedContextError` saying why if they cannot be trusted."""
        if not isinstance(sealed, Mapping):
            raise SealedContextError("the sealed values are not an object; the outbox row was altered")
        if sealed.get("key_id") != self.key_id:
            raise SealedContextError(
                f"the values were sealed under key {sealed.get('key_id')!r} but this process holds key "
                f"{self.key_id!r}: run every process with the SECRET_KEY that queued the email, "
                "or let the person ask for a new email"
            )
        nonce, ciphertext = _decode(sealed, "nonce"), _decode(sealed, "ciphertext")
        try:
            plaintext = AESGCM(self.key).decrypt(nonce, ciphertext, bound_to)
        except (InvalidTag, ValueError):
            raise SealedContextError(
                "the sealed values do not match their email: the outbox row was altered or its "
                "recipient, template or tenant changed after it was queued; the email is not sent"
            ) from None
        values: dict[str, Any] = json.loads(plaintext)
        return values


def seal_context(
    sealer: ContextSealer,
    tenant_id: uuid.UUID | None,
    to: str,
    template: EmailTemplate,
    context: Mapping[str, Any],
) -> dict[str, Any]:
    """The outbox payload of an email: secret values sealed, the others readable for support."""
    payload: dict[str, Any] = {
        "to": to,
        "template": template.name,
        "context": {key: value for key, value in context.items() if key not in template.secret_keys},
    }
    secret = {key: value for key, value in context.items() if key in template.secret_keys}
    if secret:
        payload["sealed"] = sealer.seal(secret, associated_data(tenant_id, to, template.name))
    return payload


def open_context(
    sealer: ContextSealer, tenant_id: uuid.UUID | None, payload: Mapping[str, Any]
) -> dict[str, Any]:
    """The whole context of a queued email: its readable values and its opened secret ones."""
    template = get_template(str(payload["template"]))
    context: dict[str, Any] = dict(payload["context"])
    in_clear = sorted(template.secret_keys & context.keys())
    if in_clear:
        # Only `queue_email` writes these events, and it never leaves a secret in clear.
        raise SealedContextError(
            f"the {template.name} email carries {', '.join(in_clear)} unsealed; it was not queued by "
            "queue_email and is not sent"
        )
    if not template.secret_keys:
        return context
    if "sealed" not in payload:
        raise SealedContextError(
            f"the {template.name} email has no sealed values; it was not queued by queue_email "
            "and is not sent"
        )
    bound_to = associated_data(tenant_id, str(payload["to"]), template.name)
    return {**context, **sealer.open(payload["sealed"], bound_to)}


_sealer: ContextSealer | None = None


def use_secret_key(secret_key: str | None) -> None:
    """Seal and open with a key derived from `secret_key` from now on; None reads SECRET_KEY again."""
    global _sealer
    _sealer = ContextSealer.of(secret_key) if secret_key is not None else None


def current_sealer() -> ContextSealer:
    """The configured sealer, or, in a process that configured none, one from the environment's key.

    Kept apart from the delivery's settings: processes that only queue emails (the API,
    the CLI) never import the delivery, which registers the email consumer.
    """
    global _sealer
    if _sealer is None:
        _sealer = ContextSealer.of(load_settings().secret_key)
    return _sealer
