"""``hack/bench.py``: arguments, the order of the scenarios, and the outputs."""

from __future__ import annotations

import argparse
import json
import os
import resource
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from .bundles import BundleFactory, working_spec_command
from .cleanup import cleanup, leaks
from .context import Bench
from .floor import bench_floor, bench_imports, interpreter_of
from .latency import bench_concurrent, bench_lifecycle, bench_run, bench_state_exec
from .memory import bench_memory_limit
from .procs import become_subreaper
from .report import print_report, update_readme, write_json, write_png
from .runtimes import find_runtimes
from .scale import bench_scale
from .stats import Results

SCENARIOS = (
    "floor",
    "run",
    "lifecycle",
    "state",
    "exec",
    "concurrent",
    "memlimit",
    "scale",
    "masking",
    "imports",
)
DESCRIPTION = """Time pyrunc beside runc and crun on this machine, interleaved, and report medians,
p10/p90 and pyrunc's ratios. Scenarios: floor (python -S -I -c pass, python -c pass, --version),
run (/bin/true), lifecycle (create, start, kill, delete; the waiting init's VmRSS/RssAnon), state
(running container), exec (/bin/true), concurrent (50 created+started at once, then deleted),
memlimit (smallest memory limit that runs `echo ok`), scale (run/state/list with --scale
containers alive), masking (create with Kubernetes' masked/readonly paths vs none, at each
--scale level; mounts per container), imports (python -X importtime of pyrunc state)."""


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="hack/bench.py", description=DESCRIPTION)
    parser.add_argument("-n", type=int, default=20, help="repetitions per measurement (default 20)")
    parser.add_argument(
        "--runtimes", default="pyrunc,runc,crun", help="comma-separated (default pyrunc,runc,crun)"
    )
    parser.add_argument(
        "--only",
        default=",".join(SCENARIOS),
        help=f"comma-separated scenarios (default all: {','.join(SCENARIOS)})",
    )
    parser.add_argument(
        "--scale",
        default="0,100",
        help="alive-container levels for scale and masking (default 0,100; e.g. 0,100,1000)",
    )
    parser.add_argument("--json", type=Path, help="write every figure to this JSON file")
    parser.add_argument(
        "--png", type=Path, help="draw a chart to this PNG (needs the `bench` extra: matplotlib)"
    )
    parser.add_argument(
        "--markdown", action="store_true", help="print the table as the README's Markdown block"
    )
    parser.add_argument(
        "--readme",
        type=Path,
        help="replace the table between the bench markers in this file (e.g. README.md)",
    )
    parser.add_argument(
        "--from-json",
        type=Path,
        help="measure nothing: print and write the outputs from an earlier run's --json file",
    )
    parser.add_argument(
        "--keep", action="store_true", help="keep the temporary directory (bundles, roots)"
    )
    args = parser.parse_args(argv)
    args.only = [s.strip() for s in args.only.split(",") if s.strip()]
    unknown = [s for s in args.only if s not in SCENARIOS]
    if unknown:
        parser.error(
            f"--only: unknown scenario(s) {', '.join(unknown)} (known: {', '.join(SCENARIOS)})"
        )
    try:
        args.scale = sorted({int(s) for s in args.scale.split(",") if s.strip()})
    except ValueError:
        parser.error(f"--scale: not a list of integers: {args.scale!r}")
    if args.n < 1 or any(level < 0 for level in args.scale):
        parser.error("-n must be at least 1 and --scale levels at least 0")
    return args


