"""Parallel sign-in attempts get no more tries than sequential ones, for tenant users and staff."""

from __future__ import annotations

import asyncio
import collections
import datetime as dt
from collections.abc import Awaitable, Callable

import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient
from sqlalchemy import func, select, update

from ordersmith.platform.database import Database
from ordersmith.platform.errors import OrdersmithError, TooManyAttemptsError
from ordersmith.platform.identity.accounts import sign_in
from ordersmith.platform.identity.models import AttemptCounter
from ordersmith.platform.identity.staff import sign_in_staff
from ordersmith.platform.identity.tokens import TokenSigner
from ordersmith.platform.settings import Settings
from tests.support.http import PASSWORD, sign_up
from tests.support.services import new_client_address
from tests.support.staff import create_staff

WRONG_PASSWORD = "Wrong-Horse-Battery-7"


@pytest.fixture
def signer(settings: Settings) -> TokenSigner:
    return TokenSigner(settings.secret_key)


async def _outcome(attempt: Awaitable[object]) -> str:
    """`signed_in`, or the code of the error the attempt was refused with."""
    try:
        await attempt
    except OrdersmithError as error:
        return error.code
    return "signed_in"


async def _all_at_once(attempts: list[Awaitable[object]]) -> dict[str, int]:
    outcomes = await asyncio.gather(*(_outcome(attempt) for attempt in attempts))
    return dict(collections.Counter(outcomes))


async def _let_time_pass(database: Database, key: str, *, left: dt.timedelta = dt.timedelta(0)) -> None:
    """Move a counter into the past, as if its wait had run out but for `left`."""
    async with database.platform_session() as session:
        await session.execute(
            update(AttemptCounter)
            .where(AttemptCounter.key == key)
            .values(
                last_attempt_at=AttemptCounter.last_attempt_at
                - (AttemptCounter.blocked_until - func.now() - left),
                blocked_until=func.now() + left,
            )
        )


async def _counter(database: Database, key: str) -> AttemptCounter | None:
    async with database.platform_session() as session:
        return (
            await session.execute(select(AttemptCounter).where(AttemptCounter.key == key))
        ).scalar_one_or_none()


async def _guess_until_locked(
    database: Database, account: str, attempt: Callable[[str], Awaitable[object]]
) -> None:
    """Twenty guesses at once, then five at once after each wait, until the 10th locks the account."""
    # Three free attempts and the 4th go through; the 4th sets a 1 s wait for the others.
    assert await _all_at_once([attempt(WRONG_PASSWORD) for _ in range(20)]) == {
        "invalid_credentials": 4,
        "too_many_attempts": 16,
    }
    for _ in range(6):
        await _let_time_pass(database, account)
        assert await _all_at_once([attempt(WRONG_PASSWORD) for _ in range(5)]) == {
            "invalid_credentials": 1,
            "too_many_attempts": 4,
        }
    locked = await _counter(database, account)
    assert locked is not None
    assert locked.attempts == 10
    assert locked.blocked_until - locked.last_attempt_at == dt.timedelta(minutes=15)


async def _refused_until_the_lock_ends(
    database: Database, account: str, attempt: Callable[[str], Awaitable[object]]
) -> TooManyAttemptsError:
    """The right password is refused while the lock holds and signs in once it ends; the refusal."""
    await _let_time_pass(database, account, left=dt.timedelta(seconds=30))
    with pytest.raises(TooManyAttemptsError) as refused:
        await attempt(PASSWORD)
    assert refused.value.retry_after_seconds in (30, 31)
    await _let_time_pass(database, account)
    assert await _outcome(attempt(PASSWORD)) == "signed_in"
    assert await _counter(database, account) is None
    return refused.value


async def test_parallel_wrong_passwords_get_the_tries_of_sequential_ones_then_lock_the_account(
    client: AsyncTestClient[Litestar], database: Database, signer: TokenSigner
) -> None:
    owner = await sign_up(client)
    address = new_client_address()

    def attempt(password: str) -> Awaitable[object]:
        return sign_in(
            database,
            signer,
            email=owner["email"],
            password=password,
            tenant_slug=owner["tenant"]["slug"],
            client_address=address,
        )

    account = f"account:tenant:{owner['email']}"
    await _guess_until_locked(database, account, attempt)
    refused = await _refused_until_the_lock_ends(database, account, attempt)
    wait = refused.retry_after_seconds
    assert refused.detail == f"too many failed sign-ins; try again in {wait} seconds, or reset your password"


async def test_parallel_wrong_staff_passwords_get_the_tries_of_sequential_ones_then_lock_the_account(
    database: Database, signer: TokenSigner
) -> None:
    member = await create_staff(database, "support")
    address = new_client_address()

    def attempt(password: str) -> Awaitable[object]:
        return sign_in_staff(database, signer, email=member.email, password=password, client_address=address)

    account = f"account:staff:{member.email}"
    await _guess_until_locked(database, account, attempt)
    refused = await _refused_until_the_lock_ends(database, account, attempt)
    assert refused.detail == f"too many failed sign-ins; try again in {refused.retry_after_seconds} seconds"


async def test_successful_sign_ins_give_their_address_its_attempt_back(
    client: AsyncTestClient[Litestar], database: Database, signer: TokenSigner
) -> None:
    owner = await sign_up(client)
    address = new_client_address()

    def attempt(password: str) -> Awaitable[object]:
        return sign_in(
            database,
            signer,
            email=owner["email"],
            password=password,
            tenant_slug=owner["tenant"]["slug"],
            client_address=address,
        )

    for password in (WRONG_PASSWORD, WRONG_PASSWORD):
        assert await _outcome(attempt(password)) == "invalid_credentials"
    # More sign-ins than the address's 20 free attempts: people behind one office address.
    for _ in range(20):
        assert await _outcome(attempt(PASSWORD)) == "signed_in"

    counted = await _counter(database, f"address:tenant:{address}")
    assert counted is not None
    assert counted.attempts == 2
    assert counted.blocked_until == counted.last_attempt_at
    assert await _counter(database, f"account:tenant:{owner['email']}") is None
