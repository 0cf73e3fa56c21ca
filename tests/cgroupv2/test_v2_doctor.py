"""`pyrunc doctor` on a pure cgroup v2 host: it says "v2" and lists the host's own controllers.

Skips unless cgroup2 is the only hierarchy; `test_vm_lane.py` runs it inside hack/vm's guest.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest
from cgroupv2_support import V2_ROOT, pure_v2_only
from pyrunc_testing import pyrunc_command

pytestmark = pure_v2_only


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    root = tmp_path_factory.mktemp("doctor") / "state"
    result = subprocess.run([*pyrunc_command(), "--root", str(root), "doctor", "--format",
                             "json"], capture_output=True, text=True, timeout=120, check=False)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def by_check(report: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {c["check"]: c for c in report["checks"]}


def test_doctor_says_v2_with_the_hosts_controllers(report):
    controllers = (V2_ROOT / "cgroup.controllers").read_text().split()
    mode = by_check(report)["cgroup.mode"]
    assert mode["status"] == "works" and mode["data"]["mode"] == "v2"
    assert mode["data"]["v1"] == []
    assert mode["data"]["v2"] == {"mountpoint": str(V2_ROOT), "controllers": controllers}
    assert "v2 driver" in mode["why"]
    not_controllers = ("cgroup.mode", "cgroup.migration")
    listed = sorted(name.split(".", 1)[1] for name, c in by_check(report).items()
                    if name.startswith("cgroup.") and name not in not_controllers
                    and c["status"] == "works")
    assert listed == sorted(controllers)


def test_each_v2_controller_says_whether_the_root_enables_it_for_children(report):
    enabled = set((V2_ROOT / "cgroup.subtree_control").read_text().split())
    found = by_check(report)
    for name in (V2_ROOT / "cgroup.controllers").read_text().split():
        data = found[f"cgroup.{name}"]["data"]
        assert data["version"] == 2 and data["mountpoint"] == str(V2_ROOT)
        assert data["enabledAtRoot"] == (name in enabled), name


#: OCI namespace type -> unshare(1) options that create it.
UNSHARE_OPTIONS = {
    "user": ["--user"], "mount": ["--mount"], "pid": ["--pid", "--fork"], "network": ["--net"],
    "ipc": ["--ipc"], "uts": ["--uts"], "cgroup": ["--cgroup"], "time": ["--time"],
}


def test_namespaces_match_unshare_and_the_json_validates_in_the_guest(report):
    # The lane's guest runs the tests chrooted into the host's files, where the kernel refuses
    # CLONE_NEWUSER: doctor must say so exactly where unshare(1) fails too.
    import jsonschema

    schema_file = Path(__file__).resolve().parents[2] / "schemas" / "doctor-schema.json"
    jsonschema.Draft4Validator(json.loads(schema_file.read_text())).validate(report)
    found = by_check(report)
    for kind, options in UNSHARE_OPTIONS.items():
        direct = subprocess.run(["unshare", *options, "true"], capture_output=True, check=False)
        assert (found[f"namespace.{kind}"]["status"] == "works") == (direct.returncode == 0), \
            (found[f"namespace.{kind}"], direct.stderr)
    assert found["fs.overlay"]["status"] == "works", found["fs.overlay"]
