"""Closing an order's authorizations once nothing of it is left to ship.

A card hold or an invoice promise stands for units still to ship. When the last units
ship (`service.capture_for_shipment`), or a cancellation or an edit takes the last ones
away (the consumer below, on `order.cancelled`, `order.lines_cancelled`, `order.edited`),
the order keeps no more than it still owes (`status.balance_due`: money the merchant
gave back is not taken again, money a chargeback took is). Card holds give that in final captures when
the store captures at shipment (Stripe releases the rest with the capture); every hold
beyond it is released, a card's by cancelling it, an invoice promise by the part the
order no longer owes. A cancelled order costs nothing, so all it holds is released.
Once the holds cover what it owes, a payment still waiting on its customer to
authenticate is cancelled too, so the customer cannot complete a payment nobody needs.

The consumer runs in its own transaction, after the cancellation or edit committed:
order row first, then its payments (ADR 0006). A provider that fails is recorded like
any failure and retried with `/payments/{id}/retry`; it never undoes the cancellation.
Redelivery is a no-op (ADR 0003), and running again finds nothing left to release.
"""

from __future__ import annotations

import uuid

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from ordersmith.platform.database import TenantContext
from ordersmith.platform.events import Event, consumers
from ordersmith.platform.identity.audit import Actor
from ordersmith.tenants.orders.cancellation import ORDER_CANCELLED, ORDER_LINES_CANCELLED
from ordersmith.tenants.orders.edits import ORDER_EDITED
from ordersmith.tenants.orders.models import OrderLine
from ordersmith.tenants.orders.views import order_row
from ordersmith.tenants.payments import ledger, status
from ordersmith.tenants.payments.errors import ProviderNotEnabledError
from ordersmith.tenants.payments.models import Payment, PaymentTransaction
from ordersmith.tenants.payments.providers.base import PaymentProvider
from ordersmith.tenants.payments.recording import Recorder
from ordersmith.tenants.payments.settings import capture_policy_of, provider_for

CONSUMER_NAME = "payments.authorization-release"
RELEASER = Actor("system", "authorization-release")
FINAL_CAPTURE_NOTE = "released with the final capture: nothing of the order is left to ship"
# The reason on a final capture's request: `/retry` sends it again as final too.
FINAL_CAPTURE = "final capture: nothing of the order is left to ship"
NOT_OWED_NOTE = "released: nothing of the order is left to ship and the order does not owe it"


async def nothing_left_to_ship(session: AsyncSession, order_id: uuid.UUID) -> bool:
    """Whether every unit of the order shipped or was cancelled: none pending, allocated or backordered."""
    left = await session.scalar(
        select(
            func.coalesce(
                func.sum(
                    OrderLine.quantity_pending + OrderLine.quantity_allocated + OrderLine.quantity_backordered
                ),
                0,
            )
        ).where(OrderLine.order_id == order_id)
    )
    return int(left or 0) == 0


async def close_authorizations(
    tenant: TenantContext, session: AsyncSession, recorder: Recorder, *, capture_cards: bool
) -> None:
    """Keep on hold only what the order still owes: capture it from card holds, release the rest.

    The caller has locked the order (`recorder.order`) and knows nothing is left to ship.
    Card holds come first, oldest first, and are captured only when `capture_cards`
    (the store captures at shipment); a card hold the order still partly needs is
    otherwise left for a person, since a card hold is released whole or with a capture.
    Invoice promises keep what the cards did not cover. A payment whose provider the
    store has since disabled is left alone: nothing can be sent to it.
    """
    order = recorder.order
    payments = await ledger.payments_of(session, order.id, lock=True)
    amounts = await ledger.amounts_of_order(session, order.id)
    owed = status.balance_due(list(amounts.values()), order.total_amount)
    holding: list[tuple[Payment, PaymentProvider]] = []
    waiting: list[tuple[Payment, PaymentProvider]] = []
    for payment in payments:
        if amounts[payment.id].capturable == 0 and not amounts[payment.id].awaiting_action:
            continue
        try:
            provider = await provider_for(tenant, session, payment.provider)
        except ProviderNotEnabledError:
            continue
        (holding if amounts[payment.id].capturable else waiting).append((payment, provider))
    # Stable: oldest first within card holds, then within promises.
    holding.sort(key=lambda item: not item[1].captures_at_shipment)
    for payment, provider in holding:
        capturable = amounts[payment.id].capturable
        keep = min(owed, capturable)
        owed -= keep
        is_card = provider.captures_at_shipment
        if is_card and keep > 0 and capture_cards:
            outcome = await _capture_final(recorder, provider, payment, keep, capturable)
            if outcome.state != status.SUCCESS:
                # What the provider took is unknown until the retry: release nothing more.
                return
        elif is_card and keep > 0:
            continue
        elif keep < capturable:
            await _release(recorder, provider, payment, capturable - keep)
    if owed > 0:
        # A payment still waiting on its customer may yet bring what the order owes.
        return
    for payment, provider in waiting:
        await _release(recorder, provider, payment, 0)


async def _capture_final(
    recorder: Recorder, provider: PaymentProvider, payment: Payment, amount: int, capturable: int
) -> PaymentTransaction:
    """Capture `amount` as the authorization's last capture; what the provider released is voided."""
    outcome, result = await recorder.run(
        payment,
        "capture",
        amount,
        lambda key: provider.capture(payment.provider_reference, amount, is_final=True, idempotency_key=key),
        reason=FINAL_CAPTURE,
    )
    released = capturable - amount - (result.remaining_capturable or 0)
    if outcome.state == status.SUCCESS and released > 0:
        await recorder.note(
            payment,
            "void",
            status.SUCCESS,
            released,
            provider_reference=payment.provider_reference,
            reason=FINAL_CAPTURE_NOTE,
        )
    return outcome


async def _release(recorder: Recorder, provider: PaymentProvider, payment: Payment, amount: int) -> None:
    """Release `amount` of the authorization: a card hold whole, a promise by that much.

    A payment waiting on its customer releases 0: it is cancelled, so the customer can no
    longer complete it.
    """
    await recorder.run(
        payment,
        "void",
        amount,
        lambda key: provider.void(payment.provider_reference, amount, idempotency_key=key),
        reason=NOT_OWED_NOTE,
    )


@consumers.consumer(CONSUMER_NAME, ORDER_CANCELLED, ORDER_LINES_CANCELLED, ORDER_EDITED)
async def release_authorizations(tenant: TenantContext, session: AsyncSession, event: Event) -> None:
    """Once a cancellation or an edit leaves nothing of an order to ship, close its authorizations."""
    order_id = uuid.UUID(event.payload["order_id"])
    order = await order_row(session, order_id, lock=True)
    if not await nothing_left_to_ship(session, order_id):
        return
    recorder = Recorder(tenant, session, order, RELEASER)
    await close_authorizations(
        tenant, session, recorder, capture_cards=await capture_policy_of(session) == "at_shipment"
    )
    if recorder.outcomes:
        await recorder.finish()
