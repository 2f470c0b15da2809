"""Taking, capturing, voiding and refunding payments, and capturing at shipment.

Each operation locks the order row, then the payment rows (the order every writer to an
order uses), checks its limit against the ledger under those locks, and only then asks
the provider. So two refunds racing on one payment run one after the other and the
second sees the first: the refunded total never passes the captured total. The provider
is called inside the transaction; its idempotency key comes from the ledger row, so if
the transaction is lost after the provider acted, sending the request again (same key)
is answered from the provider's memory instead of moving money twice.

Failures (a decline, an unreachable provider) are results, not exceptions: the ledger
keeps them, the order gets a `payment` hold, and the caller's transaction commits.
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from sqlalchemy import insert, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from ordersmith.platform.database import TenantContext
from ordersmith.platform.errors import FieldError, PermissionDeniedError, ValidationFailedError
from ordersmith.platform.identity.audit import Actor
from ordersmith.platform.ids import uuid7
from ordersmith.tenants.orders import lifecycle
from ordersmith.tenants.orders.models import Order
from ordersmith.tenants.orders.views import order_row
from ordersmith.tenants.payments import closing, ledger, status
from ordersmith.tenants.payments.errors import (
    CaptureExceedsAuthorizedError,
    NothingToRetryError,
    NothingToVoidError,
    OrderNotPayableError,
    RefundExceedsCapturedError,
)
from ordersmith.tenants.payments.models import PROVIDERS, Payment, PaymentTransaction
from ordersmith.tenants.payments.providers.base import (
    AuthorizeRequest,
    PaymentProvider,
    ProviderResult,
)
from ordersmith.tenants.payments.providers.manual import METHODS
from ordersmith.tenants.payments.recording import RETRYABLE_ERRORS, Recorder
from ordersmith.tenants.payments.settings import capture_policy_of, provider_for

# Payments are taken and captured while an order is live; refunds and voids also after.
PAYABLE = frozenset({lifecycle.PLACED, lifecycle.CONFIRMED, lifecycle.COMPLETED})
MAX_AMOUNT = 10**12
MAX_TEXT = 1_000


@dataclass(frozen=True)
class PaymentRequest:
    """A payment to take on an order."""

    provider: str
    # Omit to take what the order still owes.
    amount: int | None = None
    currency: str | None = None
    # manual: cash, bank_transfer, invoice, cheque, other; stripe: a PaymentMethod id (pm_…).
    method: str | None = None
    # Capture now? Omit for the default: manual payments are money received (captured);
    # stripe follows the store's capture policy.
    capture: bool | None = None
    note: str | None = None


@dataclass(frozen=True)
class PaymentView:
    """A payment with its ledger and what the ledger adds up to."""

    payment: Payment
    transactions: list[PaymentTransaction]
    amounts: status.PaymentAmounts

    @property
    def status(self) -> str:
        return status.single_payment_status(self.amounts)


@dataclass(frozen=True)
class PaymentChange:
    """A payment after an operation, the ledger outcome it ended with, and the order's payment status."""

    view: PaymentView
    transaction: PaymentTransaction | None
    payment_status: str


@dataclass(frozen=True)
class OrderPayments:
    """Every payment of an order and the order's money at a glance."""

    order: Order
    payments: list[PaymentView]
    payment_status: str
    captured_amount: int
    refunded_amount: int
    net_paid_amount: int
    capturable_amount: int
    refundable_amount: int
    balance_due_amount: int
    extra: dict[str, int] = field(default_factory=dict)


# --- reading ------------------------------------------------------------------------


async def _view(session: AsyncSession, payment: Payment) -> PaymentView:
    rows = await ledger.transactions_of(session, [payment.id])
    return PaymentView(payment, rows, status.amounts_of(ledger.entries(rows)))


async def get_payment(session: AsyncSession, payment_id: uuid.UUID) -> PaymentView:
    """One payment with its whole ledger."""
    return await _view(session, await ledger.payment_row(session, payment_id))


