"""Growth with containers alive, and the cost of Kubernetes-style masking.

At each level (``--scale 0,100,1000``) every runtime is brought to that many alive ``sleep``
containers, then the same commands are timed again: ``run`` of /bin/true, ``state`` of one
running probe container (always there, on top of the level), ``list``, and — for masking —
``create`` with Kubernetes' maskedPaths/readonlyPaths against ``create`` with both lists
empty. Each created container's mount table is counted (lines of its init's mountinfo) and
so are its distinct tmpfs superblocks: pyrunc masks every directory with binds of one
read-only tmpfs, runc mounts a tmpfs per directory; both add one mount per masked path.
"""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor

from .context import SLEEP, Bench
from .latency import time_run_true
from .procs import mount_stats, reap_children, run_command
from .runtimes import Runtime
from .stats import Samples

POPULATE_WORKERS = 4
CLEAR_WORKERS = 8  # delete --force mostly waits for the init to die: more at once helps


class Population:
    """The alive background containers of every runtime, grown level by level."""

    def __init__(self, bench: Bench) -> None:
        self.bench = bench
        self.alive: dict[str, list[str]] = {r.name: [] for r in bench.runtimes}
        self.failures: dict[str, int] = {r.name: 0 for r in bench.runtimes}

    def grow(self, runtime: Runtime, level: int) -> float:
        """Start containers until ``runtime`` has ``level`` alive; return the wall seconds."""
        missing = level - len(self.alive[runtime.name])
        start = time.perf_counter()
        if missing > 0:
            with ThreadPoolExecutor(max_workers=POPULATE_WORKERS) as pool:
                made = list(
                    pool.map(lambda _i: self.bench.start_sleeper(runtime, "bg"), range(missing))
                )
            for cid, _pid, error in made:
                if error:
                    self.failures[runtime.name] += 1
                    self.bench.delete(runtime, cid)
                else:
                    self.alive[runtime.name].append(cid)
        return time.perf_counter() - start

    def clear(self) -> None:
        """``delete --force`` every background container, a few at a time (timed per runtime)."""
        most = max((len(ids) for ids in self.alive.values()), default=0)
        metric = self.bench.results.metric(
            "scale_clear", "scale", f"delete --force {most} alive ({CLEAR_WORKERS} at a time, wall)"
        )
        with ThreadPoolExecutor(max_workers=CLEAR_WORKERS) as pool:
            for runtime in self.bench.runtimes:
                ids, self.alive[runtime.name] = self.alive[runtime.name], []
                if not ids:
                    continue
                start = time.perf_counter()
                list(pool.map(lambda cid, r=runtime: self.bench.delete(r, cid), ids))
                metric.samples(runtime.name).add(time.perf_counter() - start)
        if not metric.values:
            del self.bench.results.metrics[metric.key]
        reap_children()


def _timed(samples: Samples, argv: list[str]) -> None:
    outcome = run_command(argv)
    if outcome.ok:
        samples.add(outcome.seconds)
    else:
        samples.fail(outcome.describe())


def measure_growth(bench: Bench, level: int, probes: dict[str, str]) -> None:
    """``run``, ``state`` of the probe and ``list``, interleaved, at this level."""
    res = bench.results
    run = res.metric(
        f"scale{level}_run", "scale", f"run /bin/true, {level} alive", subtract_wrapper=True
    )
    state = res.metric(
        f"scale{level}_state", "scale", f"state, {level} alive", subtract_wrapper=True
    )
    listm = res.metric(f"scale{level}_list", "scale", f"list, {level} alive", subtract_wrapper=True)
    for _, order in bench.rounds():
        for runtime in order:
            time_run_true(bench, runtime, run.samples(runtime.name), "grow")
            if runtime.name in probes:
                _timed(state.samples(runtime.name), runtime.argv("state", probes[runtime.name]))
            _timed(listm.samples(runtime.name), runtime.argv("list"))


def measure_masking(bench: Bench, level: int) -> None:
    """``create`` with Kubernetes' masks against no masks; mounts per container for both."""
    res = bench.results
    for masks, what in (("k8s", "Kubernetes masks"), ("none", "no masks")):
        create = res.metric(
            f"mask{level}_{masks}_create",
            "masking",
            f"create, {what}, {level} alive",
            subtract_wrapper=True,
        )
        mounts = res.metric(
            f"mounts_{masks}", "masking", f"mounts per container, {what}", unit="count"
        )
        tmpfs = res.metric(f"tmpfs_{masks}", "masking", f"tmpfs superblocks, {what}", unit="count")
        for _, order in bench.rounds():
            for runtime in order:
                cid = bench.new_id(runtime, f"mask{masks}")
                outcome, pid = bench.create(runtime, cid, SLEEP, masks=masks)
                if outcome.ok and pid is not None:
                    create.samples(runtime.name).add(outcome.seconds)
                    counts = mount_stats(pid)
                    if counts is None:
                        mounts.samples(runtime.name).fail(f"/proc/{pid}/mountinfo unreadable")
                    else:
                        mounts.samples(runtime.name).add(float(counts[0]))
                        tmpfs.samples(runtime.name).add(float(counts[1]))
                else:
                    create.samples(runtime.name).fail(outcome.describe())
                bench.delete(runtime, cid)


def bench_scale(bench: Bench, levels: list[int], growth: bool, masking: bool) -> None:
    """Grow the population level by level and measure at each; everything is deleted after."""
    population = Population(bench)
    probes: dict[str, str] = {}
    try:
        if growth:
            for runtime in bench.runtimes:
                cid, _pid, error = bench.start_sleeper(runtime, "probe")
                if error:
                    bench.results.notes.append(
                        f"scale: no probe container for {runtime.name}: {error}"
                    )
                    bench.delete(runtime, cid)
                else:
                    probes[runtime.name] = cid
        for level in sorted(set(levels)):
            populate = bench.results.metric(
                f"populate{level}",
                "scale",
                f"bring to {level} alive ({POPULATE_WORKERS} at a time, wall)",
            )
            for runtime in bench.runtimes:
                seconds = population.grow(runtime, level)
                if level:
                    populate.samples(runtime.name).add(seconds)
            if growth:
                measure_growth(bench, level, probes)
            if masking:
                measure_masking(bench, level)
            if not populate.values:
                del bench.results.metrics[populate.key]
        for name, failed in population.failures.items():
            if failed:
                bench.results.notes.append(
                    f"scale: {failed} background containers of {name} failed to start"
                )
    finally:
        population.clear()
        for runtime in bench.runtimes:
            if runtime.name in probes:
                bench.delete(runtime, probes[runtime.name])
