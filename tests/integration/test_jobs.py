"""The platform's purge jobs delete exactly the rows past their retention, nothing else."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

import pytest
from sqlalchemy import insert, select

from ordersmith.platform import jobs
from ordersmith.platform.database import Database
from ordersmith.platform.identity.audit import SYSTEM
from ordersmith.platform.identity.models import (
    ActionToken,
    AttemptCounter,
    Invitation,
    RefreshToken,
    User,
)
from ordersmith.platform.models import ProcessedEvent
from ordersmith.platform.tenancy import TenantRecord, archive_tenant, provision_tenant, restore_tenant
from ordersmith.platform.tenant_tables import TenantIdempotencyKey, TenantProcessedEvent
from ordersmith.tenants.schema import TENANT_SCHEMA
from tests.support.services import new_slug

DAY = dt.timedelta(days=1)
HOUR = dt.timedelta(hours=1)


def now() -> dt.datetime:
    """The time a row is made. A constant taken at import ages while the suite runs: a row
    "blocked for 5 more minutes" was idle by the time a slow run reached its test."""
    return dt.datetime.now(dt.UTC)


@pytest.fixture(autouse=True)
def small_batches(monkeypatch: pytest.MonkeyPatch) -> None:
    """Batches of two rows and one tenant, so that every loop goes round more than once."""
    monkeypatch.setattr(jobs, "PURGE_BATCH_SIZE", 2)
    monkeypatch.setattr(jobs, "TENANT_BATCH_SIZE", 1)


def test_the_purges_are_scheduled() -> None:
    assert [(job.name, job.every_seconds) for job in jobs.PLATFORM_JOBS] == [
        ("outbox.purge", 3600),
        ("identity.purge", 3600),
        ("inbox.purge", 86400),
    ]


async def _insert(database: Database, model: Any, rows: dict[str, dict[str, Any]]) -> None:
    async with database.platform_session() as session:
        await session.execute(insert(model), list(rows.values()))


async def _user(database: Database) -> uuid.UUID:
    user_id = uuid.uuid4()
    await _insert(database, User, {"user": {"id": user_id, "email": f"purge-{user_id.hex[:12]}@example.com"}})
    return user_id


def _secret() -> bytes:
    return uuid.uuid4().bytes


async def _surviving(database: Database, key: Any, rows: dict[str, dict[str, Any]]) -> set[str]:
    """Which of `rows` (by name) are still there."""
    names = {row[key.key]: name for name, row in rows.items()}
    async with database.platform_session() as session:
        found = (await session.scalars(select(key).where(key.in_(list(names))))).all()
    return {names[value] for value in found}


async def test_ended_refresh_tokens_go_a_month_after_they_expire(
    database: Database, tenant: TenantRecord
) -> None:
    user_id = await _user(database)

    def token(expires_in: dt.timedelta, **ended: dt.datetime) -> dict[str, Any]:
        return {
            "id": uuid.uuid4(),
            "family_id": uuid.uuid4(),
            "user_id": user_id,
            "tenant_id": tenant.id,
            "token_hash": _secret(),
            "issued_at": now() + expires_in - 30 * DAY,
            "expires_at": now() + expires_in,
            **ended,
        }

    rows = {
        "expired 31 days ago": token(-31 * DAY),
        "expired 32 days ago, used": token(-32 * DAY, used_at=now() - 60 * DAY),
        "expired 33 days ago, revoked": token(-33 * DAY, revoked_at=now() - 40 * DAY),
        "expired 29 days ago": token(-29 * DAY),
        # A used token is how a leaked copy is caught: it stays until it expires.
        "used 29 days ago, still valid": token(DAY, used_at=now() - 29 * DAY),
        "revoked 29 days ago, still valid": token(DAY, revoked_at=now() - 29 * DAY),
        "live": token(20 * DAY),
    }
    await jobs.purge_refresh_tokens(database)  # whatever other tests left behind
    await _insert(database, RefreshToken, rows)

    assert await jobs.purge_refresh_tokens(database) == 3
    assert await _surviving(database, RefreshToken.id, rows) == {
        "expired 29 days ago",
        "used 29 days ago, still valid",
        "revoked 29 days ago, still valid",
        "live",
    }


async def test_emailed_links_go_a_month_after_they_were_used_or_expired(database: Database) -> None:
    user_id = await _user(database)

    def token(expires_in: dt.timedelta, **used: dt.datetime) -> dict[str, Any]:
        return {
            "id": uuid.uuid4(),
            "purpose": "reset_password",
            "user_id": user_id,
            "token_hash": _secret(),
            "expires_at": now() + expires_in,
            **used,
        }

    rows = {
        "expired 31 days ago": token(-31 * DAY),
        "used 31 days ago": token(-30 * DAY + dt.timedelta(hours=1), used_at=now() - 31 * DAY),
        "expired 29 days ago": token(-29 * DAY),
        "used 29 days ago": token(-28 * DAY, used_at=now() - 29 * DAY),
        "unused, valid": token(DAY),
    }
    await jobs.purge_action_tokens(database)
    await _insert(database, ActionToken, rows)

    assert await jobs.purge_action_tokens(database) == 2
    assert await _surviving(database, ActionToken.id, rows) == {
        "expired 29 days ago",
        "used 29 days ago",
        "unused, valid",
    }


async def test_invitations_go_a_month_after_they_were_accepted_withdrawn_or_expired(
    database: Database, tenant: TenantRecord
) -> None:
    def invitation(expires_in: dt.timedelta, **ended: dt.datetime) -> dict[str, Any]:
        return {
            "id": uuid.uuid4(),
            "tenant_id": tenant.id,
            "email": f"invited-{uuid.uuid4().hex[:8]}@example.com",
            "role": "agent",
            "token_hash": _secret(),
            "expires_at": now() + expires_in,
            **ended,
        }

    rows = {
        "accepted 31 days ago": invitation(-25 * DAY, accepted_at=now() - 31 * DAY),
        "withdrawn 31 days ago": invitation(-25 * DAY, revoked_at=now() - 31 * DAY),
        "expired 31 days ago": invitation(-31 * DAY),
        "accepted 29 days ago": invitation(-23 * DAY, accepted_at=now() - 29 * DAY),
        "expired 29 days ago": invitation(-29 * DAY),
        "pending": invitation(6 * DAY),
    }
    await jobs.purge_invitations(database)
    await _insert(database, Invitation, rows)

    assert await jobs.purge_invitations(database) == 3
    assert await _surviving(database, Invitation.id, rows) == {
        "accepted 29 days ago",
        "expired 29 days ago",
        "pending",
    }


async def test_attempt_counters_go_once_idle_and_unblocked(database: Database) -> None:
    def counter(idle: dt.timedelta, blocked_for: dt.timedelta) -> dict[str, Any]:
        return {
            "key": f"address:tests:{uuid.uuid4()}",
            "attempts": 12,
            "last_attempt_at": now() - idle,
            "blocked_until": now() + blocked_for,
        }

    rows = {
        "idle two days": counter(2 * DAY, -2 * DAY),
        "idle 25 hours": counter(dt.timedelta(hours=25), -DAY),
        "idle 23 hours": counter(dt.timedelta(hours=23), -DAY),
        "idle two days but still blocked": counter(2 * DAY, dt.timedelta(minutes=5)),
        "just now": counter(dt.timedelta(0), dt.timedelta(seconds=2)),
    }
    await jobs.purge_attempt_counters(database)
    await _insert(database, AttemptCounter, rows)

    assert await jobs.purge_attempt_counters(database) == 2
    assert await _surviving(database, AttemptCounter.key, rows) == {
        "idle 23 hours",
        "idle two days but still blocked",
        "just now",
    }


async def _tenant_inbox(database: Database, tenant: TenantRecord) -> set[str]:
    async with database.tenant_session(tenant.context) as session:
        return set((await session.scalars(select(TenantProcessedEvent.consumer))).all())


async def test_inboxes_keep_a_month_of_processed_events_in_every_active_tenant(
    database: Database, tenant: TenantRecord
) -> None:
    await jobs.purge_processed_events(database)
    others = [
        await provision_tenant(database, TENANT_SCHEMA, slug=new_slug(), name=f"Shop {number}")
        for number in (2, 3)
    ]
    rows = {"31 days": now() - 31 * DAY, "29 days": now() - 29 * DAY, "today": now()}
    for each in (tenant, *others):
        async with database.tenant_session(each.context) as session:
            await session.execute(
                insert(TenantProcessedEvent),
                [
                    {"consumer": f"tests.{age}", "event_id": uuid.uuid4(), "processed_at": at}
                    for age, at in rows.items()
                ],
            )
    # The same event handled by two platform consumers a month apart: only the old row goes.
    event_id = uuid.uuid4()
    platform_rows = {
        "31 days": {"consumer": "tests.slow", "event_id": event_id, "processed_at": now() - 31 * DAY},
        "29 days": {"consumer": "tests.fast", "event_id": event_id, "processed_at": now() - 29 * DAY},
        "32 days": {"consumer": "tests.slow", "event_id": uuid.uuid4(), "processed_at": now() - 32 * DAY},
    }
    await _insert(database, ProcessedEvent, platform_rows)
    archived = others[1]
    await archive_tenant(database, archived.slug, actor=SYSTEM)

    # Two old rows in each of two active tenants, two on the platform.
    assert await jobs.purge_processed_events(database) == 4

    for each in (tenant, others[0]):
        assert await _tenant_inbox(database, each) == {"tests.29 days", "tests.today"}
    async with database.platform_session() as session:
        platform = (
            await session.execute(
                select(ProcessedEvent.consumer, ProcessedEvent.processed_at).where(
                    ProcessedEvent.consumer.in_(["tests.slow", "tests.fast"])
                )
            )
        ).all()
    assert [consumer for consumer, _ in platform] == ["tests.fast"]
    # An archived tenant's inbox waits until it is restored.
    await restore_tenant(database, archived.slug, actor=SYSTEM)
    assert await _tenant_inbox(database, archived) == {"tests.31 days", "tests.29 days", "tests.today"}


async def test_idempotency_keys_are_forgotten_after_a_day(database: Database, tenant: TenantRecord) -> None:
    await jobs.purge_idempotency_keys(database)
    async with database.tenant_session(tenant.context) as session:
        await session.execute(
            insert(TenantIdempotencyKey),
            [
                {"scope": "user:1", "key": age, "fingerprint": "f" * 64, "created_at": at}
                for age, at in {"25 hours": now() - 25 * HOUR, "23 hours": now() - 23 * HOUR}.items()
            ],
        )

    assert await jobs.purge_idempotency_keys(database) == 1

    async with database.tenant_session(tenant.context) as session:
        assert list(await session.scalars(select(TenantIdempotencyKey.key))) == ["23 hours"]
