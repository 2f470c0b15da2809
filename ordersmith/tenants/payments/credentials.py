"""Merchants' provider secrets (a Stripe secret key, a webhook signing secret), sealed at rest.

AES-GCM under a key derived from SECRET_KEY for this purpose alone; the tenant id and
the secret's name are bound in as associated data, so a sealed value copied to another
store, or from one field to the other, does not open.
"""

from __future__ import annotations

import os
import uuid

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from ordersmith.platform.identity.tokens import derived_key
from ordersmith.tenants.payments.errors import ProviderSecretUnreadableError

_VERSION = b"\x01"


def _key(secret_key: str) -> bytes:
    return derived_key(secret_key, "payment-provider-secret")


def _bound(tenant_id: uuid.UUID, name: str) -> bytes:
    return tenant_id.bytes + name.encode()


def seal(secret_key: str, tenant_id: uuid.UUID, name: str, value: str) -> bytes:
    """`value` encrypted for this tenant and this field."""
    nonce = os.urandom(12)
    return _VERSION + nonce + AESGCM(_key(secret_key)).encrypt(nonce, value.encode(), _bound(tenant_id, name))


def open_sealed(secret_key: str, tenant_id: uuid.UUID, name: str, sealed: bytes) -> str:
    """The plaintext of `seal`; refuses a value sealed for another store or field."""
    try:
        if not sealed.startswith(_VERSION):
            raise InvalidTag
        nonce, ciphertext = sealed[1:13], sealed[13:]
        return AESGCM(_key(secret_key)).decrypt(nonce, ciphertext, _bound(tenant_id, name)).decode()
    except InvalidTag:
        raise ProviderSecretUnreadableError(
            f"this store's {name.replace('_', ' ')} cannot be decrypted (was SECRET_KEY changed?); "
            "a store admin must enter it again in the payment settings"
        ) from None


def hint_of(secret: str) -> str:
    """Which key is stored, without revealing it: its mode prefix and last four characters."""
    prefix = secret.split("_", 2)
    mode = "_".join(prefix[:2]) if len(prefix) == 3 else "key"
    return f"{mode}_…{secret[-4:]}"
