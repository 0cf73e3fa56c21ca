"""pyrunc.fastjson must read and write exactly what the json module does for pyrunc's data."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from pyrunc import fastjson
from pyrunc.spec.defaults import default_config

DOCS = [
    {},
    [],
    {"a": 1, "b": [1, 2, {"c": None}], "d": True, "e": False, "f": -7, "g": 1.5},
    {"unicode": "h\u00e9llo \u2603 \U0001f600", "ctrl": "tab\tnl\n\"quote\" back\\slash"},
    {"nested": {"empty": {}, "list": [], "deep": [[[]]]}},
    default_config(),
    ["x", 0, 10**20, -0.25],
]


@pytest.mark.parametrize("doc", DOCS)
@pytest.mark.parametrize("indent", [None, 2, 4])
def test_dumps_matches_json(doc, indent):
    assert fastjson.dumps(doc, indent=indent) == json.dumps(doc, indent=indent)


@pytest.mark.parametrize("doc", DOCS)
def test_loads_round_trips(doc):
    assert fastjson.loads(json.dumps(doc)) == doc
    assert fastjson.loads(json.dumps(doc, indent=2).encode()) == doc
    assert fastjson.loads("  \n" + json.dumps(doc) + "\n ") == doc


@pytest.mark.parametrize("text", ["", "{", '{"a": }', "[1,]", "{} extra", "nul"])
def test_loads_rejects_malformed(text):
    with pytest.raises(ValueError):
        fastjson.loads(text)


def test_dumps_rejects_unknown_types():
    with pytest.raises(TypeError):
        fastjson.dumps({"x": object()})


def test_importing_it_does_not_import_json():
    import subprocess
    import sys

    code = "import sys, pyrunc.fastjson; print('json' in sys.modules, 're' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True).stdout
    assert out.split()[0] == "False"


@pytest.mark.parametrize("text", ['{"a": 1,}', '{"a" 1}', '[1, 2', '{"a": [1, }'])
def test_malformed_input_is_a_value_error_even_without_json_imported(text):
    code = ("import sys\nfrom pyrunc import fastjson\n"
            f"try:\n    fastjson.loads({text!r})\nexcept ValueError:\n    print('ValueError')\n"
            "print('json' in sys.modules)")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.stdout.split() == ["ValueError", "False"], result.stderr


def test_dumps_after_an_error_still_encodes_the_same_objects():
    doc = {"a": [1, 2]}
    with pytest.raises(TypeError):
        fastjson.dumps({"a": doc["a"], "b": object()})
    assert fastjson.dumps(doc) == json.dumps(doc)
