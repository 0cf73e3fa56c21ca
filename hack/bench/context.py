"""What every scenario shares: the runtimes, the bundle factory, the results, the ids."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .bundles import BundleFactory
from .procs import Outcome, read_pid, reap_children, run_command
from .runtimes import Runtime, wrapper_argv
from .stats import Results

SLEEP = ["sleep", "100000"]


@dataclass
class Bench:
    """One benchmark run's shared state; scenarios take it and add metrics to ``results``."""

    runtimes: list[Runtime]
    factory: BundleFactory
    results: Results
    n: int
    tag: str
    workdir: Path
    _counter: Iterator[int] = field(default_factory=itertools.count)

    def rounds(self, count: int | None = None) -> Iterator[tuple[int, list[Runtime]]]:
        """``count`` rounds of every runtime, the order rotated each round.

        Interleaving spreads the machine's drift over every runtime alike; rotating keeps
        any one runtime from always running right after another.
        """
        for i in range(self.n if count is None else count):
            shift = i % len(self.runtimes) if self.runtimes else 0
            yield i, self.runtimes[shift:] + self.runtimes[:shift]
            reap_children()

    def new_id(self, runtime: Runtime, label: str) -> str:
        """A fresh container id, remembered for the final cleanup."""
        return runtime.remember(f"{self.tag}-{runtime.name}-{label}-{next(self._counter)}")

    def bundle(self, runtime: Runtime, cid: str, args: list[str], **options: Any) -> Path:
        return self.factory.bundle(runtime.name, cid, args, **options)

    def create(
        self, runtime: Runtime, cid: str, args: list[str], **options: Any
    ) -> tuple[Outcome, int | None]:
        """``create`` one container (its own bundle); return the outcome and the init's pid."""
        bundle = self.bundle(runtime, cid, args, **options)
        pid_file = self.workdir / "bundles" / cid / "pid"
        outcome = run_command(
            runtime.argv("create", "--bundle", str(bundle), "--pid-file", str(pid_file), cid)
        )
        return outcome, read_pid(str(pid_file)) if outcome.ok else None

    def start_sleeper(
        self, runtime: Runtime, label: str, **options: Any
    ) -> tuple[str, int | None, str | None]:
        """Create and start a ``sleep`` container; return its id, init pid and any error."""
        cid = self.new_id(runtime, label)
        created, pid = self.create(runtime, cid, SLEEP, **options)
        if not created.ok:
            return cid, None, f"create: {created.describe()}"
        started = run_command(runtime.argv("start", cid))
        if not started.ok:
            return cid, None, f"start: {started.describe()}"
        return cid, pid, None

    def delete(self, runtime: Runtime, cid: str) -> Outcome:
        """``delete --force`` (kills a running container first); the id is forgotten on success."""
        outcome = run_command(runtime.argv("delete", "--force", cid))
        if outcome.ok:
            runtime.created.discard(cid)
        return outcome

    def measure_wrapper(self) -> None:
        """Time the crun wrapper alone (``true`` inside it) when some runtime uses it."""
        if not self.results.wrapped:
            return
        metric = self.results.metric(
            "wrapper", "wrapper", "crun's unshare -m + umount wrapper alone"
        )
        for _ in range(max(self.n, 5)):
            outcome = run_command(wrapper_argv(["true"]))
            if outcome.ok:
                metric.samples("crun").add(outcome.seconds)
            else:
                metric.samples("crun").fail(outcome.describe())
        self.results.wrapper_cost = metric.samples("crun").median()
