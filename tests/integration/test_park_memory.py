"""The memory steps around the init's wait for `start` happen in the real create path.

`tests/unit/test_park.py` shows that each step frees what it should; this shows that `create`
takes them, in their places: the intermediate (forked from the runtime) unloads the config
validator before it imports the init's modules, and
the init trims the C heap after its READY and before it execs the program. (Sizes are not
asserted: the waiting init's RssAnon depends on the interpreter and its modules.)
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from pyrunc_testing import needs_root

pytestmark = [needs_root, pytest.mark.integration]


def _events(path: Path) -> list[dict]:
    events = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    return sorted(events, key=lambda e: e["ts_us"])


def _index(events: list[dict], step: str, role: str) -> int:
    found = [i for i, e in enumerate(events) if e["step"] == step and e["role"] == role]
    assert len(found) == 1, (step, role, [(e["role"], e["step"]) for e in events])
    return found[0]


def test_create_unloads_the_validator_and_the_init_trims_before_waiting(runtime, bundle,
                                                                        tmp_path):
    trace_file = tmp_path / "trace.jsonl"
    runtime("run", "-b", str(bundle("true")), "parked", global_args=(f"--trace={trace_file}",))
    events = _events(trace_file)
    unload = _index(events, "unload module", "intermediate")
    assert events[unload]["path"] == "pyrunc.spec._compiled_config_schema"
    fork = _index(events, "fork intermediate", "runtime")
    unshare = _index(events, "unshare", "intermediate")
    ready = _index(events, "init: wait for start", "init")
    trim = _index(events, "malloc_trim", "init")
    execve = _index(events, "execve", "init")
    assert fork < unload < unshare < ready < trim < execve
    assert events[trim]["value"] in ("0", "1")
