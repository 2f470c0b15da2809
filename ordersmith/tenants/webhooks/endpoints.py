"""Webhook endpoints: where a store's events go. Registering, changing, removing, rotating the secret.

The signing secret is made here and returned in clear only by `create_endpoint` and
`rotate_secret`; it is stored sealed (`endpoint_secrets.py`) and opened only by the sender.
Every change goes to the store's audit trail (`webhook_endpoint.*`): where a store's
events are sent is worth knowing who changed, and when. Making an endpoint, or changing
one that stays active, puts the store on the sender's list (`platform/webhook_stores.py`).
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import httpx
from sqlalchemy import delete, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from ordersmith.platform import webhook_stores
from ordersmith.platform.database import Database, TenantContext
from ordersmith.platform.errors import FieldError, ValidationFailedError
from ordersmith.platform.identity import oidc
from ordersmith.platform.identity.audit import Actor, record_audit_beside
from ordersmith.platform.identity.oidc import NetworkPolicy
from ordersmith.platform.ids import uuid7
from ordersmith.platform.pagination import Page, PageRequest
from ordersmith.tenants.webhooks import config, endpoint_secrets
from ordersmith.tenants.webhooks.errors import WebhookEndpointNotFoundError
from ordersmith.tenants.webhooks.models import WebhookEndpoint
from ordersmith.tenants.webhooks.topics import ALL_TOPICS, WEBHOOK_TOPICS

MAX_URL_LENGTH = 2000
MAX_DESCRIPTION_LENGTH = 500
# How long a rotated secret may go on signing beside the new one, at most: a week.
MAX_KEEP_PREVIOUS_HOURS = 168
# What a change can touch, as the audit entry of a change records it (old and new).
_CHANGEABLE = ("url", "topics", "description", "is_active")


@dataclass(frozen=True)
class CreatedEndpoint:
    """An endpoint just made or given a new secret, with that secret in clear (shown this once)."""

    endpoint: WebhookEndpoint
    secret: str


def endpoint_missing() -> WebhookEndpointNotFoundError:
    return WebhookEndpointNotFoundError(
        "no webhook endpoint with this id in this store; list them to find it"
    )


def endpoint_id_of(text: str) -> uuid.UUID:
    """The endpoint id in a path; one that cannot exist is simply not found."""
    try:
        return uuid.UUID(text)
    except ValueError:
        raise endpoint_missing() from None


def _host_looked_up(url: str) -> str | None:
    """The host name the sender looks up for `url` (`oidc.checked_address`); None if it cannot be encoded.

    As the sender does: httpx encodes the host (IDNA 2008, refusing `☃.com`), then the
    lookup encodes `url.host` again with Python's IDNA codec (refusing `a..b`, a label
    over 63 characters). A host refused either way could never be sent to.
    """
    try:
        host = httpx.URL(url).host
        host.encode("idna")
    except (httpx.InvalidURL, ValueError):  # UnicodeError and idna.IDNAError are ValueErrors
        return None
    return host or None


def _url_format_errors(url: str, network: NetworkPolicy) -> list[FieldError]:
    try:
        parts = urlsplit(url)
        # Reading the port raises ValueError when it is not a number from 0 to 65535.
        host, port = parts.hostname, parts.port
    except ValueError:
        parts, host, port = None, None, None
    schemes = ("https",) if network.require_https else ("https", "http")
    if not (
        parts is not None
        and parts.scheme in schemes
        and host
        and port != 0
        and not parts.username
        and not parts.fragment
        and len(url) <= MAX_URL_LENGTH
    ):
        message = (
            f"must be an https URL of at most {MAX_URL_LENGTH} characters, like https://example.com/hooks"
        )
        if not network.require_https:
            message += " (http is accepted outside production)"
        return [FieldError("url", message)]
    if _host_looked_up(url) is None:
        return [
            FieldError(
                "url",
                f"has a host, {host}, that is not a valid domain name or IP address; "
                "give one like erp.example.com (labels of 1 to 63 characters between the dots)",
            )
        ]
    return []


async def check_url(url: str, network: NetworkPolicy) -> list[FieldError]:
    """Why `url` cannot receive webhooks (empty if it can): its form, then, in production, its address."""
    errors = _url_format_errors(url, network)
    if errors or network.allow_private_addresses:
        return errors
    host = _host_looked_up(url)
    assert host is not None  # _url_format_errors checked it
    try:
        await oidc.checked_address(host, allow_private_addresses=False)
    except oidc.SsoProviderAddressRefusedError as refused:
        return [FieldError("url", f"must lead to a public address, but {refused.reason}")]
    except OSError:
        # A name that does not resolve yet may be right soon; every send checks again.
        return []
    return []


def check_topics(topics: list[str]) -> tuple[list[str], list[FieldError]]:
    """The topics normalized (deduplicated; `*` alone stands for all), and what is wrong with them."""
    unknown = [topic for topic in topics if topic != ALL_TOPICS and topic not in WEBHOOK_TOPICS]
    if not topics or unknown:
        what = f"unknown topics {', '.join(sorted(set(unknown)))}" if unknown else "no topic"
        return [], [
            FieldError(
                "topics",
                f'{what}: give "*" for every event, or some of {", ".join(WEBHOOK_TOPICS)}',
            )
        ]
    if ALL_TOPICS in topics:
        return [ALL_TOPICS], []
    return list(dict.fromkeys(topics)), []


def _description_errors(description: str) -> list[FieldError]:
    if len(description) <= MAX_DESCRIPTION_LENGTH:
        return []
    return [FieldError("description", f"must be at most {MAX_DESCRIPTION_LENGTH} characters")]


def _refuse(errors: list[FieldError]) -> None:
    if errors:
        raise ValidationFailedError("some webhook endpoint fields are invalid; see errors", errors=errors)


async def _audit(
    database: Database,
    tenant: TenantContext,
    actor: Actor,
    action: str,
    endpoint_id: uuid.UUID,
    data: dict[str, Any],
) -> None:
    await record_audit_beside(
        database,
        tenant_id=tenant.tenant_id,
        actor=actor,
        action=f"webhook_endpoint.{action}",
        target_type="webhook_endpoint",
        target_id=str(endpoint_id),
        data=data,
    )


async def get_endpoint(
    tenant: TenantContext, session: AsyncSession, endpoint_id: uuid.UUID, *, lock: bool = False
) -> WebhookEndpoint:
    """The endpoint, locked with `lock`; 404 `webhook_endpoint_not_found` if this store has none."""
    query = (
        select(WebhookEndpoint)
        .where(WebhookEndpoint.id == endpoint_id)
        .execution_options(populate_existing=True)
    )
    if lock:
        query = query.with_for_update()
    row = (await session.scalars(query)).one_or_none()
    if row is None:
        raise endpoint_missing()
    return row


async def create_endpoint(
    database: Database,
    tenant: TenantContext,
    session: AsyncSession,
    *,
    actor: Actor,
    url: str,
    topics: list[str],
    description: str = "",
    is_active: bool = True,
) -> CreatedEndpoint:
    """Register a URL for the topics given; its new signing secret is returned this once."""
    settings = config.current()
    url = url.strip()
    topics, errors = check_topics(topics)
    errors = [*await check_url(url, settings.network), *errors, *_description_errors(description)]
    _refuse(errors)
    if is_active:
        await webhook_stores.mark(database, tenant.tenant_id)
    endpoint_id = uuid7()
    secret = endpoint_secrets.new_secret()
    session.add(
        WebhookEndpoint(
            id=endpoint_id,
            url=url,
            topics=topics,
            description=description,
            is_active=is_active,
            secret_sealed=endpoint_secrets.seal(settings.secret_key, tenant.tenant_id, endpoint_id, secret),
            secret_hint=endpoint_secrets.hint_of(secret),
        )
    )
    await session.flush()
    await _audit(
        database,
        tenant,
        actor,
        "created",
        endpoint_id,
        {
            "url": url,
            "topics": topics,
            "is_active": is_active,
            "secret_hint": endpoint_secrets.hint_of(secret),
        },
    )
    return CreatedEndpoint(await get_endpoint(tenant, session, endpoint_id), secret)


async def list_endpoints(
    tenant: TenantContext, session: AsyncSession, page: PageRequest
) -> Page[WebhookEndpoint]:
    """The store's endpoints, newest first."""
    query = page.apply(
        select(WebhookEndpoint), WebhookEndpoint.created_at, WebhookEndpoint.id, newest_first=True
    )
    rows = list(await session.scalars(query))
    return page.cut(rows, lambda row: (row.created_at, row.id))


