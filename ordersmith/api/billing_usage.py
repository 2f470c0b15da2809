"""Usage and money: the period's usage, the invoice to come, invoices, the billing portal, Stripe's webhook.

Usage, the preview and invoices need `billing.read`, which owners and admins hold (not
managers, agents or viewers: `settings.read` would have shown what the store pays to
every viewer); the billing portal needs `billing.manage`, which only owners hold.
"""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

import msgspec
from litestar import Request, Response, get, post
from litestar.datastructures import State
from litestar.di import NamedDependency
from litestar.params import FromPath, FromQuery, JSONBody
from sqlalchemy.ext.asyncio import AsyncSession

from ordersmith.api import idempotency
from ordersmith.api.access import PUBLIC, requires
from ordersmith.api.entitlements import WRITABLE_WHEN_READ_ONLY
from ordersmith.api.nul_characters import SIGNED_BODY
from ordersmith.api.problems import PROBLEMS
from ordersmith.billing import ledger
from ordersmith.billing.accounts import (
    InvoiceNotFoundError,
    billed_period,
    get_invoice,
    list_invoices,
    portal_link,
)
from ordersmith.billing.metering import (
    BILLED_METERS,
    GAUGE_METERS,
    PeriodUsage,
    month_of,
    usage_for_period,
)
from ordersmith.billing.rating import rate
from ordersmith.billing.webhooks import handle_webhook
from ordersmith.platform.billing_models import BillingInvoice
from ordersmith.platform.errors import FieldError, ValidationFailedError
from ordersmith.platform.identity.permissions import Permission
from ordersmith.platform.identity.principal import Principal
from ordersmith.platform.pagination import DEFAULT_PAGE_SIZE, PageRequest
from ordersmith.platform.plans import PLANS, Meter

# Stripe's events are small; anything this big is not one.
MAX_WEBHOOK_BODY = 512 * 1024


class MeterUsage(msgspec.Struct):
    meter: str
    # A flow's sum over the period (orders, api_requests); a gauge's largest hour (seats).
    quantity: int
    # Units the plan includes per period before overage applies (0 for a meter not billed).
    included: int
    # "sum" (a flow: each unit counted once) or "maximum" (a gauge: the peak of its hourly values).
    aggregation: str
    # Whether the meter is priced on the invoice; api_requests and seats are shown, not billed.
    is_billed: bool


class HourUsage(msgspec.Struct):
    hour: dt.datetime
    meter: str
    quantity: int


class Usage(msgspec.Struct):
    plan: str
    period_start: dt.datetime
    period_end: dt.datetime
    meters: list[MeterUsage]
    hours: list[HourUsage]


class PreviewLine(msgspec.Struct):
    kind: str
    description: str
    meter: str | None
    quantity: int
    unit_amount: int
    amount: int
    tier_from: int | None
    tier_to: int | None

    @classmethod
    def from_dict(cls, line: dict[str, Any]) -> PreviewLine:
        """A line as `ledger.lines_of` (and the invoices table) keeps it."""
        return msgspec.convert(line, cls)


class InvoicePreview(msgspec.Struct):
    plan: str
    currency: str
    period_start: dt.datetime
    period_end: dt.datetime
    lines: list[PreviewLine]
    total_amount: int


class Invoice(msgspec.Struct):
    id: str
    # "local" (the offline ledger) or "stripe".
    source: str
    plan: str
    period_start: dt.datetime
    period_end: dt.datetime
    currency: str
    total_amount: int
    # open, paid, payment_failed (still owed), void or uncollectible (written off).
    status: str
    hosted_url: str | None
    lines: list[PreviewLine]
    created_at: dt.datetime

    @classmethod
    def of(cls, row: BillingInvoice) -> Invoice:
        return cls(
            str(row.id),
            row.source,
            row.plan,
            row.period_start,
            row.period_end,
            row.currency,
            row.total_amount,
            row.status,
            row.hosted_url,
            [PreviewLine.from_dict(line) for line in row.lines],
            row.created_at,
        )


class InvoiceList(msgspec.Struct):
    data: list[Invoice]
    next_cursor: str | None


class PortalSessionCreate(msgspec.Struct, forbid_unknown_fields=True):
    # Where Stripe sends the merchant back to; defaults to the deployment's own setting or URL.
    return_url: str | None = None


class PortalSession(msgspec.Struct):
    url: str


class WebhookReceipt(msgspec.Struct):
    received: bool
    # applied, duplicate, unknown_customer, meter_error or ignored.
    outcome: str


def _period(month: str | None) -> tuple[dt.datetime, dt.datetime]:
    if month is None:
        return month_of(dt.datetime.now(dt.UTC))
    try:
        start = dt.datetime.strptime(month, "%Y-%m").replace(tzinfo=dt.UTC)
    except ValueError:
        raise ValidationFailedError(
            "month must look like 2026-11", errors=[FieldError("month", "must be a month as YYYY-MM")]
        ) from None
    return month_of(start)


def _usage(plan_code: str, usage: PeriodUsage) -> Usage:
    included = PLANS[plan_code].included if plan_code in PLANS else {}
    return Usage(
        plan=plan_code,
        period_start=usage.period_start,
        period_end=usage.period_end,
        meters=[
            MeterUsage(
                meter.value,
                usage.totals[meter],
                included.get(meter, 0),
                "maximum" if meter in GAUGE_METERS else "sum",
                meter in BILLED_METERS,
            )
            for meter in Meter
        ],
        hours=[HourUsage(hour.hour, hour.meter.value, hour.quantity) for hour in usage.hours],
    )


