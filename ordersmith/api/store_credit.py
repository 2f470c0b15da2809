"""A customer's store credit over HTTP: the balance and its ledger, and spending it.

Credit is granted by resolving a return (`api/returns.py`); here it is read and spent.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import msgspec
from litestar import Request, Response, get, post
from litestar.di import NamedDependency
from litestar.params import FromPath, JSONBody
from sqlalchemy.ext.asyncio import AsyncSession

from ordersmith.api import idempotency
from ordersmith.api.access import requires
from ordersmith.platform.identity.permissions import Permission
from ordersmith.platform.identity.principal import Principal
from ordersmith.tenants.customers.service import customer_id_of
from ordersmith.tenants.orders.views import order_id_of
from ordersmith.tenants.returns import store_credit
from ordersmith.tenants.returns.models import StoreCreditEntry
from ordersmith.tenants.returns.rules import check_amount


class StoreCreditEntryOut(msgspec.Struct):
    id: str
    amount: int
    currency: str
    reason: str
    return_id: str | None
    order_id: str | None
    actor_type: str
    actor_id: str | None
    created_at: dt.datetime

    @classmethod
    def of(cls, row: StoreCreditEntry) -> StoreCreditEntryOut:
        return cls(
            str(row.id),
            row.amount,
            row.currency,
            row.reason,
            str(row.return_id) if row.return_id else None,
            str(row.order_id) if row.order_id else None,
            row.actor_type,
            row.actor_id,
            row.created_at,
        )


class StoreCredit(msgspec.Struct):
    customer_id: str
    # Balance per currency, in minor units.
    balances: dict[str, int]
    entries: list[StoreCreditEntryOut]


class StoreCreditSpend(msgspec.Struct, forbid_unknown_fields=True):
    amount: int
    currency: str
    reason: str = ""
    order_id: str | None = None


def _credit(result: store_credit.StoreCredit) -> StoreCredit:
    return StoreCredit(
        str(result.customer_id), result.balances, [StoreCreditEntryOut.of(entry) for entry in result.entries]
    )


@get(
    "/api/v1/customers/{customer_id:str}/store-credit",
    operation_id="getStoreCredit",
    summary="A customer's store credit: balance per currency and every entry, newest first.",
    opt=requires(Permission.CUSTOMERS_READ),
    tags=["returns"],
)
async def read_store_credit(
    principal: NamedDependency[Principal],
    tenant_session: NamedDependency[AsyncSession],
    customer_id: FromPath[str],
) -> StoreCredit:
    result = await store_credit.store_credit(
        principal.tenant_context, tenant_session, customer_id_of(customer_id)
    )
    return _credit(result)


@post(
    "/api/v1/customers/{customer_id:str}/store-credit/redemptions",
    operation_id="spendStoreCredit",
    summary="Spend some of a customer's store credit; never below zero.",
    opt=requires(Permission.ORDERS_WRITE),
    tags=["returns"],
)
async def spend_store_credit(
    request: Request[Any, Any, Any],
    principal: NamedDependency[Principal],
    tenant_session: NamedDependency[AsyncSession],
    customer_id: FromPath[str],
    data: JSONBody[StoreCreditSpend],
) -> Response[StoreCredit]:
    """409 `store_credit_insufficient` gives the balance; 422 when `order_id` is another customer's order.

    Spent on an order, the `currency` must be the order's (422); an `Idempotency-Key` makes a retry safe.
    """
    check_amount(data.amount)
    tenant = principal.tenant_context

    async def create() -> StoreCredit:
        await store_credit.spend(
            tenant,
            tenant_session,
            customer_id_of(customer_id),
            data.amount,
            data.currency,
            reason=data.reason.strip(),
            actor=principal.actor,
            order_id=None if data.order_id is None else order_id_of(data.order_id),
        )
        return _credit(await store_credit.store_credit(tenant, tenant_session, customer_id_of(customer_id)))

    return await idempotency.once(request, principal, tenant_session, data, create)


ROUTES = [read_store_credit, spend_store_credit]