async def order_payments(session: AsyncSession, order_id: uuid.UUID) -> OrderPayments:
    """An order's payments, oldest first, with captured, refunded and still-due totals."""
    order = await order_row(session, order_id)
    payments = await ledger.payments_of(session, order_id)
    rows = await ledger.transactions_of(session, [payment.id for payment in payments])
    by_payment = status.amounts_by_payment(ledger.entries(rows))
    views = [
        PaymentView(
            payment,
            [row for row in rows if row.payment_id == payment.id],
            by_payment.get(payment.id, status.PaymentAmounts()),
        )
        for payment in payments
    ]
    amounts = [view.amounts for view in views]
    return OrderPayments(
        order,
        views,
        status.payment_status(amounts, order.total_amount),
        sum(item.captured for item in amounts),
        sum(item.refunded + item.charged_back for item in amounts),
        sum(item.net for item in amounts),
        sum(item.capturable for item in amounts),
        sum(item.refundable for item in amounts),
        status.balance_due(amounts, order.total_amount),
    )


async def captured_amount(session: AsyncSession, order_id: uuid.UUID) -> int:
    """Money captured for the order, net of refunds and chargebacks."""
    return await ledger.net_paid(session, order_id)


# --- taking a payment ---------------------------------------------------------------


def _check_request(request: PaymentRequest, order: Order) -> list[FieldError]:
    errors: list[FieldError] = []
    if request.provider not in PROVIDERS:
        errors.append(FieldError("provider", f"must be one of {', '.join(PROVIDERS)}"))
    if request.amount is not None and not 0 < request.amount <= MAX_AMOUNT:
        errors.append(FieldError("amount", f"must be a whole number of minor units, 1 to {MAX_AMOUNT}"))
    if request.currency is not None and request.currency != order.currency:
        errors.append(FieldError("currency", f"must be the order's currency, {order.currency}"))
    if request.provider == "manual" and request.method is not None and request.method not in METHODS:
        errors.append(FieldError("method", f"must be one of {', '.join(METHODS)}"))
    if request.provider == "stripe" and not (request.method or "").startswith("pm_"):
        errors.append(FieldError("method", "give the Stripe PaymentMethod id (pm_…) the customer paid with"))
    if request.note is not None and len(request.note) > MAX_TEXT:
        errors.append(FieldError("note", f"must be at most {MAX_TEXT} characters"))
    return errors


def _check_payable(order: Order, action: str) -> None:
    if order.status not in PAYABLE:
        raise OrderNotPayableError(
            f"an order that is {order.status} cannot {action}; "
            "only placed, confirmed or completed orders can",
            extensions={"current_status": order.status},
        )


async def _lock(session: AsyncSession, payment_id: uuid.UUID) -> tuple[Order, Payment]:
    """The payment's order, then the payment, locked in that order (as every order writer does)."""
    found = await ledger.payment_row(session, payment_id)
    order = await order_row(session, found.order_id, lock=True)
    return order, await ledger.payment_row(session, payment_id, lock=True)


async def _amounts(session: AsyncSession, payment: Payment) -> status.PaymentAmounts:
    return status.amounts_of(ledger.entries(await ledger.transactions_of(session, [payment.id])))


def _authorize_call(
    provider: PaymentProvider, payment: Payment, tenant: TenantContext, amount: int
) -> Callable[[str], Awaitable[ProviderResult]]:
    async def call(key: str) -> ProviderResult:
        return await provider.authorize(
            AuthorizeRequest(
                amount,
                payment.currency,
                payment.method,
                key,
                {
                    "ordersmith_store": tenant.slug,
                    "ordersmith_order_id": str(payment.order_id),
                    "ordersmith_payment_id": str(payment.id),
                },
            )
        )

    return call


async def _capture(
    recorder: Recorder,
    provider: PaymentProvider,
    payment: Payment,
    amount: int,
    capturable: int,
    *,
    retry_of: PaymentTransaction | None = None,
) -> PaymentTransaction:
    """Capture `amount` of `capturable`; anything the provider released with it is voided in the ledger.

    The capture is final when it takes everything, or when it retries a final capture
    (`closing.FINAL_CAPTURE`): sent again as it was, it releases the rest as it would have.
    """
    final_again = retry_of is not None and retry_of.reason == closing.FINAL_CAPTURE
    is_final = amount >= capturable or final_again
    outcome, result = await recorder.run(
        payment,
        "capture",
        amount,
        lambda key: provider.capture(
            payment.provider_reference, amount, is_final=is_final, idempotency_key=key
        ),
        reason=closing.FINAL_CAPTURE if final_again else None,
        retry_of=retry_of,
    )
    left = capturable - amount
    if (
        outcome.state == status.SUCCESS
        and result.remaining_capturable is not None
        and result.remaining_capturable < left
    ):
        # A card without multicapture lets the rest of the authorization go with this capture.
        await recorder.note(
            payment,
            "void",
            status.SUCCESS,
            left - result.remaining_capturable,
            provider_reference=payment.provider_reference,
            reason="released by the provider with the capture",
        )
    return outcome


