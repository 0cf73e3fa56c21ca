"""The README's set-up commands and .ci/run cannot drift apart.

CI proves only what .ci/run runs; the README promises a command to readers. These tests make
the README's second set-up line and the line in .ci/run one and the same, and check that
.ci/run turns every failure, including pytest's "no tests collected" (exit 5), into a
non-zero exit.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
README = REPO / "README.md"
CI_RUN = REPO / ".ci" / "run"
BEGIN, END = "# README test command (begin)", "# README test command (end)"


def setup_commands() -> list[str]:
    """The fenced code blocks of the README's "Set up and go" section, in order."""
    text = README.read_text()
    section = text.split("## Set up and go", 1)[1].split("\n## ", 1)[0]
    return [block.strip() for block in re.findall(r"```sh\n(.*?)```", section, re.DOTALL)]


def ci_command() -> str:
    """The line between the markers in .ci/run."""
    body = CI_RUN.read_text().split(BEGIN, 1)[1].split(END, 1)[0]
    return body.strip()


def test_readme_has_exactly_two_one_line_setup_commands() -> None:
    commands = setup_commands()
    assert len(commands) == 2
    assert all("\n" not in command for command in commands)


def test_ci_runs_the_readme_test_command_verbatim() -> None:
    assert ci_command() == setup_commands()[1]


def test_readme_test_command_runs_pytest_from_the_venv() -> None:
    command = setup_commands()[1]
    assert command.startswith("apt-get update && ")
    assert command.endswith(".venv/bin/python -m pytest -q tests")


def test_readme_test_command_lints_and_type_checks_before_the_tests() -> None:
    command = setup_commands()[1]
    steps = [step.strip() for step in command.split("&&")]
    lint = steps.index(".venv/bin/ruff check pyrunc")
    types = steps.index(".venv/bin/mypy --strict pyrunc")
    assert lint < types < steps.index(".venv/bin/python -m pytest -q tests")


def _ci_run_with_command(tmp_path: Path, replacement: str) -> subprocess.CompletedProcess[str]:
    """Run a copy of .ci/run whose test command is ``replacement`` (so nothing is installed)."""
    script = CI_RUN.read_text()
    head, rest = script.split(BEGIN, 1)
    tail = rest.split(END, 1)[1]
    copy_dir = tmp_path / ".ci"
    copy_dir.mkdir()
    copy = copy_dir / "run"
    copy.write_text(f"{head}{BEGIN}\n{replacement}\n{END}{tail}")
    return subprocess.run(["bash", str(copy)], check=False, capture_output=True, text=True, stdin=subprocess.DEVNULL)


def test_ci_run_fails_when_pytest_collects_no_tests(tmp_path: Path) -> None:
    result = _ci_run_with_command(tmp_path, "true && (exit 5)")
    assert result.returncode == 5
    assert "no tests" in result.stderr


def test_ci_run_fails_when_an_early_step_fails(tmp_path: Path) -> None:
    result = _ci_run_with_command(tmp_path, "false && echo never-reached")
    assert result.returncode == 1
    assert "never-reached" not in result.stdout


def test_ci_run_succeeds_when_the_command_succeeds(tmp_path: Path) -> None:
    assert _ci_run_with_command(tmp_path, "true && true").returncode == 0
