"""Merchant webhooks: endpoints (`/api/v1/webhook-endpoints`), their delivery log, and replays.

Every route needs the `webhooks` feature (402 `feature_not_in_plan` otherwise). The
signing secret is in the answer of creation and rotation only; reads show its hint.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import msgspec
from litestar import delete, get, patch, post
from litestar.datastructures import State
from litestar.di import NamedDependency
from litestar.params import FromPath, FromQuery, JSONBody
from litestar.status_codes import HTTP_201_CREATED, HTTP_204_NO_CONTENT
from sqlalchemy.ext.asyncio import AsyncSession

from ordersmith.api.access import requires
from ordersmith.api.entitlements import requires_feature
from ordersmith.api.payloads import given
from ordersmith.platform.identity.permissions import Permission
from ordersmith.platform.identity.principal import Principal
from ordersmith.platform.pagination import DEFAULT_PAGE_SIZE, PageRequest
from ordersmith.platform.plans import Feature
from ordersmith.tenants.webhooks import endpoints, sending
from ordersmith.tenants.webhooks.deliveries import DeliveryView, delivery_id_of, list_deliveries
from ordersmith.tenants.webhooks.endpoints import CreatedEndpoint, endpoint_id_of
from ordersmith.tenants.webhooks.models import WebhookEndpoint as EndpointRow

GUARDS = [requires_feature(Feature.WEBHOOKS)]
TAGS = ["webhooks"]


class WebhookEndpoint(msgspec.Struct):
    id: str
    url: str
    # Known topics, or ["*"] for every one.
    topics: list[str]
    description: str
    is_active: bool
    # Which secret signs: `whsec_…` and its last four characters.
    secret_hint: str
    secret_rotated_at: dt.datetime | None
    # Until when the secret the last rotation replaced also signs (null: it stopped then).
    previous_secret_expires_at: dt.datetime | None
    created_at: dt.datetime
    updated_at: dt.datetime

    @classmethod
    def of(cls, row: EndpointRow) -> WebhookEndpoint:
        return cls(
            str(row.id),
            row.url,
            list(row.topics),
            row.description,
            row.is_active,
            row.secret_hint,
            row.secret_rotated_at,
            row.previous_secret_expires_at,
            row.created_at,
            row.updated_at,
        )


class WebhookEndpointWithSecret(msgspec.Struct):
    endpoint: WebhookEndpoint
    # Shown this once: the receiver verifies `Ordersmith-Signature` with it.
    secret: str

    @classmethod
    def of(cls, created: CreatedEndpoint) -> WebhookEndpointWithSecret:
        return cls(WebhookEndpoint.of(created.endpoint), created.secret)


class WebhookEndpointList(msgspec.Struct):
    data: list[WebhookEndpoint]
    next_cursor: str | None


class WebhookEndpointCreate(msgspec.Struct, forbid_unknown_fields=True):
    url: str
    topics: list[str]
    description: str = ""
    is_active: bool = True


class WebhookEndpointUpdate(msgspec.Struct, forbid_unknown_fields=True):
    url: str | msgspec.UnsetType = msgspec.UNSET
    topics: list[str] | msgspec.UnsetType = msgspec.UNSET
    description: str | msgspec.UnsetType = msgspec.UNSET
    is_active: bool | msgspec.UnsetType = msgspec.UNSET


class SecretRotation(msgspec.Struct, forbid_unknown_fields=True):
    # Hours the replaced secret goes on signing beside the new one (0 to 168): time for
    # the receiver to switch. 0, the default, stops it at once, as after a leak.
    keep_previous_hours: int = 0


class DeliveryAttempt(msgspec.Struct):
    attempt_number: int
    # automatic (first try or retry) or replay.
    trigger: str
    # None when no answer came (timeout, refused connection, refused address).
    status_code: int | None
    duration_ms: int
    error: str | None
    attempted_at: dt.datetime


class WebhookDelivery(msgspec.Struct):
    id: str
    endpoint_id: str
    event_id: str
    topic: str
    # pending (owed; next_attempt_at says when), succeeded, or failed (retries exhausted).
    status: str
    attempt_count: int
    next_attempt_at: dt.datetime | None
    last_status_code: int | None
    last_error: str | None
    delivered_at: dt.datetime | None
    created_at: dt.datetime
    # The JSON document POSTed.
    body: dict[str, Any]
    attempts: list[DeliveryAttempt]

    @classmethod
    def of(cls, view: DeliveryView) -> WebhookDelivery:
        row = view.delivery
        return cls(
            str(row.id),
            str(row.endpoint_id),
            str(row.event_id),
            row.topic,
            row.status,
            row.attempt_count,
            row.next_attempt_at,
            row.last_status_code,
            row.last_error,
            row.delivered_at,
            row.created_at,
            row.body,
            [
                DeliveryAttempt(
                    item.attempt_number,
                    item.trigger,
                    item.status_code,
                    item.duration_ms,
                    item.error,
                    item.attempted_at,
                )
                for item in view.attempts
            ],
        )


class WebhookDeliveryList(msgspec.Struct):
    data: list[WebhookDelivery]
    next_cursor: str | None


@post(
    "/api/v1/webhook-endpoints",
    operation_id="createWebhookEndpoint",
    summary="Register a URL to receive the store's events of some topics, signed with a new secret.",
    opt=requires(Permission.SETTINGS_MANAGE),
    guards=GUARDS,
    tags=TAGS,
    status_code=HTTP_201_CREATED,
)
async def add_webhook_endpoint(
    state: State,
    principal: NamedDependency[Principal],
    tenant_session: NamedDependency[AsyncSession],
    data: JSONBody[WebhookEndpointCreate],
) -> WebhookEndpointWithSecret:
    """The answer carries the signing secret, this once; 422 for a bad URL or an unknown topic.

    No `Idempotency-Key`, as for API keys: replaying the answer would mean keeping the
    secret in clear beside it (docs/known-limits.md).
    """
    created = await endpoints.create_endpoint(
        state.database,
        principal.tenant_context,
        tenant_session,
        actor=principal.actor,
        url=data.url,
        topics=data.topics,
        description=data.description,
        is_active=data.is_active,
    )
    return WebhookEndpointWithSecret.of(created)


@get(
    "/api/v1/webhook-endpoints",
    operation_id="listWebhookEndpoints",
    summary="List the store's webhook endpoints, newest first.",
    opt=requires(Permission.SETTINGS_READ),
    guards=GUARDS,
    tags=TAGS,
)
async def read_webhook_endpoints(
    principal: NamedDependency[Principal],
    tenant_session: NamedDependency[AsyncSession],
    limit: FromQuery[int] = DEFAULT_PAGE_SIZE,
    cursor: FromQuery[str | None] = None,
) -> WebhookEndpointList:
    """Endpoints with their topics and secret hint, never the secret."""
    page = await endpoints.list_endpoints(
        principal.tenant_context, tenant_session, PageRequest.parse(limit, cursor)
    )
    return WebhookEndpointList([WebhookEndpoint.of(row) for row in page.items], page.next_cursor)


@get(
    "/api/v1/webhook-endpoints/{endpoint_id:str}",
    operation_id="getWebhookEndpoint",
    summary="Read one webhook endpoint.",
    opt=requires(Permission.SETTINGS_READ),
    guards=GUARDS,
    tags=TAGS,
)
async def read_webhook_endpoint(
    principal: NamedDependency[Principal],
    tenant_session: NamedDependency[AsyncSession],
    endpoint_id: FromPath[str],
) -> WebhookEndpoint:
    """The endpoint, without its secret."""
    row = await endpoints.get_endpoint(principal.tenant_context, tenant_session, endpoint_id_of(endpoint_id))
    return WebhookEndpoint.of(row)


@patch(
    "/api/v1/webhook-endpoints/{endpoint_id:str}",
    operation_id="updateWebhookEndpoint",
    summary="Change a webhook endpoint's URL, topics, description, or switch it off and on.",
    opt=requires(Permission.SETTINGS_MANAGE),
    guards=GUARDS,
    tags=TAGS,
)
async def change_webhook_endpoint(
    state: State,
    principal: NamedDependency[Principal],
    tenant_session: NamedDependency[AsyncSession],
    endpoint_id: FromPath[str],
    data: JSONBody[WebhookEndpointUpdate],
) -> WebhookEndpoint:
    """Fields left out stay; an inactive endpoint gets no new deliveries and its pending ones wait."""
    row = await endpoints.update_endpoint(
        state.database,
        principal.tenant_context,
        tenant_session,
        endpoint_id_of(endpoint_id),
        given(data),
        actor=principal.actor,
    )
    return WebhookEndpoint.of(row)


@delete(
    "/api/v1/webhook-endpoints/{endpoint_id:str}",
    operation_id="deleteWebhookEndpoint",
    summary="Remove a webhook endpoint with its delivery log.",
    opt=requires(Permission.SETTINGS_MANAGE),
    guards=GUARDS,
    tags=TAGS,
    status_code=HTTP_204_NO_CONTENT,
)
async def remove_webhook_endpoint(
    state: State,
    principal: NamedDependency[Principal],
    tenant_session: NamedDependency[AsyncSession],
    endpoint_id: FromPath[str],
) -> None:
    """What it was still owed is dropped; switch it off instead to keep it."""
    await endpoints.delete_endpoint(
        state.database,
        principal.tenant_context,
        tenant_session,
        endpoint_id_of(endpoint_id),
        actor=principal.actor,
    )


@post(
    "/api/v1/webhook-endpoints/{endpoint_id:str}/rotate-secret",
    operation_id="rotateWebhookEndpointSecret",
    summary="Give a webhook endpoint a new signing secret, shown this once.",
    opt=requires(Permission.SETTINGS_MANAGE),
    guards=GUARDS,
    tags=TAGS,
    status_code=200,
)
async def rotate_webhook_endpoint_secret(
    state: State,
    principal: NamedDependency[Principal],
    tenant_session: NamedDependency[AsyncSession],
    endpoint_id: FromPath[str],
    data: JSONBody[SecretRotation | None] = None,
) -> WebhookEndpointWithSecret:
    """The new secret signs from now on; the old one stops now or after `keep_previous_hours`."""
    created = await endpoints.rotate_secret(
        state.database,
        principal.tenant_context,
        tenant_session,
        endpoint_id_of(endpoint_id),
        actor=principal.actor,
        keep_previous_hours=(data or SecretRotation()).keep_previous_hours,
    )
    return WebhookEndpointWithSecret.of(created)


@get(
    "/api/v1/webhook-endpoints/{endpoint_id:str}/deliveries",
    operation_id="listWebhookDeliveries",
    summary="A webhook endpoint's delivery log: each event owed, its status and every attempt.",
    opt=requires(Permission.SETTINGS_READ),
    guards=GUARDS,
    tags=TAGS,
)
async def read_webhook_deliveries(
    principal: NamedDependency[Principal],
    tenant_session: NamedDependency[AsyncSession],
    endpoint_id: FromPath[str],
    limit: FromQuery[int] = DEFAULT_PAGE_SIZE,
    cursor: FromQuery[str | None] = None,
    status: FromQuery[str | None] = None,
) -> WebhookDeliveryList:
    """Newest first; ?status=pending|succeeded|failed keeps one status."""
    page = await list_deliveries(
        principal.tenant_context,
        tenant_session,
        endpoint_id_of(endpoint_id),
        PageRequest.parse(limit, cursor),
        status=status,
    )
    return WebhookDeliveryList([WebhookDelivery.of(view) for view in page.items], page.next_cursor)


@post(
    "/api/v1/webhook-deliveries/{delivery_id:str}/replay",
    operation_id="replayWebhookDelivery",
    summary="Send a webhook delivery again now; the attempt joins its log.",
    opt=requires(Permission.SETTINGS_MANAGE),
    guards=GUARDS,
    tags=TAGS,
    status_code=200,
)
async def replay_webhook_delivery(
    state: State, principal: NamedDependency[Principal], delivery_id: FromPath[str]
) -> WebhookDelivery:
    """Sent before answering, with no transaction open during the POST; the answer shows the outcome."""
    view = await sending.replay(state.database, principal.tenant_context, delivery_id_of(delivery_id))
    return WebhookDelivery.of(view)


ROUTES = [
    add_webhook_endpoint,
    read_webhook_endpoints,
    read_webhook_endpoint,
    change_webhook_endpoint,
    remove_webhook_endpoint,
    rotate_webhook_endpoint_secret,
    read_webhook_deliveries,
    replay_webhook_delivery,
]
