"""How a return is resolved: a refund through the order's payments, store credit, or an exchange.

Outcomes are not statuses: staff may give them while a return is approved, in transit
or received, so a return can be refunded before (or without) the goods coming back.
A closed return that keeps its units (received, or it had any outcome or refund attempt:
`service.keeps_its_units`) may still be refunded or credited, so a refund Stripe failed
after closing can be given again; one closed without either gave its units up, and other
returns may claim them, so it is never paid. Exchanges need a return that is not closed.
Refund, store credit and the exchange together never exceed what the returned units
were sold for (422 `resolution_exceeds_return_value` with what remains): an exchange
uses up what the returned units it replaces were sold for, one returned unit per
replacement unit, dearest first, since it names no return line. Goods an exchange gives
away (per line, quantity times the catalog price less the price charged, never below 0)
beyond what those returned units were sold for are a refund in goods: only a caller who
may refund (`orders.refund`) gives them, or exchanges for goods priced in another
currency than the order's, which cannot be weighed; anyone else gets 403
`permission_denied`. A refund also never exceeds what was captured (the payments
context answers 422 `refund_exceeds_captured`); store credit never exceeds what the
order's payments still hold less the credit its returns gave already, so money never
paid, or already paid back, is not credited.

A refund's provider idempotency key is the return and the refund's sequence number on
it, one more than the highest any refund request of the return sent (the payments
ledger keeps them): a request retried after its transaction rolled back (nothing in the
ledger) reuses the key, and an attempt that reached the ledger, answered or not, moves
it on, so a refund the provider refused for good never poisons the next one. An attempt
whose provider call has an unknown outcome (unreachable, or the answer lost) keeps its
own key: the return's next refund sends it again as it was, before anything new, so the
provider answers from memory if it acted. Until then that money counts as possibly
given back: store credit cannot use it, and the next refund must ask for at least that
much.

A provider refusing a refund is recorded, not raised (the payments ledger holds the
attempt): the request answers with what it did, `succeeded`, `partial` (some payments
gave theirs back before a provider refused) or `failed`, with the provider's error code.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, insert, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from ordersmith.platform.database import TenantContext
from ordersmith.platform.errors import FieldError, PermissionDeniedError, ValidationFailedError
from ordersmith.platform.events import record_event
from ordersmith.platform.identity.audit import Actor
from ordersmith.platform.ids import uuid7
from ordersmith.tenants.orders import derived, timeline
from ordersmith.tenants.orders.models import Order
from ordersmith.tenants.orders.placement import place_order, skus_by_code
from ordersmith.tenants.orders.rules import LineRequest, OrderRequest
from ordersmith.tenants.orders.timeline import Entry
from ordersmith.tenants.payments import ledger, status
from ordersmith.tenants.payments.models import PaymentTransaction
from ordersmith.tenants.payments.refunds import (
    EarlierRefunds,
    RefundOutcome,
    earlier_refunds_outstanding,
    refund_order,
)
from ordersmith.tenants.returns import lifecycle, store_credit
from ordersmith.tenants.returns.errors import (
    ExchangeExistsError,
    ResolutionExceedsReturnValueError,
    ReturnNotResolvableError,
)
from ordersmith.tenants.returns.models import Return, ReturnResolution
from ordersmith.tenants.returns.rules import MAX_NOTE, ExchangeRequest, check_amount, check_exchange
from ordersmith.tenants.returns.service import keeps_its_units, locked_return, refund_key_prefix
from ordersmith.tenants.returns.views import ReturnView, return_view

RETURN_REFUNDED = "return.refunded"
RETURN_STORE_CREDITED = "return.store_credited"
RETURN_EXCHANGED = "return.exchanged"

# What one refund request of a return gave back.
REFUND_SUCCEEDED = "succeeded"  # all it asked
REFUND_PARTIAL = "partial"  # some payments gave theirs back, then a provider refused the next
REFUND_FAILED = "failed"  # nothing: the provider refused, or its answer was lost


@dataclass(frozen=True)
class RefundAttempt:
    """What one refund request did at the providers, as the payments ledger recorded it."""

    requested: int
    # An attempt whose answer was lost, resent and answered now, counts whole (even beyond `requested`).
    refunded: int
    currency: str
    state: str
    # The provider's reason when not all went back, as on the payment's ledger.
    error_code: str | None
    # The ledger's successes that gave money back: the refund resolution's.
    transaction_ids: list[uuid.UUID]
    # The ledger's failure the request ended with, when a provider refused.
    failed_transaction_id: uuid.UUID | None


@dataclass(frozen=True)
class ReturnRefund:
    """A return after a refund request, and what that request did."""

    view: ReturnView
    attempt: RefundAttempt


async def _check_resolvable(session: AsyncSession, row: Return, action: str, *, closed_too: bool) -> None:
    """409 unless the return may take this outcome; `closed_too` for a refund or store credit."""
    if row.status in lifecycle.RESOLVABLE:
        return
    if closed_too and row.status == lifecycle.CLOSED:
        if await keeps_its_units(session, row.id):
            return
        raise ReturnNotResolvableError(
            "this return was closed without the goods and without any outcome, so its units may be "
            f"returned again; it cannot {action}: open a new return for those units",
            extensions={"current_status": row.status},
        )
    also = ", and closed ones that kept their units can be refunded or credited" if closed_too else ""
    raise ReturnNotResolvableError(
        f"a return that is {row.status} cannot {action}; only approved, in-transit or received returns "
        f"can{also}",
        extensions={"current_status": row.status},
    )


def _reason(reason: str) -> str:
    if len(reason) > MAX_NOTE:
        raise ValidationFailedError(
            "the reason is invalid; see errors",
            errors=[FieldError("reason", f"must be at most {MAX_NOTE} characters")],
        )
    return reason.strip()


@dataclass(frozen=True)
class _Ceiling:
    """A limit on an outcome besides the return's value, and the sentence saying why."""

    amount: int
    why: str


