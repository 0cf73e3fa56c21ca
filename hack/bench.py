#!/usr/bin/env python3
"""Compare pyrunc's latency with runc's and crun's, in one run on one machine.

What is timed (wall clock of the whole command, N repetitions, interleaved so that drift in
the machine's load hits every runtime alike):

* ``run`` of busybox ``/bin/true`` from a bundle made by ``make_bundle`` (one bundle per
  runtime, identical apart from the cgroup path), for pyrunc, runc and crun;
* ``state`` of a created (not started) container, for pyrunc and runc;
* then ``python -X importtime`` of ``pyrunc state``: where pyrunc's start-up time goes.

On a hybrid cgroup host (v1 controllers plus a v2 mount at /sys/fs/cgroup/unified) crun
refuses to run, so it runs inside ``unshare -m`` with the v2 mount hidden; that wrapper's cost
is measured alone and subtracted for the crun ratio. Each runtime has its own ``--root`` under
a temporary directory; containers, cgroups (``/pyrunc/bench-<pid>-*``) and the directory are
removed at the end, also after a failure. Results are printed, never asserted on.

Usage: ``.venv/bin/python hack/bench.py [-n N] [--runtimes pyrunc,runc,crun] [--keep]``
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from make_bundle import BundleError, find_pyrunc, make_bundle

UNIFIED = Path("/sys/fs/cgroup/unified")
CGROUP_PREFIX = "pyrunc"


@dataclass
class Runtime:
    """One runtime under test and how to call it."""

    name: str
    command: list[str]
    root: Path
    wrap_hybrid: bool = False  # crun on a hybrid host: run inside a private mount namespace
    created: list[str] = field(default_factory=list)  # container ids to delete at the end

    def argv(self, *args: str) -> list[str]:
        """The full command line for ``args``, wrapped in ``unshare`` when needed."""
        plain = [*self.command, "--root", str(self.root), *args]
        if not self.wrap_hybrid:
            return plain
        script = f"umount {UNIFIED} && exec \"$@\""
        return ["unshare", "-m", "--propagation", "private", "sh", "-c", script, "sh", *plain]


@dataclass
class Samples:
    """Timings of one command in seconds, plus the first failure seen."""

    times: list[float] = field(default_factory=list)
    error: str | None = None

    def median(self) -> float | None:
        return statistics.median(self.times) if self.times else None

    def minimum(self) -> float | None:
        return min(self.times) if self.times else None


def quiet_run(argv: list[str]) -> tuple[int, str]:
    """Run ``argv`` with stdio away from pipes; return its status and the end of its stderr.

    stderr goes to a file, not a pipe: after ``create`` the container's init keeps the
    runtime's stdio open, and reading a pipe to EOF would then wait for the container.
    """
    with tempfile.TemporaryFile() as err:
        code = subprocess.run(
            argv, check=False, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=err
        ).returncode
        err.seek(0)
        return code, err.read().decode(errors="replace").strip()[-300:]


def timed(argv: list[str], samples: Samples) -> None:
    """Run ``argv`` once and record its wall time (or its first failure)."""
    start = time.perf_counter()
    code, err = quiet_run(argv)
    elapsed = time.perf_counter() - start
    if code == 0:
        samples.times.append(elapsed)
    elif samples.error is None:
        samples.error = f"exit {code}: {err}"


def is_hybrid() -> bool:
    """True when cgroup v2 is mounted beside v1 controllers (crun refuses that layout)."""
    return os.path.ismount(UNIFIED)


def find_runtimes(names: list[str], tmp: Path) -> tuple[list[Runtime], list[str]]:
    """Resolve the requested runtimes; return them and notes about those that are missing."""
    found: list[Runtime] = []
    notes: list[str] = []
    for name in names:
        if name == "pyrunc":
            command = find_pyrunc()
        else:
            path = shutil.which(name) or next(
                (p for p in (f"/usr/sbin/{name}", f"/usr/bin/{name}") if os.access(p, os.X_OK)), None
            )
            if path is None:
                notes.append(f"{name}: not installed, skipped")
                continue
            command = [path]
        found.append(Runtime(name, command, tmp / f"root-{name}", wrap_hybrid=name == "crun" and is_hybrid()))
    return found, notes


def default_spec_source(runtimes: list[Runtime]) -> list[str]:
    """pyrunc's own ``spec`` if it works, else runc's: every bundle comes from the same one."""
    for runtime in runtimes:
        if runtime.name in ("pyrunc", "runc"):
            probe = Path(tempfile.mkdtemp(prefix="bench-spec-"))
            try:
                argv = [*runtime.command, "spec", "--bundle", str(probe)]
                ok = subprocess.run(argv, check=False, capture_output=True).returncode == 0
            finally:
                shutil.rmtree(probe, ignore_errors=True)
            if ok:
                return runtime.command
    raise BundleError("neither `pyrunc spec` nor `runc spec` works")


def own_spec_version(runtime: Runtime) -> str | None:
    """The ociVersion that ``<runtime> spec`` writes (run in a scratch directory)."""
    scratch = Path(tempfile.mkdtemp(prefix="bench-spec-"))
    try:
        argv = [*runtime.command, "spec"]
        if subprocess.run(argv, check=False, cwd=scratch, capture_output=True).returncode != 0:
            return None
        return str(json.loads((scratch / "config.json").read_text()).get("ociVersion"))
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def align_oci_version(runtime: Runtime, bundle: Path) -> str | None:
    """Older crun refuses newer spec versions; give its bundle the version it writes itself.

    Only the version string changes, so every runtime still runs the same configuration.
    Returns a note when the bundle was changed.
    """
    if runtime.name != "crun":
        return None
    version = own_spec_version(runtime)
    config_path = bundle / "config.json"
    config = json.loads(config_path.read_text())
    if not version or config.get("ociVersion") == version:
        return None
    note = f"crun bundle: ociVersion {config.get('ociVersion')} -> {version} (what `crun spec` writes)"
    config["ociVersion"] = version
    config_path.write_text(json.dumps(config, indent="\t") + "\n")
    return note


def bench_run(runtimes: list[Runtime], bundles: dict[str, Path], tag: str, n: int) -> dict[str, Samples]:
    """Time ``run`` of /bin/true, interleaving the runtimes per round."""
    results = {r.name: Samples() for r in runtimes}
    for i in range(n):
        for runtime in runtimes:
            cid = f"{tag}-{runtime.name}-run{i}"
            runtime.created.append(cid)  # run deletes it; this is for failures
            timed(runtime.argv("run", "--bundle", str(bundles[runtime.name]), cid), results[runtime.name])
    return results


def bench_wrapper(n: int) -> Samples:
    """The cost of the ``unshare`` + ``umount`` wrapper alone (subtracted from crun)."""
    samples = Samples()
    script = f"umount {UNIFIED} && exec true"
    for _ in range(n):
        timed(["unshare", "-m", "--propagation", "private", "sh", "-c", script], samples)
    return samples


def bench_state(runtimes: list[Runtime], bundles: dict[str, Path], tag: str, n: int) -> tuple[dict[str, Samples], dict[str, str]]:
    """Create one container per runtime and time ``state`` on it; return samples and ids."""
    results: dict[str, Samples] = {}
    ids: dict[str, str] = {}
    for runtime in runtimes:
        cid = f"{tag}-{runtime.name}-state"
        runtime.created.append(cid)
        code, err = quiet_run(runtime.argv("create", "--bundle", str(bundles[runtime.name]), cid))
        samples = results[runtime.name] = Samples()
        if code != 0:
            samples.error = f"create failed (exit {code}): {err}"
            continue
        ids[runtime.name] = cid
    for _ in range(n):
        for runtime in runtimes:
            if runtime.name in ids:
                timed(runtime.argv("state", ids[runtime.name]), results[runtime.name])
    return results, ids


def _python_entry(command: list[str]) -> list[str]:
    """What to hand to ``python -X importtime``: the installed script itself when it is one.

    Profiling the real console script keeps ``runpy`` (used by ``-m``) out of the numbers.
    """
    if len(command) == 1:
        try:
            with open(command[0], "rb") as script:
                if b"python" in script.readline():
                    return command
        except OSError:
            pass
    return ["-m", "pyrunc"]


def import_profile(runtime: Runtime, cid: str, top: int = 12) -> str:
    """Summarise ``python -X importtime`` of ``pyrunc state``: total and the biggest imports."""
    argv = [sys.executable, "-X", "importtime", *_python_entry(runtime.command), "--root", str(runtime.root), "state", cid]
    start = time.perf_counter()
    with tempfile.TemporaryFile(mode="w+") as err:
        proc = subprocess.run(
            argv, check=False, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=err, text=True
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
        (
            f"process wall {wall * 1000:.1f} ms; imports {total_ms:.1f} ms over {len(rows)} modules"
            f" ({len(own)} of them pyrunc's); exit {proc.returncode}"
        ),
        f"top-level imports by cumulative time (top {top}):",
    ]
    for self_us, cumulative_us, _, name in sorted((r for r in rows if r[2] == 0), key=lambda r: -r[1])[:top]:
        lines.append(f"  {cumulative_us / 1000:8.2f} ms  {name}")
    lines.append(f"modules by own time (top {top}):")
    for self_us, _, _, name in sorted(rows, key=lambda r: -r[0])[:top]:
        lines.append(f"  {self_us / 1000:8.2f} ms  {name}")
    return "\n".join(lines)


def ms(value: float | None) -> str:
    return f"{value * 1000:8.1f} ms" if value is not None else "       n/a"


def ratio(value: float | None, reference: float | None) -> str:
    return f"{value / reference:6.2f}x" if value and reference else "     - "


def print_table(title: str, results: dict[str, Samples], references: dict[str, float | None]) -> None:
    """One block per benchmark: median, min, and ratio of medians to each reference."""
    print(f"\n{title}")
    header = f"  {'runtime':<22}{'median':>11}{'min':>11}" + "".join(f"{'vs ' + k:>10}" for k in references)
    print(header)
    for name, samples in results.items():
        row = f"  {name:<22}{ms(samples.median())}{ms(samples.minimum())}"
        row += "".join(f"{ratio(samples.median(), ref):>10}" for ref in references.values())
        print(row)
        if samples.error:
            print(f"    ! {samples.error}")


def cleanup(runtimes: list[Runtime], tag: str, made_prefix: bool) -> None:
    """Delete our containers, then our cgroups (and /pyrunc itself if this run created it)."""
    for runtime in runtimes:
        for cid in runtime.created:
            quiet_run(runtime.argv("delete", "--force", cid))
    for mount in cgroup_mounts():
        prefix = mount / CGROUP_PREFIX
        if not prefix.is_dir():
            continue
        for ours in prefix.glob(f"{tag}-*"):
            for sub in sorted((p for p in ours.rglob("*") if p.is_dir()), key=lambda p: -len(p.parts)):
                _rmdir_quietly(sub)
            _rmdir_quietly(ours)
        if made_prefix:
            _rmdir_quietly(prefix)


def _rmdir_quietly(path: Path) -> None:
    try:
        path.rmdir()
    except OSError:
        pass


def cgroup_mounts() -> list[Path]:
    """Mount points of every cgroup hierarchy (v1 and v2)."""
    points: list[Path] = []
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        left, _, right = line.partition(" - ")
        if right.split(" ", 1)[0] in ("cgroup", "cgroup2"):
            points.append(Path(left.split(" ")[4]))
    return points


def prefix_exists() -> bool:
    return any((m / CGROUP_PREFIX).is_dir() for m in cgroup_mounts())


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0])
    parser.add_argument("-n", type=int, default=20, help="repetitions per measurement (default 20)")
    parser.add_argument("--runtimes", default="pyrunc,runc,crun", help="comma-separated (default pyrunc,runc,crun)")
    parser.add_argument("--keep", action="store_true", help="keep the temporary directory (bundles, roots)")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """Run every benchmark and print the report; returns 1 when nothing could be measured."""
    args = parse_args(sys.argv[1:] if argv is None else argv)
    if os.geteuid() != 0:
        print("bench: must run as root (it starts containers)", file=sys.stderr)
        return 1
    # SIGTERM (e.g. from a timeout) must still reach the cleanup in `finally`.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    tag = f"bench-{os.getpid()}"
    tmp = Path(tempfile.mkdtemp(prefix="pyrunc-bench-"))
    made_prefix = not prefix_exists()
    runtimes, notes = find_runtimes([n.strip() for n in args.runtimes.split(",") if n.strip()], tmp)
    try:
        spec = default_spec_source(runtimes)
        bundles = {
            r.name: make_bundle(tmp / f"{tag}-{r.name}", ["/bin/true"], cgroups_path=f"/{CGROUP_PREFIX}/{tag}-{r.name}", spec_command=spec)
            for r in runtimes
        }
        notes += [n for r in runtimes if (n := align_oci_version(r, bundles[r.name]))]
        print(f"host: {os.uname().release}, cgroups {'hybrid (v1 + v2)' if is_hybrid() else 'v1 or v2 only'}; "
              f"N={args.n}; default spec from: {' '.join(spec)}")
        for note in notes:
            print(f"note: {note}")
        run_results = bench_run(runtimes, bundles, tag, args.n)
        crun = next((r for r in runtimes if r.name == "crun"), None)
        if crun is not None and crun.wrap_hybrid:
            wrapper = bench_wrapper(args.n)
            raw = run_results.pop("crun")
            run_results["crun (in unshare)"] = raw
            run_results["unshare wrapper alone"] = wrapper
            base = wrapper.median() or 0.0
            run_results["crun minus wrapper"] = Samples([max(t - base, 1e-6) for t in raw.times], raw.error)
        references = {
            "runc": run_results["runc"].median() if "runc" in run_results else None,
            "crun": next((run_results[k].median() for k in ("crun minus wrapper", "crun") if k in run_results), None),
        }
        print_table("run busybox /bin/true (create + start + wait + delete)", run_results, references)
        state_results, ids = bench_state([r for r in runtimes if r.name in ("pyrunc", "runc")], bundles, tag, args.n)
        print_table("state of a created container", state_results, {"runc": state_results.get("runc", Samples()).median()})
        pyrunc = next((r for r in runtimes if r.name == "pyrunc"), None)
        if pyrunc is not None and "pyrunc" in ids:
            print("\npython -X importtime: pyrunc state")
            print(import_profile(pyrunc, ids["pyrunc"]))
        measured = any(s.times for s in [*run_results.values(), *state_results.values()])
    finally:
        cleanup(runtimes, tag, made_prefix)
        if args.keep:
            print(f"\nkept {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)
    return 0 if measured else 1


if __name__ == "__main__":
    sys.exit(main())
