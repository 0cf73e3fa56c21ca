"""CLI behaviour that needs no container: version, help, spec, features, usage errors."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from pyrunc.cli.kill import parse_signal
from pyrunc.container.state import ContainerError

PYRUNC = [sys.executable, "-m", "pyrunc"]


def run(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*PYRUNC, *args], capture_output=True, text=True, cwd=cwd, timeout=60)


def test_version_first_line_is_what_go_runc_parses():
    result = run("--version")
    assert result.returncode == 0
    lines = result.stdout.splitlines()
    assert lines[0].startswith("runc version ")
    assert any(line.startswith("spec: 1.3.0") for line in lines)


# collections, enum and functools: each is 1-3 ms of start-up with what it imports, and none of
# them is needed to find a container's state (records.py, kill's _signal and the lazy imports
# keep them off these paths).
@pytest.mark.parametrize("module", ["jsonschema", "fastjsonschema", "pyroute2", "typing",
                                    "json", "re", "collections", "enum", "functools"])
@pytest.mark.parametrize("args", [["--version"], ["state", "no-such-container"],
                                  ["kill", "no-such-container", "KILL"],
                                  ["kill", "no-such-container", "9"],
                                  ["start", "no-such-container"],
                                  ["delete", "no-such-container"]])
def test_hot_path_commands_do_not_import_heavy_modules(tmp_path, args, module):
    code = ("import sys\nfrom pyrunc.cli.main import main\n"
            f"rc = main(['--root', {str(tmp_path)!r}] + {args!r})\n"
            f"sys.stdout.write('\\nLOADED' if {module!r} in sys.modules else '\\nCLEAN')\n")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.stdout.rstrip().endswith("CLEAN"), result.stdout + result.stderr


def test_spec_writes_a_tab_indented_config_that_validates(tmp_path):
    from pyrunc.spec.validate import validate_config

    assert run("spec", "--bundle", str(tmp_path)).returncode == 0
    text = (tmp_path / "config.json").read_text()
    assert text.startswith("{\n\t\"ociVersion\"")
    validate_config(json.loads(text))
    again = run("spec", "--bundle", str(tmp_path))
    assert again.returncode == 1 and "File config.json exists. Remove it first" in again.stderr


def test_spec_rootless_adds_a_user_namespace_with_the_callers_ids(tmp_path):
    assert run("spec", "--rootless", "-b", str(tmp_path)).returncode == 0
    config = json.loads((tmp_path / "config.json").read_text())
    types = [ns["type"] for ns in config["linux"]["namespaces"]]
    assert types.count("user") == 1 and "network" not in types
    assert config["linux"]["uidMappings"] == [{"containerID": 0, "hostID": os.geteuid(),
                                               "size": 1}]
    assert config["linux"]["gidMappings"] == [{"containerID": 0, "hostID": os.getegid(),
                                               "size": 1}]
    assert "resources" not in config["linux"]
    # As runc's: no uid=/gid= mount option (host ids the namespace does not map), /sys a bind.
    assert not [o for m in config["mounts"] for o in m.get("options", [])
                if o.startswith(("uid=", "gid="))]
    sys_mount = next(m for m in config["mounts"] if m["destination"] == "/sys")
    assert sys_mount == {"destination": "/sys", "type": "none", "source": "/sys",
                         "options": ["rbind", "nosuid", "noexec", "nodev", "ro"]}


def test_features_reports_what_is_implemented():
    result = run("features")
    assert result.returncode == 0
    doc = json.loads(result.stdout)
    assert doc["ociVersionMin"] == "1.0.0" and doc["ociVersionMax"] == "1.3.0"
    assert set(doc["linux"]["namespaces"]) == {"pid", "network", "mount", "ipc", "uts", "user",
                                              "cgroup", "time"}
    assert doc["linux"]["seccomp"]["enabled"] is True
    assert "SCMP_ACT_ERRNO" in doc["linux"]["seccomp"]["actions"]
    assert "rro" in doc["mountOptions"]
    assert "CAP_SYS_ADMIN" in doc["linux"]["capabilities"]


def test_usage_error_prints_incorrect_usage_on_stdout_and_exits_1():
    result = run("start")
    assert result.returncode == 1
    assert result.stdout.startswith("Incorrect Usage.")
    assert result.stderr.strip()


def test_unknown_command_fails_without_writing_stdout():
    result = run("frobnicate")
    assert result.returncode == 3 and result.stdout == ""
    assert "No help topic for 'frobnicate'" in result.stderr


@pytest.mark.parametrize("command, code", [("restore", 1), ("checkpoint", 1)])
def test_runc_commands_not_implemented_yet_fail_clearly(command, code):
    # podman takes `checkpoint --help` exiting 0 as "checkpoint is supported"
    result = run(command, "--help")
    assert result.returncode == code and result.stdout == ""
    assert "not implemented yet" in result.stderr


def test_warnings_stay_off_a_non_terminal_stderr_without_a_log_file(tmp_path):
    """conmon hands the runtime the container's stderr: a successful call prints nothing."""
    config = {"ociVersion": "1.0.0", "process": {"args": ["true"], "cwd": "/"},
              "root": {"path": "rootfs"}}
    (tmp_path / "config.json").write_text(json.dumps(config))
    code = ("import sys\nfrom pyrunc import log\nfrom pyrunc.cli import main\n"
            "log.configure(None, 'text', False, stderr_is_a_person=False)\n"
            "log.warning('hidden')\nlog.error('shown')\n")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.stderr == "pyrunc: shown\n"


def test_systemd_cgroup_is_a_clear_error_for_create(tmp_path):
    result = run("--root", str(tmp_path), "--systemd-cgroup", "create", "x")
    assert result.returncode == 1 and "systemd cgroup driver is not supported" in result.stderr


@pytest.mark.parametrize("text, number", [("9", 9), ("KILL", 9), ("SIGKILL", 9), ("sigterm", 15),
                                          ("USR1", 10), ("RTMIN+1", 35), ("0", 0)])
def test_parse_signal(text, number):
    assert parse_signal(text) == number


@pytest.mark.parametrize("text", ["NOPE", "-1", "999", "SIG"])
def test_parse_signal_rejects_unknown(text):
    with pytest.raises(ContainerError, match="unknown signal"):
        parse_signal(text)
