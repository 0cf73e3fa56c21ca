"""`--trace`: the timeline of a known bundle holds the kernel's steps in the order they must come."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pyrunc_testing import REPO, needs_root

pytestmark = [needs_root, pytest.mark.integration]

USER_MAP = [{"containerID": 0, "hostID": 0, "size": 65536}]


def _events(path: Path) -> list[dict]:
    events = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    return sorted(events, key=lambda e: e["ts_us"])


def _first(events: list[dict], predicate) -> int:
    for i, e in enumerate(events):
        if predicate(e):
            return i
    raise AssertionError("no such event")


def test_trace_of_a_user_namespace_container_is_in_the_kernels_order(runtime, bundle, tmp_path):
    def edit(config: dict) -> None:
        config["linux"]["namespaces"].append({"type": "user"})
        config["linux"]["uidMappings"] = USER_MAP
        config["linux"]["gidMappings"] = USER_MAP
        config["process"]["noNewPrivileges"] = True
        config["process"]["user"] = {"uid": 1000, "gid": 1000}
        config["linux"]["seccomp"] = {"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [
            {"names": ["reboot"], "action": "SCMP_ACT_ERRNO"}]}

    trace_file = tmp_path / "trace.jsonl"
    runtime("run", "-b", str(bundle("true", edit=edit)), "traced",
            global_args=(f"--trace={trace_file}",))
    events = _events(trace_file)
    steps = [e["step"] for e in events]
    user_ns = _first(events, lambda e: e["step"] == "unshare" and
                     e.get("flags") == ["CLONE_NEWUSER"])
    maps = _first(events, lambda e: e["step"] == "id map write")
    others = _first(events, lambda e: e["step"] == "unshare" and "CLONE_NEWPID" in e["flags"])
    assert user_ns < maps < others, steps
    assert events[user_ns]["role"] == "intermediate" and events[maps]["role"] == "runtime"
    pivot = _first(events, lambda e: e["step"] == "pivot_root")
    first_mount = _first(events, lambda e: e["step"] == "mount" and e["role"] == "init")
    assert first_mount < pivot
    proc = _first(events, lambda e: e["step"] == "mount" and e.get("fstype") == "proc")
    assert proc < pivot
    setuid = _first(events, lambda e: e["step"] == "set user")
    capset = _first(events, lambda e: e["step"] == "capset")
    assert pivot < setuid < capset, steps
    seccomp = _first(events, lambda e: e["step"] == "seccomp load")
    execve = _first(events, lambda e: e["step"] == "execve")
    assert capset < seccomp < execve
    # With no_new_privs the filter is the last thing before execve.
    assert [s for s in steps[seccomp + 1:execve] if not s.startswith("init:")] == []
    assert events[execve]["path"] == "/bin/true"
    assert events[-1]["ts_us"] - events[0]["ts_us"] < 60_000_000
    for e in events:
        assert 0 <= e["dur_us"] < 10_000_000, e
    # Every event has a process role; the init sees itself as pid 1.
    assert {e["role"] for e in events} >= {"runtime", "intermediate", "init"}
    assert {e["pid"] for e in events if e["role"] == "init"} == {1}


def test_a_failing_mount_appears_in_the_trace_with_its_errno(runtime, bundle, tmp_path):
    def edit(config: dict) -> None:
        config["mounts"].append({"destination": "/mnt", "type": "nosuchfs",
                                 "source": "none"})

    trace_file = tmp_path / "trace.jsonl"
    result = runtime("run", "-b", str(bundle("true", edit=edit)), "badmount", check=False,
                     global_args=(f"--trace={trace_file}",))
    assert result.returncode == 1
    failed = [e for e in _events(trace_file) if e.get("error")]
    assert [(e["step"], e["fstype"], e["error"]) for e in failed] == \
        [("mount", "nosuchfs", "ENODEV")], failed


def test_trace_lines_follow_the_schema_and_summarize_adds_them_up(runtime, bundle, tmp_path):
    jsonschema = pytest.importorskip("jsonschema")
    schema = json.loads((REPO / "schemas/trace-event-schema.json").read_text())
    trace_file = tmp_path / "trace.jsonl"
    runtime("run", "-b", str(bundle("true")), "schema", global_args=(f"--trace={trace_file}",))
    for event in _events(trace_file):
        jsonschema.validate(event, schema)
    out = runtime("trace", "summarize", str(trace_file)).stdout
    assert "mounts" in out and "cgroups" in out and "execve" in out
    assert out.splitlines()[0].endswith(" ms")


def test_bare_trace_shows_the_timeline_on_stderr(runtime, bundle):
    result = runtime("--trace", "run", "-b", str(bundle("echo", "hi")), "shown")
    assert result.stdout == "hi\n"
    assert "init (pid 1)" in result.stderr and "pivot_root" in result.stderr
    assert result.stderr.strip().splitlines()[-1].startswith("total: ")
