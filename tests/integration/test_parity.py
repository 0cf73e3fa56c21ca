"""Behaviour compared with runc's: the same bundle run by pyrunc and by Debian's runc 1.1.5.

Each test runs both runtimes (runc with a --root and a cgroupsPath of its own, always deleted)
and asserts that what the container, a hook or a caller sees is the same. Where runc 1.1.5
predates the behaviour, the test follows runc 1.5's source and says so.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

import pytest
from runc_compare import both, needs_runc, runc  # noqa: F401 - runc is a fixture

from pyrunc_testing import needs_root, reap_children

pytestmark = [needs_root, needs_runc, pytest.mark.integration]


# --- spec -------------------------------------------------------------------------------------------

def test_spec_default_namespaces_are_runcs(tmp_path, runtime, runc):
    """runc's example spec has a cgroup namespace only on a pure cgroup v2 host."""
    ours, theirs = tmp_path / "ours", tmp_path / "theirs"
    ours.mkdir()
    theirs.mkdir()
    runtime("spec", "-b", str(ours))
    runc("spec", "-b", str(theirs))
    namespaces = [json.loads((d / "config.json").read_text())["linux"]["namespaces"]
                  for d in (ours, theirs)]
    assert namespaces[0] == namespaces[1]


# --- hooks ------------------------------------------------------------------------------------------

def test_hook_without_env_gets_the_runtimes_environment(runtime, runc, bundle, cgroup_path,
                                                        tmp_path):
    def edit(config: dict[str, Any]) -> None:
        config["hooks"] = {"createRuntime": [
            {"path": "/bin/sh", "args": ["sh", "-c", f"env > {tmp_path}/env-$RUNTIME"]}]}

    ours, theirs = both(runtime, runc, bundle, cgroup_path, "true", edit=edit)
    runtime("run", "-b", str(ours), "he", env={**os.environ, "RUNTIME": "pyrunc"})
    runc("run", "-b", str(theirs), "he", env={**os.environ, "RUNTIME": "runc"})
    for name in ("pyrunc", "runc"):
        assert f"RUNTIME={name}" in (tmp_path / f"env-{name}").read_text().splitlines()


def test_start_container_hook_without_env_sees_the_programs_environment(
        runtime, runc, bundle, cgroup_path, tmp_path):
    """startContainer hooks run in the container; runc gives them the program's env (HOME
    added as for the program)."""
    out = tmp_path / "out"
    out.mkdir()

    def edit(config: dict[str, Any]) -> None:
        config["process"]["env"] = ["PATH=/bin:/usr/bin", "FROM_CONFIG=1"]
        config["mounts"].append({"destination": "/out", "type": "bind", "source": str(out),
                                 "options": ["rbind"]})
        config["hooks"] = {"startContainer": [
            {"path": "/bin/sh", "args": ["sh", "-c", "env | sort > /out/env-$0", "x"]}]}

    ours, theirs = both(runtime, runc, bundle, cgroup_path, "true", edit=edit)
    for rt, b, name in ((runtime, ours, "pyrunc"), (runc, theirs, "runc")):
        config = json.loads((b / "config.json").read_text())
        config["hooks"]["startContainer"][0]["args"][-1] = name
        (b / "config.json").write_text(json.dumps(config))
        rt("run", "-b", str(b), "sh-" + name, env={**os.environ, "LEAK": "1"})
    seen = {name: set((out / f"env-{name}").read_text().split()) - {"PWD=/", "SHLVL=1"}
            for name in ("pyrunc", "runc")}
    assert "FROM_CONFIG=1" in seen["pyrunc"] and "HOME=/root" in seen["pyrunc"]
    assert seen["pyrunc"] == seen["runc"]


# --- output that callers read -----------------------------------------------------------------------

def _keys_in_order(text: str) -> list[list[str]]:
    return [[k for k, _ in pairs] for pairs in
            json.loads(text, object_pairs_hook=lambda pairs: pairs)]


