"""The audit trail: append-only, each entry hash-chained to the one before it.

Each tenant's entries form a chain of their own (vendor-level acts form the `platform`
chain), so tenants never wait on each other and a tenant's trail can be exported and
checked on its own. Appends to one chain are serialised with a transaction-level
advisory lock; a unique (chain, prev_hash) makes a fork impossible even without it.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import uuid
from dataclasses import dataclass
from typing import Any

from sqlalchemy import insert, select, text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from ordersmith.platform.database import Database
from ordersmith.platform.identity.models import AuditEntry

GENESIS_HASH = "0" * 64
PLATFORM_CHAIN = "platform"


@dataclass(frozen=True)
class Actor:
    """Who did something: a user, an API key, a staff member, or the system itself."""

    type: str  # "user", "api_key", "staff", "system", "anonymous"
    id: str | None = None
    client_address: str | None = None


SYSTEM = Actor("system")


def _entry_hash(fields: dict[str, Any]) -> str:
    canonical = json.dumps(fields, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()


_HASHED_COLUMNS = (
    "chain", "tenant_id", "actor_type", "actor_id", "action", "target_type", "target_id",
    "data", "client_address", "created_at", "prev_hash",
)  # fmt: skip


def _hashed_fields(fields: dict[str, Any]) -> dict[str, Any]:
    """The entry's content in the one canonical form its hash is computed over."""
    created_at: dt.datetime = fields["created_at"]
    return {
        **{name: fields[name] for name in _HASHED_COLUMNS},
        "tenant_id": str(fields["tenant_id"]) if fields["tenant_id"] else None,
        "data": fields["data"] or {},
        "created_at": created_at.astimezone(dt.UTC).isoformat(timespec="microseconds"),
    }


def _stored_fields(entry: AuditEntry) -> dict[str, Any]:
    return {name: getattr(entry, name) for name in _HASHED_COLUMNS}


async def record_audit(
    session: AsyncSession | AsyncConnection,
    *,
    tenant_id: uuid.UUID | None,
    actor: Actor,
    action: str,
    target_type: str | None = None,
    target_id: str | None = None,
    data: dict[str, Any] | None = None,
) -> None:
    """Append one entry to the tenant's (or the platform's) chain, in the caller's transaction."""
    chain = str(tenant_id) if tenant_id else PLATFORM_CHAIN
    await session.execute(
        text("SELECT pg_advisory_xact_lock(hashtext(:key))"), {"key": f"ordersmith.audit:{chain}"}
    )
    previous = (
        await session.execute(
            select(AuditEntry.hash).where(AuditEntry.chain == chain).order_by(AuditEntry.id.desc()).limit(1)
        )
    ).scalar_one_or_none()
    fields: dict[str, Any] = {
        "chain": chain,
        "tenant_id": tenant_id,
        "actor_type": actor.type,
        "actor_id": actor.id,
        "action": action,
        "target_type": target_type,
        "target_id": target_id,
        "data": data or {},
        "client_address": actor.client_address,
        "created_at": dt.datetime.now(dt.UTC),
        "prev_hash": previous or GENESIS_HASH,
    }
    await session.execute(insert(AuditEntry).values(**fields, hash=_entry_hash(_hashed_fields(fields))))


async def record_audit_beside(
    database: Database,
    *,
    tenant_id: uuid.UUID,
    actor: Actor,
    action: str,
    target_type: str | None = None,
    target_id: str | None = None,
    data: dict[str, Any] | None = None,
) -> None:
    """Audit a change made in a tenant transaction, from a platform transaction of its own.

    Tenant roles cannot write the audit log, so the entry commits just before the caller
    commits the change: a change is never missing from the trail, and a commit that
    fails after it leaves at most one entry too many.
    """
    async with database.platform_session() as platform:
        await record_audit(
            platform,
            tenant_id=tenant_id,
            actor=actor,
            action=action,
            target_type=target_type,
            target_id=target_id,
            data=data,
        )


def exported(entry: AuditEntry) -> dict[str, Any]:
    """An entry as an export shows it: its id, the fields its hash covers in their canonical form, the hash.

    Anyone holding an export can check it without us: `hash` is the SHA-256 of the JSON
    of every other field but `id` (keys sorted, no spaces, characters beyond ASCII as `\\u`
    escapes: Python's `json.dumps(fields, sort_keys=True, separators=(",", ":"))`), and each
    entry's `prev_hash` is the `hash` of the entry before it in the chain.
    """
    return {"id": entry.id, **_hashed_fields(_stored_fields(entry)), "hash": entry.hash}


@dataclass(frozen=True)
class AuditProblem:
    """The first entry of a chain that does not check out, and why."""

    entry_id: int
    chain: str
    reason: str


@dataclass(frozen=True)
class AuditVerification:
    chains: int
    entries: int
    problems: list[AuditProblem]

    @property
    def is_intact(self) -> bool:
        return not self.problems


async def verify_audit_log(database: Database, *, batch_size: int = 5000) -> AuditVerification:
    """Recompute every chain; report the first bad entry of each chain that is broken."""
    last_hash: dict[str, str] = {}
    broken: dict[str, AuditProblem] = {}
    entries = 0
    after_id = 0
    async with database.platform_session() as session:
        while True:
            batch = (
                (
                    await session.execute(
                        select(AuditEntry)
                        .where(AuditEntry.id > after_id)
                        .order_by(AuditEntry.id)
                        .limit(batch_size)
                    )
                )
                .scalars()
                .all()
            )
            if not batch:
                break
            for entry in batch:
                entries += 1
                after_id = entry.id
                if entry.chain in broken:
                    continue
                expected_previous = last_hash.get(entry.chain, GENESIS_HASH)
                if entry.prev_hash != expected_previous:
                    broken[entry.chain] = AuditProblem(
                        entry.id,
                        entry.chain,
                        "does not follow the entry before it: an earlier entry was deleted or altered",
                    )
                elif _entry_hash(_hashed_fields(_stored_fields(entry))) != entry.hash:
                    broken[entry.chain] = AuditProblem(entry.id, entry.chain, "its content was altered")
                last_hash[entry.chain] = entry.hash
            session.expunge_all()
    problems = sorted(broken.values(), key=lambda problem: problem.entry_id)
    return AuditVerification(chains=len(last_hash), entries=entries, problems=problems)
