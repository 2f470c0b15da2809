"""Payments over HTTP: take them on an order, capture, void, refund, retry; the store's payment settings.

A declined or unreachable provider is not an HTTP error: the ledger records the failed
attempt and the answer (201/200) shows it as the payment's `last_transaction` with
`state: failure` and an `error_code`, like any other outcome; the order gets a
`payment` hold. A retry of an unreachable attempt is `POST /payments/{id}/retry`.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import msgspec
from litestar import Request, Response, get, post, put
from litestar.di import NamedDependency
from litestar.params import FromPath, JSONBody
from sqlalchemy.ext.asyncio import AsyncSession

from ordersmith.api import idempotency
from ordersmith.api.access import requires
from ordersmith.platform.identity.permissions import Permission
from ordersmith.platform.identity.principal import Principal
from ordersmith.tenants.orders.views import order_id_of
from ordersmith.tenants.payments.ledger import payment_id_of
from ordersmith.tenants.payments.models import PaymentTransaction
from ordersmith.tenants.payments.service import (
    OrderPayments,
    PaymentChange,
    PaymentRequest,
    PaymentView,
    capture_payment,
    create_payment,
    get_payment,
    order_payments,
    refund_payment,
    retry_payment,
    void_payment,
)
from ordersmith.tenants.payments.settings import (
    SettingsUpdate,
    StoreSettings,
    get_payment_settings,
    update_payment_settings,
)

WEBHOOK_PATH = "/api/v1/payments/stripe/webhook/{store}"


class Transaction(msgspec.Struct):
    id: str
    # authorize, capture, void, refund, chargeback, refund_reversal (a refund the provider failed
    # later) or chargeback_reversal (how a dispute ended).
    kind: str
    # request, then one outcome: success, failure or requires_action.
    state: str
    amount: int
    currency: str
    request_id: str | None
    retry_of_id: str | None
    provider_reference: str | None
    error_code: str | None
    error_message: str | None
    reason: str | None
    actor_type: str
    actor_id: str | None
    created_at: dt.datetime

    @classmethod
    def of(cls, row: PaymentTransaction) -> Transaction:
        return cls(
            str(row.id),
            row.kind,
            row.state,
            row.amount,
            row.currency,
            str(row.request_id) if row.request_id else None,
            str(row.retry_of_id) if row.retry_of_id else None,
            row.provider_reference,
            row.error_code,
            row.error_message,
            row.reason,
            row.actor_type,
            row.actor_id,
            row.created_at,
        )


class Payment(msgspec.Struct):
    id: str
    order_id: str
    provider: str
    method: str | None
    currency: str
    # What was asked for when the payment was taken.
    amount: int
    provider_reference: str | None
    # pending, requires_action, authorized, partially_captured, captured,
    # partially_refunded, refunded, voided or failed: where this payment's money stands.
    status: str
    authorized_amount: int
    captured_amount: int
    refunded_amount: int
    charged_back_amount: int
    capturable_amount: int
    refundable_amount: int
    note: str | None
    created_by_type: str
    created_by_id: str | None
    created_at: dt.datetime
    # The ledger, oldest first.
    transactions: list[Transaction]

    @classmethod
    def of(cls, view: PaymentView) -> Payment:
        row, amounts = view.payment, view.amounts
        return cls(
            str(row.id),
            str(row.order_id),
            row.provider,
            row.method,
            row.currency,
            row.amount,
            row.provider_reference,
            view.status,
            amounts.authorized,
            amounts.captured,
            amounts.refunded,
            amounts.charged_back,
            amounts.capturable,
            amounts.refundable,
            row.note,
            row.created_by_type,
            row.created_by_id,
            row.created_at,
            [Transaction.of(item) for item in view.transactions],
        )


class PaymentResult(msgspec.Struct):
    """The payment after the operation, the ledger outcome it ended with, and the order's payment status."""

    payment: Payment
    last_transaction: Transaction | None
    payment_status: str

    @classmethod
    def of(cls, change: PaymentChange) -> PaymentResult:
        last = Transaction.of(change.transaction) if change.transaction is not None else None
        return cls(Payment.of(change.view), last, change.payment_status)


class OrderPaymentList(msgspec.Struct):
    order_id: str
    currency: str
    total_amount: int
    payment_status: str
    captured_amount: int
    # Refunds and chargebacks.
    refunded_amount: int
    net_paid_amount: int
    capturable_amount: int
    refundable_amount: int
    balance_due_amount: int
    data: list[Payment]

    @classmethod
    def of(cls, result: OrderPayments) -> OrderPaymentList:
        return cls(
            str(result.order.id),
            result.order.currency,
            result.order.total_amount,
            result.payment_status,
            result.captured_amount,
            result.refunded_amount,
            result.net_paid_amount,
            result.capturable_amount,
            result.refundable_amount,
            result.balance_due_amount,
            [Payment.of(view) for view in result.payments],
        )


