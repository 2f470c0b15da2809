"""One webhook POST on its own: how much of an answer the sender reads."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import httpx

from ordersmith.tenants.webhooks import sending


def _claimed() -> sending.Claimed:
    return sending.Claimed(
        delivery_id=uuid.uuid4(),
        event_id=uuid.uuid4(),
        url="http://receiver.test/hooks",
        secret="whsec_test-secret",
        body=b"{}",
        previous_secret=None,
        attempt_number=1,
        automatic_number=1,
        trigger=sending.AUTOMATIC,
        previous_status="pending",
        previous_next_attempt_at=None,
        lease_until=None,
    )


async def test_only_the_start_of_a_long_answer_is_read() -> None:
    chunks_read = 0

    async def long_answer() -> AsyncIterator[bytes]:
        nonlocal chunks_read
        for _ in range(64):
            chunks_read += 1
            yield b"x" * 1024

    def answer(request: httpx.Request) -> httpx.Response:
        return httpx.Response(202, content=long_answer())

    async with httpx.AsyncClient(transport=httpx.MockTransport(answer)) as client:
        outcome = await sending.post(client, _claimed())
    assert (outcome.status_code, outcome.error) == (202, None)
    # 4 KB in chunks of 1 KB: the fourth reaches the limit and the rest is never asked for.
    assert sending.ANSWER_READ_LIMIT == 4096
    assert chunks_read == 4
