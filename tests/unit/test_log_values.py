"""Log record fields are written as json.dumps(value, default=str) would, without json."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from pyrunc import log

VALUES = ["plain", "quote \" back\\ nl\n tab\t \u00e9 \u2603 \U0001f600", "", 0, 1, -7, 10**30,
          True, False, None, 1.5, -0.0, float("nan"), float("inf"), [1, "x", None],
          {"a": (1, 2.5)}, (), b"bytes", object]


@pytest.mark.parametrize("value", VALUES, ids=repr)
@pytest.mark.parametrize("compact", [True, False])
def test_field_values_match_json_dumps(value, compact):
    separators = (",", ":") if compact else (", ", ": ")
    assert log._json_value(value, compact) == json.dumps(value, separators=separators,
                                                         default=str)


def test_writing_a_record_imports_no_json():
    code = ("import sys, os\nfrom pyrunc import log\n"
            "log.configure(None, 'json', True, stderr_is_a_person=False)\n"
            "log.debug('step', elapsed_ms=1.25, pid=7, path='/x')\n"
            "log.configure(None, 'text', True, stderr_is_a_person=False)\n"
            "log.warning('careful', n=1)\n"
            "print('json' in sys.modules)")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.stdout.strip() == "False", result.stderr
    first, second = result.stderr.splitlines()
    record = json.loads(first)
    assert record["msg"] == "step" and record["elapsed_ms"] == 1.25 and record["pid"] == 7
    assert second.endswith('level=warning msg="careful" n=1')
