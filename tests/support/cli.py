"""Running the `ordersmith` command as a user does: a subprocess with its exit code and output."""

from __future__ import annotations

import os
import subprocess
import sys

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
