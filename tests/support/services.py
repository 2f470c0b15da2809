"""Where the tests' PostgreSQL and broker are, and whether they are required.

`TEST_DATABASE_URL` points at a server (a database `ordersmith_test_<n>` is created on
it); unset, the embedded PostgreSQL under `.ordersmith/test` is used. `TEST_BROKER_URL`
points at RabbitMQ; unset, tests that need a real broker are skipped, unless
`ORDERSMITH_REQUIRE_SERVICES=1` (CI) makes a missing service an error.
"""

from __future__ import annotations

import os
import uuid
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def services_required() -> bool:
    return os.environ.get("ORDERSMITH_REQUIRE_SERVICES") == "1"


def broker_url() -> str | None:
    url = os.environ.get("TEST_BROKER_URL") or None
    if url is None and services_required():
        pytest.fail("ORDERSMITH_REQUIRE_SERVICES=1 but TEST_BROKER_URL is not set")
    return url


def require_broker_url() -> str:
    url = broker_url()
    if url is None:
        pytest.skip("no TEST_BROKER_URL: set it to a RabbitMQ URL to run broker tests")
    return url


def new_slug(prefix: str = "shop") -> str:
    """A slug no other test uses."""
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


def new_client_address() -> str:
    """A client address (IPv6, documentation range) no other test uses: counters of its own."""
    return f"2001:db8::{uuid.uuid4().hex[:4]}:{uuid.uuid4().hex[:4]}"


def require_redis_url() -> str:
    url = os.environ.get("TEST_REDIS_URL") or None
    if url is None:
        if services_required():
            pytest.fail("ORDERSMITH_REQUIRE_SERVICES=1 but TEST_REDIS_URL is not set")
        pytest.skip("no TEST_REDIS_URL: set it to a Redis URL to run the Redis broker test")
    return url
