"""A store's people and integrations: members and roles, invitations, API keys."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

import msgspec
from litestar import Request, Response, delete, get, patch, post
from litestar.datastructures import State
from litestar.di import NamedDependency
from litestar.params import FromPath, FromQuery, JSONBody
from litestar.status_codes import HTTP_201_CREATED, HTTP_204_NO_CONTENT

from ordersmith.api.access import PUBLIC, requires
from ordersmith.api.auth import client_address
from ordersmith.api.identity import TenantSummary, TokenResponse
from ordersmith.api.problems import PROBLEMS
from ordersmith.platform.identity import api_keys, invitations, members
from ordersmith.platform.identity.members import tenant_of
from ordersmith.platform.identity.permissions import Permission
from ordersmith.platform.identity.principal import Principal
from ordersmith.platform.pagination import DEFAULT_PAGE_SIZE, PageRequest


def _id(value: uuid.UUID | None) -> str | None:
    return str(value) if value is not None else None


# ---- members ------------------------------------------------------------------------------


class Member(msgspec.Struct):
    id: str
    email: str
    full_name: str
    role: str
    # "active" or "deactivated"
    status: str
    email_verified: bool
    created_at: dt.datetime

    @classmethod
    def of(cls, member: members.MemberView) -> Member:
        return cls(
            str(member.user_id),
            member.email,
            member.full_name,
            member.role,
            member.status,
            member.email_verified,
            member.created_at,
        )


class MemberList(msgspec.Struct):
    data: list[Member]
    next_cursor: str | None


class MemberUpdate(msgspec.Struct):
    role: str | None = None
    status: str | None = None


@get(
    "/api/v1/users",
    operation_id="listUsers",
    summary="List the store's members, oldest first.",
    opt=requires(Permission.USERS_MANAGE),
    tags=["users"],
)
async def list_users(
    state: State,
    principal: NamedDependency[Principal],
    limit: FromQuery[int] = DEFAULT_PAGE_SIZE,
    cursor: FromQuery[str | None] = None,
) -> MemberList:
    """Every member with their role and status; follow next_cursor for more."""
    page = await members.list_members(state.database, tenant_of(principal), PageRequest.parse(limit, cursor))
    return MemberList([Member.of(member) for member in page.items], page.next_cursor)


@get(
    "/api/v1/users/{user_id:str}",
    operation_id="getUser",
    summary="Read one member of the store.",
    opt=requires(Permission.USERS_MANAGE),
    tags=["users"],
)
async def get_user(state: State, principal: NamedDependency[Principal], user_id: FromPath[str]) -> Member:
    """A member's email, name, role and status."""
    return Member.of(await members.get_member(state.database, tenant_of(principal), user_id))


@patch(
    "/api/v1/users/{user_id:str}",
    operation_id="updateUser",
    summary="Change a member's role or deactivate / reactivate them.",
    opt=requires(Permission.USERS_MANAGE),
    tags=["users"],
)
async def update_user(
    state: State, principal: NamedDependency[Principal], user_id: FromPath[str], data: JSONBody[MemberUpdate]
) -> Member:
    """Only owners touch owners; deactivation revokes their keys and invitations, demotion narrows them."""
    member = await members.change_member(
        state.database, principal, user_id, role=data.role, status=data.status
    )
    return Member.of(member)


# ---- invitations --------------------------------------------------------------------------


class Invitation(msgspec.Struct):
    id: str
    email: str
    role: str
    # "pending", "accepted", "revoked" or "expired"
    status: str
    # The person who sent it (for an invitation sent by an API key, whoever created the key).
    invited_by: str | None
    created_at: dt.datetime
    expires_at: dt.datetime

    @classmethod
    def of(cls, invitation: invitations.InvitationView) -> Invitation:
        return cls(
            str(invitation.id),
            invitation.email,
            invitation.role,
            invitation.status,
            _id(invitation.invited_by),
            invitation.created_at,
            invitation.expires_at,
        )


