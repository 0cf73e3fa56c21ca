"""Hostile bundles: every config.json ends in success or one clear error line, never a traceback,
and leaves nothing behind (no state, cgroup, mount or process).

The configs are a valid busybox config mutated by hypothesis: a value somewhere in the document is
replaced by something hostile (a wrong type, a NUL byte, `..`, absurd sizes, an unknown field),
plus hand-written cases runc's advisories and fuzzers have found. PYRUNC_FUZZ_EXAMPLES sets how
many generated cases run (default 120; the long mode is 10000).
"""

from __future__ import annotations

import copy
import json
import os
from pathlib import Path
from typing import Any

import pytest

from pyrunc_testing import needs_root

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

pytestmark = [needs_root, pytest.mark.integration]

EXAMPLES = int(os.environ.get("PYRUNC_FUZZ_EXAMPLES", "120"))

HOSTILE_VALUES = st.one_of(
    st.none(), st.booleans(),
    st.sampled_from([0, -1, 2**31, 2**32, 2**63, 2**64, -2**63, 10**30]),
    st.sampled_from(["", "\x00", "a\x00b", "..", "../../../../etc", "/../../..", "/proc/self/fd/3",
                     "/proc/1/root", "x" * 10000, "/" * 5000, "é\u202e", "$(reboot)", "\n"]),
    st.lists(st.integers(), max_size=3), st.dictionaries(st.text(max_size=5), st.integers(),
                                                         max_size=2),
    st.floats(allow_nan=True),
)


def _pointers(doc: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Every path (as a tuple of keys and indexes) into the JSON document."""
    found = [prefix]
    if isinstance(doc, dict):
        for key, value in doc.items():
            found += _pointers(value, prefix + (key,))
    elif isinstance(doc, list):
        for i, value in enumerate(doc):
            found += _pointers(value, prefix + (i,))
    return found


def _replace(doc: Any, path: tuple[Any, ...], value: Any) -> Any:
    if not path:
        return value
    doc = copy.deepcopy(doc)
    target = doc
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value
    return doc


def _add_unknown(doc: Any, path: tuple[Any, ...], value: Any) -> Any:
    doc = copy.deepcopy(doc)
    target = doc
    for key in path:
        target = target[key]
    if isinstance(target, dict):
        target["x-unknown-field"] = value
    elif isinstance(target, list):
        target.append(value)
    return doc


@pytest.fixture
def hostile(runtime, bundle):
    """run(config) -> CompletedProcess, with the checks every hostile config must pass."""
    b = bundle("true")
    base = json.loads((b / "config.json").read_text())
    counter = iter(range(10**9))

    def run(config: Any) -> Any:
        (b / "config.json").write_text(json.dumps(config, allow_nan=True))
        cid = f"h{next(counter)}"
        result = runtime("run", "-b", str(b), cid, check=False, timeout=60)
        assert "Traceback" not in result.stderr, result.stderr
        if result.returncode != 0:
            errors = [line for line in result.stderr.splitlines()
                      if line.strip() and "warning" not in line]
            assert len(errors) == 1, result.stderr
            assert result.returncode in (1, 127), result
        assert not (runtime.root / cid).exists()
        return result

    run.base = base  # type: ignore[attr-defined]
    return run


def test_hostile_values_anywhere_in_the_config_end_in_one_line(hostile):
    base = hostile.base
    pointers = _pointers(base)

    @settings(max_examples=EXAMPLES, deadline=None, derandomize=True,
              suppress_health_check=list(HealthCheck))
    @given(st.sampled_from(pointers), HOSTILE_VALUES, st.booleans())
    def case(path: tuple[Any, ...], value: Any, add: bool) -> None:
        config = _add_unknown(base, path, value) if add else _replace(base, path, value)
        hostile(config)

    case()


HAND_WRITTEN: list[tuple[str, Any]] = [
    ("mount destination climbing out", lambda c: c["mounts"].append(
        {"destination": "/../../../../tmp/escape", "type": "tmpfs", "source": "tmpfs"})),
    ("mount source with a NUL", lambda c: c["mounts"].append(
        {"destination": "/mnt", "type": "bind", "source": "/tmp\x00/x", "options": ["bind"]})),
    ("uid map of 2^32 ids", lambda c: (c["linux"]["namespaces"].append({"type": "user"}),
                                       c["linux"].update(uidMappings=[{"containerID": 0,
                                                                      "hostID": 0,
                                                                      "size": 2**32}],
                                                         gidMappings=[{"containerID": 0,
                                                                      "hostID": 0,
                                                                      "size": 1}]))),
    ("thousands of mounts", lambda c: c["mounts"].extend(
        {"destination": f"/m{i}", "type": "tmpfs", "source": "tmpfs"} for i in range(3000))),
    ("a 1 MiB argument", lambda c: c["process"].update(args=["echo", "x" * (1 << 20)])),
    ("cwd through proc", lambda c: c["process"].update(cwd="/proc/self/root/../../..")),
    ("rootfs path climbing out", lambda c: c["root"].update(path="../../../../")),
    ("hostname of 10000 bytes", lambda c: c.update(hostname="h" * 10000)),
    ("env without =", lambda c: c["process"].update(env=["NOEQUALS", "=", "\x00=1"])),
    ("rlimit of an unknown type", lambda c: c["process"].update(
        rlimits=[{"type": "RLIMIT_NOPE", "soft": 1, "hard": 1}])),
    ("duplicate namespaces", lambda c: c["linux"]["namespaces"].append({"type": "pid"})),
    ("cgroupsPath climbing out", lambda c: c["linux"].update(cgroupsPath="/../../../..")),
    ("device node outside /dev", lambda c: c["linux"].update(devices=[
        {"path": "/../../dev/evil", "type": "c", "major": 1, "minor": 3}])),
]


@pytest.mark.parametrize("name, edit", HAND_WRITTEN, ids=[n for n, _ in HAND_WRITTEN])
def test_hand_written_hostile_configs_end_in_one_line(hostile, name, edit):
    config = copy.deepcopy(hostile.base)
    edit(config)
    hostile(config)
    assert not Path("/tmp/escape").exists()
