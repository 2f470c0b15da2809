"""Statistics, targets and the two outputs: a table for people and `.bench/results.json`."""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

RATIO_DEFINITION = (
    "ratio = mean(reference time of the two reference runs) / project time: the share of the "
    "hand-written asyncpg reference's speed the product gets (1.0 = as fast, 0.25 = takes 4x as long); "
    "times are p50 latencies for provisioning, wall-clock seconds for a migration run, and medians of "
    "5 back-to-back runs for the no-op migration"
)
# Two reference runs further apart than this say the machine drifted (shared/bench/README.md).
MAX_REFERENCE_SPREAD = 0.10
MAX_OTHER_CORES = 0.1
# CPU time is counted in 10 ms ticks: shorter runs give cores too coarse to judge by.
MIN_CPU_SECONDS = 1.0


def percentile(values: Sequence[float], fraction: float) -> float:
    """Linear interpolation between the closest ranks (numpy's default)."""
    ordered = sorted(values)
    position = (len(ordered) - 1) * fraction
    low, high = math.floor(position), math.ceil(position)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def latency(values: Sequence[float]) -> dict[str, float]:
    """p50, p95, max and mean of a list of milliseconds, rounded for reading."""
    return {
        "p50_ms": round(percentile(values, 0.50), 2),
        "p95_ms": round(percentile(values, 0.95), 2),
        "max_ms": round(max(values), 2),
        "mean_ms": round(sum(values) / len(values), 2),
    }


def ratio(reference: Sequence[float], project: float) -> float:
    """See RATIO_DEFINITION."""
    return round(sum(reference) / len(reference) / project, 3)


def spread(values: Sequence[float]) -> float:
    """How far apart repeated runs are, as a fraction of the faster one."""
    return round((max(values) - min(values)) / min(values), 3)


def target(value: float, limit: float, unit: str) -> dict[str, Any]:
    """A value beside the limit it must stay under."""
    return {"value": value, "target": f"< {limit:g} {unit}", "met": value < limit}


def at_least(value: float, limit: float, unit: str) -> dict[str, Any]:
    """A value beside the floor it must reach."""
    return {"value": value, "target": f">= {limit:g}{' ' + unit if unit else ''}", "met": value >= limit}


def validity(spreads: dict[str, float], cpu: dict[str, dict[str, float | None]]) -> list[str]:
    """Reasons not to trust the ratios of this run, if any."""
    reasons = [
        f"{name}: the two reference runs differ by {value:.0%} (> {MAX_REFERENCE_SPREAD:.0%})"
        for name, value in spreads.items()
        if value > MAX_REFERENCE_SPREAD
    ]
    for phase, cores in cpu.items():
        other, seconds = cores.get("other"), cores.get("seconds") or 0.0
        if other is not None and other > MAX_OTHER_CORES and seconds >= MIN_CPU_SECONDS:
            reasons.append(f"{phase}: {other} cores busy outside the bench and its PostgreSQL")
    return reasons


def _format(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:,.3f}" if value < 10 else f"{value:,.1f}"
    return str(value)


def _rows(results: dict[str, Any]) -> list[tuple[str, ...]]:
    rows: list[tuple[str, ...]] = []
    reference = results.get("reference", {})
    targets = results.get("targets", {})

    def add(key: str, references: list[Any], ratio_key: str | None, goal: dict[str, Any] | None) -> None:
        rows.append(
            (
                key,
                _format(results[key]),
                ", ".join(_format(value) for value in references),
                _format(results[ratio_key]) if ratio_key else "",
                goal["target"] if goal else "",
                ("yes" if goal["met"] else "NO") if goal else "",
            )
        )

    if "provision_p50_ms" in results:
        for key, ref_key, ratio_key in (
            ("provision_p50_ms", "provision_p50_ms", "provision_ratio"),
            ("provision_p95_ms", "provision_p95_ms", None),
            ("signup_p50_ms", "signup_p50_ms", "signup_ratio"),
            ("signup_p95_ms", "signup_p95_ms", None),
            (results["migrate_key"], "migrate_s", "migrate_ratio"),
            (results["migrate_noop_key"], "migrate_noop_s", "migrate_noop_ratio"),
        ):
            add(key, reference[ref_key], ratio_key, targets.get(key))
    if "place_order_rps" in results:
        ceiling = results["orders"]["ceiling"]
        add("place_order_rps", ceiling["rps"], "place_order_ratio", targets["place_order_ratio"])
        add("place_order_p50_ms", ceiling["p50_ms"], None, None)
        add("place_order_p99_ms", ceiling["p99_ms"], None, targets["place_order_p99_ms"])
        add("list_orders_p95_ms", [], None, targets["list_orders_p95_ms"])
    return rows