class InvitationList(msgspec.Struct):
    data: list[Invitation]
    next_cursor: str | None


class InvitationCreate(msgspec.Struct):
    email: str
    role: str


class InvitationAccept(msgspec.Struct):
    token: str
    # A new account's password, or the existing account's (not needed for an account that
    # has none: one made by single sign-on).
    password: str | None = None
    full_name: str | None = None


class AcceptedInvitation(msgspec.Struct):
    tenant: TenantSummary
    user_id: str
    role: str
    token: TokenResponse


@post(
    "/api/v1/invitations",
    operation_id="createInvitation",
    summary="Invite someone to the store by email, with a role.",
    opt=requires(Permission.USERS_MANAGE),
    tags=["users"],
    status_code=HTTP_201_CREATED,
)
async def create_invitation(
    state: State, principal: NamedDependency[Principal], data: JSONBody[InvitationCreate]
) -> Invitation:
    """Email a single-use link valid for 7 days; a new invitation replaces a pending one."""
    created = await invitations.create_invitation(
        state.database, principal, email=data.email, role=data.role, public_url=state.settings.public_url
    )
    return Invitation.of(created.invitation)


@get(
    "/api/v1/invitations",
    operation_id="listInvitations",
    summary="List pending invitations, newest first.",
    opt=requires(Permission.USERS_MANAGE),
    tags=["users"],
)
async def list_invitations(
    state: State,
    principal: NamedDependency[Principal],
    limit: FromQuery[int] = DEFAULT_PAGE_SIZE,
    cursor: FromQuery[str | None] = None,
) -> InvitationList:
    """Invitations not yet accepted, revoked or expired."""
    page = await invitations.list_invitations(
        state.database, tenant_of(principal), PageRequest.parse(limit, cursor)
    )
    return InvitationList([Invitation.of(invitation) for invitation in page.items], page.next_cursor)


@get(
    "/api/v1/invitations/{invitation_id:str}",
    operation_id="getInvitation",
    summary="Read one invitation and what became of it.",
    opt=requires(Permission.USERS_MANAGE),
    tags=["users"],
)
async def get_invitation(
    state: State, principal: NamedDependency[Principal], invitation_id: FromPath[str]
) -> Invitation:
    """An invitation, whether pending, accepted, revoked or expired."""
    return Invitation.of(
        await invitations.get_invitation(state.database, tenant_of(principal), invitation_id)
    )


@delete(
    "/api/v1/invitations/{invitation_id:str}",
    operation_id="revokeInvitation",
    summary="Withdraw an invitation so that its link stops working.",
    opt=requires(Permission.USERS_MANAGE),
    tags=["users"],
    status_code=HTTP_204_NO_CONTENT,
)
async def revoke_invitation(
    state: State, principal: NamedDependency[Principal], invitation_id: FromPath[str]
) -> None:
    """Revoke a pending invitation; revoking it again changes nothing."""
    await invitations.revoke_invitation(state.database, principal, invitation_id)


@post(
    "/api/v1/invitations/accept",
    operation_id="acceptInvitation",
    summary="Join a store with an invitation's token, and sign in.",
    opt={**PUBLIC, PROBLEMS: frozenset({410})},
    tags=["auth"],
    status_code=HTTP_201_CREATED,
)
async def accept_invitation(
    request: Request[Any, Any, Any], state: State, data: JSONBody[InvitationAccept]
) -> Response[AcceptedInvitation]:
    """New people choose a password (and a name); existing accounts give theirs, unless they have none."""
    issued = await invitations.accept_invitation(
        state.database,
        state.signer,
        token=data.token,
        password=data.password,
        full_name=data.full_name,
        client_address=client_address(request),
    )
    token = TokenResponse("Bearer", issued.access_token, issued.expires_in, issued.refresh_token)
    body = AcceptedInvitation(TenantSummary.of(issued.tenant), str(issued.user_id), issued.role, token)
    return Response(body, status_code=HTTP_201_CREATED)