class PaymentCreate(msgspec.Struct, forbid_unknown_fields=True):
    # manual or stripe (enabled in the payment settings).
    provider: str
    # Minor units; omit to take what the order still owes.
    amount: int | None = None
    currency: str | None = None
    # manual: cash, bank_transfer, invoice, cheque or other; stripe: the PaymentMethod id (pm_…).
    method: str | None = None
    # Omit for the default: manual payments are money received; stripe follows the capture policy.
    capture: bool | None = None
    note: str | None = None


class PaymentCapture(msgspec.Struct, forbid_unknown_fields=True):
    # Omit to capture everything the authorization still holds.
    amount: int | None = None


class PaymentRefund(msgspec.Struct, forbid_unknown_fields=True):
    amount: int
    reason: str | None = None


class NoBody(msgspec.Struct, forbid_unknown_fields=True):
    pass


class PaymentSettingsOut(msgspec.Struct):
    enabled_providers: list[str]
    # at_placement: capture right after authorizing; at_shipment: capture as units ship.
    capture_policy: str
    has_stripe_secret_key: bool
    # The stored key's mode and last four characters (sk_test_…4242); the key is never shown.
    stripe_secret_key_hint: str | None
    has_stripe_webhook_secret: bool
    # Where to point the store's Stripe webhook endpoint.
    stripe_webhook_path: str
    updated_at: dt.datetime | None

    @classmethod
    def of(cls, settings: StoreSettings, slug: str) -> PaymentSettingsOut:
        return cls(
            settings.enabled_providers,
            settings.capture_policy,
            settings.has_stripe_secret_key,
            settings.stripe_secret_key_hint,
            settings.has_stripe_webhook_secret,
            WEBHOOK_PATH.format(store=slug),
            settings.updated_at,
        )


class PaymentSettingsUpdate(msgspec.Struct, forbid_unknown_fields=True):
    enabled_providers: list[str] | None = None
    capture_policy: str | None = None
    # Write-only: stored sealed, never returned. Leave out to keep the stored one.
    stripe_secret_key: str | None = None
    stripe_webhook_secret: str | None = None


@post(
    "/api/v1/orders/{order_id:str}/payments",
    operation_id="createOrderPayment",
    summary="Take a payment on an order: authorize (and capture, per policy) or record money received.",
    opt=requires(Permission.ORDERS_WRITE),
    tags=["payments"],
)
async def add_payment(
    request: Request[Any, Any, Any],
    principal: NamedDependency[Principal],
    tenant_session: NamedDependency[AsyncSession],
    order_id: FromPath[str],
    data: JSONBody[PaymentCreate],
) -> Response[PaymentResult]:
    """A decline answers 201 with the failed attempt and puts a `payment` hold on the order."""
    payment = PaymentRequest(data.provider, data.amount, data.currency, data.method, data.capture, data.note)

    async def create() -> PaymentResult:
        change = await create_payment(
            principal.tenant_context, tenant_session, order_id_of(order_id), payment, actor=principal.actor
        )
        return PaymentResult.of(change)

    return await idempotency.once(request, principal, tenant_session, data, create)


@get(
    "/api/v1/orders/{order_id:str}/payments",
    operation_id="listOrderPayments",
    summary="An order's payments with their ledgers, and what is captured, refundable and still due.",
    opt=requires(Permission.ORDERS_READ),
    tags=["payments"],
)
async def read_order_payments(
    tenant_session: NamedDependency[AsyncSession], order_id: FromPath[str]
) -> OrderPaymentList:
    """Payments oldest first; an order of another store is 404."""
    return OrderPaymentList.of(await order_payments(tenant_session, order_id_of(order_id)))


@get(
    "/api/v1/payments/{payment_id:str}",
    operation_id="getPayment",
    summary="One payment with its whole ledger.",
    opt=requires(Permission.ORDERS_READ),
    tags=["payments"],
)
async def read_payment(tenant_session: NamedDependency[AsyncSession], payment_id: FromPath[str]) -> Payment:
    """Another store's payment is 404."""
    return Payment.of(await get_payment(tenant_session, payment_id_of(payment_id)))


@post(
    "/api/v1/payments/{payment_id:str}/capture",
    operation_id="capturePayment",
    summary="Capture authorized funds, all or part; never more than the authorization holds.",
    opt=requires(Permission.ORDERS_WRITE),
    tags=["payments"],
)
async def capture(
    request: Request[Any, Any, Any],
    principal: NamedDependency[Principal],
    tenant_session: NamedDependency[AsyncSession],
    payment_id: FromPath[str],
    data: JSONBody[PaymentCapture | None] = None,
) -> Response[PaymentResult]:
    """More than the capturable amount is 422 `capture_exceeds_authorized` naming it."""
    body = data or PaymentCapture()

    async def run() -> PaymentResult:
        change = await capture_payment(
            principal.tenant_context,
            tenant_session,
            payment_id_of(payment_id),
            body.amount,
            actor=principal.actor,
        )
        return PaymentResult.of(change)

    return await idempotency.once(request, principal, tenant_session, body, run)