def _print_tenancy(results: dict[str, Any]) -> None:
    print(f"tenants {results['tenants']}, concurrency {results['concurrency']}, cpus {results['cpu_count']}")
    print("\ncores busy: client = this process, postgres = the server's processes for the bench database")
    print("and its shared ones, irq = the kernel's network work, other = everything else")
    for phase, cores in results["cpu_cores"].items():
        print(f"  {phase:<22} " + "  ".join(f"{who} {_format(value):>5}" for who, value in cores.items()))


def _print_orders(orders: dict[str, Any]) -> None:
    project, ceiling, listing = orders["project"], orders["ceiling"], orders["list"]
    print(
        f"order placement over HTTP: T={orders['tenants']} stores, C={orders['concurrency']} connections, "
        f"{orders['seconds']:g} s after {orders['warmup_orders']:,} warm-up orders, "
        f"{orders['load_generator']}; reference = ceiling.py --mode http "
        f"(sql {ceiling['sql']}, plan_cache_mode {ceiling['plan_cache_mode']})"
    )
    print(f"  product errors: {project['errors'] or 'none'}; checks: {project['checks']}")
    print(f"  product settings: {project['settings']}")
    print("  what the product does beyond the ceiling:")
    for item in project["adds"]:
        print(f"    - {item}")
    print("  cores busy:")
    print(
        "    product   " + "  ".join(f"{who} {_format(value)}" for who, value in project["cpu_cores"].items())
    )
    for number, run in enumerate(ceiling["runs"], start=1):
        cores = run.get("cpu_cores", {})
        print(f"    ceiling {number} " + "  ".join(f"{who} {_format(value)}" for who, value in cores.items()))
    print(
        f"list orders: {listing['requests']} requests one at a time on a store of "
        f"{listing['orders_in_store']:,} orders, pages of {listing['page_size']}"
    )
    for shape, figures in listing["by_shape"].items():
        plan = listing["plans"].get(shape, {})
        print(
            f"  {shape:<24} p50 {_format(figures['p50_ms'])} ms  p95 {_format(figures['p95_ms'])} ms  "
            f"rows {figures['mean_rows']}  indexes {', '.join(plan.get('indexes', [])) or '-'}"
            + (f"  SEQ SCAN {', '.join(plan['seq_scans'])}" if plan.get("seq_scans") else "")
        )


def print_table(results: dict[str, Any]) -> None:
    """The results as a few readable lines."""
    rows = [("metric", "project", "reference (run 1, run 2)", "ratio", "target", "met"), *_rows(results)]
    widths = [max(len(row[column]) for row in rows) for column in range(len(rows[0]))]
    print()
    for number, row in enumerate(rows):
        print("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip())
        if number == 0:
            print("  ".join("-" * width for width in widths))
    print()
    print(f"server {results['postgres_version']}, cpus {results['cpu_count']}")
    if "provision_p50_ms" in results:
        _print_tenancy(results)
    if "orders" in results:
        print()
        _print_orders(results["orders"])
    for reason in results.get("invalid_reasons", []):
        print(f"INVALID: {reason}")
    for problem in results.get("verification", {}).get("problems", []):
        print(f"VERIFICATION FAILED: {problem}")


def write_results(path: Path, results: dict[str, Any]) -> None:
    """Write the results as indented JSON, creating the directory if needed."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(results, indent=2) + "\n")