# ---- API keys -----------------------------------------------------------------------------


class ApiKey(msgspec.Struct):
    id: str
    name: str
    # The visible part of the key (`osk_<prefix>_…`), to tell keys apart.
    prefix: str
    scopes: list[str]
    # The person the key answers to (for a key made by a key, whoever created that key).
    created_by: str | None
    created_at: dt.datetime
    last_used_at: dt.datetime | None
    revoked_at: dt.datetime | None

    @classmethod
    def of(cls, key: api_keys.ApiKeyView) -> ApiKey:
        return cls(
            str(key.id),
            key.name,
            key.prefix,
            key.scopes,
            _id(key.created_by),
            key.created_at,
            key.last_used_at,
            key.revoked_at,
        )


class CreatedApiKey(msgspec.Struct):
    api_key: ApiKey
    # The full key: shown in this response only, never again.
    key: str


class ApiKeyList(msgspec.Struct):
    data: list[ApiKey]
    next_cursor: str | None


class ApiKeyCreate(msgspec.Struct):
    name: str
    scopes: list[str]


@post(
    "/api/v1/api-keys",
    operation_id="createApiKey",
    summary="Create an API key limited to some of your permissions.",
    opt=requires(Permission.API_KEYS_MANAGE),
    tags=["api-keys"],
    status_code=HTTP_201_CREATED,
)
async def create_api_key(
    state: State, principal: NamedDependency[Principal], data: JSONBody[ApiKeyCreate]
) -> CreatedApiKey:
    """The response holds the full key once; store it now, it cannot be shown again."""
    created = await api_keys.create_api_key(state.database, principal, name=data.name, scopes=data.scopes)
    return CreatedApiKey(ApiKey.of(created.api_key), created.key)


@get(
    "/api/v1/api-keys",
    operation_id="listApiKeys",
    summary="List the store's API keys (without their secrets), newest first.",
    opt=requires(Permission.API_KEYS_MANAGE),
    tags=["api-keys"],
)
async def list_api_keys(
    state: State,
    principal: NamedDependency[Principal],
    limit: FromQuery[int] = DEFAULT_PAGE_SIZE,
    cursor: FromQuery[str | None] = None,
) -> ApiKeyList:
    """Keys with their scopes and when they were last used; revoked keys included."""
    page = await api_keys.list_api_keys(
        state.database, tenant_of(principal), PageRequest.parse(limit, cursor)
    )
    return ApiKeyList([ApiKey.of(key) for key in page.items], page.next_cursor)


@get(
    "/api/v1/api-keys/{api_key_id:str}",
    operation_id="getApiKey",
    summary="Read one API key (without its secret).",
    opt=requires(Permission.API_KEYS_MANAGE),
    tags=["api-keys"],
)
async def get_api_key(
    state: State, principal: NamedDependency[Principal], api_key_id: FromPath[str]
) -> ApiKey:
    """A key's name, prefix, scopes and use."""
    return ApiKey.of(await api_keys.get_api_key(state.database, tenant_of(principal), api_key_id))


@delete(
    "/api/v1/api-keys/{api_key_id:str}",
    operation_id="revokeApiKey",
    summary="Revoke an API key; requests with it fail from now on.",
    opt=requires(Permission.API_KEYS_MANAGE),
    tags=["api-keys"],
    status_code=HTTP_204_NO_CONTENT,
)
async def revoke_api_key(
    state: State, principal: NamedDependency[Principal], api_key_id: FromPath[str]
) -> None:
    """Revoke a key at once; revoking it again changes nothing."""
    await api_keys.revoke_api_key(state.database, principal, api_key_id)


ROUTES = [
    list_users,
    get_user,
    update_user,
    create_invitation,
    list_invitations,
    get_invitation,
    revoke_invitation,
    accept_invitation,
    create_api_key,
    list_api_keys,
    get_api_key,
    revoke_api_key,
]
