"""Bad input gets one clear line naming the field or the failing step, and leaves nothing."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from pyrunc_testing import needs_root

pytestmark = [needs_root, pytest.mark.integration]


def error_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if "warning" not in line]


def assert_nothing_left(runtime, cgroup_path: str, cid: str) -> None:
    assert not (runtime.root / cid).exists()
    assert not Path(f"/sys/fs/cgroup/pids{cgroup_path}").exists()


def test_schema_error_names_json_pointer_and_spec_section(runtime, bundle, cgroup_path):
    b = bundle("true", edit=lambda c: c["linux"]["namespaces"].__setitem__(0, {"type": "pidd"}))
    result = runtime("create", "-b", str(b), "bad", check=False)
    assert result.returncode == 1
    [line] = error_lines(result.stderr)
    assert "/linux/namespaces/0/type" in line and "config-linux.md" in line and "pidd" in line
    assert_nothing_left(runtime, cgroup_path, "bad")


def test_wrong_type_names_the_field(runtime, bundle, cgroup_path):
    b = bundle("true", edit=lambda c: c["process"].__setitem__("args", "sh"))
    result = runtime("run", "-b", str(b), "bad", check=False)
    assert result.returncode == 1
    [line] = error_lines(result.stderr)
    assert "/process/args" in line
    assert_nothing_left(runtime, cgroup_path, "bad")


def test_invalid_json_reports_line_and_column(runtime, tmp_path):
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / "config.json").write_text('{\n  "ociVersion": "1.0.0",\n  oops\n}')
    result = runtime("create", "-b", str(tmp_path / "b"), "bad", check=False)
    assert result.returncode == 1
    assert "line 3 column 3" in result.stderr
    assert not (runtime.root / "bad").exists()


def test_missing_rootfs_names_root_path(runtime, bundle, cgroup_path):
    b = bundle("true", edit=lambda c: c["root"].__setitem__("path", "nowhere"))
    result = runtime("create", "-b", str(b), "bad", check=False)
    assert result.returncode == 1 and "/root/path" in result.stderr and "ENOENT" in result.stderr
    assert_nothing_left(runtime, cgroup_path, "bad")


def test_failing_mount_names_the_mount_and_errno(runtime, bundle, cgroup_path):
    b = bundle("true", edit=lambda c: c["mounts"].append(
        {"destination": "/weird", "type": "no-such-fs", "source": "x"}))
    result = runtime("create", "-b", str(b), "bad", check=False)
    assert result.returncode == 1
    [line] = error_lines(result.stderr)
    assert "/weird" in line and "ENODEV" in line
    assert_nothing_left(runtime, cgroup_path, "bad")


def test_missing_bundle_config_is_one_line(runtime, tmp_path):
    result = runtime("create", "-b", str(tmp_path / "absent"), "bad", check=False)
    assert result.returncode == 1 and "config.json" in result.stderr
    assert "Traceback" not in result.stderr


def test_json_log_gets_a_single_error_record_for_a_failed_create(runtime, bundle, tmp_path):
    log = tmp_path / "log.json"
    b = bundle("no-such-program")
    result = runtime("create", "-b", str(b), "bad", check=False,
                     global_args=("--log", str(log), "--log-format=json"))
    assert result.returncode == 1
    records = [json.loads(line) for line in log.read_text().splitlines()]
    errors = [r for r in records if r["level"] == "error"]
    assert len(errors) == 1
    assert 'executable file not found in $PATH' in errors[0]["msg"]
    # with --log, the plain line still reaches stderr for the caller
    assert "executable file not found" in result.stderr


def test_state_of_a_real_container_imports_nothing_heavy(runtime, bundle):
    runtime("create", "-b", str(bundle("true")), "hot")
    code = ("import sys\nfrom pyrunc.cli.main import main\n"
            f"main(['--root', {str(runtime.root)!r}, 'state', 'hot'])\n"
            "heavy = [m for m in ('jsonschema', 'fastjsonschema', 'pyroute2', 'collections',\n"
            "                     'enum', 'functools') if m in sys.modules]\n"
            "sys.stdout.write('\\nHEAVY=' + ','.join(heavy))\n")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            stdin=subprocess.DEVNULL)
    assert '"status": "created"' in result.stdout
    assert result.stdout.rstrip().endswith("HEAVY="), result.stdout
    runtime("delete", "hot")


def test_create_and_delete_of_a_plain_bundle_do_not_import_pyroute2_typing_re_or_collections(
        runtime, bundle, tmp_path):
    code = ("import sys\nfrom pyrunc.cli.main import main\n"
            f"root = {str(runtime.root)!r}\n"
            f"rc = main(['--root', root, 'create', '-b', {str(bundle('true'))!r}, 'plain'])\n"
            "after_create = 'pyroute2' in sys.modules\n"
            "typing = any(m in sys.modules for m in ('typing', 're', 'collections'))\n"
            "rc += main(['--root', root, 'delete', '--force', 'plain'])\n"
            "sys.stderr.write(f'\\nRC={rc} CREATE={after_create} "
            "DELETE={\"pyroute2\" in sys.modules} TYPING_OR_RE={typing}')\n")
    err = tmp_path / "err"
    with open(err, "w") as f:   # a file: the container's init inherits it
        subprocess.run([sys.executable, "-c", code], stdin=subprocess.DEVNULL,
                       stdout=subprocess.DEVNULL, stderr=f, timeout=60)
    assert err.read_text().rstrip().endswith("RC=0 CREATE=False DELETE=False TYPING_OR_RE=False"), \
        err.read_text()


def test_unreadable_namespace_path_reports_the_real_errno(runtime, bundle):
    b = bundle("true", edit=lambda c: c["linux"]["namespaces"].append(
        {"type": "time", "path": "/proc/self/fd/999/none"}))
    result = runtime("create", "-b", str(b), "nsp", check=False)
    assert result.returncode == 1 and "/linux/namespaces/" in result.stderr
    assert "ENOENT" in result.stderr or "ENOTDIR" in result.stderr


def test_unimplemented_config_parts_are_reported_not_dropped(runtime, bundle, tmp_path):
    log = tmp_path / "log.json"
    b = bundle("true", edit=lambda c: c["linux"].__setitem__("personality",
                                                             {"domain": "LINUX"}))
    runtime("run", "-b", str(b), "na", global_args=("--log", str(log), "--log-format", "json"))
    records = [json.loads(line) for line in log.read_text().splitlines()]
    assert any(r["level"] == "warning" and "/linux/personality" in r["msg"] for r in records)