def _used(view: ReturnView) -> str:
    row = view.row
    parts = [f"{row.refunded_amount} refunded", f"{row.store_credit_amount} given as store credit"]
    if view.exchange_amount:
        parts.append(f"{view.exchange_amount} used by the exchange")
    return ", ".join(parts[:-1]) + " and " + parts[-1]


async def _amount(
    session: AsyncSession,
    row: Return,
    amount: int | None,
    *,
    outstanding: int = 0,
    is_refund: bool,
    ceiling: _Ceiling | None = None,
) -> int:
    """The amount asked, or what is left of the return's value (and `ceiling`); 422 beyond it.

    `outstanding` is refund money an earlier attempt may have given back already: the
    next refund sends it again, so that refund must cover it, and store credit cannot.
    """
    check_amount(amount)
    view = await return_view(session, row.id)
    left = view.value - row.refunded_amount - row.store_credit_amount - view.exchange_amount
    remaining = max(left, outstanding) if is_refund else left - outstanding
    limit = ceiling if ceiling is not None and ceiling.amount < remaining else None
    if limit is not None:
        remaining = limit.amount
    wanted = remaining if amount is None else amount
    if wanted > remaining or wanted <= 0:
        pending = (
            f" (of which {outstanding} is a refund awaiting the provider's answer, "
            "sent again by the next refund)"
            if outstanding
            else ""
        )
        why = f"the returned units are worth {view.value} {row.currency}; {_used(view)} leave {left}{pending}"
        if limit is not None:
            why = limit.why
        remaining = max(remaining, 0)
        raise ResolutionExceedsReturnValueError(
            f"{why}; ask for at most {remaining}",
            errors=[FieldError("amount", f"must be at most {remaining}")],
            extensions={"remaining": remaining, "currency": row.currency},
        )
    if is_refund and wanted < outstanding:
        raise ValidationFailedError(
            f"a refund of {outstanding} {row.currency} for this return awaits the provider's answer; "
            "it is sent again as it was, so ask for at least that much, or leave the amount out",
            errors=[FieldError("amount", f"must be at least {outstanding}")],
        )
    return wanted


async def _earlier_refunds(session: AsyncSession, row: Return) -> EarlierRefunds:
    """The return's refunds so far, as payments knows them: their keys and the outcomes recorded here."""
    recorded = await session.scalars(
        select(func.unnest(ReturnResolution.payment_transaction_ids)).where(
            ReturnResolution.return_id == row.id, ReturnResolution.kind == "refund"
        )
    )
    return EarlierRefunds(refund_key_prefix(row.id), frozenset(recorded))