async def update_endpoint(
    database: Database,
    tenant: TenantContext,
    session: AsyncSession,
    endpoint_id: uuid.UUID,
    changes: Mapping[str, Any],
    *,
    actor: Actor,
) -> WebhookEndpoint:
    """Change the url, topics, description or is_active given; the others stay. Audited if any moved."""
    # Locked, so that two changes at once each record what they really replaced.
    before = await get_endpoint(tenant, session, endpoint_id, lock=True)
    old = {field: getattr(before, field) for field in _CHANGEABLE}
    values: dict[str, Any] = {}
    errors: list[FieldError] = []
    if "url" in changes:
        values["url"] = str(changes["url"]).strip()
        errors += await check_url(values["url"], config.current().network)
    if "topics" in changes:
        values["topics"], topic_errors = check_topics(list(changes["topics"]))
        errors += topic_errors
    if "description" in changes:
        values["description"] = changes["description"]
        errors += _description_errors(changes["description"])
    if "is_active" in changes:
        values["is_active"] = bool(changes["is_active"])
    _refuse(errors)
    moved = {
        field: {"old": old[field], "new": value} for field, value in values.items() if value != old[field]
    }
    if not moved:
        return before
    if values.get("is_active", before.is_active):
        await webhook_stores.mark(database, tenant.tenant_id)
    await session.execute(
        update(WebhookEndpoint)
        .where(WebhookEndpoint.id == endpoint_id)
        .values(**values, updated_at=dt.datetime.now(dt.UTC))
    )
    await _audit(database, tenant, actor, "changed", endpoint_id, {"changes": moved})
    return await get_endpoint(tenant, session, endpoint_id)