def test_list_json_is_byte_compatible_with_runcs(runtime, runc, bundle, cgroup_path):
    """Same field order, compact separators, one newline; `null` when there is nothing.
    (A missing explicit --root is an error in runc 1.5, `null` in 1.1.5: both roots exist here.)"""
    runtime.root.mkdir()
    runc.root.mkdir()
    assert runtime("list", "--format", "json").stdout == runc("list", "--format",
                                                              "json").stdout == "null\n"

    def edit(config: dict[str, Any]) -> None:
        config["annotations"] = {"org.example/key": "a<b>&c é"}

    ours, theirs = both(runtime, runc, bundle, cgroup_path, "sleep", "100", edit=edit)
    runtime("create", "-b", str(ours), "lj")
    runc("create", "-b", str(theirs), "lj")
    try:
        texts = [rt("list", "--format", "json").stdout for rt in (runtime, runc)]
    finally:
        runtime("delete", "--force", "lj")
        runc("delete", "--force", "lj")
    assert _keys_in_order(texts[0]) == _keys_in_order(texts[1])
    for text in texts:
        assert text.endswith("}]\n") and ": " not in text and ", " not in text.replace(
            "a\\u003cb\\u003e\\u0026c é", "")
        assert '"org.example/key":"a\\u003cb\\u003e\\u0026c é"' in text
    ours_doc, theirs_doc = (json.loads(t)[0] for t in texts)
    assert ours_doc["status"] == theirs_doc["status"] == "created"
    assert ours_doc["owner"] == theirs_doc["owner"] == "root"


@pytest.mark.parametrize("args", [["-h"], ["state", "-h"], ["kill", "-h"], ["list", "-h"]])
def test_help_starts_as_runcs(runtime, runc, args):
    """The NAME section: `<name> [<command>] - <runc's summary>`, the runtime's name aside."""
    ours = runtime(*args).stdout.splitlines()[:2]
    theirs = runc(*args).stdout.splitlines()[:2]
    assert ours == [line.replace("runc", "pyrunc", 1) for line in theirs]


def test_debug_without_log_writes_records_to_a_non_terminal_stderr(runtime, runc):
    """runc (logrus) writes `time=… level=… msg=…` records to stderr when there is no --log."""
    ours = runtime("--debug", "state", "absent", check=False).stderr.splitlines()
    theirs = runc("--debug", "state", "absent", check=False).stderr.splitlines()
    assert theirs and all(line.startswith("time=") for line in theirs)
    assert ours and all(line.startswith("time=") for line in ours)
    assert any(" level=debug " in line for line in ours)
    assert ours[-1].split(" ", 1)[1] == theirs[-1].split(" ", 1)[1].split(" func=")[0]


# --- config.json ------------------------------------------------------------------------------------

def test_null_for_an_optional_field_means_absent_as_go_reads_it(runtime, runc, bundle,
                                                                cgroup_path):
    def edit(config: dict[str, Any]) -> None:
        config["hooks"] = None
        config["annotations"] = None
        config["linux"]["timeOffsets"] = None
        config["linux"]["seccomp"] = None
        config["process"]["rlimits"] = None
        config["process"]["capabilities"]["ambient"] = None

    ours, theirs = both(runtime, runc, bundle, cgroup_path, "echo", "ok", edit=edit)
    assert runtime("run", "-b", str(ours), "nl").stdout == "ok\n"
    assert runc("run", "-b", str(theirs), "nl").stdout == "ok\n"


@pytest.mark.parametrize("field, value, expected", [
    ("timeOffsets", 5, "expected object, got integer 5"),
    ("sysctl", [], "expected object with string values, got array []"),
])
def test_a_wrong_non_null_value_still_fails_saying_what_was_expected(runtime, bundle, field,
                                                                     value, expected):
    def edit(config: dict[str, Any]) -> None:
        config["linux"][field] = value

    result = runtime("create", "-b", str(bundle("true", edit=edit)), "bad", check=False)
    assert result.returncode == 1
    assert f"/linux/{field}: {expected}" in result.stderr, result.stderr


