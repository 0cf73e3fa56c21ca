"""Gather every finding and print them: a grouped text report for people, JSON for scripts
(schemas/doctor-schema.json)."""

from __future__ import annotations

import os
import time
from typing import Any

from pyrunc.doctor import AREAS, WORKS, Finding

#: Headings of the text report, per area.
HEADINGS = {
    "namespaces": "Namespaces (what a container can be isolated from)",
    "cgroups": "Control groups (what a container's resources can be limited by)",
    "filesystems": "Filesystems (how a root filesystem can be built)",
    "syscalls": "System calls pyrunc uses when the kernel has them",
    "security": "Security (seccomp and security modules)",
    "limits": "Limits every container inherits",
    "engines": "Container engines configured to use pyrunc",
    "state": "pyrunc's state",
}


def gather(root: str, containerd_config: str | None = None) -> list[Finding]:
    """Run every probe, in report order."""
    from pyrunc.doctor import cgroup_layout, engines, limits, probes

    findings = probes.all_probes()
    findings += cgroup_layout.layout()
    findings += limits.all_limits()
    findings += engines.all_engines(root, containerd_config or engines.CONTAINERD_CONFIG)
    order = {area: i for i, area in enumerate(AREAS)}
    return sorted(findings, key=lambda f: order.get(f.area, len(order)))  # stable within an area


def document(findings: list[Finding], elapsed: float) -> dict[str, Any]:
    """The JSON document (schemas/doctor-schema.json)."""
    from pyrunc import __version__

    uname = os.uname()
    works = sum(f.works for f in findings)
    return {
        "pyrunc": __version__,
        "kernel": {"release": uname.release, "machine": uname.machine},
        "euid": os.geteuid(),
        "elapsedMs": round(elapsed * 1000, 1),
        "summary": {"works": works, "doesNot": len(findings) - works},
        "checks": [f.to_json() for f in findings],
    }


def text(findings: list[Finding], elapsed: float) -> str:
    """One line per finding, `works` or `does not`, then why; grouped by area."""
    uname = os.uname()
    width = max((len(f.check) for f in findings), default=0)
    lines = [f"pyrunc doctor: Linux {uname.release} {uname.machine}, euid {os.geteuid()}"]
    area = None
    for f in findings:
        if f.area != area:
            area = f.area
            lines += ["", HEADINGS.get(area, area)]
        status = "works" if f.status == WORKS else "does not"
        lines.append(f"  {status:<9} {f.check:<{width}}  {f.why}")
    works = sum(f.works for f in findings)
    lines += ["", f"{works} work, {len(findings) - works} do not ({elapsed * 1000:.0f} ms)"]
    return "\n".join(lines) + "\n"


def run(root: str, output_format: str = "text", containerd_config: str | None = None) -> str:
    """The whole report as `output_format` ("text" or "json")."""
    start = time.monotonic()
    findings = gather(root, containerd_config)
    elapsed = time.monotonic() - start
    if output_format == "json":
        import json

        return json.dumps(document(findings, elapsed), indent=2) + "\n"
    return text(findings, elapsed)
