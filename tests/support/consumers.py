"""A consumer used by the worker tests; `ordersmith worker --import tests.support.consumers` loads it."""

from __future__ import annotations

import asyncio
from pathlib import Path

from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncSession

from ordersmith.platform.database import TenantContext
from ordersmith.platform.events import Event, consumers
from ordersmith.tenants.store.models import StoreSettings

TOPIC = "tests.store_touched"
CONSUMER = "tests.store-toucher"


@consumers.consumer(CONSUMER, TOPIC)
async def touch_store(tenant: TenantContext, session: AsyncSession, event: Event) -> None:
    """Append '+' to the store name: an effect whose count shows how often it committed."""
    marker = event.payload.get("stall_once_marker")
    if marker and not await asyncio.to_thread(Path(marker).exists):
        # The first delivery announces itself and stalls, so a test can kill the worker mid-message.
        await asyncio.to_thread(Path(marker).write_text, str(event.id))
        await asyncio.sleep(120)
    await session.execute(update(StoreSettings).values(display_name=StoreSettings.display_name + "+"))
