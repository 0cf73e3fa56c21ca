"""The compiled validator's patterns, matched without `re`, decide exactly as `re` does."""

from __future__ import annotations

import importlib.machinery
import importlib.util
import re
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pyrunc.spec import _compiled_config_schema as compiled

REPO = Path(__file__).resolve().parents[2]


def _generator():
    loader = importlib.machinery.SourceFileLoader("gen_validator", str(REPO / "hack" / "gen-validator"))
    spec = importlib.util.spec_from_loader("gen_validator", loader)
    module = importlib.util.module_from_spec(spec)
    loader.exec_module(module)
    return module


PATTERNS = sorted(compiled.REGEX_PATTERNS)
#: Characters the patterns care about, and some they do not.
ALPHABET = "RLIMT_ABCNOFXYZabc0123456789 ,-:\n\tKGBrwm.^$[]\\é"


def _re_matches(pattern: str, text: str) -> bool:
    # fastjsonschema compiles `$` as `\Z` (the very end, not before a final newline).
    return re.compile(pattern[:-1] + r"\Z").search(text) is not None


@pytest.mark.parametrize("pattern", PATTERNS)
@settings(max_examples=300, deadline=None)
@given(text=st.text(alphabet=ALPHABET, max_size=12))
def test_pattern_agrees_with_re(pattern, text):
    matcher = compiled.REGEX_PATTERNS[pattern]
    assert (matcher.search(text) is not None) == _re_matches(pattern, text), (pattern, text)


@pytest.mark.parametrize("pattern, text, expected", [
    ("^RLIMIT_[A-Z]+$", "RLIMIT_NOFILE", True),
    ("^RLIMIT_[A-Z]+$", "RLIMIT_", False),
    ("^RLIMIT_[A-Z]+$", "RLIMIT_NOFILE\n", False),
    ("^[1-9][0-9]*[KMG]B$", "2MB", True),
    ("^[1-9][0-9]*[KMG]B$", "1024KB", True),
    ("^[1-9][0-9]*[KMG]B$", "02MB", False),
    ("^[^\\n]*$", "a\nb", False),
    ("^[0-9, -]*$", "0-3, 7", True),
])
def test_examples(pattern, text, expected):
    assert (compiled.REGEX_PATTERNS[pattern].search(text) is not None) == expected


@pytest.mark.parametrize("pattern", [
    "^[0-9]*[0-9]$",      # a greedy scan would take the digit the second set needs
    "^a|b$", "^(ab)+$", "^a.b$", "^a?$", "^[a-z]{2}$", "^\\d+$", "^abc", "abc$",
    "^[^a]*b$",           # a negated repeated set before another one
])
def test_patterns_that_need_a_regular_expression_are_left_to_re(pattern):
    assert _generator().translate_pattern(pattern) is None