async def _next_sequence(session: AsyncSession, order: Order, earlier: EarlierRefunds) -> int:
    """One more than the highest refund number any of the return's refund requests sent.

    Payments derive each payment's key from the return's key, so the return's key ends
    theirs. A request the provider refused for good moved the number on: its key would
    only bring back the provider's stored refusal.
    """
    keys = await session.scalars(
        select(PaymentTransaction.idempotency_key)
        .distinct()
        .where(
            PaymentTransaction.order_id == order.id,
            PaymentTransaction.kind == "refund",
            PaymentTransaction.idempotency_key.contains(earlier.key_prefix, autoescape=True),
        )
    )
    numbers = [key.rsplit(earlier.key_prefix, 1)[1] for key in keys if key is not None]
    return 1 + max((int(number) for number in numbers if number.isdigit()), default=0)


async def _creditable(session: AsyncSession, order: Order, outstanding: int) -> _Ceiling:
    """What the order's payments still hold beyond the store credit its returns gave: the most credit adds."""
    held = await ledger.net_paid(session, order.id)
    credited = int(
        await session.scalar(
            select(func.coalesce(func.sum(Return.store_credit_amount), 0)).where(Return.order_id == order.id)
        )
        or 0
    )
    left = held - credited - outstanding
    pending = f", and {outstanding} may have been refunded by an attempt awaiting the provider's answer"
    return _Ceiling(
        left,
        f"the order's payments hold {held} {order.currency} (captured, less refunds and chargebacks) "
        f"and its returns already gave {credited} of it as store credit{pending if outstanding else ''}; "
        "store credit never repays money that was not paid, or was paid back already",
    )


async def _record(
    tenant: TenantContext,
    session: AsyncSession,
    order: Order,
    row: Return,
    kind: str,
    topic: str,
    *,
    amount: int,
    actor: Actor,
    reason: str,
    details: dict[str, Any],
    transaction_ids: list[uuid.UUID] | None = None,
    exchange_order_id: uuid.UUID | None = None,
) -> ReturnView:
    await session.execute(
        insert(ReturnResolution).values(
            id=uuid7(),
            return_id=row.id,
            kind=kind,
            amount=amount,
            currency=row.currency,
            reason=reason,
            payment_transaction_ids=transaction_ids or [],
            exchange_order_id=exchange_order_id,
            actor_type=actor.type,
            actor_id=actor.id,
        )
    )
    base = {"return_id": str(row.id), "return_number": row.number, "amount": amount, "currency": row.currency}
    # The timeline names the outcome as its event does: return_refunded, return_store_credited, …
    entry = Entry(topic.replace(".", "_"), {**base, **details})
    await timeline.record(session, order.id, [entry], actor)
    await record_event(
        session, tenant, topic, {"order_id": str(order.id), "number": order.number, **base, **details}
    )
    return await return_view(session, row.id)


def _refund_state(outcome: RefundOutcome) -> str:
    if outcome.refunded == 0:
        return REFUND_FAILED
    return REFUND_SUCCEEDED if outcome.is_complete else REFUND_PARTIAL


async def _refusal(session: AsyncSession, order: Order, earlier: EarlierRefunds) -> uuid.UUID | None:
    """The refund failure this request's transaction wrote under the return's keys (it stops at the first)."""
    return await session.scalar(
        select(PaymentTransaction.id)
        .where(
            PaymentTransaction.order_id == order.id,
            PaymentTransaction.kind == status.REFUND,
            PaymentTransaction.state.not_in((status.REQUEST, status.SUCCESS)),
            PaymentTransaction.idempotency_key.contains(earlier.key_prefix, autoescape=True),
            # Ledger rows take their transaction's start as created_at: only this request's match.
            PaymentTransaction.created_at == func.now(),
        )
        .order_by(PaymentTransaction.id.desc())
        .limit(1)
    )


