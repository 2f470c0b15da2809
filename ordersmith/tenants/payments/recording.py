"""Sending one request to a provider and writing it, and its outcome, to the ledger.

Every money movement goes through `run`: a `request` row (with the idempotency key the
provider receives), the provider call, then one outcome row. The order row and the
payment row are locked by the caller before, so limits checked against the ledger still
hold when the outcome is written. Then the order hears of it: timeline entries, outbox
events, the derived `payment_status`, and a `payment` hold when an authorization or a
capture failed (the order waits for its money; a failed refund or void does not hold it),
released by the system once an authorization or capture of the order succeeds.

A refund the provider names (a Stripe `re_…`) is counted by one success row only, the one
holding it in `provider_refund_id` (unique): a retry the provider answers from memory with
a refund the ledger already counts adds nothing. A refunded total the provider reported
without naming its refunds (Stripe's `charge.refunded`) is counted on an unnamed row; a
refund named later takes its amount from that total first (`already_counted_amount`), so
the ledger never counts more refunded than the provider did. A named refund the provider
fails later is taken back by `reversals.py`, announced as `refund_failed`; a request the
provider answers from memory with such a refund (Stripe replays its first answer,
`succeeded`) is recorded as the failure it is: it gave nothing back.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import func, select, true, update
from sqlalchemy.ext.asyncio import AsyncSession

from ordersmith.platform.database import TenantContext
from ordersmith.platform.events import record_events
from ordersmith.platform.identity.audit import SYSTEM, Actor
from ordersmith.platform.ids import uuid7
from ordersmith.tenants.orders import completion, derived, lifecycle, timeline
from ordersmith.tenants.orders.holds import place_hold, release_and_confirm
from ordersmith.tenants.orders.models import Order, OrderHold
from ordersmith.tenants.orders.rules import HoldRequest
from ordersmith.tenants.orders.timeline import Entry, change
from ordersmith.tenants.orders.views import load_order
from ordersmith.tenants.payments import ledger, status
from ordersmith.tenants.payments.models import Payment, PaymentTransaction
from ordersmith.tenants.payments.providers.base import UNREACHABLE, ProviderResult

# Failures after which the very same request may be sent again (same idempotency key).
RETRYABLE_ERRORS = frozenset({UNREACHABLE, "provider_credentials_invalid"})

# What each ledger outcome is called on the timeline and in the outbox.
_VERBS = {
    ("authorize", status.SUCCESS): "authorized",
    ("capture", status.SUCCESS): "captured",
    ("void", status.SUCCESS): "voided",
    ("refund", status.SUCCESS): "refunded",
    ("chargeback", status.SUCCESS): "charged_back",
    # The customer never got the refund: to them (and the merchant) it failed, if late.
    (status.REFUND_REVERSAL, status.SUCCESS): "refund_failed",
    # How a dispute ended: the bank gave the chargeback back, or kept it.
    (status.CHARGEBACK_REVERSAL, status.SUCCESS): "chargeback_reversed",
    (status.CHARGEBACK_REVERSAL, status.FAILURE): "dispute_lost",
}


# How a chargeback's hold reason starts (`disputes.py`): such a hold is never released by a payment.
CHARGEBACK_HOLD = "chargeback: "
# Failures that leave the order waiting for its money, and the successes that end the wait.
_PAYMENT_KINDS = ("authorize", "capture")


def _failure_reason(row: PaymentTransaction) -> str:
    """The reason of the `payment` hold a failure places: `<kind> failed: <code> (<message>)`."""
    reason = f"{row.kind} failed: {row.error_code}"
    return f"{reason} ({row.error_message})" if row.error_message else reason


def _awaits_payment(hold: OrderHold) -> bool:
    """A hold the system placed because an authorization or capture failed (not a chargeback's)."""
    return (
        hold.type == "payment"
        and hold.released_at is None
        and hold.placed_by_type == SYSTEM.type
        and hold.reason.startswith(tuple(f"{kind} failed: " for kind in _PAYMENT_KINDS))
    )


def verb_of(row: PaymentTransaction) -> str:
    """A ledger outcome's name on the timeline (`payment_<verb>`) and in the outbox (`payment.<verb>`)."""
    if row.state == status.REQUIRES_ACTION:
        return "action_required"
    if row.state == status.FAILURE and (row.kind, row.state) not in _VERBS:
        return f"{row.kind}_failed"
    return _VERBS[(row.kind, row.state)]


def provider_key(payment: Payment, kind: str, request_id: uuid.UUID) -> str:
    """The idempotency key a provider receives for one ledger request: deterministic, never reused."""
    return f"ordersmith:{payment.id}:{kind}:{request_id}"


async def named_refund(session: AsyncSession, refund_id: str) -> PaymentTransaction | None:
    """The success row that counts the provider's refund `refund_id`, if the ledger has it."""
    query = select(PaymentTransaction).where(PaymentTransaction.provider_refund_id == refund_id)
    return (await session.scalars(query)).one_or_none()


async def refund_reversal(session: AsyncSession, refund_id: str) -> PaymentTransaction | None:
    """The row that took the provider's refund `refund_id` back (it failed later), if the ledger has one."""
    query = select(PaymentTransaction).where(
        PaymentTransaction.kind == status.REFUND_REVERSAL, PaymentTransaction.provider_reference == refund_id
    )
    return (await session.scalars(query)).one_or_none()


async def unattributed_refunds(session: AsyncSession, payment_id: uuid.UUID) -> int:
    """Refunds the provider reported as a total without naming them, not yet claimed by a named refund."""
    refunds = (PaymentTransaction.payment_id == payment_id) & (PaymentTransaction.kind == status.REFUND)
    unnamed = await session.scalar(
        select(func.coalesce(func.sum(PaymentTransaction.amount), 0)).where(
            refunds,
            PaymentTransaction.state == status.SUCCESS,
            PaymentTransaction.provider_refund_id.is_(None),
            PaymentTransaction.request_id.is_(None),
        )
    )
    claimed = await session.scalar(
        select(func.coalesce(func.sum(PaymentTransaction.already_counted_amount), 0)).where(
            refunds, PaymentTransaction.provider_refund_id.is_not(None)
        )
    )
    return max(int(unnamed or 0) - int(claimed or 0), 0)


async def _counting(session: AsyncSession, payment: Payment, refund_id: str, amount: int) -> dict[str, Any]:
    """How a success row records the provider's refund: what it adds, and what was counted before."""
    if await named_refund(session, refund_id) is not None:
        # Answered from the provider's memory: another row counts this refund already.
        return {"amount": 0, "already_counted_amount": amount}
    claimed = min(amount, await unattributed_refunds(session, payment.id))
    return {"amount": amount - claimed, "already_counted_amount": claimed, "provider_refund_id": refund_id}


@dataclass
class Recorder:
    """What one operation on an order's payments wrote, to announce together at the end."""

    tenant: TenantContext
    session: AsyncSession
    order: Order
    actor: Actor
    outcomes: list[tuple[Payment, PaymentTransaction]] = field(default_factory=list)
    # Why the order must wait, when something other than a failure calls for a hold (a chargeback).
    hold_reason: str | None = None
    # What an outcome's timeline entry and event say beyond the row itself, by row id (a
    # refund reversal names the refund it takes back).
    announced: dict[uuid.UUID, dict[str, Any]] = field(default_factory=dict)

    async def run(
        self,
        payment: Payment,
        kind: str,
        amount: int,
        call: Callable[[str], Awaitable[ProviderResult]],
        *,
        reason: str | None = None,
        key: str | None = None,
        retry_of: PaymentTransaction | None = None,
    ) -> tuple[PaymentTransaction, ProviderResult]:
        """Record the request, ask the provider (with the request's key), record the outcome."""
        request_id = uuid7()
        if retry_of is not None:
            key = retry_of.idempotency_key
        key = key or provider_key(payment, kind, request_id)
        request = await ledger.append(
            self.session,
            payment,
            kind,
            status.REQUEST,
            amount,
            actor=self.actor,
            row_id=request_id,
            idempotency_key=key,
            reason=reason,
            retry_of_id=retry_of.id if retry_of else None,
        )
        result = await call(key)
        if kind == status.REFUND and result.outcome == status.SUCCESS and result.reference:
            result = await self._unless_taken_back(result)
        state = result.outcome
        counting: dict[str, Any] = {"amount": result.amount if state == status.SUCCESS else amount}
        if kind == status.REFUND and state == status.SUCCESS and result.reference:
            counting = await _counting(self.session, payment, result.reference, result.amount)
        outcome = await ledger.append(
            self.session,
            payment,
            kind,
            state,
            actor=self.actor,
            request_id=request.id,
            idempotency_key=key,
            provider_reference=result.reference,
            error_code=result.error_code,
            error_message=result.error_message,
            reason=reason,
            **counting,
        )
        self.outcomes.append((payment, outcome))
        return outcome, result

    async def _unless_taken_back(self, result: ProviderResult) -> ProviderResult:
        """A refund success, or the failure it is when the ledger took that refund back already."""
        assert result.reference is not None
        reversal = await refund_reversal(self.session, result.reference)
        if reversal is None:
            return result
        # Answered from the provider's memory as it first was: the refund failed since.
        return ProviderResult.failed(
            reversal.error_code or "refund_failed",
            f"the provider answered from memory with refund {result.reference}, which it failed "
            "later; nothing was given back",
            reference=result.reference,
        )

    async def note(
        self, payment: Payment, kind: str, state: str, amount: int, **details: Any
    ) -> PaymentTransaction:
        """An outcome nobody asked for: a webhook reported it, or a capture released the rest."""
        row = await ledger.append(self.session, payment, kind, state, amount, actor=self.actor, **details)
        self.outcomes.append((payment, row))
        return row

    async def note_refund(
        self, payment: Payment, refund_id: str, amount: int, *, refundable: int, **details: Any
    ) -> PaymentTransaction | None:
        """A refund the provider reported by name; None when the ledger counts it already.

        Never adds more than `refundable` (what the ledger says is still captured).
        """
        counting = await _counting(self.session, payment, refund_id, amount)
        if "provider_refund_id" not in counting:
            return None
        counting["amount"] = min(counting["amount"], refundable)
        return await self.note(
            payment, status.REFUND, status.SUCCESS, provider_reference=refund_id, **counting, **details
        )

    async def finish(self) -> str:
        """Refresh the order's payment status, tell the order (timeline, events, hold); return the status."""
        old_status = self.order.payment_status
        new_status, _ = await derived.refresh(self.session, self.order.id)
        if not self.outcomes:
            return new_status
        # A new version: an edit previewed before this money moved shows a balance that no
        # longer holds, so its commit is refused with `order_changed`.
        await self.session.execute(
            update(Order)
            .where(Order.id == self.order.id)
            .values(version=Order.version + 1, updated_at=dt.datetime.now(dt.UTC))
        )
        entries: list[Entry] = []
        events: list[tuple[str, dict[str, Any]]] = []
        for index, (payment, row) in enumerate(self.outcomes):
            last = index == len(self.outcomes) - 1
            details: dict[str, Any] = {
                "payment_id": str(payment.id),
                "transaction_id": str(row.id),
                "provider": payment.provider,
                "amount": row.amount,
                "currency": row.currency,
            }
            if row.error_code:
                details["error_code"] = row.error_code
            if row.reason:
                details["reason"] = row.reason
            if row.already_counted_amount:
                # The refund was counted before (a reported total, or a row naming it).
                details["already_counted_amount"] = row.already_counted_amount
            details |= self.announced.get(row.id, {})
            if last and new_status != old_status:
                details["payment_status"] = change(old_status, new_status)
            entries.append(Entry(f"payment_{verb_of(row)}", details))
            events.append(
                (
                    f"payment.{verb_of(row)}",
                    {
                        "order_id": str(self.order.id),
                        "number": self.order.number,
                        **{key: value for key, value in details.items() if key != "payment_status"},
                        "payment_status": new_status,
                    },
                )
            )
        await timeline.record(self.session, self.order.id, entries, self.actor)
        await record_events(self.session, self.tenant, events)
        # A failed refund or void leaves the order's money where it was: its goods may still ship.
        failures = [
            row for _, row in self.outcomes if row.state == status.FAILURE and row.kind in _PAYMENT_KINDS
        ]
        paid = [row for _, row in self.outcomes if row.state == status.SUCCESS and row.kind in _PAYMENT_KINDS]
        if failures:
            await self._hold(_failure_reason(failures[-1]))
        elif self.hold_reason:
            await self._hold(self.hold_reason)
        elif paid:
            await self._release_holds_awaiting_payment(verb_of(paid[-1]))
        # The payment that settles a fully shipped order completes it.
        await completion.settle(self.tenant, self.session, self.order.id)
        return new_status

    async def _release_holds_awaiting_payment(self, verb: str) -> None:
        # The money came through: the wait a failure started is over, with no one's touch.
        # A person's payment hold, and a chargeback's, stay for a person to release.
        view = await load_order(self.session, self.order.id, lock=True)
        waiting = [hold for hold in view.holds if _awaits_payment(hold)]
        if waiting and view.order.status in lifecycle.OPEN:
            await release_and_confirm(
                self.tenant,
                self.session,
                view.order,
                waiting,
                note=f"released automatically: a later payment was {verb}",
                actor=SYSTEM,
            )

    async def _hold(self, reason: str) -> None:
        # A closed order takes no holds; an order already waiting on payment needs no second one.
        # A chargeback's hold stands on its own: a failed payment's hold is released by the next
        # payment that succeeds, which must not leave a disputed order free to ship.
        if self.order.status not in lifecycle.OPEN:
            return
        same_cause = (
            OrderHold.reason.startswith(CHARGEBACK_HOLD) if reason.startswith(CHARGEBACK_HOLD) else true()
        )
        already = await self.session.scalar(
            select(OrderHold.id).where(
                OrderHold.order_id == self.order.id,
                OrderHold.type == "payment",
                OrderHold.released_at.is_(None),
                same_cause,
            )
        )
        if already is not None:
            return
        # The system places it, whoever's request failed: a hold nobody chose is no touch.
        await place_hold(
            self.tenant,
            self.session,
            self.order.id,
            HoldRequest("payment", reason[:500], "agent"),
            actor=SYSTEM,
        )
