"""Entitlement helpers for tests: give a store a feature, move its billing clock, read its trial notices."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

from litestar import Litestar
from litestar.testing import AsyncTestClient
from sqlalchemy import select, update

from ordersmith.platform.database import Database
from ordersmith.platform.entitlements import bump_revision
from ordersmith.platform.models import EntitlementOverride, Tenant, TrialNotice
from ordersmith.platform.plans import Feature, Limit
from tests.support.http import sign_up

TEST_STAFF_ID = uuid.UUID(int=0)


async def grant_feature(database: Database, tenant_id: str | uuid.UUID, feature: Feature) -> None:
    """Switch a feature on for a store, as a staff override without end would (for tests of that feature)."""
    tenant = uuid.UUID(str(tenant_id))
    async with database.platform_session() as session:
        await bump_revision(session, tenant)
        session.add(
            EntitlementOverride(
                id=uuid.uuid4(),
                tenant_id=tenant,
                kind="feature",
                key=feature.value,
                enabled=True,
                reason="granted by a test",
                created_by=TEST_STAFF_ID,
            )
        )


async def set_limit(database: Database, tenant_id: str | uuid.UUID, limit: Limit, value: int | None) -> None:
    """Give a store another value for a limit, as a staff override without end would."""
    tenant = uuid.UUID(str(tenant_id))
    async with database.platform_session() as session:
        await bump_revision(session, tenant)
        session.add(
            EntitlementOverride(
                id=uuid.uuid4(),
                tenant_id=tenant,
                kind="limit",
                key=limit.value,
                limit_value=value,
                reason="set by a test",
                created_by=TEST_STAFF_ID,
            )
        )


async def set_tenant_billing(database: Database, tenant_id: str | uuid.UUID, **values: Any) -> None:
    """Write a store's plan or billing columns directly: how tests let time pass (a trial's end, say)."""
    async with database.platform_session() as session:
        await session.execute(update(Tenant).where(Tenant.id == uuid.UUID(str(tenant_id))).values(**values))


async def trial_notices(database: Database, tenant_id: str | uuid.UUID) -> list[tuple[str, dt.datetime]]:
    """The trial notices sent to a store: (kind, trial end), oldest first."""
    async with database.platform_session() as session:
        rows = await session.execute(
            select(TrialNotice.kind, TrialNotice.trial_ends_at)
            .where(TrialNotice.tenant_id == uuid.UUID(str(tenant_id)))
            .order_by(TrialNotice.sent_at, TrialNotice.id)
        )
        return [(kind, ends) for kind, ends in rows]


async def sign_up_with_sso(
    client: AsyncTestClient[Litestar], database: Database, **extra: Any
) -> dict[str, Any]:
    """Sign up a trial store that has single sign-on (an Enterprise feature), for the SSO tests."""
    owner = await sign_up(client, **extra)
    await grant_feature(database, owner["tenant"]["id"], Feature.SSO)
    return owner