async def refund_return(
    tenant: TenantContext,
    session: AsyncSession,
    return_id: uuid.UUID,
    *,
    amount: int | None,
    reason: str,
    actor: Actor,
) -> ReturnRefund:
    """Give money back for a return through the order's original payment(s); say what went back.

    A provider refusing is an answer, not an error: the ledger recorded the attempt and
    the answer's attempt is `failed` (nothing went back) or `partial`, with the reason.
    """
    reason = _reason(reason)
    order, row = await locked_return(session, return_id)
    await _check_resolvable(session, row, "be refunded", closed_too=True)
    earlier = await _earlier_refunds(session, row)
    outstanding = await earlier_refunds_outstanding(session, order.id, earlier)
    wanted = await _amount(session, row, amount, outstanding=outstanding, is_refund=True)
    sequence = await _next_sequence(session, order, earlier)
    outcome = await refund_order(
        tenant,
        session,
        order.id,
        wanted,
        reason=reason or f"return {row.number}",
        actor=actor,
        idempotency_key=f"{earlier.key_prefix}{sequence}",
        earlier=earlier,
    )
    await derived.refresh(session, order.id)
    refused = await _refusal(session, order, earlier) if outcome.error_code is not None else None
    attempt = RefundAttempt(
        wanted,
        outcome.refunded,
        outcome.currency,
        _refund_state(outcome),
        outcome.error_code,
        list(outcome.transaction_ids),
        refused,
    )
    details: dict[str, Any] = {"transaction_ids": [str(item) for item in outcome.transaction_ids]}
    if not outcome.is_complete:
        # The provider failed: payments recorded the attempt (and told the order). An attempt
        # with an unknown outcome keeps its key; the next refund sends it again first.
        details |= {"requested": wanted, "error_code": outcome.error_code}
    if outcome.refunded == 0:
        await timeline.record(
            session,
            order.id,
            [
                Entry(
                    "return_refund_failed",
                    {"return_id": str(return_id), "return_number": row.number, **details},
                )
            ],
            actor,
        )
        return ReturnRefund(await return_view(session, return_id), attempt)
    await session.execute(
        update(Return)
        .where(Return.id == return_id)
        .values(refunded_amount=Return.refunded_amount + outcome.refunded, updated_at=func.now())
    )
    view = await _record(
        tenant,
        session,
        order,
        row,
        "refund",
        RETURN_REFUNDED,
        amount=outcome.refunded,
        actor=actor,
        reason=reason,
        details=details,
        transaction_ids=list(outcome.transaction_ids),
    )
    return ReturnRefund(view, attempt)


async def credit_return(
    tenant: TenantContext,
    session: AsyncSession,
    return_id: uuid.UUID,
    *,
    amount: int | None,
    reason: str,
    actor: Actor,
) -> ReturnView:
    """Resolve a return with store credit on the customer's ledger instead of money."""
    reason = _reason(reason)
    order, row = await locked_return(session, return_id)
    await _check_resolvable(session, row, "be given store credit", closed_too=True)
    outstanding = await earlier_refunds_outstanding(session, order.id, await _earlier_refunds(session, row))
    wanted = await _amount(
        session,
        row,
        amount,
        outstanding=outstanding,
        is_refund=False,
        ceiling=await _creditable(session, order, outstanding),
    )
    entry = await store_credit.grant(
        tenant,
        session,
        row.customer_id,
        wanted,
        row.currency,
        reason=reason or f"return {row.number} of order {order.number}",
        actor=actor,
        return_id=return_id,
        order_id=order.id,
    )
    await session.execute(
        update(Return)
        .where(Return.id == return_id)
        .values(store_credit_amount=Return.store_credit_amount + wanted, updated_at=func.now())
    )
    return await _record(
        tenant,
        session,
        order,
        row,
        "store_credit",
        RETURN_STORE_CREDITED,
        amount=wanted,
        actor=actor,
        reason=reason,
        details={"customer_id": str(entry.customer_id), "store_credit_entry_id": str(entry.id)},
    )


