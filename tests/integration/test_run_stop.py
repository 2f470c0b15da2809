"""`ordersmith run` stopped the way a process manager stops it: its embedded PostgreSQL stops too."""

from __future__ import annotations

import json
import os
import shutil
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.cli import start_server, wait_until_healthy
from tests.support.services import REPO
from tests.support.smtp import free_port


@pytest.fixture
def data_dir() -> Iterator[Path]:
    """A data directory of this test's own, with any server left in it stopped afterwards."""
    # Under the repository, not /tmp: the embedded server runs as a user of its own, which
    # must be able to reach the directory.
    directory = REPO / ".ordersmith" / f"run-stop-{os.getpid()}"
    shutil.rmtree(directory, ignore_errors=True)
    yield directory
    postmaster = directory / "postgres" / "postmaster.pid"
    if postmaster.exists():
        # Left running (the test failed): a fast shutdown, so it does not outlive the suite.
        os.kill(int(postmaster.read_text().split()[0]), signal.SIGINT)
        deadline = time.monotonic() + 30
        while postmaster.exists() and time.monotonic() < deadline:
            time.sleep(0.2)
    shutil.rmtree(directory, ignore_errors=True)


# A process manager's stop, and a closed terminal's hang-up.
@pytest.mark.parametrize("stop", [signal.SIGTERM, signal.SIGHUP])
def test_a_stop_signal_ends_run_and_its_embedded_postgresql(data_dir: Path, stop: signal.Signals) -> None:
    port = free_port()
    env = {key: value for key, value in os.environ.items() if key not in ("DATABASE_URL", "BROKER_URL")}
    env.update({"ORDERSMITH_ENV": "test", "LOG_LEVEL": "WARNING"})
    process = start_server("run", "--port", str(port), "--data-dir", str(data_dir), env=env)
    try:
        wait_until_healthy(process, f"http://127.0.0.1:{port}", command="run", seconds=120)
        postmaster = data_dir / "postgres" / "postmaster.pid"
        assert postmaster.exists()
        process.send_signal(stop)
        _, errors = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    # The app shut down as on SIGTERM, then an ordinary exit with SIGTERM's status (128 + 15),
    # with nothing on stderr at WARNING.
    assert (process.returncode, errors) == (128 + signal.SIGTERM, "")
    # PostgreSQL removes its pid file when it has shut down; no process is left as its user.
    assert not postmaster.exists()
    assert json.loads((data_dir / "postgres" / ".handle_pids.json").read_text()) == []
