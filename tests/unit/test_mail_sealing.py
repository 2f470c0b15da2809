"""Sealing an email's secret values: a round trip, and refusals for anything altered or moved."""

from __future__ import annotations

import base64
import json
import uuid
from typing import Any

import pytest

from ordersmith.platform.mail.sealing import (
    ContextSealer,
    SealedContextError,
    associated_data,
    open_context,
    seal_context,
)
from ordersmith.platform.mail.templates import TEMPLATES

SEALER = ContextSealer.of("k" * 40)
TENANT_ID = uuid.UUID("0190a3f0-0000-7000-8000-000000000001")
TO = "ana@example.com"
LINK = "https://app.example.com/reset-password?token=oat_R4nd0mS3cr3t"
CONTEXT = {"link": LINK, "expires_in_minutes": 60}
ALTERED = (
    "the sealed values do not match their email: the outbox row was altered or its recipient, "
    "template or tenant changed after it was queued; the email is not sent"
)


def _payload() -> dict[str, Any]:
    return seal_context(SEALER, TENANT_ID, TO, TEMPLATES["reset_password"], CONTEXT)


def _refusal(payload: dict[str, Any], tenant_id: uuid.UUID | None = TENANT_ID) -> str:
    with pytest.raises(SealedContextError) as raised:
        open_context(SEALER, tenant_id, payload)
    return str(raised.value)


def test_the_link_is_sealed_and_opens_again_with_the_same_key() -> None:
    payload = _payload()

    assert payload["to"] == TO
    assert payload["template"] == "reset_password"
    assert payload["context"] == {"expires_in_minutes": 60}
    assert sorted(payload["sealed"]) == ["ciphertext", "key_id", "nonce"]
    assert payload["sealed"]["key_id"] == SEALER.key_id
    assert "oat_R4nd0mS3cr3t" not in json.dumps(payload)
    assert open_context(SEALER, TENANT_ID, payload) == CONTEXT
    # A fresh nonce each time: the same link never seals to the same bytes twice.
    assert _payload()["sealed"]["ciphertext"] != payload["sealed"]["ciphertext"]


def test_the_key_id_names_the_key_without_revealing_it() -> None:
    assert ContextSealer.of("k" * 40).key_id == SEALER.key_id
    assert len(SEALER.key_id) == 16
    assert ContextSealer.of("another-secret-key-of-forty-characters!!").key_id != SEALER.key_id
    assert SEALER.key.hex() not in repr(SEALER)


def test_a_template_without_secrets_is_stored_readable() -> None:
    context = {"store_name": "Acme Outdoor", "what": "Your password was changed.", "when": "today"}
    payload = seal_context(SEALER, None, TO, TEMPLATES["security_alert"], context)

    assert payload == {"to": TO, "template": "security_alert", "context": context}
    assert open_context(SEALER, None, payload) == context


def test_every_secret_key_is_one_of_its_templates_keys() -> None:
    secrets = {name: template.secret_keys for name, template in TEMPLATES.items()}
    assert secrets == {
        "verify_email": {"link"},
        "reset_password": {"link"},
        "invitation": {"link"},
        "security_alert": set(),
        "trial_reminder": set(),
        "trial_ended": set(),
        "limit_exceeded": set(),
    }
    for template in TEMPLATES.values():
        assert template.secret_keys <= template.keys, template.name


def test_a_flipped_bit_of_the_ciphertext_is_refused() -> None:
    payload = _payload()
    ciphertext = bytearray(base64.b64decode(payload["sealed"]["ciphertext"]))
    ciphertext[0] ^= 1
    payload["sealed"]["ciphertext"] = base64.b64encode(bytes(ciphertext)).decode()

    assert _refusal(payload) == ALTERED


@pytest.mark.parametrize(
    ("field", "value"), [("to", "mallory@example.com"), ("template", "verify_email")], ids=["to", "template"]
)
def test_a_link_moved_to_another_recipient_or_email_is_refused(field: str, value: str) -> None:
    payload = _payload()
    payload[field] = value
    if field == "template":
        payload["context"] = {"store_name": "Acme Outdoor"}

    assert _refusal(payload) == ALTERED


def test_a_link_moved_to_another_tenant_is_refused() -> None:
    assert _refusal(_payload(), tenant_id=uuid.uuid4()) == ALTERED
    assert _refusal(_payload(), tenant_id=None) == ALTERED


def test_a_link_sealed_under_another_key_names_both_keys() -> None:
    other = ContextSealer.of("another-secret-key-of-forty-characters!!")
    payload = seal_context(other, TENANT_ID, TO, TEMPLATES["reset_password"], CONTEXT)

    assert _refusal(payload) == (
        f"the values were sealed under key {other.key_id!r} but this process holds key {SEALER.key_id!r}: "
        "run every process with the SECRET_KEY that queued the email, or let the person ask for a new email"
    )


def test_a_relabelled_key_id_does_not_open_either() -> None:
    other = ContextSealer.of("another-secret-key-of-forty-characters!!")
    payload = seal_context(other, TENANT_ID, TO, TEMPLATES["reset_password"], CONTEXT)
    payload["sealed"]["key_id"] = SEALER.key_id

    assert _refusal(payload) == ALTERED


def test_a_secret_written_in_clear_is_refused_even_beside_a_seal() -> None:
    forged = {"to": TO, "template": "reset_password", "context": CONTEXT}
    assert _refusal(forged) == (
        "the reset_password email carries link unsealed; it was not queued by queue_email and is not sent"
    )
    beside_a_seal = _payload()
    beside_a_seal["context"]["link"] = "https://evil.example.com/reset-password?token=x"
    assert _refusal(beside_a_seal) == (
        "the reset_password email carries link unsealed; it was not queued by queue_email and is not sent"
    )


def test_a_missing_or_malformed_seal_is_refused() -> None:
    missing = _payload()
    del missing["sealed"]
    assert _refusal(missing) == (
        "the reset_password email has no sealed values; it was not queued by queue_email and is not sent"
    )
    not_base64 = _payload()
    not_base64["sealed"]["nonce"] = "not base64!"
    assert _refusal(not_base64) == "the sealed nonce is not base64; the outbox row was altered"
    no_ciphertext = _payload()
    del no_ciphertext["sealed"]["ciphertext"]
    assert _refusal(no_ciphertext) == "the sealed values have no ciphertext; the outbox row was altered"
    not_an_object = _payload()
    not_an_object["sealed"] = "sealed"
    assert _refusal(not_an_object) == "the sealed values are not an object; the outbox row was altered"


def test_associated_data_keeps_its_parts_apart() -> None:
    assert associated_data(TENANT_ID, "a@b.c", "x") != associated_data(TENANT_ID, "a@b.", "cx")
    assert associated_data(None, TO, "invitation") == b'[null, "ana@example.com", "invitation"]'