async def create_payment(
    tenant: TenantContext,
    session: AsyncSession,
    order_id: uuid.UUID,
    request: PaymentRequest,
    *,
    actor: Actor,
) -> PaymentChange:
    """Take a payment on an order: authorize it, and capture it now or later per the store's policy."""
    order = await order_row(session, order_id, lock=True)
    errors = _check_request(request, order)
    if errors:
        raise ValidationFailedError("the payment is invalid; see errors", errors=errors)
    _check_payable(order, "take a payment")
    provider = await provider_for(tenant, session, request.provider)
    amount = request.amount if request.amount is not None else await _still_uncovered(session, order)
    policy = await capture_policy_of(session)
    capture = request.capture
    if capture is None:
        capture = request.provider == "manual" or policy == "at_placement"
    payment_row = (
        await session.scalars(
            insert(Payment)
            .values(
                id=uuid7(),
                order_id=order_id,
                provider=request.provider,
                method=request.method or ("other" if request.provider == "manual" else None),
                currency=order.currency,
                amount=amount,
                note=(request.note or "").strip() or None,
                created_by_type=actor.type,
                created_by_id=actor.id,
            )
            .returning(Payment)
        )
    ).one()
    recorder = Recorder(tenant, session, order, actor)
    outcome: PaymentTransaction
    if request.provider == "manual" and capture:
        # Money received: a capture with nothing authorized before it.
        outcome, _ = await recorder.run(
            payment_row,
            "capture",
            amount,
            lambda key: provider.capture(None, amount, is_final=True, idempotency_key=key),
        )
    else:
        outcome, result = await recorder.run(
            payment_row, "authorize", amount, _authorize_call(provider, payment_row, tenant, amount)
        )
        if result.reference and payment_row.provider_reference is None:
            payment_row = await _set_reference(session, payment_row, result.reference)
        if outcome.state == status.SUCCESS and capture:
            outcome = await _capture(recorder, provider, payment_row, outcome.amount, outcome.amount)
        elif request.capture is None and policy == "at_shipment":
            outcome = await _collect_if_shipped(
                tenant, session, recorder, provider, payment_row, outcome, asked=request.amount is not None
            )
    payment_status = await recorder.finish()
    return PaymentChange(await _view(session, payment_row), outcome, payment_status)


async def _still_uncovered(session: AsyncSession, order: Order) -> int:
    """What a payment without an amount takes: what the order still owes less what is authorized for it."""
    taken = list((await ledger.amounts_of_order(session, order.id)).values())
    uncovered = status.balance_due(taken, order.total_amount) - sum(item.capturable for item in taken)
    if uncovered <= 0:
        raise ValidationFailedError(
            "the order owes nothing more: its total is captured or authorized already, and money "
            "refunded is not taken again; give an amount to take a payment anyway",
            errors=[FieldError("amount", "required: the order's balance is already paid or authorized")],
        )
    return uncovered


async def _collect_if_shipped(
    tenant: TenantContext,
    session: AsyncSession,
    recorder: Recorder,
    provider: PaymentProvider,
    payment: Payment,
    outcome: PaymentTransaction,
    *,
    asked: bool = False,
) -> PaymentTransaction:
    """At a store capturing at shipment, a card authorized once nothing is left to ship is collected now.

    No shipment is left to capture it. A payment whose amount the merchant gave (`asked`) is
    captured whole: they chose it, and what the order owes may not show it (money refunded
    to be taken another way is not owed again, `status.balance_due`). One without takes the
    path the last shipment takes (`closing.close_authorizations`): what the order still owes
    is captured in a final capture and the rest released. Returns the payment's last ledger
    outcome.
    """
    if outcome.state != status.SUCCESS or not provider.captures_at_shipment:
        return outcome
    if not await closing.nothing_left_to_ship(session, payment.order_id):
        return outcome
    if asked:
        return await _capture(recorder, provider, payment, outcome.amount, outcome.amount)
    await closing.close_authorizations(tenant, session, recorder, capture_cards=True)
    # The provider's answers, not the notes the ledger adds beside them (a release with a capture).
    answers = [row for paid, row in recorder.outcomes if paid.id == payment.id and row.request_id is not None]
    return answers[-1] if answers else outcome