@post(
    "/api/v1/payments/{payment_id:str}/void",
    operation_id="voidPayment",
    summary="Release what a payment's authorization still holds.",
    opt=requires(Permission.ORDERS_WRITE),
    tags=["payments"],
)
async def void(
    request: Request[Any, Any, Any],
    principal: NamedDependency[Principal],
    tenant_session: NamedDependency[AsyncSession],
    payment_id: FromPath[str],
) -> Response[PaymentResult]:
    """Nothing left to release is 409 `nothing_to_void`."""

    async def run() -> PaymentResult:
        change = await void_payment(
            principal.tenant_context, tenant_session, payment_id_of(payment_id), actor=principal.actor
        )
        return PaymentResult.of(change)

    return await idempotency.once(request, principal, tenant_session, NoBody(), run)


@post(
    "/api/v1/payments/{payment_id:str}/refunds",
    operation_id="refundPayment",
    summary="Give captured money back through the payment's provider.",
    opt=requires(Permission.ORDERS_REFUND),
    tags=["payments"],
)
async def refund(
    request: Request[Any, Any, Any],
    principal: NamedDependency[Principal],
    tenant_session: NamedDependency[AsyncSession],
    payment_id: FromPath[str],
    data: JSONBody[PaymentRefund],
) -> Response[PaymentResult]:
    """More than captured and not yet refunded is 422 `refund_exceeds_captured` with `refundable_amount`."""

    async def run() -> PaymentResult:
        change = await refund_payment(
            principal.tenant_context,
            tenant_session,
            payment_id_of(payment_id),
            data.amount,
            reason=data.reason,
            actor=principal.actor,
        )
        return PaymentResult.of(change)

    return await idempotency.once(request, principal, tenant_session, data, run)


@post(
    "/api/v1/payments/{payment_id:str}/retry",
    operation_id="retryPayment",
    summary="Send again a payment's last request, which failed because the provider was unreachable.",
    opt=requires(Permission.ORDERS_WRITE),
    tags=["payments"],
)
async def retry(
    request: Request[Any, Any, Any],
    principal: NamedDependency[Principal],
    tenant_session: NamedDependency[AsyncSession],
    payment_id: FromPath[str],
) -> Response[PaymentResult]:
    """Reuses the failed request's idempotency key: the provider never acts twice; 409 `nothing_to_retry`."""

    async def run() -> PaymentResult:
        change = await retry_payment(
            principal.tenant_context,
            tenant_session,
            payment_id_of(payment_id),
            actor=principal.actor,
            may_refund=principal.can(Permission.ORDERS_REFUND),
        )
        return PaymentResult.of(change)

    return await idempotency.once(request, principal, tenant_session, NoBody(), run)


@get(
    "/api/v1/payment-settings",
    operation_id="getPaymentSettings",
    summary="The store's payment providers, capture policy and whether its Stripe secrets are stored.",
    opt=requires(Permission.SETTINGS_READ),
    tags=["payments"],
)
async def read_payment_settings(
    principal: NamedDependency[Principal], tenant_session: NamedDependency[AsyncSession]
) -> PaymentSettingsOut:
    """Secrets are never returned, only whether they are stored."""
    return PaymentSettingsOut.of(await get_payment_settings(tenant_session), principal.tenant_context.slug)


@put(
    "/api/v1/payment-settings",
    operation_id="updatePaymentSettings",
    summary="Change the store's payment providers, capture policy or Stripe secrets.",
    opt=requires(Permission.SETTINGS_MANAGE),
    tags=["payments"],
)
async def change_payment_settings(
    principal: NamedDependency[Principal],
    tenant_session: NamedDependency[AsyncSession],
    data: JSONBody[PaymentSettingsUpdate],
) -> PaymentSettingsOut:
    """Enabling stripe needs the store's secret key (422 otherwise); secrets are stored sealed."""
    update = SettingsUpdate(
        data.enabled_providers, data.capture_policy, data.stripe_secret_key, data.stripe_webhook_secret
    )
    settings = await update_payment_settings(
        principal.tenant_context, tenant_session, update, actor=principal.actor
    )
    return PaymentSettingsOut.of(settings, principal.tenant_context.slug)


ROUTES = [
    add_payment,
    read_order_payments,
    read_payment,
    capture,
    void,
    refund,
    retry,
    read_payment_settings,
    change_payment_settings,
]
