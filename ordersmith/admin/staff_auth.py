"""Staff sign-in and who am I, in the staff realm."""

from __future__ import annotations

from typing import Any

import msgspec
from litestar import Request, get, post
from litestar.datastructures import State
from litestar.di import NamedDependency
from litestar.params import JSONBody
from litestar.status_codes import HTTP_200_OK

from ordersmith.api.access import PUBLIC, staff
from ordersmith.api.auth import client_address
from ordersmith.platform.identity.principal import Principal
from ordersmith.platform.identity.staff import sign_in_staff


class StaffTokenRequest(msgspec.Struct):
    email: str
    password: str


class StaffToken(msgspec.Struct):
    token_type: str
    access_token: str
    expires_in: int
    staff_id: str
    role: str


class StaffMe(msgspec.Struct):
    staff_id: str
    role: str


@post(
    "/admin/api/v1/auth/token",
    operation_id="createStaffToken",
    summary="Sign a vendor staff member in; get a 15-minute staff access token.",
    opt=PUBLIC,
    tags=["admin"],
    status_code=HTTP_200_OK,
)
async def staff_token(
    request: Request[Any, Any, Any], state: State, data: JSONBody[StaffTokenRequest]
) -> StaffToken:
    """Exchange a staff password for a staff token; it opens /admin routes only."""
    session = await sign_in_staff(
        state.database,
        state.signer,
        email=data.email,
        password=data.password,
        client_address=client_address(request),
    )
    return StaffToken("Bearer", session.access_token, session.expires_in, str(session.staff_id), session.role)


@get(
    "/admin/api/v1/me",
    operation_id="getStaffMe",
    summary="Which staff member the token belongs to, and their role.",
    opt=staff("support", "auditor", "superadmin"),
    tags=["admin"],
)
async def staff_me(principal: NamedDependency[Principal]) -> StaffMe:
    """The signed-in staff member's id and role."""
    return StaffMe(str(principal.id), principal.role or "")


ROUTES = [staff_token, staff_me]