async def delete_endpoint(
    database: Database, tenant: TenantContext, session: AsyncSession, endpoint_id: uuid.UUID, *, actor: Actor
) -> None:
    """Remove the endpoint with its deliveries and their log; what was still owed is not sent. Audited."""
    url = await session.scalar(
        delete(WebhookEndpoint).where(WebhookEndpoint.id == endpoint_id).returning(WebhookEndpoint.url)
    )
    if url is None:
        raise endpoint_missing()
    await _audit(database, tenant, actor, "deleted", endpoint_id, {"url": url})


async def rotate_secret(
    database: Database,
    tenant: TenantContext,
    session: AsyncSession,
    endpoint_id: uuid.UUID,
    *,
    actor: Actor,
    keep_previous_hours: int = 0,
) -> CreatedEndpoint:
    """Give the endpoint a new signing secret, returned this once; audited.

    The old secret stops at once, or with `keep_previous_hours` goes on signing beside the
    new one that long, so the receiver can switch without refusing a delivery. A secret
    kept from an earlier rotation stops now: only the one replaced here is kept.
    """
    if not 0 <= keep_previous_hours <= MAX_KEEP_PREVIOUS_HOURS:
        _refuse(
            [
                FieldError(
                    "keep_previous_hours",
                    f"must be between 0 (stop the old secret now) and {MAX_KEEP_PREVIOUS_HOURS} (a week)",
                )
            ]
        )
    before = await get_endpoint(tenant, session, endpoint_id, lock=True)
    old_hint = before.secret_hint
    secret = endpoint_secrets.new_secret()
    now = dt.datetime.now(dt.UTC)
    kept_until = now + dt.timedelta(hours=keep_previous_hours) if keep_previous_hours else None
    await session.execute(
        update(WebhookEndpoint)
        .where(WebhookEndpoint.id == endpoint_id)
        .values(
            secret_sealed=endpoint_secrets.seal(
                config.current().secret_key, tenant.tenant_id, endpoint_id, secret
            ),
            secret_hint=endpoint_secrets.hint_of(secret),
            secret_rotated_at=now,
            # Sealed for the same store and endpoint, the old secret opens as it is.
            previous_secret_sealed=before.secret_sealed if kept_until else None,
            previous_secret_expires_at=kept_until,
            updated_at=now,
        )
    )
    await _audit(
        database,
        tenant,
        actor,
        "secret_rotated",
        endpoint_id,
        {
            "old_secret_hint": old_hint,
            "new_secret_hint": endpoint_secrets.hint_of(secret),
            "old_secret_signs_until": kept_until.isoformat() if kept_until else None,
        },
    )
    return CreatedEndpoint(await get_endpoint(tenant, session, endpoint_id), secret)
