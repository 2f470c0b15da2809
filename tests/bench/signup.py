"""Sign-up over HTTP: the product's `POST /api/v1/signup`, beside its irreducible work.

The app runs in this process under uvicorn (uvloop, httptools) on a thread of its own, so
that its CPU counts as the bench's; an httpx client signs up one store after another.
The reference does, in-process and without HTTP, what any sign-up must: one Argon2id
hash with the same parameters and the hand-written one-round-trip provisioning.
"""

from __future__ import annotations

import asyncio
import socket
import threading
import time
import uuid
from dataclasses import dataclass

import httpx
import uvicorn

from ordersmith.app import create_app
from ordersmith.platform.identity.passwords import hash_password
from ordersmith.platform.settings import load_settings
from tests.bench.phases import WARMUP, Bench, say

PASSWORD = "Bench-Signup-Password-7"
SIGNUP_P50_TARGET_MS = 300.0
REFERENCE_WHAT = (
    "in-process, no HTTP: one Argon2id hash with the product's parameters, then the reference's "
    "one-round-trip provisioning (see provisioning)"
)
PROJECT_ADDS = [
    "HTTP (uvicorn, httptools) and JSON decoding and validation",
    "email and password rules, duplicate-email check",
    "owner user, membership, refresh token, verification token",
    "verification email and sign-up audit entry (hash-chained) in the same transaction",
    "access token (JWT) signing",
]


@dataclass(frozen=True)
class Signups:
    """Milliseconds per sign-up: the product's run and the two reference runs."""

    project: list[float]
    reference: tuple[list[float], list[float]]


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


class _AppServer:
    """The product's app under uvicorn, on a thread with its own event loop."""

    def __init__(self, url: str) -> None:
        settings = load_settings(
            # Every sign-up of the bench comes from 127.0.0.1.
            {
                "ORDERSMITH_ENV": "test",
                "DATABASE_URL": url,
                "LOG_LEVEL": "WARNING",
                "SIGNUP_LIMIT_PER_HOUR": "100000",
            }
        )
        self.port = _free_port()
        config = uvicorn.Config(
            create_app(settings),
            host="127.0.0.1",
            port=self.port,
            loop="uvloop",
            http="httptools",
            log_config=None,
            lifespan="on",
        )
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, name="bench-app", daemon=True)

    async def __aenter__(self) -> str:
        self._thread.start()
        deadline = time.monotonic() + 30
        while not self._server.started:
            if time.monotonic() > deadline or not self._thread.is_alive():
                raise RuntimeError("the app did not start for the sign-up bench")
            await asyncio.sleep(0.05)
        return f"http://127.0.0.1:{self.port}"

    async def __aexit__(self, *_: object) -> None:
        self._server.should_exit = True
        await asyncio.to_thread(self._thread.join, 30)


async def _project_signups(client: httpx.AsyncClient, count: int) -> list[float]:
    timings = []
    for _ in range(count):
        tag = uuid.uuid4().hex[:12]
        body = {
            "company_name": "Bench Store",
            "email": f"owner-{tag}@bench.example.com",
            "password": PASSWORD,
        }
        started = time.perf_counter()
        response = await client.post("/api/v1/signup", json={**body, "slug": f"bench-{tag}"})
        timings.append((time.perf_counter() - started) * 1000)
        if response.status_code != 201:
            raise RuntimeError(f"sign-up failed: {response.status_code} {response.text}")
    return timings


async def _reference_signups(bench: Bench, count: int) -> list[float]:
    timings = []
    for _ in range(count):
        started = time.perf_counter()
        await hash_password(PASSWORD)
        await bench.reference.provision(bench.reference_count, bench.database_name)
        timings.append((time.perf_counter() - started) * 1000)
        bench.reference_count += 1
    return timings


async def signups(bench: Bench, url: str, count: int) -> Signups:
    """Warm up, then time `count` sign-ups: reference, product over HTTP, reference."""
    say(f"sign-up: {WARMUP} warm-up each, then {count} timed per run")
    async with _AppServer(url) as base_url, httpx.AsyncClient(base_url=base_url, timeout=30) as client:
        await _project_signups(client, WARMUP)
        await _reference_signups(bench, WARMUP)
        first, _ = await bench.measure("signup reference 1", lambda: _reference_signups(bench, count))
        project, _ = await bench.measure("signup project", lambda: _project_signups(client, count))
        second, _ = await bench.measure("signup reference 2", lambda: _reference_signups(bench, count))
    return Signups(project, (first, second))