async def _check_given_away(
    session: AsyncSession, order: Order, lines: list[LineRequest], replaced: int
) -> None:
    """403 when the replacement gives away more than the returned units it replaces were sold for.

    For a caller who may not refund: goods handed over below their catalog price are
    money given back in another form. Unknown or inactive SKUs are left to placement's 422.
    """
    skus = await skus_by_code(session, [line.sku for line in lines])
    given = 0
    foreign: list[str] = []
    for line in lines:
        sku = skus.get(line.sku.lower())
        if sku is None or not sku.is_active:
            continue
        if sku.currency != order.currency:
            foreign.append(sku.code)
            continue
        given += line.quantity * max(sku.price_amount - (line.unit_price_amount or 0), 0)
    ask = "or ask a manager to make the exchange"
    if foreign:
        raise PermissionDeniedError(
            f"{', '.join(sorted(set(foreign)))}: priced in another currency than the order's "
            f"{order.currency}, so what the exchange gives away cannot be weighed against the returned "
            "units; only someone with the 'orders.refund' permission may exchange for such goods: pick goods "
            f"priced in {order.currency}, {ask}"
        )
    if given > replaced:
        raise PermissionDeniedError(
            f"this exchange gives away goods worth {given} {order.currency} (their catalog price less what "
            f"unit_price_amount charges), {given - replaced} more than the returned units it replaces were "
            f"sold for ({replaced}); only someone with the 'orders.refund' permission may give that: charge "
            f"the difference with unit_price_amount, exchange for goods of equal value, {ask}",
            extensions={"excess_amount": given - replaced, "currency": order.currency},
        )


async def exchange_return(
    tenant: TenantContext,
    session: AsyncSession,
    return_id: uuid.UUID,
    request: ExchangeRequest,
    *,
    actor: Actor,
    may_refund: bool,
) -> ReturnView:
    """Place a linked replacement order that reserves its stock now; one exchange per return.

    The exchange uses up what the returned units it replaces were sold for; 422
    `resolution_exceeds_return_value` when refunds and store credit already used it.
    Goods worth more than that (catalog price less the price charged) are a refund in
    goods: 403 `permission_denied` unless the caller `may_refund`.
    """
    lines, tags = check_exchange(request)
    order, row = await locked_return(session, return_id)
    await _check_resolvable(session, row, "be exchanged", closed_too=False)
    if row.exchange_order_id is not None:
        raise ExchangeExistsError(
            f"this return already has its exchange order {row.exchange_order_id}; read that order",
            extensions={"exchange_order_id": str(row.exchange_order_id)},
        )
    view = await return_view(session, return_id)
    units = sum(line.quantity for line in lines)
    replaced = view.replaced_value(units)
    outstanding = await earlier_refunds_outstanding(session, order.id, await _earlier_refunds(session, row))
    left = view.value - row.refunded_amount - row.store_credit_amount - outstanding
    if replaced > left:
        pending = f" and {outstanding} awaits the provider's answer to a refund" if outstanding else ""
        raise ResolutionExceedsReturnValueError(
            f"the returned units are worth {view.value} {row.currency}; {_used(view)}{pending} leave "
            f"{max(left, 0)}, but {units} replacement unit(s) replace returned units sold for {replaced}; "
            "exchange fewer units, or refund or credit the rest instead",
            errors=[FieldError("lines", f"replace returned units worth at most {max(left, 0)}")],
            extensions={"remaining": max(left, 0), "currency": row.currency},
        )
    if not may_refund:
        await _check_given_away(session, order, lines, replaced)
    placed = await place_order(
        tenant,
        session,
        OrderRequest(
            customer_id=row.customer_id,
            lines=lines,
            shipping_address=order.shipping_address,
            channel="exchange",
            external_reference=f"RMA-{row.number}",
            currency=order.currency,
            tags=tags,
        ),
        actor=actor,
    )
    replacement = placed.order
    await session.execute(
        update(Return)
        .where(Return.id == return_id)
        .values(exchange_order_id=replacement.id, updated_at=func.now())
    )
    await timeline.record(
        session,
        replacement.id,
        [
            Entry(
                "exchange_for",
                {
                    "order_id": str(order.id),
                    "order_number": order.number,
                    "return_id": str(return_id),
                    "return_number": row.number,
                },
            )
        ],
        actor,
    )
    return await _record(
        tenant,
        session,
        order,
        row,
        "exchange",
        RETURN_EXCHANGED,
        amount=replaced,
        actor=actor,
        reason=request.note.strip(),
        details={
            "exchange_order_id": str(replacement.id),
            "exchange_order_number": replacement.number,
            "exchange_order_total_amount": replacement.total_amount,
            "lines": [{"sku": line.sku_code, "quantity": line.quantity_ordered} for line in placed.lines],
        },
        exchange_order_id=replacement.id,
    )
