"""A small parser for the TAP (Test Anything Protocol) text that runtime-tools programs print.

The runtime-tools validation programs report one line per assertion:

    TAP version 13
    ok 1 - create MUST generate an error if the ID is already in use
    not ok 2 - kill MUST ...
      ---
      { "error": "..." }
      ...
    ok 3 # SKIP cgroup v2 is not mounted
    1..3

The pytest wrapper needs every ``not ok`` by number and description (with its diagnostics),
plus whether the program finished its plan, so it can fail with a message that names each
broken assertion. Only the parts of TAP 12/13 those programs emit are handled; anything else
is kept as a comment so nothing is silently lost.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

_RESULT = re.compile(r"^(?P<ok>not ok|ok)\b\s*(?P<num>\d+)?\s*(?:-\s*)?(?P<rest>.*)$")
_PLAN = re.compile(r"^1\.\.(?P<count>\d+)\s*(?:#\s*(?P<directive>.*))?$")
_DIRECTIVE = re.compile(r"(?<!\\)#\s*(?P<kind>skip\S*|todo\S*)\s*(?P<reason>.*)$", re.IGNORECASE)


@dataclass
class TapResult:
    """One ``ok``/``not ok`` line and the diagnostic lines indented under it."""

    number: int
    ok: bool
    description: str
    directive: str | None = None  # "SKIP" or "TODO"
    reason: str = ""
    diagnostics: list[str] = field(default_factory=list)

    @property
    def skipped(self) -> bool:
        """A SKIP result is neither a pass nor a failure."""
        return self.directive == "SKIP"

    @property
    def failed(self) -> bool:
        """``not ok`` counts unless it is marked TODO (an expected failure) or SKIP."""
        return not self.ok and self.directive is None

    def title(self) -> str:
        """The line as a person would quote it: ``not ok 7 - description``."""
        head = f"{'ok' if self.ok else 'not ok'} {self.number}"
        if self.description:
            head += f" - {self.description}"
        if self.directive:
            head += f" # {self.directive} {self.reason}".rstrip()
        return head


@dataclass
class TapReport:
    """Everything parsed from one program's output."""

    results: list[TapResult] = field(default_factory=list)
    planned: int | None = None
    skip_all_reason: str | None = None
    bail_out: str | None = None
    comments: list[str] = field(default_factory=list)

    @property
    def failures(self) -> list[TapResult]:
        return [r for r in self.results if r.failed]

    @property
    def passed(self) -> list[TapResult]:
        return [r for r in self.results if r.ok and not r.skipped]

    @property
    def skipped(self) -> list[TapResult]:
        return [r for r in self.results if r.skipped]

    def problems(self) -> list[str]:
        """Why this run is not a success, one line each, failures first (empty when green).

        Output with no results and no plan is not a problem by itself: the runtime-tools
        programs that expect the runtime to refuse a config print no TAP and report only
        through their exit status, which the caller checks.
        """
        found = [r.title() for r in self.failures]
        if self.bail_out is not None:
            found.append(f"Bail out! {self.bail_out}".rstrip())
        if self.planned is None and self.results:
            found.append(f"no plan line (1..N): the program stopped after {len(self.results)} results")
        elif self.planned is not None and self.skip_all_reason is None and self.planned != len(self.results):
            found.append(f"planned {self.planned} results, got {len(self.results)}")
        return found

    def summary(self) -> str:
        """Counts in one line, for the test report."""
        return (
            f"{len(self.passed)} ok, {len(self.failures)} not ok, {len(self.skipped)} skipped"
            f" of {self.planned if self.planned is not None else '?'} planned"
        )


def _split_directive(rest: str) -> tuple[str, str | None, str]:
    """Separate ``desc # SKIP reason`` into description, directive and reason."""
    match = _DIRECTIVE.search(rest)
    if not match:
        return rest.strip(), None, ""
    kind = "SKIP" if match.group("kind").lower().startswith("skip") else "TODO"
    return rest[: match.start()].strip(), kind, match.group("reason").strip()


def parse_tap(text: str) -> TapReport:
    """Parse TAP text into a :class:`TapReport`; never raises on odd input."""
    report = TapReport()
    in_yaml = False
    for raw in text.splitlines():
        line = raw.rstrip()
        stripped = line.strip()
        if in_yaml:
            if report.results:
                report.results[-1].diagnostics.append(line)
            if stripped == "...":
                in_yaml = False
            continue
        if stripped == "---" and raw[:1].isspace() and report.results:
            in_yaml = True
            report.results[-1].diagnostics.append(line)
            continue
        if _take_result(report, line) or _take_plan(report, line):
            continue
        if line.startswith("Bail out!"):
            report.bail_out = line[len("Bail out!") :].strip()
        elif raw[:1].isspace() and report.results and stripped:
            report.results[-1].diagnostics.append(line)
        elif stripped.startswith("#"):
            # runtime-tools prints "# expect: X, actual: Y" right after a result: keep it there too.
            report.comments.append(stripped.lstrip("#").strip())
            if report.results and report.planned is None:
                report.results[-1].diagnostics.append(line)
        elif stripped and not stripped.startswith("TAP version"):
            report.comments.append(stripped)
    return report


def _take_result(report: TapReport, line: str) -> bool:
    """Record ``line`` if it is an ``ok``/``not ok`` line; numbers default to the next one."""
    match = _RESULT.match(line)
    if not match:
        return False
    number = int(match.group("num")) if match.group("num") else len(report.results) + 1
    description, directive, reason = _split_directive(match.group("rest"))
    report.results.append(
        TapResult(
            number=number,
            ok=match.group("ok") == "ok",
            description=description,
            directive=directive,
            reason=reason,
        )
    )
    return True


def _take_plan(report: TapReport, line: str) -> bool:
    """Record a ``1..N`` plan, including the ``1..0 # SKIP reason`` form that skips everything."""
    match = _PLAN.match(line.strip())
    if not match:
        return False
    report.planned = int(match.group("count"))
    directive = match.group("directive") or ""
    if report.planned == 0 or directive.lower().startswith("skip"):
        words = directive.split(None, 1)
        report.skip_all_reason = words[1] if len(words) > 1 else (directive or "no tests planned")
    return True
