"""Access tokens: signed, expiring, bound to a realm; CSRF tokens bound to a session."""

from __future__ import annotations

import base64
import datetime as dt
import json
import uuid

import pytest

from ordersmith.platform.identity.tokens import (
    STAFF_AUDIENCE,
    InvalidTokenError,
    TokenSigner,
    new_secret,
    secret_hash,
)

SIGNER = TokenSigner("s" * 40)
USER = uuid.UUID("00000000-0000-4000-8000-000000000001")
TENANT = uuid.UUID("00000000-0000-4000-8000-000000000002")
NOW = dt.datetime(2026, 11, 27, 12, 0, tzinfo=dt.UTC)


def test_a_token_round_trips_its_claims() -> None:
    token, issued = SIGNER.issue(subject=USER, tenant_id=TENANT, role="agent", now=NOW)
    claims = SIGNER.verify(token, now=NOW + dt.timedelta(minutes=14))
    assert (claims.subject, claims.tenant_id, claims.role) == (USER, TENANT, "agent")
    assert claims.token_id == issued.token_id
    assert claims.expires_at == NOW + dt.timedelta(minutes=15)


def test_an_expired_token_is_refused() -> None:
    token, _ = SIGNER.issue(subject=USER, tenant_id=TENANT, role="agent", now=NOW)
    with pytest.raises(InvalidTokenError):
        SIGNER.verify(token, now=NOW + dt.timedelta(minutes=15, seconds=6))


def test_a_token_signed_with_another_key_is_refused() -> None:
    token, _ = TokenSigner("x" * 40).issue(subject=USER, tenant_id=TENANT, role="owner", now=NOW)
    with pytest.raises(InvalidTokenError):
        SIGNER.verify(token, now=NOW)


def _b64decode(segment: str) -> bytes:
    return base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))


def _b64encode(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def test_a_token_whose_claims_were_changed_is_refused() -> None:
    token, _ = SIGNER.issue(subject=USER, tenant_id=TENANT, role="viewer", now=NOW)
    header, payload, signature = token.split(".")
    claims = json.loads(_b64decode(payload))
    assert claims["role"] == "viewer"
    # A well-formed token with the viewer's signature, claiming to be an owner.
    forged_payload = _b64encode(json.dumps({**claims, "role": "owner"}, separators=(",", ":")).encode())
    forged = f"{header}.{forged_payload}.{signature}"
    assert forged != token
    assert json.loads(_b64decode(forged.split(".")[1]))["role"] == "owner"
    with pytest.raises(InvalidTokenError, match="bad_signature"):
        SIGNER.verify(forged, now=NOW)
    # Re-encoding the unchanged claims the same way keeps a valid token: only the change is refused.
    same = _b64encode(json.dumps(claims, separators=(",", ":")).encode())
    assert SIGNER.verify(f"{header}.{same}.{signature}", now=NOW).role == "viewer"


def test_a_tenant_token_is_worthless_in_the_staff_realm_and_back() -> None:
    tenant_token, _ = SIGNER.issue(subject=USER, tenant_id=TENANT, role="owner", now=NOW)
    staff_token, _ = SIGNER.issue(
        subject=USER, tenant_id=None, role="superadmin", audience=STAFF_AUDIENCE, now=NOW
    )
    with pytest.raises(InvalidTokenError):
        SIGNER.verify(tenant_token, audience=STAFF_AUDIENCE, now=NOW)
    with pytest.raises(InvalidTokenError):
        SIGNER.verify(staff_token, now=NOW)
    assert SIGNER.verify(staff_token, audience=STAFF_AUDIENCE, now=NOW).role == "superadmin"


def test_csrf_tokens_are_bound_to_one_session_and_one_key() -> None:
    assert SIGNER.csrf_token("session-a") == SIGNER.csrf_token("session-a")
    assert SIGNER.csrf_token("session-a") != SIGNER.csrf_token("session-b")
    assert TokenSigner("y" * 40).csrf_token("session-a") != SIGNER.csrf_token("session-a")


def test_secrets_are_unique_and_stored_as_their_hash() -> None:
    first, second = new_secret("ort"), new_secret("ort")
    assert first.startswith("ort_")
    assert first != second
    assert len(first) == len("ort_") + 43
    assert secret_hash(first) == secret_hash(first)
    assert len(secret_hash(first)) == 32
