"""The fast launcher (`python -I -m pyrunc.launcher DEST`): a command started with -IS that
still finds pyrunc and its dependencies, and runs containers."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from pyrunc_testing import REPO, make_bundle, reap_children


def write_launcher(dest: Path) -> None:
    subprocess.run([sys.executable, "-I", "-m", "pyrunc.launcher", str(dest)], check=True,
                   cwd="/")


def test_the_launcher_starts_python_isolated_and_without_site(tmp_path):
    dest = tmp_path / "pyrunc"
    write_launcher(dest)
    first = dest.read_text().splitlines()[0]
    assert first == f"#!{sys.executable} -IS"
    assert dest.stat().st_mode & 0o777 == 0o755


def test_the_launcher_imports_this_checkout_and_runs_a_container(tmp_path):
    dest = tmp_path / "pyrunc"
    write_launcher(dest)
    text = dest.read_text()
    assert repr(str(REPO)) in text or str(REPO) in text  # an editable install: the checkout
    version = subprocess.run([str(dest), "--version"], capture_output=True, text=True, check=True)
    assert "spec: 1.3.0" in version.stdout
    bundle = make_bundle(tmp_path / "bundle", ["sh", "-c", "echo via-launcher"],
                         cgroups_path=f"/pyrunc-test/launcher-{tmp_path.name}")
    root = tmp_path / "root"
    try:
        run = subprocess.run([str(dest), "--root", str(root), "run", "-b", str(bundle), "fast"],
                             capture_output=True, text=True, timeout=60)
        assert run.returncode == 0, run.stderr
        assert run.stdout.strip() == "via-launcher"
        # A bad config still gets its explanation, which loads jsonschema from site-packages.
        config = bundle / "config.json"
        config.write_text(config.read_text().replace('"ociVersion"', '"ociVersion": 7, "x"', 1))
        bad = subprocess.run([str(dest), "--root", str(root), "create", "-b", str(bundle), "bad"],
                             capture_output=True, text=True, timeout=60)
        assert bad.returncode != 0
        assert "/ociVersion" in bad.stderr and "Traceback" not in bad.stderr, bad.stderr
    finally:
        subprocess.run([str(dest), "--root", str(root), "delete", "--force", "fast"],
                       capture_output=True)
        reap_children()
    assert not root.exists() or not list(root.iterdir())


def test_a_bad_destination_is_one_line(tmp_path):
    out = subprocess.run([sys.executable, "-I", "-m", "pyrunc.launcher",
                          str(tmp_path / "missing" / "pyrunc")], capture_output=True, text=True,
                         cwd="/")
    assert out.returncode == 1
    assert out.stderr.count("\n") == 1 and "No such file or directory" in out.stderr
