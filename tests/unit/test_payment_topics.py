"""Every payment outcome the ledger announces is a topic a merchant's webhook endpoint can subscribe to."""

from __future__ import annotations

import pytest

from ordersmith.tenants.payments import status
from ordersmith.tenants.payments.models import PaymentTransaction
from ordersmith.tenants.payments.recording import verb_of
from ordersmith.tenants.webhooks.topics import WEBHOOK_TOPICS

# Every outcome the ledger records: what a request to the provider ends in, and what
# Stripe's events report on their own (a chargeback, a refund failed later, a dispute's end).
OUTCOMES = [
    *[
        (kind, state)
        for kind in ("authorize", "capture", "void", "refund")
        for state in ("success", "failure")
    ],
    ("authorize", status.REQUIRES_ACTION),
    (status.CHARGEBACK, status.SUCCESS),
    (status.REFUND_REVERSAL, status.SUCCESS),
    (status.CHARGEBACK_REVERSAL, status.SUCCESS),
    (status.CHARGEBACK_REVERSAL, status.FAILURE),
]


@pytest.mark.parametrize(("kind", "state"), OUTCOMES)
def test_a_payment_outcome_is_a_webhook_topic(kind: str, state: str) -> None:
    assert f"payment.{verb_of(PaymentTransaction(kind=kind, state=state))}" in WEBHOOK_TOPICS


def test_a_dispute_s_end_is_announced_by_name() -> None:
    won = verb_of(PaymentTransaction(kind=status.CHARGEBACK_REVERSAL, state=status.SUCCESS))
    lost = verb_of(PaymentTransaction(kind=status.CHARGEBACK_REVERSAL, state=status.FAILURE))
    assert (won, lost) == ("chargeback_reversed", "dispute_lost")
