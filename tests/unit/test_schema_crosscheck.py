"""Our schemas/ must agree with the upstream runtime-spec schema on a shared corpus.

The upstream schema is the one Debian ships (golang-github-opencontainers-specs-dev);
it predates runtime-spec v1.3.0, so documents where the newer spec legitimately
differs are listed, with reasons, in the corpus' EXPECTED_DIFFERENCES and are
checked to differ exactly as described.
"""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path
from typing import Any

import pytest

jsonschema = pytest.importorskip("jsonschema")

REPO = Path(__file__).resolve().parents[2]
UPSTREAM_DIR = Path("/usr/share/gocode/src/github.com/opencontainers/runtime-spec/schema")


def _load_corpus() -> Any:
    name = "pyrunc_schema_corpus"
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, Path(__file__).parent / "schema_corpus" / "cases.py")
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    return sys.modules[name]


corpus = _load_corpus()


def _registry_validator(schema_dir: Path, root: str, validator_cls: Any) -> Any:
    """A validator for *root* whose relative file references resolve inside *schema_dir*."""
    from referencing import Registry, Resource
    from referencing.jsonschema import DRAFT4

    resources = []
    for path in sorted(schema_dir.glob("*.json")):
        contents = json.loads(path.read_text(encoding="utf-8"))
        resources.append((path.name, Resource.from_contents(contents, default_specification=DRAFT4)))
    registry = Registry().with_resources(resources)
    return validator_cls(json.loads((schema_dir / root).read_text(encoding="utf-8")), registry=registry)


@pytest.fixture(scope="module")
def upstream() -> Any:
    if not (UPSTREAM_DIR / "config-schema.json").is_file():
        pytest.skip(f"upstream runtime-spec schema not installed at {UPSTREAM_DIR} "
                    "(apt-get install golang-github-opencontainers-specs-dev)")
    return _registry_validator(UPSTREAM_DIR, "config-schema.json", jsonschema.Draft4Validator)


@pytest.fixture(scope="module")
def ours() -> Any:
    """Our schemas loaded file by file (not bundled), so the cross-file refs are exercised too."""
    return _registry_validator(REPO / "schemas", "config-schema.json", jsonschema.Draft4Validator)


def test_corpus_is_big_enough() -> None:
    assert len(corpus.CROSSCHECK) >= 40
    names = [c.name for c in corpus.ALL_CASES]
    assert len(names) == len(set(names)), "case names must be unique"


@pytest.mark.parametrize("case", corpus.CROSSCHECK, ids=lambda c: c.name)
def test_same_verdict_as_upstream(case: Any, ours: Any, upstream: Any) -> None:
    assert ours.is_valid(case.doc) == case.valid, list(ours.iter_errors(case.doc))
    assert upstream.is_valid(case.doc) == case.valid, list(upstream.iter_errors(case.doc))


@pytest.mark.parametrize("diff", corpus.EXPECTED_DIFFERENCES, ids=lambda d: d.case.name)
def test_expected_differences(diff: Any, ours: Any, upstream: Any) -> None:
    assert diff.reason
    assert diff.upstream_valid != diff.case.valid
    assert ours.is_valid(diff.case.doc) == diff.case.valid, list(ours.iter_errors(diff.case.doc))
    assert upstream.is_valid(diff.case.doc) == diff.upstream_valid


@pytest.mark.parametrize("name", ["config-schema.json", "defs.json", "config-linux.json",
                                  "state-schema.json", "features-schema.json"])
def test_our_schemas_are_valid_draft4(name: str) -> None:
    schema = json.loads((REPO / "schemas" / name).read_text(encoding="utf-8"))
    jsonschema.Draft4Validator.check_schema(schema)
    assert schema["$schema"] == "http://json-schema.org/draft-04/schema#"


def test_state_and_features_schemas() -> None:
    state = _registry_validator(REPO / "schemas", "state-schema.json", jsonschema.Draft4Validator)
    base = {"ociVersion": "1.3.0", "id": "c1", "status": "running", "pid": 42, "bundle": "/b"}
    assert state.is_valid(base)
    assert state.is_valid({**base, "status": "stopped", "pid": 0})
    assert not state.is_valid({k: v for k, v in base.items() if k != "pid"}), "pid is required while running"
    assert state.is_valid({k: v for k, v in base.items() if k != "pid"} | {"status": "creating"})
    assert not state.is_valid({**base, "status": "paused"})

    features = _registry_validator(REPO / "schemas", "features-schema.json", jsonschema.Draft4Validator)
    doc = {"ociVersionMin": "1.0.0", "ociVersionMax": "1.3.0", "hooks": ["prestart"],
           "linux": {"namespaces": ["time"], "capabilities": ["CAP_SYS_ADMIN"],
                     "seccomp": {"enabled": True, "actions": ["SCMP_ACT_ALLOW"]},
                     "mountExtensions": {"idmap": {"enabled": True}}}}
    assert features.is_valid(doc)
    assert not features.is_valid({"ociVersionMin": "1.0.0"})
    assert not features.is_valid(doc | {"linux": {"namespaces": ["pidd"]}})