async def _set_reference(session: AsyncSession, payment: Payment, reference: str) -> Payment:
    # The provider's id is learnt from its first answer; it never changes afterwards.
    await session.execute(
        update(Payment).where(Payment.id == payment.id).values(provider_reference=reference)
    )
    return await ledger.payment_row(session, payment.id)


# --- capture, void, refund, retry -----------------------------------------------------


def check_amount(amount: int | None) -> None:
    if amount is not None and not 0 < amount <= MAX_AMOUNT:
        raise ValidationFailedError(
            "the amount is invalid; see errors",
            errors=[FieldError("amount", f"must be a whole number of minor units, 1 to {MAX_AMOUNT}")],
        )


async def capture_payment(
    tenant: TenantContext, session: AsyncSession, payment_id: uuid.UUID, amount: int | None, *, actor: Actor
) -> PaymentChange:
    """Capture authorized funds, all or part; never more than the authorization still holds."""
    check_amount(amount)
    order, payment = await _lock(session, payment_id)
    _check_payable(order, "capture a payment")
    capturable = (await _amounts(session, payment)).capturable
    wanted = capturable if amount is None else amount
    if wanted == 0 or wanted > capturable:
        raise CaptureExceedsAuthorizedError(wanted, capturable, payment.currency)
    provider = await provider_for(tenant, session, payment.provider)
    recorder = Recorder(tenant, session, order, actor)
    outcome = await _capture(recorder, provider, payment, wanted, capturable)
    payment_status = await recorder.finish()
    return PaymentChange(await _view(session, payment), outcome, payment_status)


async def void_payment(
    tenant: TenantContext, session: AsyncSession, payment_id: uuid.UUID, *, actor: Actor
) -> PaymentChange:
    """Release what the authorization still holds, or cancel a payment still waiting on its customer."""
    order, payment = await _lock(session, payment_id)
    amounts = await _amounts(session, payment)
    capturable = amounts.capturable
    if capturable == 0 and not amounts.awaiting_action:
        raise NothingToVoidError("this payment holds no authorized funds; there is nothing to void")
    provider = await provider_for(tenant, session, payment.provider)
    recorder = Recorder(tenant, session, order, actor)
    outcome, _ = await recorder.run(
        payment,
        "void",
        capturable,
        lambda key: provider.void(payment.provider_reference, capturable, idempotency_key=key),
    )
    payment_status = await recorder.finish()
    return PaymentChange(await _view(session, payment), outcome, payment_status)


def check_reason(reason: str | None) -> str | None:
    reason = (reason or "").strip() or None
    if reason is not None and len(reason) > MAX_TEXT:
        raise ValidationFailedError(
            "the reason is too long", errors=[FieldError("reason", f"must be at most {MAX_TEXT} characters")]
        )
    return reason


async def refund_payment(
    tenant: TenantContext,
    session: AsyncSession,
    payment_id: uuid.UUID,
    amount: int,
    *,
    reason: str | None,
    actor: Actor,
) -> PaymentChange:
    """Give captured money back through the payment's provider; never more than was captured."""
    check_amount(amount)
    reason = check_reason(reason)
    order, payment = await _lock(session, payment_id)
    if order.status == lifecycle.DRAFT:
        raise OrderNotPayableError("a draft order has taken no money to refund")
    refundable = (await _amounts(session, payment)).refundable
    if amount > refundable:
        raise RefundExceedsCapturedError(amount, refundable, payment.currency)
    provider = await provider_for(tenant, session, payment.provider)
    recorder = Recorder(tenant, session, order, actor)
    outcome, _ = await recorder.run(
        payment,
        "refund",
        amount,
        lambda key: provider.refund(payment.provider_reference, amount, reason=reason, idempotency_key=key),
        reason=reason,
    )
    payment_status = await recorder.finish()
    return PaymentChange(await _view(session, payment), outcome, payment_status)


