"""Run the opencontainers runtime-tools validation programs against pyrunc.

Set ``PYRUNC_RUNTIME_TOOLS`` to a runtime-tools source tree in which ``make runtimetest
validation-executables`` has been run (it holds ``runtimetest``, ``rootfs-<arch>.tar.gz`` and
``validation/<name>/<name>.t``). Each program becomes one test; it runs from the tree's root
with ``RUNTIME=<pyrunc>``, and its TAP output decides the result: every ``not ok`` line is
named in the failure message, with its diagnostics. Without the variable the tests skip.

Optional: ``PYRUNC_RUNTIME_TOOLS_TIMEOUT`` (seconds per program, default 300) and
``PYRUNC_RUNTIME_TOOLS_LOGS`` (a directory that receives each program's raw output).
Select programs with ``-k``, e.g. ``-k 'hostname or kill'``.

Each program runs under ``rt_harness.py``, which moves it into cgroups of its own and reaps
what it leaves behind (see that module for why).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent.parent / "hack"))

import rt_harness
from make_bundle import find_pyrunc
from rt_tap import parse_tap

ENV_TREE = "PYRUNC_RUNTIME_TOOLS"
ENV_TIMEOUT = "PYRUNC_RUNTIME_TOOLS_TIMEOUT"
ENV_LOGS = "PYRUNC_RUNTIME_TOOLS_LOGS"

pytestmark = pytest.mark.conformance


def runtime_tools_tree() -> Path | None:
    """The configured runtime-tools tree, or None when conformance runs are not wanted."""
    value = os.environ.get(ENV_TREE)
    return Path(value).resolve() if value else None


def validation_programs(tree: Path) -> list[Path]:
    """Built validation programs, both layouts (``validation/x.t`` and ``validation/x/x.t``)."""
    found = set(tree.glob("validation/*.t")) | set(tree.glob("validation/*/*.t"))
    return sorted(p for p in found if p.is_file() and os.access(p, os.X_OK))


def _params() -> list[object]:
    """Collect-time parametrization: one param per program, or one skipped placeholder."""
    tree = runtime_tools_tree()
    if tree is None:
        reason = f"{ENV_TREE} is not set (point it at a built opencontainers/runtime-tools tree)"
        return [pytest.param(None, id="runtime-tools", marks=pytest.mark.skip(reason=reason))]
    programs = validation_programs(tree)
    if not programs:
        reason = f"no validation/*.t programs under {tree}: run `make runtimetest validation-executables` there"
        return [pytest.param(None, id="runtime-tools", marks=pytest.mark.skip(reason=reason))]
    return [pytest.param(p, id=p.stem) for p in programs]


def _runtime_path() -> str:
    """runtime-tools executes RUNTIME directly, so it must be a single executable path."""
    command = find_pyrunc()
    if len(command) != 1 or not os.access(command[0], os.X_OK):
        pytest.skip("no pyrunc executable found (install the package or set $PYRUNC)")
    return command[0]


def _run_program(tree: Path, program: Path, runtime: str) -> tuple[int, str, str]:
    """Run one program under the harness; on timeout let the harness clean up before killing it."""
    timeout = float(os.environ.get(ENV_TIMEOUT, "300"))
    env = {**os.environ, "RUNTIME": runtime}
    cmd = [sys.executable, str(HERE / "rt_harness.py"), program.stem, str(program)]
    proc = subprocess.Popen(
        cmd, cwd=tree, env=env, stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.send_signal(signal.SIGTERM)
        try:
            out, err = proc.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            out, err = proc.communicate()
        err += f"\n(timed out after {timeout:.0f} s)"
        return -1, out, err
    return proc.returncode, out, err


def _save_log(program: Path, out: str, err: str) -> None:
    logs = os.environ.get(ENV_LOGS)
    if logs:
        Path(logs).mkdir(parents=True, exist_ok=True)
        (Path(logs) / f"{program.stem}.tap").write_text(out + ("\n# stderr:\n" + err if err else ""))


@pytest.mark.parametrize("program", _params())
def test_runtime_tools_program(program: Path, record_property: pytest.RecordProperty) -> None:
    """A program passes when its TAP has no `not ok`, it completed its plan, and it exited 0.

    Programs named ``*_fail`` print no TAP when the runtime correctly refuses their config;
    for them the exit status is the whole verdict.
    """
    if os.geteuid() != 0:
        pytest.skip("runtime-tools validation needs root")
    tree = runtime_tools_tree()
    assert tree is not None
    runtime = _runtime_path()
    try:
        status, out, err = _run_program(tree, program, runtime)
    finally:
        leftovers = rt_harness.remove_own_cgroups(program.stem)
    _save_log(program, out, err)
    report = parse_tap(out)
    record_property("tap_summary", report.summary())
    for result in report.results:
        record_property(f"tap_{result.number}", result.title())

    problems = report.problems()
    if status != 0 and not report.failures:
        problems.append(f"program exited with status {status}")
    problems += [f"cgroup not removed: {line}" for line in leftovers]
    if problems:
        details = [report.summary(), *problems]
        for failure in report.failures:
            if failure.diagnostics:
                details.append(f"--- diagnostics of {failure.title()}")
                details.extend(failure.diagnostics)
        if err.strip():
            details.append("--- stderr (last 40 lines)")
            details.extend(err.strip().splitlines()[-40:])
        pytest.fail("\n".join(details), pytrace=False)
    if report.skip_all_reason is not None:
        pytest.skip(f"{program.stem}: {report.skip_all_reason}")
