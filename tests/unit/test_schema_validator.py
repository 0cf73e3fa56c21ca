"""The compiled hot-path validator, the jsonschema explainer and their error messages."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from pyrunc.spec import _compiled_config_schema as compiled
from pyrunc.spec.validate import ConfigValidationError, config_schema, schema_validator, validate_config

REPO = Path(__file__).resolve().parents[2]


def _load_corpus() -> Any:
    name = "pyrunc_schema_corpus"
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, Path(__file__).parent / "schema_corpus" / "cases.py")
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    return sys.modules[name]


corpus = _load_corpus()
INVALID = [c for c in corpus.ALL_CASES if not c.valid]

# Documents outside the config corpus where the two validators could plausibly part ways.
EDGE_DOCS = [
    {"ociVersion": "1.0.0", "process": {"cwd": "/", "rlimits": [{"type": "RLIMIT_CORE\n", "soft": 0, "hard": 0}]}},
    {"ociVersion": "1.0.0", "process": {"cwd": "/", "user": {"uid": 1.0, "gid": 0}}},
    {"ociVersion": "1.0.0", "process": {"cwd": "/", "user": {"uid": 18446744073709551616, "gid": 0}}},
    {"ociVersion": "1.0.0", "linux": {"resources": {"memory": {"limit": -9223372036854775809}}}},
    {"ociVersion": "1.0.0", "linux": {"devices": [{"path": "/dev/fifo", "type": "p"}]}},
    {"ociVersion": "1.0.0", "linux": {"intelRdt": {"schemata": ["L3:0=f\nMB:0=1"]}}},
    {"ociVersion": "1.0.0", "annotations": {"": "empty key"}},
    None,
    "config",
]


def _compiled_ok(doc: Any) -> bool:
    try:
        compiled.validate(doc)
    except compiled.JsonSchemaValueException:
        return False
    return True


@pytest.fixture(scope="module")
def explainer() -> Any:
    return schema_validator(config_schema())


@pytest.mark.parametrize("case", corpus.ALL_CASES, ids=lambda c: c.name)
def test_compiled_and_jsonschema_agree(case: Any, explainer: Any) -> None:
    assert _compiled_ok(case.doc) == case.valid
    assert explainer.is_valid(case.doc) == case.valid


@pytest.mark.parametrize("doc", EDGE_DOCS, ids=range(len(EDGE_DOCS)))
def test_agree_on_edge_cases(doc: Any, explainer: Any) -> None:
    assert _compiled_ok(doc) == explainer.is_valid(doc)


@pytest.mark.parametrize("case", INVALID, ids=lambda c: c.name)
def test_error_names_pointer_and_section(case: Any) -> None:
    with pytest.raises(ConfigValidationError) as info:
        validate_config(case.doc)
    err = info.value
    assert (err.pointer, err.section) == (case.pointer, case.section), str(err)
    line = str(err)
    assert "\n" not in line
    assert line.startswith("config.json: ")
    assert line.endswith(f"(see runtime-spec {case.section})")
    if case.pointer:
        assert f" {case.pointer}: " in line
    assert err.expected


@pytest.mark.parametrize("case", [c for c in corpus.ALL_CASES if c.valid], ids=lambda c: c.name)
def test_valid_documents_pass(case: Any) -> None:
    validate_config(case.doc)


def test_example_message() -> None:
    doc = corpus.edit(corpus.MINIMAL, "/linux/namespaces", [{"type": "pidd"}])
    with pytest.raises(ConfigValidationError) as info:
        validate_config(doc)
    assert str(info.value) == (
        'config.json: /linux/namespaces/0/type: "pidd" is not one of pid, network, mount, ipc, uts, user, '
        "cgroup, time (see runtime-spec config-linux.md#namespaces)"
    )
    assert info.value.expected == "one of pid, network, mount, ipc, uts, user, cgroup, time"
    assert isinstance(info.value, ValueError)


def test_expected_texts() -> None:
    cases = {
        "/process/args": ("array of strings", corpus.edit(corpus.RUNC_DEFAULT, "/process/args", "sh")),
        "/process/user/uid": ("uint32 (0..4294967295)", corpus.edit(corpus.RUNC_DEFAULT, "/process/user/uid", -1)),
        "/process/cwd": ("property 'cwd'", corpus.edit(corpus.RUNC_DEFAULT, "/process/cwd")),
    }
    for pointer, (expected, doc) in cases.items():
        with pytest.raises(ConfigValidationError) as info:
            validate_config(doc)
        assert (info.value.pointer, info.value.expected) == (pointer, expected)


def test_pointer_escaping() -> None:
    doc = corpus.edit(corpus.MINIMAL, "/annotations", {"a/b~c": 1})
    with pytest.raises(ConfigValidationError) as info:
        validate_config(doc)
    assert info.value.pointer == "/annotations/a~1b~0c"


def test_compiled_module_is_up_to_date(tmp_path: Path) -> None:
    pytest.importorskip("fastjsonschema")
    out = tmp_path / "compiled.py"
    subprocess.run([sys.executable, str(REPO / "hack" / "gen-validator"), "--output", str(out)], check=True)
    current = (REPO / "pyrunc" / "spec" / "_compiled_config_schema.py").read_text(encoding="utf-8")
    assert out.read_text(encoding="utf-8") == current, "run hack/gen-validator and commit the result"


def test_compiled_module_is_self_contained() -> None:
    source = (REPO / "pyrunc" / "spec" / "_compiled_config_schema.py").read_text(encoding="utf-8")
    assert source.startswith("# generated by hack/gen-validator; do not edit")
    code_lines = [line for line in source.splitlines() if not line.lstrip().startswith("#")]
    imports = [line for line in code_lines if line.startswith(("import ", "from "))]
    assert imports == []   # not even `re`: the schema's patterns are matched by _Pattern


def test_import_does_not_load_schema_libraries() -> None:
    probe = (
        "import sys, pyrunc.spec.validate as v\n"
        "v.validate_config({'ociVersion': '1.0.0', 'process': {'cwd': '/', 'args': ['sh']}})\n"
        "bad = [m for m in ('jsonschema', 'fastjsonschema', 'decimal') if m in sys.modules]\n"
        "print(','.join(bad))\n"
    )
    result = subprocess.run([sys.executable, "-c", probe], cwd=REPO, capture_output=True, text=True, check=True,
                            env={"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin"})
    assert result.stdout.strip() == "", f"imported on the hot path: {result.stdout.strip()}"
