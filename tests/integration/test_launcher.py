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


def _entry_points(tmp_path: Path) -> dict[str, list[str]]:
    """Every way the command is started: the fast launcher, the installed script, -m."""
    dest = tmp_path / "pyrunc"
    write_launcher(dest)
    return {"launcher": [str(dest)], "script": [str(Path(sys.executable).parent / "pyrunc")],
            "module": [sys.executable, "-m", "pyrunc"]}


def test_every_entry_point_flushes_all_output_before_it_leaves(tmp_path):
    """The command skips the interpreter's teardown (os._exit): what it printed must still
    arrive whole, through a pipe and into a file, with the command's own exit status."""
    import json

    # In a process of its own: main() configures the log for the process it runs in.
    ordinary = subprocess.run([sys.executable, "-c", "from pyrunc.cli.main import main; "
                               "raise SystemExit(main(['features']))"],
                              capture_output=True, text=True, timeout=30, check=True)
    for name, argv in _entry_points(tmp_path).items():
        piped = subprocess.run([*argv, "features"], capture_output=True, text=True, timeout=30)
        assert piped.returncode == 0, (name, piped.stderr)
        assert json.loads(piped.stdout) == json.loads(ordinary.stdout), name
        out = tmp_path / f"{name}.out"
        with open(out, "w") as f:
            assert subprocess.run([*argv, "features"], stdout=f, timeout=30).returncode == 0
        assert out.read_text() == piped.stdout, name
        missing = subprocess.run([*argv, "--root", str(tmp_path / "root"), "state", "none"],
                                 capture_output=True, text=True, timeout=30)
        assert missing.returncode == 1 and missing.stderr.count("\n") == 1, (name, missing)


def test_output_to_a_closed_pipe_ends_as_the_ordinary_exit_does(tmp_path):
    """A reader that went away: the flush fails, and the command falls back to Python's own
    exit, with the status and the words it had before it skipped the teardown."""
    import os

    fast = tmp_path / "pyrunc"
    write_launcher(fast)
    ordinary = tmp_path / "pyrunc-ordinary"
    ordinary.write_text(fast.read_text().replace(
        "import main_and_exit\n\nmain_and_exit()", "import main\n\nraise SystemExit(main())"))
    ordinary.chmod(0o755)
    assert "raise SystemExit(main())" in ordinary.read_text()
    twins = [([str(fast)], [str(ordinary)]),
             ([sys.executable, "-m", "pyrunc"],
              [sys.executable, "-c", "import sys; from pyrunc.cli.main import main; "
               "sys.argv[0] = 'pyrunc'; raise SystemExit(main())"])]

    def to_closed_pipe(argv: list[str]) -> tuple[int, str]:
        r, w = os.pipe()
        os.close(r)
        try:
            proc = subprocess.run([*argv, "features"], stdout=w, stderr=subprocess.PIPE,
                                  text=True, timeout=30)
        finally:
            os.close(w)
        return proc.returncode, proc.stderr

    for argv, twin in twins:
        assert to_closed_pipe(argv) == to_closed_pipe(twin), argv
