"""The `api_requests_per_minute` limit: requests a store may send each minute.

Counted per process in fixed one-minute windows, after authentication (a store's users
and keys together; vendor staff are not counted). Over a hard limit the request answers
429 `rate_limited` with the limit, the plan, the cheapest plan allowing more and
`Retry-After` (the seconds left in the minute): not 402, since waiting is enough. Over a
soft limit the request goes through with an `Ordersmith-Limit-Warning` header.

Each API process keeps its own windows, so behind N processes a store may send up to N
times its limit: an upper bound that needs no shared store and no write per request.
"""

from __future__ import annotations

import datetime as dt
import time
import uuid

from ordersmith.platform.database import Database
from ordersmith.platform.entitlements import (
    LimitReachedError,
    check_limit,
    entitlements_of,
    note_limit_warning,
)
from ordersmith.platform.errors import OrdersmithError
from ordersmith.platform.identity.principal import Principal
from ordersmith.platform.plans import Limit


class RateLimitedError(OrdersmithError):
    status = 429
    code = "rate_limited"
    title = "Too many requests"

    def __init__(self, detail: str, *, retry_after_seconds: int, extensions: dict[str, object]) -> None:
        super().__init__(detail, extensions=extensions)
        self.retry_after_seconds = retry_after_seconds


class RequestWindows:
    """Requests per store in the current minute, in this process."""

    def __init__(self) -> None:
        self._minute = 0
        self._counts: dict[uuid.UUID, int] = {}

    def count(self, tenant_id: uuid.UUID, now: float) -> int:
        """Count one request of a store; how many it sent this minute, this one included."""
        minute = int(now // 60)
        if minute != self._minute:
            # A new minute forgets every store's count at once: the map never outgrows a minute.
            self._minute, self._counts = minute, {}
        self._counts[tenant_id] = self._counts.get(tenant_id, 0) + 1
        return self._counts[tenant_id]


async def limit_requests(database: Database, windows: RequestWindows, principal: Principal) -> None:
    """Count a store's request; 429 over a hard limit, a warning header over a soft one."""
    if principal.tenant is None or principal.kind == "staff":
        return
    now = time.time()
    sent = windows.count(principal.tenant.id, now)
    entitlements = await entitlements_of(
        database, principal.tenant, now=dt.datetime.fromtimestamp(now, dt.UTC)
    )
    try:
        warning = check_limit(entitlements, Limit.API_REQUESTS_PER_MINUTE, current=sent - 1)
    except LimitReachedError as reached:
        retry_after = 60 - int(now % 60)
        raise RateLimitedError(
            f"this store may send {reached.extensions['allowed']} requests a minute on its plan and has "
            f"sent more; retry in {retry_after} s, spread requests out, or change plan at "
            "POST /api/v1/billing/plan",
            retry_after_seconds=retry_after,
            extensions={**reached.extensions, "retry_after_seconds": retry_after},
        ) from None
    if warning is not None:
        note_limit_warning(warning)
