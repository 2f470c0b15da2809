"""Who kept the CPU busy during a run: this process, the PostgreSQL server, or anything else.

On a small machine the client and the server share the cores, so a number means little
without knowing which side spent them. Linux only (/proc); elsewhere the figures are None.
"""

from __future__ import annotations

import asyncio
import os
import resource
import time
from dataclasses import dataclass
from pathlib import Path

_TICK = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
_PROC = Path("/proc")


def _process_stat(pid: int) -> tuple[str, int, float] | None:
    """(name, parent pid, cpu seconds) of a process, None if it is gone or unreadable."""
    try:
        raw = (_PROC / str(pid) / "stat").read_text()
    except OSError:
        return None
    # The name is in parentheses and may hold spaces: split after the last one.
    name = raw[raw.index("(") + 1 : raw.rindex(")")]
    fields = raw[raw.rindex(")") + 2 :].split()
    return name, int(fields[1]), (int(fields[11]) + int(fields[12])) / _TICK


def _machine_seconds() -> tuple[float, float] | None:
    """(time in processes, time in interrupts) of the whole machine."""
    try:
        first = (_PROC / "stat").read_text().splitlines()[0].split()
    except OSError:
        return None
    user, nice, system, _idle, _iowait, irq, softirq = (int(value) for value in first[1:8])
    # Loopback round trips are paid in softirq time, which no process is charged with.
    return (user + nice + system) / _TICK, (irq + softirq) / _TICK


async def machine_busy(seconds: float = 1.0) -> float | None:
    """Cores busy on the whole machine over a short wait: a bench should start on a quiet one."""
    before = _machine_seconds()
    await asyncio.sleep(seconds)
    after = _machine_seconds()
    if before is None or after is None:
        return None
    return round((after[0] - before[0] + after[1] - before[1]) / seconds, 2)


def _client_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def find_postmaster(backend_pid: int) -> int | None:
    """The server's main process, found through one of its backends, if it runs on this machine."""
    backend = _process_stat(backend_pid)
    if backend is None or not backend[0].startswith("postgres"):
        return None
    parent = _process_stat(backend[1])
    return backend[1] if parent is not None and parent[0].startswith("postgres") else None


def _serves_another_database(pid: int, database: str) -> bool:
    # A client backend shows "user database host(port) state"; shared processes show no client.
    try:
        title = (_PROC / str(pid) / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return False
    is_client = "(" in title or "[local]" in title
    return is_client and f" {database} " not in title


def _server_seconds(postmaster: int, database: str) -> dict[int, float]:
    seconds: dict[int, float] = {}
    for entry in _PROC.iterdir():
        if not entry.name.isdigit():
            continue
        pid = int(entry.name)
        stat = _process_stat(pid)
        if stat is None or (pid != postmaster and stat[1] != postmaster):
            continue
        # Other databases' sessions on a shared server count as "other", not as ours.
        if not _serves_another_database(pid, database):
            seconds[pid] = stat[2]
    return seconds


@dataclass(frozen=True)
class CpuSample:
    """One reading of the CPU counters."""

    wall: float
    client: float
    machine: tuple[float, float] | None
    server: dict[int, float] | None


class CpuMeter:
    """Samples CPU time before and after a run and turns the difference into busy cores."""

    def __init__(self, postmaster: int | None, database: str) -> None:
        self._postmaster = postmaster
        self._database = database

    def sample(self) -> CpuSample:
        """Take a reading now."""
        server = None if self._postmaster is None else _server_seconds(self._postmaster, self._database)
        return CpuSample(time.perf_counter(), _client_seconds(), _machine_seconds(), server)

    def cores(self, before: CpuSample, after: CpuSample) -> dict[str, float | None]:
        """Average cores kept busy between two readings, by whom (irq: the kernel's network work)."""
        wall = after.wall - before.wall
        client = (after.client - before.client) / wall
        processes = irq = server = other = None
        if after.machine is not None and before.machine is not None:
            processes = (after.machine[0] - before.machine[0]) / wall
            irq = (after.machine[1] - before.machine[1]) / wall
        if after.server is not None and before.server is not None:
            # Processes started during the run count from zero; ones that ended are lost (pools keep theirs).
            spent = sum(seconds - before.server.get(pid, 0.0) for pid, seconds in after.server.items())
            server = spent / wall
        if processes is not None and server is not None:
            other = max(processes - client - server, 0.0)
        return {
            "seconds": round(wall, 2),
            "client": round(client, 2),
            "postgres": _rounded(server),
            "irq": _rounded(irq),
            "other": _rounded(other),
        }


def _rounded(value: float | None) -> float | None:
    return None if value is None else round(value, 2)
