"""Routes of self-service signup that need no account."""

from __future__ import annotations

import msgspec
from litestar import get
from litestar.datastructures import State
from litestar.params import FromQuery

from ordersmith.api.access import PUBLIC
from ordersmith.platform.tenancy import is_slug_available


class SlugAvailability(msgspec.Struct):
    slug: str
    available: bool


@get(
    "/api/v1/signup/slug-availability",
    operation_id="getSlugAvailability",
    summary="Tell whether a store address (slug) is valid and free.",
    opt=PUBLIC,
    tags=["signup"],
)
async def slug_availability(state: State, slug: FromQuery[str]) -> SlugAvailability:
    """Check a slug before signing up: 422 names the rule it breaks, else whether it is free."""
    return SlugAvailability(slug=slug, available=await is_slug_available(state.database, slug))
