"""Endpoint signing secrets: made here, shown once, sealed at rest.

AES-GCM under a key derived from SECRET_KEY for this purpose alone; the tenant and the
endpoint are bound in as associated data, so a sealed secret copied to another
endpoint or store does not open.
"""

from __future__ import annotations

import os
import secrets
import uuid

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from ordersmith.platform.identity.tokens import derived_key
from ordersmith.tenants.webhooks.errors import WebhookSecretUnreadableError

PREFIX = "whsec_"
_VERSION = b"\x01"


def new_secret() -> str:
    """A fresh signing secret: `whsec_` and 32 random bytes, URL-safe."""
    return PREFIX + secrets.token_urlsafe(32)


def hint_of(secret: str) -> str:
    """Which secret is in use, without revealing it."""
    return f"{PREFIX}…{secret[-4:]}"


def _key(secret_key: str) -> bytes:
    return derived_key(secret_key, "webhook-endpoint-secret")


def _bound(tenant_id: uuid.UUID, endpoint_id: uuid.UUID) -> bytes:
    return tenant_id.bytes + endpoint_id.bytes


def seal(secret_key: str, tenant_id: uuid.UUID, endpoint_id: uuid.UUID, secret: str) -> bytes:
    """`secret` encrypted for this store's endpoint."""
    nonce = os.urandom(12)
    sealed = AESGCM(_key(secret_key)).encrypt(nonce, secret.encode(), _bound(tenant_id, endpoint_id))
    return _VERSION + nonce + sealed


def open_sealed(secret_key: str, tenant_id: uuid.UUID, endpoint_id: uuid.UUID, sealed: bytes) -> str:
    """The plaintext of `seal`; refuses a secret sealed for another endpoint or store."""
    try:
        if not sealed.startswith(_VERSION):
            raise InvalidTag
        nonce, ciphertext = sealed[1:13], sealed[13:]
        return AESGCM(_key(secret_key)).decrypt(nonce, ciphertext, _bound(tenant_id, endpoint_id)).decode()
    except InvalidTag:
        raise WebhookSecretUnreadableError(
            "this webhook endpoint's signing secret cannot be decrypted (was SECRET_KEY changed?); "
            "a store admin must rotate the secret and give the new one to the receiver"
        ) from None