def test_a_required_field_given_as_null_is_missing(runtime, bundle):
    def edit(config: dict[str, Any]) -> None:
        config["process"]["cwd"] = None

    result = runtime("create", "-b", str(bundle("true", edit=edit)), "bad", check=False)
    assert result.returncode == 1
    assert "/process/cwd: required property is missing" in result.stderr, result.stderr


# --- error and warning wording that callers match ---------------------------------------------------

def test_frozen_cgroup_is_refused_with_runcs_words(runtime, bundle, cgroup_path):
    """runc 1.5 (libcontainer/factory_linux.go; 1.1.5 has no such check): creating into a
    frozen cgroup fails with "container's cgroup unexpectedly frozen"."""
    freezer = Path("/sys/fs/cgroup/freezer", cgroup_path.lstrip("/"))
    freezer.mkdir(parents=True)
    try:
        (freezer / "freezer.state").write_text("FROZEN")
        result = runtime("create", "-b", str(bundle("true")), "fz", check=False)
        assert result.returncode == 1
        assert "container's cgroup unexpectedly frozen" in result.stderr, result.stderr
        assert not (runtime.root / "fz").exists()
    finally:
        (freezer / "freezer.state").write_text("THAWED")
        freezer.rmdir()


def test_ambient_capability_that_cannot_be_raised_is_a_warning(runtime, bundle, tmp_path):
    """runc 1.5 (libcontainer/capabilities; 1.1.5 ignored it silently, as its capability
    package did): each ambient capability the kernel refuses is a warning, the rest are set."""
    def edit(config: dict[str, Any]) -> None:
        config["process"]["user"] = {"uid": 1000, "gid": 1000}
        config["process"]["capabilities"] = {
            name: ["CAP_KILL", "CAP_CHOWN"] for name in ("bounding", "effective", "permitted")}
        config["process"]["capabilities"].update(inheritable=["CAP_KILL"],
                                                 ambient=["CAP_KILL", "CAP_CHOWN"])

    log_file = tmp_path / "log.json"
    out = runtime("run", "-b", str(bundle("grep", "CapAmb", "/proc/self/status", edit=edit)),
                  "amb", global_args=("--log", str(log_file), "--log-format", "json")).stdout
    assert out.split() == ["CapAmb:", "0000000000000020"]
    records = [json.loads(line) for line in log_file.read_text().splitlines()]
    assert [r["msg"] for r in records if "ambient" in r["msg"]] == [
        "can't raise ambient capability CAP_CHOWN: operation not permitted"]
    assert records[[r["msg"] for r in records].index(
        "can't raise ambient capability CAP_CHOWN: operation not permitted")]["level"] == "warning"


def test_words_containerd_matches_are_runcs(runtime, runc, bundle, cgroup_path):
    """The shim matches "does not exist" (state, delete, kill of an unknown id) and
    "container not running" (kill of a stopped container) in the combined output."""
    for rt in (runtime, runc):
        for args in (["state", "ghost"], ["delete", "ghost"], ["kill", "ghost", "9"]):
            result = rt(*args, check=False)
            assert result.returncode == 1 and "does not exist" in result.stderr, (args,
                                                                                 result.stderr)
    ours, theirs = both(runtime, runc, bundle, cgroup_path, "true")
    for rt, b in ((runtime, ours), (runc, theirs)):
        rt("create", "-b", str(b), "done")
        rt("start", "done")
        for _ in range(200):
            if rt("state", "done").stdout.count('"stopped"'):
                break
            reap_children()
            time.sleep(0.01)
        result = rt("kill", "done", "15", check=False)
        assert result.returncode == 1 and "container not running" in result.stderr, \
            result.stderr
        rt("delete", "done")


def test_null_inside_an_array_is_still_refused_saying_what_was_expected(runtime, bundle):
    def edit(config: dict[str, Any]) -> None:
        config["mounts"].append(None)

    b = bundle("true", edit=edit)
    result = runtime("create", "-b", str(b), "bad", check=False)
    assert result.returncode == 1
    index = len(json.loads((b / "config.json").read_text())["mounts"]) - 1
    assert f"/mounts/{index}: expected object, got null" in result.stderr, result.stderr