async def retry_payment(
    tenant: TenantContext, session: AsyncSession, payment_id: uuid.UUID, *, actor: Actor, may_refund: bool
) -> PaymentChange:
    """Send again the payment's last request, which failed because the provider could not be reached.

    The retry carries the failed request's idempotency key: if the provider did act on
    the first attempt after all, it answers with that result and moves no money twice.
    """
    order, payment = await _lock(session, payment_id)
    rows = await ledger.transactions_of(session, [payment.id])
    outcomes = [row for row in rows if row.state != status.REQUEST]
    last = outcomes[-1] if outcomes else None
    if last is None or last.state != status.FAILURE or last.error_code not in RETRYABLE_ERRORS:
        raise NothingToRetryError(
            "only a request that failed because the provider could not be reached can be retried; "
            "after a decline, take a new payment"
        )
    request = next(row for row in rows if row.id == last.request_id)
    if request.kind == "refund" and not may_refund:
        raise PermissionDeniedError("retrying a refund needs the 'orders.refund' permission; ask a manager")
    amounts = status.amounts_of(ledger.entries(rows))
    provider = await provider_for(tenant, session, payment.provider)
    recorder = Recorder(tenant, session, order, actor)
    amount = request.amount
    outcome: PaymentTransaction
    if request.kind == "authorize":
        outcome, result = await recorder.run(
            payment, "authorize", amount, _authorize_call(provider, payment, tenant, amount), retry_of=request
        )
        if result.reference and payment.provider_reference is None:
            payment = await _set_reference(session, payment, result.reference)
        policy = await capture_policy_of(session)
        if outcome.state == status.SUCCESS and policy == "at_placement":
            outcome = await _capture(recorder, provider, payment, outcome.amount, outcome.amount)
        elif policy == "at_shipment":
            outcome = await _collect_if_shipped(tenant, session, recorder, provider, payment, outcome)
    elif request.kind == "capture":
        if amount > amounts.capturable:
            raise CaptureExceedsAuthorizedError(amount, amounts.capturable, payment.currency)
        outcome = await _capture(recorder, provider, payment, amount, amounts.capturable, retry_of=request)
    elif request.kind == "void":
        outcome, _ = await recorder.run(
            payment,
            "void",
            amounts.capturable,
            lambda key: provider.void(payment.provider_reference, amounts.capturable, idempotency_key=key),
            retry_of=request,
        )
    else:
        if amount > amounts.refundable:
            raise RefundExceedsCapturedError(amount, amounts.refundable, payment.currency)
        outcome, _ = await recorder.run(
            payment,
            "refund",
            amount,
            lambda key: provider.refund(
                payment.provider_reference, amount, reason=request.reason, idempotency_key=key
            ),
            reason=request.reason,
            retry_of=request,
        )
    payment_status = await recorder.finish()
    return PaymentChange(await _view(session, payment), outcome, payment_status)


# --- what other contexts call ---------------------------------------------------------


async def capture_for_shipment(
    tenant: TenantContext, session: AsyncSession, order_id: uuid.UUID, amount: int, *, actor: Actor
) -> None:
    """When the store captures at shipment: capture up to `amount` of the order's authorized funds.

    Payments are drawn oldest first, those of providers that hold funds only
    (`captures_at_shipment`: a manual payment promised on invoice terms is captured when a
    person records the money); a provider failure is recorded and holds the order, and is
    not raised, so the shipment that triggered it stands. The shipment that leaves nothing
    of the order to ship closes its authorizations instead (`closing`): card holds give
    what the order still owes in final captures, which release the rest, and whatever is
    held beyond it is released, whatever the capture policy. Otherwise a no-op for stores
    capturing at placement.
    """
    policy = await capture_policy_of(session)
    order = await order_row(session, order_id, lock=True)
    if await closing.nothing_left_to_ship(session, order_id):
        recorder = Recorder(tenant, session, order, actor)
        await closing.close_authorizations(tenant, session, recorder, capture_cards=policy == "at_shipment")
        if recorder.outcomes:
            await recorder.finish()
        return
    if amount <= 0 or policy != "at_shipment":
        return
    payments = await ledger.payments_of(session, order_id, lock=True)
    by_payment = await ledger.amounts_of_order(session, order_id)
    recorder = Recorder(tenant, session, order, actor)
    remaining = amount
    for payment in payments:
        capturable = by_payment[payment.id].capturable
        if remaining <= 0 or capturable == 0:
            continue
        provider = await provider_for(tenant, session, payment.provider)
        if not provider.captures_at_shipment:
            continue
        take = min(remaining, capturable)
        outcome = await _capture(recorder, provider, payment, take, capturable)
        if outcome.state != status.SUCCESS:
            break
        remaining -= take
    await recorder.finish()


async def payment_by_reference(session: AsyncSession, provider: str, reference: str) -> Payment | None:
    """The payment a provider's object belongs to, if it is one of this store's."""
    query = select(Payment).where(Payment.provider == provider, Payment.provider_reference == reference)
    return (await session.scalars(query)).one_or_none()