@get(
    "/api/v1/billing/usage",
    operation_id="getBillingUsage",
    summary="Usage of the current billing period (or of `month`), per meter and per hour.",
    opt=requires(Permission.BILLING_READ),
    tags=["billing"],
)
async def read_usage(
    state: State, principal: NamedDependency[Principal], month: FromQuery[str | None] = None
) -> Usage:
    """Orders and API requests are summed per UTC hour; seats are counted hourly, a period shows the peak."""
    assert principal.tenant is not None
    start, end = _period(month)
    async with state.database.platform_session() as session:
        usage = await usage_for_period(session, principal.tenant.id, start, end)
    return _usage(principal.tenant.plan, usage)


@get(
    "/api/v1/billing/invoice-preview",
    operation_id="getInvoicePreview",
    summary="The bill to come for the current period: base price plus graduated overage.",
    # With Stripe, the period is the subscription's, asked of Stripe.
    opt={**requires(Permission.BILLING_READ), PROBLEMS: frozenset({502, 503})},
    tags=["billing"],
)
async def read_invoice_preview(state: State, principal: NamedDependency[Principal]) -> InvoicePreview:
    """The usage the next invoice bills so far, rated on the store's current plan; only orders are priced.

    With Stripe, the subscription's current period and the usage reported to it (none from
    before the subscription); offline or before a first subscription, the calendar month.
    """
    assert principal.tenant is not None
    period = await billed_period(
        state.database, state.settings.billing, principal.tenant.id, now=dt.datetime.now(dt.UTC)
    )
    async with state.database.platform_session() as session:
        usage = await usage_for_period(session, principal.tenant.id, period.usage_from, period.end)
    preview = rate(principal.tenant.plan, usage.totals)
    return InvoicePreview(
        plan=preview.plan,
        currency=preview.currency,
        period_start=period.start,
        period_end=period.end,
        lines=[PreviewLine.from_dict(line) for line in ledger.lines_of(preview)],
        total_amount=preview.total,
    )


@get(
    "/api/v1/billing/invoices",
    operation_id="listInvoices",
    summary="The store's invoices, newest first: local ones offline, Stripe's otherwise.",
    opt=requires(Permission.BILLING_READ),
    tags=["billing"],
)
async def read_invoices(
    state: State,
    principal: NamedDependency[Principal],
    limit: FromQuery[int] = DEFAULT_PAGE_SIZE,
    cursor: FromQuery[str | None] = None,
) -> InvoiceList:
    """Cursor-paginated with `limit` and `cursor`."""
    assert principal.tenant is not None
    page_request = PageRequest.parse(limit, cursor)
    async with state.database.platform_session() as session:
        page = await list_invoices(session, principal.tenant.id, page_request)
    return InvoiceList([Invoice.of(row) for row in page.items], page.next_cursor)


@get(
    "/api/v1/billing/invoices/{invoice_id:str}",
    operation_id="getInvoice",
    summary="One invoice with its lines.",
    opt=requires(Permission.BILLING_READ),
    tags=["billing"],
)
async def read_invoice(
    state: State, principal: NamedDependency[Principal], invoice_id: FromPath[str]
) -> Invoice:
    """Another store's invoice answers 404, like one that does not exist."""
    assert principal.tenant is not None
    try:
        parsed = uuid.UUID(invoice_id)
    except ValueError:
        raise InvoiceNotFoundError(
            "No such invoice; list your invoices at GET /api/v1/billing/invoices."
        ) from None
    async with state.database.platform_session() as session:
        return Invoice.of(await get_invoice(session, principal.tenant.id, parsed))


@post(
    "/api/v1/billing/portal-sessions",
    operation_id="createBillingPortalSession",
    summary="A link to Stripe's billing portal (payment methods, invoices); 409 when billing is offline.",
    # A store made read-only by an unpaid bill must still reach the portal to pay it.
    opt={**requires(Permission.BILLING_MANAGE), **WRITABLE_WHEN_READ_ONLY, PROBLEMS: frozenset({502})},
    tags=["billing"],
)
async def add_portal_session(
    request: Request[Any, Any, Any],
    state: State,
    principal: NamedDependency[Principal],
    tenant_session: NamedDependency[AsyncSession],
    data: JSONBody[PortalSessionCreate],
) -> Response[PortalSession]:
    """Offline (no Stripe) answers 409 `billing_offline`: the invoices are at GET /api/v1/billing/invoices."""
    assert principal.tenant is not None
    tenant_id = principal.tenant.id
    settings = state.settings.billing
    return_url = (
        data.return_url or settings.portal_return_url or f"{state.settings.public_url}/settings/billing"
    )

    async def create() -> PortalSession:
        return PortalSession(await portal_link(state.database, settings, tenant_id, return_url=return_url))

    return await idempotency.once(request, principal, tenant_session, data, create)


@post(
    "/api/v1/billing/stripe/webhook",
    operation_id="receiveBillingStripeWebhook",
    summary="Stripe's events about our customers: verified, applied once per event id.",
    # Signed by Stripe: verified as sent, never refused for its content first.
    opt={**PUBLIC, SIGNED_BODY: True},
    tags=["billing"],
    status_code=200,
    request_max_body_size=MAX_WEBHOOK_BODY,
)
async def receive_stripe_webhook(request: Request[Any, Any, Any], state: State) -> WebhookReceipt:
    """400 `webhook_signature_invalid` for a bad signature or a timestamp over five minutes old."""
    payload = await request.body()
    outcome = await handle_webhook(
        state.database, state.settings.billing, payload, request.headers.get("stripe-signature")
    )
    return WebhookReceipt(received=True, outcome=outcome)


ROUTES = [
    read_usage,
    read_invoice_preview,
    read_invoices,
    read_invoice,
    add_portal_session,
    receive_stripe_webhook,
]
