"""Rating: what a period's usage costs on a plan (the invoice preview).

Pure arithmetic over `prices.py` and the plan's allowance: the base price, the included
units at no charge, then the overage priced tier by tier (graduated: each tier's units at
that tier's price, not the whole overage at the last tier's). The same function rates
the current period for `GET /api/v1/billing/invoice-preview`, last month's usage on
another plan for the plan comparison, and the local invoices of the offline ledger.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from ordersmith.billing.prices import CURRENCY, PRICES, Price
from ordersmith.platform.errors import FieldError, ValidationFailedError
from ordersmith.platform.plans import PLANS, Meter


class UnknownPlanError(ValidationFailedError):
    code = "unknown_plan"
    title = "Unknown plan"


@dataclass(frozen=True)
class InvoiceLine:
    """One line of an invoice: what is charged, how many, at what unit price."""

    # "base" (the monthly price), "included" (units of the allowance, free) or "overage".
    kind: str
    description: str
    meter: Meter | None
    quantity: int
    unit_amount: int
    amount: int
    # For overage lines: the tier's first and last overage unit (last None: no end).
    tier_from: int | None = None
    tier_to: int | None = None


@dataclass(frozen=True)
class InvoicePreview:
    """A plan's bill for some usage: its lines and their total, in minor units of `currency`."""

    plan: str
    currency: str
    lines: tuple[InvoiceLine, ...]
    total: int


def price_of(plan_code: str) -> Price:
    """The price of a plan; `UnknownPlanError` listing the plans there are."""
    price = PRICES.get(plan_code)
    if price is None or plan_code not in PLANS:
        known = ", ".join(PLANS)
        raise UnknownPlanError(
            f"There is no plan {plan_code!r}; choose one of {known}.",
            errors=[FieldError("plan", f"must be one of {known}")],
            extensions={"plans": list(PLANS)},
        )
    return price


def _overage_lines(price: Price, meter: Meter, overage: int) -> list[InvoiceLine]:
    lines = []
    tier_start = 1
    for tier in price.order_tiers:
        if overage < tier_start:
            break
        last = overage if tier.up_to is None else min(overage, tier.up_to)
        quantity = last - tier_start + 1
        lines.append(
            InvoiceLine(
                kind="overage",
                description=(
                    f"{meter.value} {tier_start:,} and up over the allowance"
                    if tier.up_to is None
                    else f"{meter.value} {tier_start:,} to {tier.up_to:,} over the allowance"
                ),
                meter=meter,
                quantity=quantity,
                unit_amount=tier.unit_amount,
                amount=quantity * tier.unit_amount,
                tier_from=tier_start,
                tier_to=tier.up_to,
            )
        )
        if tier.up_to is None:
            break
        tier_start = tier.up_to + 1
    return lines


def rate(plan_code: str, usage: Mapping[Meter, int]) -> InvoicePreview:
    """What `usage` over one billing period costs on `plan_code`: base plus graduated overage."""
    price = price_of(plan_code)
    plan = PLANS[plan_code]
    lines = [
        InvoiceLine(
            kind="base",
            description=f"{plan.name} plan, monthly",
            meter=None,
            quantity=1,
            unit_amount=price.base_amount,
            amount=price.base_amount,
        )
    ]
    for meter, used in usage.items():
        if used < 0:
            raise ValueError(f"usage of {meter.value} cannot be negative, got {used}")
    # Orders are the one priced meter: API requests and seats are measured and shown in the
    # usage, and get no line here, so an invoice lists only what it charges for.
    used = usage.get(Meter.ORDERS, 0)
    included = plan.included.get(Meter.ORDERS, 0)
    if used > 0:
        lines.append(
            InvoiceLine(
                kind="included",
                description=f"{Meter.ORDERS.value} included in the plan ({included:,})",
                meter=Meter.ORDERS,
                quantity=min(used, included),
                unit_amount=0,
                amount=0,
            )
        )
    lines.extend(_overage_lines(price, Meter.ORDERS, max(0, used - included)))
    return InvoicePreview(
        plan=plan_code, currency=CURRENCY, lines=tuple(lines), total=sum(line.amount for line in lines)
    )
