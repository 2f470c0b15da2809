"""Running the `ordersmith` command as a user does: a subprocess with its exit code and output."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import httpx

from tests.support.services import REPO


def run_ordersmith(
    *arguments: str, database_url: str, stdin: str | None = None, **environment: str
) -> subprocess.CompletedProcess[str]:
    """`ordersmith <arguments>` against the test database."""
    env = {**os.environ, "ORDERSMITH_ENV": "test", "DATABASE_URL": database_url, "LOG_LEVEL": "WARNING"}
    env.pop("BROKER_URL", None)
    env.update(environment)
    return subprocess.run(
        [sys.executable, "-m", "ordersmith.cli", *arguments],
        cwd=REPO,
        env=env,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def start_server(*arguments: str, env: dict[str, str]) -> subprocess.Popen[str]:
    """`ordersmith <arguments>` as a server process, in `env` only; its stderr kept for the test to read."""
    return subprocess.Popen(
        [sys.executable, "-m", "ordersmith.cli", *arguments],
        cwd=REPO,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )


def wait_until_healthy(process: subprocess.Popen[str], base_url: str, *, command: str, seconds: int) -> None:
    """Until the server at `base_url` answers /healthz; fails if it exits first or takes over `seconds`."""
    deadline = time.monotonic() + seconds
    while True:
        assert process.poll() is None, (
            f"{command} exited early: {process.stderr.read() if process.stderr else ''}"
        )
        assert time.monotonic() < deadline, f"{command} did not answer /healthz within {seconds} s"
        try:
            if httpx.get(f"{base_url}/healthz", timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.2)
