"""The runtime-spec MUSTs (runtime.md, features.md) that pyrunc's own tests cover.

Each test names the requirement it checks; they run real containers as root.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from pyrunc_testing import needs_root, reap_children

pytestmark = [needs_root, pytest.mark.integration]

SCHEMAS = Path(__file__).resolve().parents[2] / "schemas"


def schema_validator(name: str):  # type: ignore[no-untyped-def]
    """A jsonschema validator for one of the project's schemas (resolving its file refs)."""
    import jsonschema
    from referencing import Registry, Resource

    resources = [(p.name, Resource.from_contents(json.loads(p.read_text())))
                 for p in SCHEMAS.glob("*.json")]
    registry = Registry().with_resources(resources)
    return jsonschema.Draft4Validator(json.loads((SCHEMAS / name).read_text()), registry=registry)


def test_state_output_matches_the_state_schema_in_every_status(runtime, bundle):
    validator = schema_validator("state-schema.json")
    runtime("create", "-b", str(bundle("sleep", "100")), "s")
    seen = [runtime.state("s")]
    runtime("start", "s")
    seen.append(runtime.state("s"))
    runtime("kill", "s", "KILL")
    deadline = time.monotonic() + 10
    while runtime.state("s")["status"] != "stopped" and time.monotonic() < deadline:
        reap_children()
        time.sleep(0.02)
    seen.append(runtime.state("s"))
    assert [s["status"] for s in seen] == ["created", "running", "stopped"]
    for state in seen:
        validator.validate(state)
    runtime("delete", "s")


def test_features_output_matches_the_features_schema(runtime):
    schema_validator("features-schema.json").validate(json.loads(runtime("features").stdout))


def test_user_process_must_not_run_before_start(runtime, bundle, tmp_path):
    """runtime.md create: 'the user-specified program MUST NOT be run at this time'."""
    marker = "/tmp/started"
    b = bundle("sh", "-c", f"touch {marker}; sleep 100",
               edit=lambda c: c["root"].__setitem__("readonly", False))
    runtime("create", "-b", str(b), "m")
    time.sleep(0.3)
    assert not (b / "rootfs" / "tmp" / "started").exists()
    runtime("start", "m")
    deadline = time.monotonic() + 10
    while not (b / "rootfs" / "tmp" / "started").exists():
        assert time.monotonic() < deadline, "program did not run after start"
        time.sleep(0.02)
    runtime("delete", "--force", "m")


def test_create_with_an_existing_id_must_fail_without_touching_it(runtime, bundle):
    b = bundle("sleep", "100")
    runtime("create", "-b", str(b), "x")
    assert runtime("create", "-b", str(b), "x", check=False).returncode != 0
    assert runtime.state("x")["status"] == "created"
    runtime("delete", "x")


def test_start_of_a_container_that_is_not_created_must_fail(runtime, bundle):
    runtime("run", "-d", "-b", str(bundle("sleep", "100")), "r")
    assert runtime("start", "r", check=False).returncode != 0
    runtime("delete", "--force", "r")


def test_delete_of_a_running_container_must_fail(runtime, bundle):
    runtime("run", "-d", "-b", str(bundle("sleep", "100")), "r")
    result = runtime("delete", "r", check=False)
    assert result.returncode != 0 and runtime.state("r")["status"] == "running"
    runtime("delete", "--force", "r")


def test_kill_of_a_stopped_container_must_fail(runtime, bundle):
    runtime("run", "-d", "-b", str(bundle("true")), "t")
    deadline = time.monotonic() + 10
    while runtime.state("t")["status"] != "stopped" and time.monotonic() < deadline:
        reap_children()
        time.sleep(0.02)
    assert runtime("kill", "t", "TERM", check=False).returncode != 0
    runtime("delete", "t")


def test_operations_on_unknown_ids_must_fail(runtime):
    for command in ("state", "start", "kill", "delete"):
        assert runtime(command, "unknown", check=False).returncode != 0


def test_prestart_failure_must_stop_creation_and_clean_up(runtime, bundle, cgroup_path):
    """config.md hooks: a failing prestart/createRuntime hook MUST stop the container."""
    b = bundle("true", edit=lambda c: c.__setitem__(
        "hooks", {"prestart": [{"path": "/bin/false"}]}))
    result = runtime("create", "-b", str(b), "h", check=False)
    assert result.returncode != 0 and "error running prestart hook #0: exit status 1" in result.stderr
    assert not (runtime.root / "h").exists()
    assert not Path(f"/sys/fs/cgroup/pids{cgroup_path}").exists()
