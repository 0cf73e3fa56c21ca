"""The smallest memory limit at which a container still runs ``echo ok``.

``linux.resources.memory.limit`` becomes the container cgroup's memory.limit_in_bytes (v1) or
memory.max (v2). The runtime's own init joins that cgroup before it execs the container's
program, so its footprint counts: a runtime whose init is larger needs a larger limit.
Bisection per runtime between a limit that fails and one that works, to about 3%.
"""

from __future__ import annotations

from .context import Bench
from .procs import run_command
from .runtimes import Runtime

MiB = 1024 * 1024
LOW = 32 * 1024
HIGH = 256 * MiB
RESOLUTION = 32 * 1024  # or 1/32 of the limit, whichever is larger


def runs_ok(bench: Bench, runtime: Runtime, limit: int) -> tuple[bool, str]:
    """Does ``run`` of ``echo ok`` under ``limit`` bytes exit 0 and print ``ok``?"""
    cid = bench.new_id(runtime, "mem")
    bundle = bench.bundle(runtime, cid, ["echo", "ok"], memory_limit=limit)
    outcome = run_command(runtime.argv("run", "--bundle", str(bundle), cid), want_stdout=True)
    bench.delete(runtime, cid)  # a failed run may leave the container behind
    if outcome.ok and outcome.stdout.strip() == "ok":
        return True, ""
    return False, outcome.describe()


def smallest_limit(bench: Bench, runtime: Runtime) -> tuple[int | None, str]:
    """Bisect; return the smallest limit that worked (None if even HIGH fails) and a note."""
    ok, why = runs_ok(bench, runtime, HIGH)
    if not ok:
        return None, f"fails even at {HIGH // MiB} MiB: {why}"
    ok, _ = runs_ok(bench, runtime, LOW)
    if ok:
        return LOW, f"works at the lowest limit tried ({LOW // 1024} KiB)"
    low, high, last_error = LOW, HIGH, ""
    while high - low > max(RESOLUTION, high // 32):
        middle = (low + high) // 2 // 4096 * 4096
        ok, why = runs_ok(bench, runtime, middle)
        if ok:
            high = middle
        else:
            low, last_error = middle, why
    return high, f"fails at {low // 1024} KiB: {last_error[-160:]}"


def bench_memory_limit(bench: Bench) -> None:
    """One bisection per runtime (limits in KiB in the results)."""
    metric = bench.results.metric(
        "min_memory_limit", "memlimit", "smallest memory limit for `echo ok`", unit="KiB"
    )
    for runtime in bench.runtimes:
        limit, note = smallest_limit(bench, runtime)
        if limit is None:
            metric.samples(runtime.name).fail(note)
        else:
            metric.samples(runtime.name).add(limit / 1024)
            bench.results.notes.append(
                f"memory limit, {runtime.name}: {limit // 1024} KiB works; {note}"
            )
