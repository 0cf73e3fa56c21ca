"""CPython's own cost, so every pyrunc figure reads against it, and pyrunc's import profile."""

from __future__ import annotations

import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from .context import Bench
from .procs import run_command
from .runtimes import Runtime
from .stats import Metric, Samples


def interpreter_of(command: list[str]) -> str:
    """The Python that runs ``command``: its ``#!`` line when it is a script, else this one."""
    if len(command) == 1:
        try:
            with open(command[0], "rb") as script:
                first = script.readline()
        except OSError:
            first = b""
        if first.startswith(b"#!") and b"python" in first:
            target = first[2:].decode().split()[0]
            if Path(target).is_absolute():
                return target
    elif command and "python" in Path(command[0]).name:
        return command[0]
    return sys.executable


def _record(samples: Samples, ok: bool, seconds: float, why: Callable[[], str]) -> None:
    if ok:
        samples.add(seconds)
    else:
        samples.fail(why())


def bench_floor(bench: Bench) -> None:
    """``python -S -I -c pass``, ``python -c pass`` (pyrunc's interpreter), and ``--version``.

    The floor figures are filed under ``pyrunc`` (its interpreter); ``--version`` is each
    runtime's cheapest command, so it is the start-up cost of each binary.
    """
    pyrunc = next((r for r in bench.runtimes if r.name == "pyrunc"), None)
    res = bench.results
    version = res.metric("version", "floor", "--version", subtract_wrapper=True)
    floors: list[tuple[Metric, list[str]]] = []
    if pyrunc is not None:
        python = interpreter_of(pyrunc.command)
        floors = [
            (
                res.metric("floor_bare", "floor", "python -S -I -c pass (pyrunc's python)"),
                [python, "-S", "-I", "-c", "pass"],
            ),
            (
                res.metric("floor_site", "floor", "python -c pass (pyrunc's python)"),
                [python, "-c", "pass"],
            ),
        ]
        res.notes.append(f"floor: pyrunc's interpreter is {python}")
    for _, order in bench.rounds():
        for metric, argv in floors:
            outcome = run_command(argv)
            _record(metric.samples("pyrunc"), outcome.ok, outcome.seconds, outcome.describe)
        for runtime in order:
            outcome = run_command(runtime.argv("--version"))
            _record(version.samples(runtime.name), outcome.ok, outcome.seconds, outcome.describe)


def _python_entry(command: list[str]) -> list[str]:
    """What to hand to ``python -X importtime``: the installed script itself when it is one.

    Profiling the real console script keeps ``runpy`` (used by ``-m``) out of the numbers.
    """
    if len(command) == 1:
        return command
    return ["-m", "pyrunc"]


def import_profile(runtime: Runtime, cid: str, top: int = 10) -> str:
    """Summarise ``python -X importtime`` of ``pyrunc state``: total and the biggest imports."""
    argv = [
        interpreter_of(runtime.command),
        "-X",
        "importtime",
        *_python_entry(runtime.command),
        "--root",
        str(runtime.root),
        "state",
        cid,
    ]
    start = time.perf_counter()
    with tempfile.TemporaryFile(mode="w+") as err:
        proc = subprocess.run(
            argv,
            check=False,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=err,
            text=True,
            timeout=60,
        )
        err.seek(0)
        stderr = err.read()
    wall = time.perf_counter() - start
    rows: list[tuple[int, int, int, str]] = []  # self us, cumulative us, depth, module
    for line in stderr.splitlines():
        if not line.startswith("import time:") or "imported package" in line:
            continue
        own_field, cumulative_field, module = line[len("import time:") :].split("|", 2)
        depth = (len(module) - len(module.lstrip(" ")) - 1) // 2
        rows.append((int(own_field), int(cumulative_field), depth, module.strip()))
    if not rows:
        return f"no import data (exit {proc.returncode}): {stderr.strip()[-300:]}"
    total_ms = sum(r[0] for r in rows) / 1000
    own = [r for r in rows if r[3] == "pyrunc" or r[3].startswith("pyrunc.")]
    lines = [
        f"process wall {wall * 1000:.1f} ms; imports {total_ms:.1f} ms over {len(rows)} modules"
        f" ({len(own)} of them pyrunc's); exit {proc.returncode}",
        f"top-level imports by cumulative time (top {top}):",
    ]
    for _, cumulative_us, _, name in sorted((r for r in rows if r[2] == 0), key=lambda r: -r[1])[
        :top
    ]:
        lines.append(f"  {cumulative_us / 1000:8.2f} ms  {name}")
    return "\n".join(lines)


def bench_imports(bench: Bench) -> None:
    """The import profile of ``pyrunc state`` on a created container (text in the results)."""
    pyrunc = next((r for r in bench.runtimes if r.name == "pyrunc"), None)
    if pyrunc is None:
        return
    cid = bench.new_id(pyrunc, "imports")
    outcome, _pid = bench.create(pyrunc, cid, ["sleep", "100000"])
    try:
        if outcome.ok:
            bench.results.texts["import profile: pyrunc state"] = import_profile(pyrunc, cid)
        else:
            bench.results.notes.append(f"import profile: create failed: {outcome.describe()}")
    finally:
        bench.delete(pyrunc, cid)
