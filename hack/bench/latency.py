"""Per-command latency: run, create/start/kill/delete, state, exec, and 50 containers at once."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor

from .context import SLEEP, Bench
from .procs import proc_status_kib, reap_children, run_command, wait_gone
from .runtimes import Runtime
from .stats import Samples

CONCURRENT = 50


def time_run_true(bench: Bench, runtime: Runtime, samples: Samples, tag: str) -> bool:
    """One timed ``run`` of /bin/true into `samples`; False (and the container deleted) when
    it failed."""
    cid = bench.new_id(runtime, tag)
    bundle = bench.bundle(runtime, cid, ["/bin/true"])
    outcome = run_command(runtime.argv("run", "--bundle", str(bundle), cid))
    if outcome.ok:
        samples.add(outcome.seconds)
        runtime.created.discard(cid)
        return True
    samples.fail(outcome.describe())
    bench.delete(runtime, cid)
    return False


def bench_run(bench: Bench) -> None:
    """``run`` of busybox /bin/true: create + start + wait + delete in one command."""
    metric = bench.results.metric("run", "run", "run /bin/true", subtract_wrapper=True)
    for _, order in bench.rounds():
        for runtime in order:
            time_run_true(bench, runtime, metric.samples(runtime.name), "run")


def bench_lifecycle(bench: Bench) -> None:
    """``create``, ``start``, ``kill`` and ``delete`` as four timed commands; the init's memory.

    The container runs ``sleep`` so that ``kill`` has something to signal; after ``kill`` the
    benchmark waits (untimed) for the init to go, so ``delete`` sees a stopped container.
    The waiting init's VmRSS and RssAnon are read between ``create`` and ``start``.
    """
    res = bench.results
    steps = {
        step: res.metric(step, "lifecycle", f"{step} (sleep container)", subtract_wrapper=True)
        for step in ("create", "start", "kill", "delete")
    }
    rss = res.metric("init_rss", "lifecycle", "waiting init VmRSS", unit="KiB")
    anon = res.metric("init_anon", "lifecycle", "waiting init RssAnon", unit="KiB")
    for _, order in bench.rounds():
        for runtime in order:
            name = runtime.name
            cid = bench.new_id(runtime, "life")
            created, pid = bench.create(runtime, cid, SLEEP)
            if not created.ok or pid is None:
                steps["create"].samples(name).fail(created.describe())
                bench.delete(runtime, cid)
                continue
            steps["create"].samples(name).add(created.seconds)
            status = proc_status_kib(pid)
            for metric, field in ((rss, "VmRSS"), (anon, "RssAnon")):
                if field in status:
                    metric.samples(name).add(float(status[field]))
                else:
                    metric.samples(name).fail(f"/proc/{pid}/status has no {field}")
            for step, argv in (("start", ["start", cid]), ("kill", ["kill", cid, "KILL"])):
                outcome = run_command(runtime.argv(*argv))
                if outcome.ok:
                    steps[step].samples(name).add(outcome.seconds)
                else:
                    steps[step].samples(name).fail(outcome.describe())
            if not wait_gone(pid):
                steps["delete"].samples(name).fail(f"init {pid} still alive 10 s after kill")
            deleted = run_command(runtime.argv("delete", cid))
            if deleted.ok:
                steps["delete"].samples(name).add(deleted.seconds)
                runtime.created.discard(cid)
            else:
                steps["delete"].samples(name).fail(deleted.describe())
                bench.delete(runtime, cid)


def bench_state_exec(bench: Bench, do_state: bool, do_exec: bool) -> None:
    """``state`` of a running container, and ``exec`` of /bin/true into it."""
    res = bench.results
    state = (
        res.metric("state", "state", "state (running)", subtract_wrapper=True) if do_state else None
    )
    execm = res.metric("exec", "exec", "exec /bin/true", subtract_wrapper=True) if do_exec else None
    running: dict[str, str] = {}
    for runtime in bench.runtimes:
        cid, _pid, error = bench.start_sleeper(runtime, "probe")
        if error:
            for metric in (state, execm):
                if metric is not None:
                    metric.samples(runtime.name).fail(error)
            bench.delete(runtime, cid)
        else:
            running[runtime.name] = cid
    try:
        for _, order in bench.rounds():
            for runtime in order:
                probe = running.get(runtime.name)
                if probe is None:
                    continue
                for metric, argv in (
                    (state, ["state", probe]),
                    (execm, ["exec", probe, "/bin/true"]),
                ):
                    if metric is None:
                        continue
                    outcome = run_command(runtime.argv(*argv))
                    if outcome.ok:
                        metric.samples(runtime.name).add(outcome.seconds)
                    else:
                        metric.samples(runtime.name).fail(outcome.describe())
    finally:
        for runtime in bench.runtimes:
            if runtime.name in running:
                bench.delete(runtime, running[runtime.name])


def _create_and_start(bench: Bench, runtime: Runtime, label: str) -> tuple[str, str | None]:
    cid, _pid, error = bench.start_sleeper(runtime, label)
    return cid, error


def bench_concurrent(bench: Bench, count: int = CONCURRENT) -> None:
    """``count`` containers created and started at once, then deleted at once (wall times).

    Failures are counted per round; a healthy runtime has none. At most three rounds: each
    one is ``count`` containers per runtime.
    """
    res = bench.results
    up = res.metric("concurrent_up", "concurrent", f"{count} x create+start, concurrently (wall)")
    down = res.metric(
        "concurrent_down", "concurrent", f"{count} x delete --force, concurrently (wall)"
    )
    fails = res.metric(
        "concurrent_failures",
        "concurrent",
        f"failures among {count} x create+start+delete",
        unit="count",
    )
    with ThreadPoolExecutor(max_workers=count) as pool:
        for _, order in bench.rounds(max(1, min(bench.n, 3))):
            for runtime in order:
                start = time.perf_counter()
                made = list(
                    pool.map(
                        lambda _i, r=runtime: _create_and_start(bench, r, "conc"), range(count)
                    )
                )
                up.samples(runtime.name).add(time.perf_counter() - start)
                errors = [e for _, e in made if e]
                start = time.perf_counter()
                gone = list(
                    pool.map(lambda c, r=runtime: bench.delete(r, c), [cid for cid, _ in made])
                )
                down.samples(runtime.name).add(time.perf_counter() - start)
                errors += [o.describe() for o in gone if not o.ok]
                fails.samples(runtime.name).add(float(len(errors)))
                if errors:
                    fails.samples(runtime.name).error = errors[0]
                reap_children()
