"""The TAP parser behind the runtime-tools wrapper, fed with sample text (no runtime needed)."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from rt_tap import parse_tap

SAMPLE = """\
TAP version 13
ok 1 - create MUST generate an error if the ID is already in use
not ok 2 - kill MUST send the signal
  ---
  {
    "error": "container not running"
  }
  ...
ok 3 # SKIP cgroup v2 not mounted
not ok 4 - hostname is set # TODO not implemented yet
# a comment between results
ok 5 - state MUST report the pid
1..5
"""


def test_sample_counts_pass_fail_skip_and_todo() -> None:
    report = parse_tap(SAMPLE)
    assert [r.number for r in report.results] == [1, 2, 3, 4, 5]
    assert [r.number for r in report.passed] == [1, 5]
    assert [r.number for r in report.skipped] == [3]
    assert [r.number for r in report.failures] == [2]
    assert report.planned == 5
    assert report.summary() == "2 ok, 1 not ok, 1 skipped of 5 planned"


def test_not_ok_is_named_with_number_and_description() -> None:
    report = parse_tap(SAMPLE)
    assert report.problems() == ["not ok 2 - kill MUST send the signal"]


def test_yaml_diagnostics_attach_to_the_preceding_result() -> None:
    failure = parse_tap(SAMPLE).failures[0]
    assert failure.diagnostics[0].strip() == "---"
    assert any("container not running" in line for line in failure.diagnostics)
    assert failure.diagnostics[-1].strip() == "..."


def test_comments_are_kept() -> None:
    assert "a comment between results" in parse_tap(SAMPLE).comments


def test_skip_and_todo_directives_carry_reasons() -> None:
    results = parse_tap(SAMPLE).results
    assert (results[2].directive, results[2].reason, results[2].description) == ("SKIP", "cgroup v2 not mounted", "")
    assert (results[3].directive, results[3].reason) == ("TODO", "not implemented yet")
    assert results[3].title() == "not ok 4 - hostname is set # TODO not implemented yet"


def test_skip_all_plan_is_not_a_problem() -> None:
    report = parse_tap("TAP version 13\n1..0 # SKIP needs cgroup v2\n")
    assert report.skip_all_reason == "needs cgroup v2"
    assert report.problems() == []


def test_missing_plan_means_the_program_stopped_early() -> None:
    report = parse_tap("ok 1 - first\nok 2 - second\n")
    assert report.problems() == ["no plan line (1..N): the program stopped after 2 results"]


def test_empty_output_leaves_the_verdict_to_the_exit_status() -> None:
    report = parse_tap("")
    assert report.problems() == []
    assert report.summary() == "0 ok, 0 not ok, 0 skipped of ? planned"


def test_plan_mismatch_is_reported() -> None:
    report = parse_tap("1..3\nok 1 - first\n")
    assert report.problems() == ["planned 3 results, got 1"]


def test_bail_out_is_reported() -> None:
    report = parse_tap("ok 1 - first\nBail out! runtime crashed\n1..1\n")
    assert report.problems() == ["Bail out! runtime crashed"]


def test_results_without_numbers_are_numbered_in_order() -> None:
    report = parse_tap("ok - a\nnot ok - b\n1..2\n")
    assert [(r.number, r.ok, r.description) for r in report.results] == [(1, True, "a"), (2, False, "b")]


def test_plain_hash_comment_after_a_result_is_not_a_directive() -> None:
    report = parse_tap("not ok 1 - pids limit\n# expect: 5, actual: 6\n1..1\n")
    assert report.failures[0].description == "pids limit"
    assert report.comments == ["expect: 5, actual: 6"]
    assert report.failures[0].diagnostics == ["# expect: 5, actual: 6"]


def test_garbage_never_raises() -> None:
    report = parse_tap("\x00\nokay\nnot okay\n  ---\n")
    assert report.results == []
    assert report.planned is None
