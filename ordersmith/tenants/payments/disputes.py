"""A dispute from opening to close: the chargeback it counts, and what its ending gives back.

Stripe's `charge.dispute.created` is a `chargeback` success row holding the dispute's amount
(`status.amounts_of` counts it up to what the payment held) and a `payment` hold for a
person. `charge.dispute.closed` is one `chargeback_reversal` row per dispute, holding what the
chargeback row held:

- `won`: a success. The bank gave the money back, so the chargeback no longer counts.
- `warning_closed`: a success too. An inquiry that never became a chargeback took nothing,
  so the ledger adds up as it did before the inquiry counted.
- `lost`: a failure (`dispute_lost`). The bank kept the money; nothing moves, the order is told.

Other endings (`prevented`) are left as they are. A closing for a dispute the ledger never
counted is ignored, and a dispute closes once (a partial unique index on the closing rows'
references): a later event about it, even one that contradicts it, changes nothing. The
dispute's hold stays for a person to release, whichever way it ended.
"""

from __future__ import annotations

from typing import Any

from ordersmith.tenants.payments import status
from ordersmith.tenants.payments.models import Payment, PaymentTransaction
from ordersmith.tenants.payments.recording import CHARGEBACK_HOLD, Recorder

# How a closed dispute is written: the row's state, its error code, and the reason it gives.
_CLOSINGS: dict[str, tuple[str, str | None, str]] = {
    "won": (status.SUCCESS, None, "dispute won: the bank gave the money back"),
    "warning_closed": (status.SUCCESS, None, "inquiry closed: it never became a chargeback"),
    "lost": (status.FAILURE, "dispute_lost", "dispute lost: the bank kept the money"),
}


async def record_dispute_opened(
    recorder: Recorder, payment: Payment, rows: list[PaymentTransaction], dispute: dict[str, Any]
) -> None:
    """Count a dispute Stripe reports opened as a chargeback, and hold the order for a person."""
    dispute_id = str(dispute.get("id"))
    if any(row.kind == status.CHARGEBACK and row.provider_reference == dispute_id for row in rows):
        return
    # As Stripe reported it: `status.amounts_of` counts it up to what the payment held (a
    # pending refund counted the rest as given back) and the rest if that refund fails.
    amount = int(dispute.get("amount") or 0)
    await recorder.note(
        payment,
        status.CHARGEBACK,
        status.SUCCESS,
        amount,
        provider_reference=dispute_id,
        reason=f"dispute opened: {dispute.get('reason') or 'no reason given'}",
    )
    recorder.hold_reason = (
        f"{CHARGEBACK_HOLD}the customer disputed {amount} {payment.currency} with their bank"
    )


async def record_dispute_closed(
    recorder: Recorder, payment: Payment, rows: list[PaymentTransaction], dispute: dict[str, Any]
) -> str | None:
    """Write how a dispute Stripe reports closed ended; returns why it was ignored, if it was."""
    dispute_id = str(dispute.get("id"))
    ending = str(dispute.get("status"))
    if ending not in _CLOSINGS:
        return f"ignored: a dispute closed as '{ending}' is not one this store acts on"
    mine = [row for row in rows if row.provider_reference == dispute_id]
    chargeback = next((row for row in mine if row.kind == status.CHARGEBACK), None)
    if chargeback is None:
        return "ignored: the ledger never counted this dispute"
    if any(row.kind == status.CHARGEBACK_REVERSAL for row in mine):
        # Closed before: the caller answers that the ledger already says so.
        return None
    state, error_code, reason = _CLOSINGS[ending]
    row = await recorder.note(
        payment,
        status.CHARGEBACK_REVERSAL,
        state,
        chargeback.amount,
        provider_reference=dispute_id,
        error_code=error_code,
        reason=reason,
    )
    recorder.announced[row.id] = {
        "dispute_id": dispute_id,
        "dispute_status": ending,
        "chargeback_transaction_id": str(chargeback.id),
    }
    return None