def raise_nofile() -> None:
    """Soft RLIMIT_NOFILE up to the hard limit: hundreds of containers, many short-lived files."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def load() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def python_version(command: list[str]) -> str:
    python = interpreter_of(command)
    try:
        return (
            subprocess.run(
                [python, "-c", "import sys; print(sys.version.split()[0])"],
                check=False,
                capture_output=True,
                text=True,
                timeout=30,
            ).stdout.strip()
            or "unknown"
        )
    except OSError:
        return "unknown"


def run_scenarios(bench: Bench, only: list[str], levels: list[int]) -> None:
    """The scenarios in a fixed order (cheap first), each adding to ``bench.results``."""
    bench.measure_wrapper()
    if "floor" in only:
        bench_floor(bench)
    if "run" in only:
        bench_run(bench)
    if "lifecycle" in only:
        bench_lifecycle(bench)
    if "state" in only or "exec" in only:
        bench_state_exec(bench, "state" in only, "exec" in only)
    if "concurrent" in only:
        bench_concurrent(bench)
    if "memlimit" in only:
        bench_memory_limit(bench)
    if "scale" in only or "masking" in only:
        bench_scale(bench, levels, "scale" in only, "masking" in only)
    if "imports" in only:
        bench_imports(bench)


def main(argv: list[str] | None = None) -> int:
    """Run the scenarios, clean up, report; 1 when nothing was measured or something leaked."""
    raw = sys.argv[1:] if argv is None else argv
    args = parse_args(raw)
    if args.from_json:
        return write_outputs(json.loads(args.from_json.read_text()), args)
    if os.geteuid() != 0:
        print("bench: must run as root (it starts containers)", file=sys.stderr)
        return 1
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # still reach the cleanup below
    signal.signal(signal.SIGHUP, lambda *_: sys.exit(129))
    become_subreaper()
    raise_nofile()
    load_before = load()
    tag = f"b{os.getpid()}"
    cgroup_root = f"pyrunc-bench-{os.getpid()}"
    tmp = Path(tempfile.mkdtemp(prefix="pyrunc-bench-"))
    runtimes, notes = find_runtimes([n.strip() for n in args.runtimes.split(",") if n.strip()], tmp)
    results = Results({r.name for r in runtimes if r.wrapped})
    results.notes += notes
    started = time.monotonic()
    if not runtimes:
        for note in notes:
            print(f"bench: {note}", file=sys.stderr)
        print("bench: none of the requested runtimes is installed", file=sys.stderr)
        tmp.rmdir()
        return 1
    try:
        spec = working_spec_command([r.command for r in runtimes if r.name in ("pyrunc", "runc")])
        factory = BundleFactory(tmp, spec, cgroup_root)
        results.notes.append(
            f"bundles: busybox rootfs shared read-only, default spec from `{' '.join(spec)} spec`"
        )
        for runtime in runtimes:
            if runtime.name == "crun" and (
                aligned := factory.align_version(runtime.name, runtime.command)
            ):
                results.notes.append(aligned)
        bench = Bench(runtimes, factory, results, args.n, tag, tmp)
        run_scenarios(bench, args.only, args.scale)
    except (KeyboardInterrupt, SystemExit) as stop:
        # Ctrl-C, SIGTERM or SIGHUP: clean up, say so, and report nothing half-measured.
        print(f"bench: interrupted ({type(stop).__name__}); cleaning up", file=sys.stderr)
        cleanup(runtimes, cgroup_root, tmp, args.keep)
        leftover = leaks(runtimes, cgroup_root, tmp, args.keep)
        print(f"bench: leaks after cleanup: {', '.join(leftover) or 'none'}", file=sys.stderr)
        return stop.code if isinstance(stop, SystemExit) and isinstance(stop.code, int) else 130
    except BaseException:
        cleanup(runtimes, cgroup_root, tmp, args.keep)
        raise
    results.notes += cleanup(runtimes, cgroup_root, tmp, args.keep)
    leaked = leaks(runtimes, cgroup_root, tmp, args.keep)
    if args.keep:
        results.notes.append(f"kept {tmp}")
    results.notes.append(f"benchmark took {time.monotonic() - started:.0f} s")
    data = build_data(results, runtimes, raw, args, load_before, leaked)
    status = write_outputs(data, args)
    return 1 if leaked else status


def write_outputs(data: dict[str, Any], args: argparse.Namespace) -> int:
    """Print the report and write the files asked for; 1 when nothing was measured."""
    print_report(data, args.markdown)
    if args.json and not args.from_json:
        write_json(data, args.json)
    if args.png:
        write_png(data, args.png)
    if args.readme:
        update_readme(data, args.readme)
    return (
        0
        if any(fig["n"] for m in data["metrics"].values() for fig in m["runtimes"].values())
        else 1
    )


def build_data(
    results: Results,
    runtimes: list[Any],
    raw: list[str],
    args: argparse.Namespace,
    load_before: str,
    leaked: list[str],
) -> dict[str, Any]:
    """Everything the outputs need, JSON-ready."""
    pyrunc = next((r for r in runtimes if r.name == "pyrunc"), None)
    return {
        "machine": {
            "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
            "cpus": os.cpu_count(),
            "kernel": os.uname().release,
            "python": python_version(pyrunc.command) if pyrunc else sys.version.split()[0],
            "versions": {r.name: r.version() for r in runtimes},
            "load_before": load_before,
            "load_after": load(),
        },
        "config": {
            "argv": raw,
            "n": args.n,
            "runtimes": [r.name for r in runtimes],
            "only": args.only,
            "scale": args.scale,
        },
        "wrapper_seconds": results.wrapper_cost,
        "metrics": results.to_dict(),
        "notes": results.notes,
        "texts": results.texts,
        "leaks": leaked,
    }
